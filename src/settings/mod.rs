//! The settings of `edge-tl run`, from wherever they come: a command-line flag, its environment
//! variable (`EDGE_TL_SOURCE`, `EDGE_TL_THREADS`, ...; clap reads those with the flag), the
//! settings file (`--config`, see [`file`]), or the built-in default, in that order.
//!
//! Each place gives a [`RunLayer`] in which every value is optional and already checked against
//! its range ([`bounds`], the same for the flag and the key). [`RunLayer::over`] lays one over
//! another, and [`RunSettings::resolve`] applies the defaults and the checks that involve
//! several values, once, before a model is loaded or a camera opened.

pub mod bounds;
pub mod file;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::live::LiveOptions;
use crate::model::Threads;
use crate::region::Region;
use crate::review::{ReviewSettings, SelectSettings};
use crate::sink::mqtt::MqttSettings;
use crate::source::{PixelFormat, Size, SourceOptions, SourceSpec, Want};

/// What one place (the command line, the settings file) says about `run`; `None` = not said.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunLayer {
    pub source: Option<SourceSpec>,
    pub format: Option<PixelFormat>,
    pub size: Option<Size>,
    pub fps: Option<f64>,
    pub looping: Option<bool>,
    pub replay_fps: Option<f64>,
    pub source_password: Option<Secret>,
    /// Several cameras (`--camera NAME=SOURCE`, `[[camera]]`), instead of `source`.
    pub cameras: Option<Vec<CameraLayer>>,
    pub model: Option<String>,
    pub head: Option<PathBuf>,
    pub threads: Option<Threads>,
    pub watch_head: Option<bool>,
    pub data: Option<PathBuf>,
    pub region: Option<Region>,
    pub threshold: Option<f32>,
    pub smooth: Option<usize>,
    pub confirm: Option<usize>,
    pub on_change: Option<bool>,
    pub top: Option<usize>,
    pub frames: Option<u64>,
    pub http_listen: Option<SocketAddr>,
    pub http_token: Option<Secret>,
    pub mqtt_url: Option<String>,
    pub mqtt_user: Option<String>,
    pub mqtt_password: Option<Secret>,
    pub device_id: Option<String>,
    pub topic_prefix: Option<String>,
    pub discovery: Option<bool>,
    pub discovery_prefix: Option<String>,
    pub review: ReviewLayer,
}

/// What one place says about the review queue (`[review]`, `--review-keep`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReviewLayer {
    pub keep: Option<usize>,
    pub megabytes: Option<u64>,
    pub below: Option<f32>,
    pub margin: Option<f32>,
    pub every: Option<u64>,
    pub duplicate: Option<f32>,
}

impl ReviewLayer {
    fn over(self, lower: ReviewLayer) -> ReviewLayer {
        ReviewLayer {
            keep: self.keep.or(lower.keep),
            megabytes: self.megabytes.or(lower.megabytes),
            below: self.below.or(lower.below),
            margin: self.margin.or(lower.margin),
            every: self.every.or(lower.every),
            duplicate: self.duplicate.or(lower.duplicate),
        }
    }

    /// The defaults where nothing was said.
    fn resolve(self) -> ReviewSettings {
        let d = ReviewSettings::default();
        ReviewSettings {
            keep: self.keep.unwrap_or(d.keep),
            max_bytes: self.megabytes.map_or(d.max_bytes, |m| m << 20),
            duplicate: self.duplicate.unwrap_or(d.duplicate),
            select: SelectSettings {
                below: self.below.unwrap_or(d.select.below),
                margin: self.margin.unwrap_or(d.select.margin),
                every: self.every.unwrap_or(d.select.every),
            },
            write_pause: d.write_pause,
        }
    }
}

macro_rules! over {
    ($top:ident, $lower:ident, $($field:ident),*) => {
        RunLayer { review: $top.review.over($lower.review), $($field: $top.$field.or($lower.$field)),* }
    };
}

impl RunLayer {
    /// This layer's values, and `lower`'s where this one says nothing.
    pub fn over(self, lower: RunLayer) -> RunLayer {
        over!(
            self,
            lower,
            source,
            format,
            size,
            fps,
            looping,
            replay_fps,
            source_password,
            cameras,
            model,
            head,
            threads,
            watch_head,
            data,
            region,
            threshold,
            smooth,
            confirm,
            on_change,
            top,
            frames,
            http_listen,
            http_token,
            mqtt_url,
            mqtt_user,
            mqtt_password,
            device_id,
            topic_prefix,
            discovery,
            discovery_prefix
        )
    }
}

/// One of several cameras as one place gives it; what it leaves out comes from the settings
/// of all cameras (`head`, `threshold`, `smooth`, `confirm`, `data`).
#[derive(Debug, Clone, PartialEq)]
pub struct CameraLayer {
    pub name: String,
    pub source: SourceSpec,
    pub source_password: Option<Secret>,
    pub head: Option<PathBuf>,
    pub data: Option<PathBuf>,
    /// The region the page's Train teaches this camera's head on.
    pub region: Option<Region>,
    pub threshold: Option<f32>,
    pub smooth: Option<usize>,
    pub confirm: Option<usize>,
}

/// Longest camera name: it goes into MQTT topics, metric labels and every JSON line.
pub const MAX_CAMERA_NAME: usize = 32;

/// A camera's name: 1 to [`MAX_CAMERA_NAME`] letters, digits, `-` and `_` (safe in an MQTT
/// topic level, a Prometheus label and a Home Assistant id). The callers name the flag or key.
pub fn check_camera_name(name: &str) -> Result<(), String> {
    let n = name.chars().count();
    if n == 0 || n > MAX_CAMERA_NAME {
        return Err(format!(
            "a camera name must be 1 to {MAX_CAMERA_NAME} characters (got {n})"
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!(
            "camera name {name:?}: use letters, digits, - and _ only"
        ));
    }
    Ok(())
}

/// A secret (the HTTP token, the MQTT password) as one place gives it: the value itself, or a
/// file that holds it. A file (or the environment variable) keeps the secret out of `ps` and
/// out of a settings file others may read; it is read once, by [`RunSettings::resolve`].
#[derive(Clone, PartialEq)]
pub enum Secret {
    Value(String),
    File {
        path: PathBuf,
        /// The flag or key that named the file, for messages (`--http-token-file`).
        setting: String,
    },
}

/// Never the value: layers and settings are printed with `{:?}` in tests and while debugging.
impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secret::Value(_) => f.write_str("Value(***)"),
            Secret::File { path, setting } => f
                .debug_struct("File")
                .field("path", path)
                .field("setting", setting)
                .finish(),
        }
    }
}

impl Secret {
    /// The secret a value and a file setting give, the file named by `setting` in messages.
    /// Where both are given the file is taken; the command line (clap) and the settings file
    /// refuse that case before asking.
    pub fn given(value: Option<String>, file: Option<PathBuf>, setting: String) -> Option<Secret> {
        match (value, file) {
            (_, Some(path)) => Some(Secret::File { path, setting }),
            (value, None) => value.map(Secret::Value),
        }
    }

    /// The secret: the value, or the file's text without its trailing newline (what `echo`
    /// and editors leave). A file that cannot be read, or holds nothing, is an error: a
    /// service that meant to be guarded must not start open.
    pub fn read(self) -> Result<String, SettingsError> {
        match self {
            Secret::Value(value) => Ok(value),
            Secret::File { path, setting } => {
                let text = match std::fs::read_to_string(&path) {
                    Ok(text) => text,
                    Err(source) => {
                        return Err(SettingsError::SecretFile {
                            setting,
                            path,
                            source: Arc::new(source),
                        })
                    }
                };
                let secret = text.trim_end_matches(&['\n', '\r'][..]);
                if secret.is_empty() {
                    return Err(SettingsError::EmptySecretFile { setting, path });
                }
                Ok(secret.to_string())
            }
        }
    }
}

/// Where the HTTP service listens and who may ask.
#[derive(Clone, PartialEq)]
pub struct HttpSettings {
    pub listen: SocketAddr,
    /// Bearer token; required unless `listen` is a loopback address.
    pub token: Option<String>,
    pub limits: HttpLimits,
}

/// Never the token.
impl std::fmt::Debug for HttpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSettings")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("limits", &self.limits)
            .finish()
    }
}

impl HttpSettings {
    /// Refuses an open listener without a token.
    pub fn check(&self) -> Result<(), SettingsError> {
        if !self.listen.ip().is_loopback() && self.token.as_deref().is_none_or(str::is_empty) {
            return Err(SettingsError::NoToken(self.listen));
        }
        Ok(())
    }
}

/// What clients may hold of the HTTP service. Without limits, sockets that send nothing
/// stayed open for ever: about 20,000 of them used up the process's file descriptors, the
/// service stopped answering and a `dir:` source could not open its pictures any more.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpLimits {
    /// Time a client has to send a whole request head once it starts waiting for one: a
    /// connection that sends nothing, or half a head, is closed after it.
    pub header_read: Duration,
    /// Time a client has to send the body of a request that changes something (the API's
    /// JSON), so a body that never comes does not hold a handler.
    pub body_read: Duration,
    /// A connection with no traffic for this long is closed once nothing is being answered
    /// on it (a kept-alive connection between requests); a preview stream or a capture still
    /// running is left to finish.
    pub idle: Duration,
    /// Connections open at once, in all; more are answered `503` and closed.
    pub max_connections: usize,
    /// Connections open at once from one client address (an IPv6 /64 counts as one client);
    /// more are answered `503` and closed. A browser opens about 6 per site, plus one per
    /// preview and event stream.
    pub max_per_client: usize,
}

impl Default for HttpLimits {
    fn default() -> HttpLimits {
        HttpLimits {
            header_read: Duration::from_secs(10),
            body_read: Duration::from_secs(10),
            idle: Duration::from_secs(30),
            max_connections: 256,
            max_per_client: 32,
        }
    }
}

/// One camera of `run`, checked.
#[derive(Debug, Clone)]
pub struct CameraSettings {
    /// `None` for the one camera of `--source`: its results carry no `camera` field.
    pub name: Option<String>,
    pub source: SourceSpec,
    pub source_options: SourceOptions,
    pub head: Option<PathBuf>,
    /// Where the page's captures of this camera go (see [`RunSettings::resolve`]).
    pub data: PathBuf,
    /// The region the page's Train teaches the head on (the head's own, once trained, is what
    /// the loop looks at).
    pub region: Option<Region>,
    pub live: LiveOptions,
}

/// Everything `run` needs, checked.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// Every camera: the one of `source` and `live`, or the several of `--camera` and
    /// `[[camera]]`.
    pub cameras: Vec<CameraSettings>,
    /// Stop after this many results (all cameras together).
    pub frames: Option<u64>,
    pub source: SourceSpec,
    pub source_options: SourceOptions,
    /// Backbone name or path; `None`: the head's backbone, else the default one.
    pub model: Option<String>,
    pub head: Option<PathBuf>,
    /// Threads per picture; unless set, [`Threads::auto`] (measured).
    pub threads: Threads,
    pub watch_head: bool,
    /// Dataset folder the page's captures go to.
    pub data: PathBuf,
    pub live: LiveOptions,
    /// Print (JSON lines) only results whose label differs from the previous one.
    pub on_change: bool,
    pub http: Option<HttpSettings>,
    pub mqtt: Option<MqttSettings>,
    /// The review queue beside each dataset folder, kept while the page is on.
    pub review: ReviewSettings,
}

/// A setting that cannot be used, or settings that do not go together.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SettingsError {
    #[error("{0}")]
    Conflict(String),
    #[error(
        "refusing to serve on {0} without a token: anyone on the network could capture and \
         train; set --http-token-file FILE (or EDGE_TL_HTTP_TOKEN, --http-token) or [http] \
         token_file / token in the settings file, or listen on 127.0.0.1"
    )]
    NoToken(SocketAddr),
    /// `source` is in an `Arc` so that settings errors stay `Clone`.
    #[error("{setting}: cannot read the secret file {}", path.display())]
    SecretFile {
        setting: String,
        path: PathBuf,
        #[source]
        source: Arc<std::io::Error>,
    },
    #[error(
        "{setting}: the secret file {} is empty: write the secret into it (a trailing newline is \
         fine)",
        path.display()
    )]
    EmptySecretFile { setting: String, path: PathBuf },
}

/// The first camera, when no source is given.
pub const DEFAULT_SOURCE: &str = "v4l:/dev/video0";
/// The dataset folder, when none is given.
pub const DEFAULT_DATA: &str = "dataset";

impl RunSettings {
    /// Applies the defaults to the merged layer and checks what involves several settings.
    ///
    /// A camera's captures (from the page) go to its table's `data` folder, else to the run's
    /// `data`; with the page on, cameras of one head must share a folder and cameras of
    /// different heads must not ([`one_data_per_head`]).
    pub fn resolve(layer: RunLayer) -> Result<RunSettings, SettingsError> {
        let live_defaults = LiveOptions::default();
        let http = match layer.http_listen {
            Some(listen) => {
                // Secret files are read here, once, and only for the parts that are on.
                let token = layer.http_token.map(Secret::read).transpose()?;
                let http = HttpSettings {
                    listen,
                    token: token.filter(|t| !t.is_empty()),
                    limits: HttpLimits::default(),
                };
                http.check()?;
                Some(http)
            }
            None => None,
        };
        if layer.mqtt_password.is_some() && layer.mqtt_user.is_none() {
            return Err(SettingsError::Conflict(
                "an MQTT password is set (--mqtt-password, --mqtt-password-file, \
                 EDGE_TL_MQTT_PASSWORD, mqtt.password or mqtt.password_file) but no user: set \
                 --mqtt-user (EDGE_TL_MQTT_USER) or mqtt.user too"
                    .into(),
            ));
        }
        let mqtt_password = match layer.mqtt_url {
            Some(_) => layer.mqtt_password.map(Secret::read).transpose()?,
            None => None,
        };
        let mqtt = layer.mqtt_url.map(|url| {
            let mut m = MqttSettings::new(&url);
            m.user = layer.mqtt_user;
            m.password = mqtt_password;
            if let Some(id) = layer.device_id {
                m.device_id = id;
            }
            if let Some(p) = layer.topic_prefix {
                m.topic_prefix = p;
            }
            if let Some(p) = layer.discovery_prefix {
                m.discovery_prefix = Some(p);
            }
            if layer.discovery == Some(false) {
                m.discovery_prefix = None;
            }
            m
        });
        let source_given = layer.source.is_some();
        let source = match layer.source {
            Some(s) => s,
            None => DEFAULT_SOURCE.parse().expect("the default source parses"),
        };
        // Read only where it is used, so a stale password file does not stop a V4L2 camera.
        let password_for = |source: &SourceSpec, secret: Option<Secret>| match source {
            SourceSpec::Rtsp(_) => secret.map(Secret::read).transpose(),
            _ => Ok(None),
        };
        let password = password_for(&source, layer.source_password.clone())?;
        let source_options = SourceOptions {
            looping: layer.looping.unwrap_or(false),
            replay_fps: layer.replay_fps,
            camera: Want {
                format: layer.format,
                size: layer.size,
                fps: layer.fps,
            },
            password,
        };
        let live = LiveOptions {
            top: layer.top.unwrap_or(live_defaults.top),
            smooth: layer.smooth.unwrap_or(live_defaults.smooth),
            confirm: layer.confirm.unwrap_or(live_defaults.confirm),
            threshold: layer.threshold,
        };
        let data = layer.data.unwrap_or_else(|| PathBuf::from(DEFAULT_DATA));
        let cameras = match layer.cameras {
            None => vec![CameraSettings {
                name: None,
                source: source.clone(),
                source_options: source_options.clone(),
                head: layer.head.clone(),
                data: data.clone(),
                region: layer.region,
                live: live.clone(),
            }],
            Some(list) => {
                if source_given {
                    return Err(SettingsError::Conflict(
                        "both a source (--source, EDGE_TL_SOURCE or `source`) and cameras \
                         (--camera or [[camera]] tables) are given: give one or the other"
                            .into(),
                    ));
                }
                let mut names = std::collections::HashSet::new();
                let mut cameras = Vec::new();
                for c in list {
                    if !names.insert(c.name.clone()) {
                        return Err(SettingsError::Conflict(format!(
                            "two cameras are named {:?}: give each camera its own name",
                            c.name
                        )));
                    }
                    let password = password_for(
                        &c.source,
                        c.source_password.or(layer.source_password.clone()),
                    )?;
                    let camera_data = c.data.unwrap_or_else(|| data.clone());
                    cameras.push(CameraSettings {
                        name: Some(c.name),
                        source: c.source,
                        source_options: SourceOptions {
                            password,
                            ..source_options.clone()
                        },
                        head: c.head.or(layer.head.clone()),
                        data: camera_data,
                        region: c.region.or(layer.region),
                        live: LiveOptions {
                            smooth: c.smooth.unwrap_or(live.smooth),
                            confirm: c.confirm.unwrap_or(live.confirm),
                            threshold: c.threshold.or(live.threshold),
                            ..live.clone()
                        },
                    });
                }
                if http.is_some() {
                    one_data_per_head(&cameras)?;
                }
                cameras
            }
        };
        Ok(RunSettings {
            cameras,
            frames: layer.frames,
            source,
            source_options,
            model: layer.model,
            head: layer.head,
            threads: layer.threads.unwrap_or_else(Threads::auto),
            watch_head: layer.watch_head.unwrap_or(true),
            data,
            live,
            on_change: layer.on_change.unwrap_or(false),
            http,
            mqtt,
            review: layer.review.resolve(),
        })
    }
}

/// With the page on, what a camera captures trains its head from its folder: cameras that
/// share a head must share the folder (training on one's page would otherwise overwrite the
/// head without the other's samples), and cameras of different heads must not share one or
/// nest one in another (each would train on the other's pictures, or see its folder as a
/// label).
fn one_data_per_head(cameras: &[CameraSettings]) -> Result<(), SettingsError> {
    let name = |c: &CameraSettings| c.name.clone().unwrap_or_else(|| "?".into());
    for (i, a) in cameras.iter().enumerate() {
        for b in &cameras[i + 1..] {
            let same_head = a.head.is_some() && a.head == b.head;
            if same_head && a.data != b.data {
                return Err(SettingsError::Conflict(format!(
                    "cameras {} and {} share the head {} but capture into different folders \
                     ({} and {}): training on one camera's page would overwrite the head \
                     without the other's samples; give them the same `data` or each its own \
                     `head`",
                    name(a),
                    name(b),
                    a.head.as_deref().unwrap_or(Path::new("")).display(),
                    a.data.display(),
                    b.data.display(),
                )));
            }
            let overlap = a.data.starts_with(&b.data) || b.data.starts_with(&a.data);
            if !same_head && overlap {
                return Err(SettingsError::Conflict(format!(
                    "cameras {} and {} have different heads but capture into {}{}: each would \
                     train on the other's pictures; give each camera with a head of its own a \
                     `data` folder of its own in its [[camera]] table",
                    name(a),
                    name(b),
                    a.data.display(),
                    if a.data == b.data {
                        String::new()
                    } else {
                        format!(" and {}, one inside the other", b.data.display())
                    },
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upper_layer_wins_where_it_says_something() {
        let flags = RunLayer {
            top: Some(2),
            ..RunLayer::default()
        };
        let file = RunLayer {
            top: Some(5),
            smooth: Some(4),
            ..RunLayer::default()
        };
        let s = RunSettings::resolve(flags.over(file)).unwrap();
        assert_eq!((s.live.top, s.live.smooth), (2, 4));
        assert_eq!(s.source.to_string(), DEFAULT_SOURCE);
        assert_eq!(s.data, PathBuf::from(DEFAULT_DATA));
        assert!(s.watch_head && s.http.is_none() && s.mqtt.is_none());
    }

    #[test]
    fn open_listeners_need_a_token() {
        let open = HttpSettings {
            listen: "0.0.0.0:8080".parse().unwrap(),
            token: None,
            limits: HttpLimits::default(),
        };
        let e = open.check().unwrap_err().to_string();
        assert!(
            e.starts_with("refusing to serve on 0.0.0.0:8080 without a token"),
            "{e}"
        );
        let empty = HttpSettings {
            token: Some(String::new()),
            ..open.clone()
        };
        assert!(empty.check().is_err());
        let with = HttpSettings {
            token: Some("s3cret".into()),
            ..open
        };
        assert!(with.check().is_ok());
        for local in ["127.0.0.1:8080", "[::1]:8080"] {
            let local = HttpSettings {
                listen: local.parse().unwrap(),
                token: None,
                limits: HttpLimits::default(),
            };
            assert!(local.check().is_ok());
        }
    }

    #[test]
    fn settings_that_do_not_go_together_are_refused() {
        let e = RunSettings::resolve(RunLayer {
            mqtt_url: Some("mqtt://b".into()),
            mqtt_password: Some(Secret::Value("pw".into())),
            ..RunLayer::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("no user"), "{e}");
        let e = RunSettings::resolve(RunLayer {
            http_listen: Some("0.0.0.0:8080".parse().unwrap()),
            ..RunLayer::default()
        })
        .unwrap_err();
        let open: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert!(matches!(e, SettingsError::NoToken(a) if a == open), "{e}");
        let ok = RunSettings::resolve(RunLayer {
            http_listen: Some("127.0.0.1:0".parse().unwrap()),
            ..RunLayer::default()
        })
        .unwrap();
        assert!(ok.http.unwrap().token.is_none());
    }

    fn file(setting: &str, path: PathBuf) -> Secret {
        Secret::File {
            path,
            setting: setting.into(),
        }
    }

    #[test]
    fn secrets_are_read_from_their_file_once_resolved() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "s3cret\n").unwrap();
        let s = RunSettings::resolve(RunLayer {
            http_listen: Some("127.0.0.1:0".parse().unwrap()),
            http_token: Some(file("--http-token-file", token.clone())),
            ..RunLayer::default()
        })
        .unwrap();
        assert_eq!(s.http.unwrap().token.as_deref(), Some("s3cret"));
        std::fs::write(&token, "pw word\r\n").unwrap();
        let s = RunSettings::resolve(RunLayer {
            mqtt_url: Some("mqtt://b".into()),
            mqtt_user: Some("edge".into()),
            mqtt_password: Some(file("mqtt.password_file", token.clone())),
            ..RunLayer::default()
        })
        .unwrap();
        assert_eq!(s.mqtt.unwrap().password.as_deref(), Some("pw word"));
        // Debug output never shows a secret's value.
        let shown = format!("{:?}", Secret::Value("hunter2".into()));
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn an_unreadable_or_empty_secret_file_names_the_flag_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let e = RunSettings::resolve(RunLayer {
            http_listen: Some("127.0.0.1:0".parse().unwrap()),
            http_token: Some(file("--http-token-file", missing.clone())),
            ..RunLayer::default()
        })
        .unwrap_err();
        assert_eq!(
            crate::error::chain(&e),
            format!(
                "--http-token-file: cannot read the secret file {}: No such file or directory \
                 (os error 2)",
                missing.display()
            )
        );
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let e = file("mqtt.password_file", empty.clone())
            .read()
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            format!(
                "mqtt.password_file: the secret file {} is empty: write the secret into it (a \
                 trailing newline is fine)",
                empty.display()
            )
        );
    }

    #[test]
    fn cameras_take_what_they_leave_out_from_all_and_must_differ() {
        let camera = |name: &str, source: &str| CameraLayer {
            name: name.into(),
            source: source.parse().unwrap(),
            source_password: None,
            head: None,
            data: None,
            region: None,
            threshold: None,
            smooth: None,
            confirm: None,
        };
        let layer = RunLayer {
            head: Some("all.head".into()),
            smooth: Some(4),
            cameras: Some(vec![
                CameraLayer {
                    head: Some("door.head".into()),
                    smooth: Some(2),
                    ..camera("door", "dir:a")
                },
                camera("hall", "dir:b"),
            ]),
            ..RunLayer::default()
        };
        let s = RunSettings::resolve(layer.clone()).unwrap();
        let names: Vec<_> = s.cameras.iter().map(|c| c.name.as_deref()).collect();
        assert_eq!(names, [Some("door"), Some("hall")]);
        assert_eq!(s.cameras[0].head, Some(PathBuf::from("door.head")));
        assert_eq!(s.cameras[1].head, Some(PathBuf::from("all.head")));
        assert_eq!((s.cameras[0].live.smooth, s.cameras[1].live.smooth), (2, 4));

        // One camera of --source: unnamed, so its results carry no camera field.
        let one = RunSettings::resolve(RunLayer::default()).unwrap();
        assert_eq!(one.cameras.len(), 1);
        assert_eq!(one.cameras[0].name, None);

        let twice = RunLayer {
            cameras: Some(vec![camera("door", "dir:a"), camera("door", "dir:b")]),
            ..RunLayer::default()
        };
        let e = RunSettings::resolve(twice).unwrap_err().to_string();
        assert_eq!(
            e,
            "two cameras are named \"door\": give each camera its own name"
        );
        let both = RunLayer {
            source: Some("dir:c".parse().unwrap()),
            ..layer.clone()
        };
        let e = RunSettings::resolve(both).unwrap_err().to_string();
        assert!(e.starts_with("both a source (--source"), "{e}");
        // Captures: a table's `data`, else the run's.
        assert_eq!(s.cameras[0].data, PathBuf::from("dataset"));
        assert_eq!(s.cameras[1].data, PathBuf::from("dataset"));
        let with_http = |cameras| RunLayer {
            http_listen: Some("127.0.0.1:0".parse().unwrap()),
            head: Some("all.head".into()),
            data: Some("samples".into()),
            cameras: Some(cameras),
            ..RunLayer::default()
        };
        let s = RunSettings::resolve(with_http(vec![
            camera("door", "dir:a"),
            camera("hall", "dir:b"),
        ]))
        .unwrap();
        assert!(s.http.is_some());
        assert!(s.cameras.iter().all(|c| c.data == Path::new("samples")));
        let apart = with_http(vec![
            CameraLayer {
                data: Some("door-samples".into()),
                ..camera("door", "dir:a")
            },
            camera("hall", "dir:b"),
        ]);
        let e = RunSettings::resolve(apart.clone()).unwrap_err().to_string();
        assert_eq!(
            e,
            "cameras door and hall share the head all.head but capture into different folders \
             (door-samples and samples): training on one camera's page would overwrite the \
             head without the other's samples; give them the same `data` or each its own `head`"
        );
        // Without the page nothing is captured, so nothing to refuse.
        RunSettings::resolve(RunLayer {
            http_listen: None,
            ..apart
        })
        .unwrap();
        // Heads of their own: one folder each, neither inside the other.
        let own = |name: &str, data: Option<&str>| CameraLayer {
            head: Some(format!("{name}.head").into()),
            data: data.map(PathBuf::from),
            ..camera(name, "dir:a")
        };
        let e = RunSettings::resolve(with_http(vec![own("door", None), own("hall", None)]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "cameras door and hall have different heads but capture into samples: each would \
             train on the other's pictures; give each camera with a head of its own a `data` \
             folder of its own in its [[camera]] table"
        );
        let e = RunSettings::resolve(with_http(vec![
            own("door", Some("samples/door")),
            own("hall", None),
        ]))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("capture into samples/door and samples, one inside the other"),
            "{e}"
        );
        let s = RunSettings::resolve(with_http(vec![
            own("door", Some("door-samples")),
            own("hall", None),
        ]))
        .unwrap();
        assert_eq!(s.cameras[1].data, PathBuf::from("samples"));
        // One camera of its own head on the run's folder is fine.
        RunSettings::resolve(with_http(vec![own("door", None)])).unwrap();
    }
}
