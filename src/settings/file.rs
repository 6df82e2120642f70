//! The settings file (`/etc/edge-tl/config.toml`, or `run --config FILE`): what `edge-tl run`
//! would otherwise take as flags. Unknown keys are errors, so a typo cannot be silently
//! ignored; every value is checked here, with the file and the key named, against the same
//! ranges as its flag ([`super::bounds`]).
//!
//! ```toml
//! source = "v4l:/dev/video0"   # or "rtsp://viewer@192.168.1.20:554/stream1", ...
//! source_password_file = "/etc/edge-tl/camera-password"  # or source_password = "..."
//! model = "mobilenet-v2-f32"
//! head = "/var/lib/edge-tl/home.head"
//! threads = 4                 # leave out: measured, 1 up to every core
//! data = "/var/lib/edge-tl/dataset"
//! region = "0.25,0.1,0.5,0.6"  # x,y,w,h: the part of the frame the page's Train teaches on
//!
//! [camera]
//! format = "mjpeg"
//! size = "640x480"
//! fps = 30
//!
//! [results]
//! threshold = 0.7
//! smooth = 5
//! on_change = true
//! top = 3
//!
//! [http]
//! listen = "127.0.0.1:8080"
//! token_file = "/etc/edge-tl/token"  # or token = "..."; needed when listen is not loopback
//!
//! [review]               # frames kept for labelling on the page (with [http] listen)
//! keep = 200               # entries at most (0 = no queue)
//! megabytes = 64           # disk use at most
//!
//! [mqtt]
//! url = "mqtt://localhost:1883"
//! user = "edge-tl"
//! password_file = "/etc/edge-tl/mqtt-password"  # or password = "..."
//! device_id = "kitchen"    # default: the host name
//! discovery = true         # Home Assistant discovery
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::bounds::{self, Bounds, Number};
use super::{check_camera_name, CameraLayer, ReviewLayer, RunLayer, Secret};

/// The file as written; every key is optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    source: Option<String>,
    /// The password of an `rtsp://` source that names only its user.
    source_password: Option<String>,
    source_password_file: Option<PathBuf>,
    model: Option<String>,
    head: Option<PathBuf>,
    threads: Option<usize>,
    watch_head: Option<bool>,
    data: Option<PathBuf>,
    /// `"X,Y,W,H"`: the part of the frame the page's Train teaches the head on.
    region: Option<String>,
    /// `[camera]` (the V4L2 mode of the one camera) or `[[camera]]` tables (several cameras).
    #[serde(default)]
    camera: CameraSection,
    #[serde(default)]
    results: ResultsKeys,
    #[serde(default)]
    http: HttpKeys,
    #[serde(default)]
    mqtt: MqttKeys,
    #[serde(default)]
    review: ReviewKeys,
}

/// `[review]`: the queue of frames kept for labelling on the page.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReviewKeys {
    keep: Option<usize>,
    megabytes: Option<u64>,
    below: Option<f32>,
    margin: Option<f32>,
    every: Option<u64>,
    duplicate: Option<f32>,
}

/// `[camera]`: the V4L2 mode.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct CameraKeys {
    format: Option<String>,
    size: Option<String>,
    fps: Option<f64>,
}

/// `camera` is a table (`[camera]`: the mode of the one camera) or an array of tables
/// (`[[camera]]`: several cameras); TOML cannot have both under one key.
#[derive(Debug, Clone, PartialEq)]
enum CameraSection {
    Mode(CameraKeys),
    Cameras(Vec<CameraEntry>),
}

impl Default for CameraSection {
    fn default() -> Self {
        CameraSection::Mode(CameraKeys::default())
    }
}

/// Decided by the value's shape, so each shape's own errors (an unknown key, a wrong type) are
/// reported, not serde's "did not match any variant".
impl<'de> Deserialize<'de> for CameraSection {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match toml::Value::deserialize(d)? {
            value @ toml::Value::Array(_) => Vec::<CameraEntry>::deserialize(value)
                .map(CameraSection::Cameras)
                .map_err(|e| D::Error::custom(format!("in a [[camera]] table: {}", e.message()))),
            value => CameraKeys::deserialize(value)
                .map(CameraSection::Mode)
                .map_err(|e| D::Error::custom(format!("in [camera]: {}", e.message()))),
        }
    }
}

/// `[[camera]]`: one of several cameras. What it leaves out comes from the top level
/// (`head`; `data`, see `RunSettings::resolve`) and `[results]` (`threshold`, `smooth`,
/// `confirm`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct CameraEntry {
    name: String,
    source: String,
    source_password: Option<String>,
    source_password_file: Option<PathBuf>,
    head: Option<PathBuf>,
    /// Where the page's captures of this camera go.
    data: Option<PathBuf>,
    region: Option<String>,
    threshold: Option<f32>,
    smooth: Option<usize>,
    confirm: Option<usize>,
}

/// `[results]`: shaping the answers.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResultsKeys {
    threshold: Option<f32>,
    smooth: Option<usize>,
    confirm: Option<usize>,
    on_change: Option<bool>,
    top: Option<usize>,
}

/// `[http]`: the HTTP service (off unless `listen` is set).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpKeys {
    listen: Option<String>,
    token: Option<String>,
    /// A file holding the token, so this file can be readable by more than the service.
    token_file: Option<PathBuf>,
}

/// `[mqtt]`: publishing to a broker (off unless `url` is set).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct MqttKeys {
    url: Option<String>,
    user: Option<String>,
    password: Option<String>,
    password_file: Option<PathBuf>,
    device_id: Option<String>,
    topic_prefix: Option<String>,
    discovery: Option<bool>,
    discovery_prefix: Option<String>,
}

/// Why a settings file cannot be used; always names the file, and the key when there is one.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{}: cannot read the settings file", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Syntax { path: PathBuf, message: String },
    #[error("{}: key `{key}`: {problem}", path.display())]
    Value {
        path: PathBuf,
        key: &'static str,
        problem: String,
    },
}

/// Reads and checks a settings file.
pub fn load(path: &Path) -> Result<RunLayer, FileError> {
    let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

/// Parses and checks settings text; `path` is for messages.
pub fn parse(text: &str, path: &Path) -> Result<RunLayer, FileError> {
    let file: FileSettings = toml::from_str(text).map_err(|e| {
        let place = e.span().map_or(String::new(), |span| {
            let before = text.get(..span.start.min(text.len())).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.chars().count()
                - before
                    .rfind('\n')
                    .map_or(0, |i| before[..=i].chars().count())
                + 1;
            format!("line {line}, column {column}: ")
        });
        FileError::Syntax {
            path: path.to_path_buf(),
            message: format!("{place}{}", e.message()),
        }
    })?;
    file.check(path)
}

impl FileSettings {
    fn check(self, path: &Path) -> Result<RunLayer, FileError> {
        let bad = |key: &'static str, problem: String| FileError::Value {
            path: path.to_path_buf(),
            key,
            problem,
        };
        let r = self.results;
        let m = self.mqtt;
        let v = self.review;
        for (key, prefix) in [
            ("mqtt.topic_prefix", &m.topic_prefix),
            ("mqtt.discovery_prefix", &m.discovery_prefix),
        ] {
            if let Some(p) = prefix {
                crate::sink::mqtt::check_topic_prefix(p).map_err(|e| bad(key, e))?;
            }
        }
        if let Some(url) = &m.url {
            crate::sink::mqtt::parse_url(url).map_err(|e| bad("mqtt.url", e.to_string()))?;
        }
        if let Some(id) = &m.device_id {
            crate::sink::mqtt::check_device_id(id)
                .map_err(|e| bad("mqtt.device_id", e.to_string()))?;
        }
        let http_listen = match self.http.listen {
            Some(l) => Some(l.parse().map_err(|_| {
                bad(
                    "http.listen",
                    format!(
                        "{l:?} is not ADDRESS:PORT, e.g. \"127.0.0.1:8080\" or \"0.0.0.0:8080\""
                    ),
                )
            })?),
            None => None,
        };
        let http_token = secret(
            self.http.token,
            self.http.token_file,
            ("http.token", "http.token_file"),
            path,
        )?;
        let mqtt_password = secret(
            m.password,
            m.password_file,
            ("mqtt.password", "mqtt.password_file"),
            path,
        )?;
        let source_password = secret(
            self.source_password,
            self.source_password_file,
            ("source_password", "source_password_file"),
            path,
        )?;
        let source = match self.source {
            Some(s) => Some(
                s.parse()
                    .map_err(|e: crate::source::SourceError| bad("source", e.to_string()))?,
            ),
            None => None,
        };
        let (mode, cameras) = match self.camera {
            CameraSection::Mode(mode) => (mode, None),
            CameraSection::Cameras(list) => (
                CameraKeys::default(),
                Some(
                    list.into_iter()
                        .map(|c| c.check(path))
                        .collect::<Result<Vec<_>, _>>()?,
                ),
            ),
        };
        Ok(RunLayer {
            source,
            format: parsed(mode.format, "camera.format", path)?,
            size: parsed(mode.size, "camera.size", path)?,
            fps: checked(mode.fps, "camera.fps", &bounds::FPS, path)?,
            cameras,
            looping: None,
            replay_fps: None,
            source_password,
            model: self.model,
            head: self.head,
            threads: checked(self.threads, "threads", &bounds::THREADS, path)?
                .map(crate::model::Threads::Fixed),
            watch_head: self.watch_head,
            data: self.data,
            region: parsed(self.region, "region", path)?,
            threshold: checked(r.threshold, "results.threshold", &bounds::THRESHOLD, path)?,
            smooth: checked(r.smooth, "results.smooth", &bounds::SMOOTH, path)?,
            confirm: checked(r.confirm, "results.confirm", &bounds::CONFIRM, path)?,
            on_change: r.on_change,
            top: checked(r.top, "results.top", &bounds::TOP, path)?,
            frames: None,
            http_listen,
            http_token,
            mqtt_url: m.url,
            mqtt_user: m.user,
            mqtt_password,
            device_id: m.device_id,
            topic_prefix: m.topic_prefix,
            discovery: m.discovery,
            discovery_prefix: m.discovery_prefix,
            review: ReviewLayer {
                keep: checked(v.keep, "review.keep", &bounds::REVIEW_KEEP, path)?,
                megabytes: checked(
                    v.megabytes,
                    "review.megabytes",
                    &bounds::REVIEW_MEGABYTES,
                    path,
                )?,
                below: checked(v.below, "review.below", &bounds::PROBABILITY, path)?,
                margin: checked(v.margin, "review.margin", &bounds::PROBABILITY, path)?,
                every: checked(v.every, "review.every", &bounds::REVIEW_EVERY, path)?,
                duplicate: checked(v.duplicate, "review.duplicate", &bounds::DUPLICATE, path)?,
            },
        })
    }
}

impl CameraEntry {
    fn check(self, path: &Path) -> Result<CameraLayer, FileError> {
        // The entry is named in every message, as several share the keys.
        let bad = |key: &'static str, problem: String| FileError::Value {
            path: path.to_path_buf(),
            key,
            problem: format!("camera {:?}: {problem}", self.name),
        };
        check_camera_name(&self.name).map_err(|e| bad("camera.name", e))?;
        let source = self
            .source
            .parse()
            .map_err(|e: crate::source::SourceError| bad("camera.source", e.to_string()))?;
        let named = |e: FileError| match e {
            FileError::Value { key, problem, .. } => bad(key, problem),
            other => other,
        };
        Ok(CameraLayer {
            threshold: checked(self.threshold, "camera.threshold", &bounds::THRESHOLD, path)
                .map_err(named)?,
            smooth: checked(self.smooth, "camera.smooth", &bounds::SMOOTH, path).map_err(named)?,
            confirm: checked(self.confirm, "camera.confirm", &bounds::CONFIRM, path)
                .map_err(named)?,
            source_password: secret(
                self.source_password.clone(),
                self.source_password_file.clone(),
                ("camera.source_password", "camera.source_password_file"),
                path,
            )?,
            head: self.head.clone(),
            data: self.data.clone(),
            region: parsed(self.region.clone(), "camera.region", path).map_err(named)?,
            source,
            name: self.name,
        })
    }
}

/// A secret given by its value or by a file (`keys`: the value's key, the file's key); both
/// at once is an error, as the file could not say which one it means.
fn secret(
    value: Option<String>,
    file: Option<PathBuf>,
    keys: (&'static str, &'static str),
    path: &Path,
) -> Result<Option<Secret>, FileError> {
    let (value_key, file_key) = keys;
    if value.is_some() && file.is_some() {
        return Err(FileError::Value {
            path: path.to_path_buf(),
            key: file_key,
            problem: format!("give either `{value_key}` or `{file_key}`, not both"),
        });
    }
    Ok(Secret::given(
        value,
        file,
        format!("{}: key `{file_key}`", path.display()),
    ))
}

/// A key's text parsed into its type, with the key named when it does not parse.
fn parsed<T: std::str::FromStr<Err = String>>(
    value: Option<String>,
    key: &'static str,
    path: &Path,
) -> Result<Option<T>, FileError> {
    value
        .map(|s| {
            s.parse().map_err(|problem| FileError::Value {
                path: path.to_path_buf(),
                key,
                problem,
            })
        })
        .transpose()
}

/// A numeric key's value, checked against its range.
fn checked<T: Number>(
    value: Option<T>,
    key: &'static str,
    range: &Bounds,
    path: &Path,
) -> Result<Option<T>, FileError> {
    value
        .map(|v| {
            bounds::check(v, range).map_err(|problem| FileError::Value {
                path: path.to_path_buf(),
                key,
                problem,
            })
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{PixelFormat, Size};

    const FULL: &str = r#"
source = "v4l:/dev/video0"
model = "mobilenet-v2-f32"
head = "/var/lib/edge-tl/home.head"
threads = 4
watch_head = true
region = "0.25,0.1,0.5,0.6"

[camera]
format = "mjpeg"
size = "640x480"
fps = 30

[results]
threshold = 0.7
smooth = 5
confirm = 3
on_change = true
top = 3

[http]
listen = "0.0.0.0:8080"
token = "s3cret"

[mqtt]
url = "mqtt://broker.lan:1884"
user = "edge"
password = "pw"
device_id = "kitchen-pi"
discovery = false

[review]
keep = 50
megabytes = 8
below = 0.5
margin = 0.1
every = 100
duplicate = 0.95
"#;

    fn parse(text: &str) -> Result<RunLayer, FileError> {
        super::parse(text, Path::new("/etc/edge-tl/config.toml"))
    }

    #[test]
    fn every_key_parses_into_its_type() {
        let c = parse(FULL).unwrap();
        assert_eq!(c.threads, Some(crate::model::Threads::Fixed(4)));
        assert_eq!(c.region, Some("0.25,0.1,0.5,0.6".parse().unwrap()));
        assert_eq!(
            c.review,
            ReviewLayer {
                keep: Some(50),
                megabytes: Some(8),
                below: Some(0.5),
                margin: Some(0.1),
                every: Some(100),
                duplicate: Some(0.95),
            }
        );
        assert_eq!(c.threshold, Some(0.7));
        assert_eq!((c.smooth, c.confirm), (Some(5), Some(3)));
        assert_eq!(c.format, Some(PixelFormat::Mjpeg));
        assert_eq!(
            c.size,
            Some(Size {
                width: 640,
                height: 480
            })
        );
        assert_eq!(c.http_listen, Some("0.0.0.0:8080".parse().unwrap()));
        assert_eq!(c.device_id.as_deref(), Some("kitchen-pi"));
        assert_eq!(c.discovery, Some(false));
        assert_eq!(c.http_token, Some(Secret::Value("s3cret".into())));
        assert_eq!(parse("").unwrap(), RunLayer::default());
        let files = parse(
            "[http]\ntoken_file = \"/etc/edge-tl/token\"\n[mqtt]\npassword_file = \"pw.txt\"\n",
        )
        .unwrap();
        assert_eq!(
            files.http_token,
            Some(Secret::File {
                path: PathBuf::from("/etc/edge-tl/token"),
                setting: "/etc/edge-tl/config.toml: key `http.token_file`".into(),
            })
        );
        let mqtt_file = match &files.mqtt_password {
            Some(Secret::File { path, .. }) => path.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(mqtt_file, PathBuf::from("pw.txt"));
    }

    #[test]
    fn each_problem_names_the_file_and_the_key() {
        let cases = [
            (
                "thresold = 0.5",
                "/etc/edge-tl/config.toml: ",
                "unknown field `thresold`",
            ),
            (
                "[results]\nthreshold = 1.5",
                "key `results.threshold`",
                "must be between 0 and 1 (got 1.5)",
            ),
            (
                "[results]\nthreshold = nan",
                "key `results.threshold`",
                "must be between 0 and 1 (got NaN)",
            ),
            (
                "[results]\nsmooth = 0",
                "key `results.smooth`",
                "must be between 1 and 1000 (1 = no smoothing) (got 0)",
            ),
            (
                "[results]\nconfirm = 0",
                "key `results.confirm`",
                "must be between 1 and 1000 (1 = publish every decision) (got 0)",
            ),
            (
                "[results]\ntop = 0",
                "key `results.top`",
                "must be between 1 and 1000 (got 0)",
            ),
            (
                "[camera]\nfps = -1",
                "key `camera.fps`",
                "must be above 0 and at most 1000 (got -1)",
            ),
            (
                "[camera]\nsize = \"big\"",
                "key `camera.size`",
                "is not WIDTHxHEIGHT",
            ),
            (
                "[camera]\nformat = \"h264\"",
                "key `camera.format`",
                "unknown pixel format \"h264\"",
            ),
            (
                "source = \"rtmp://x\"",
                "key `source`",
                "use v4l:/dev/videoN",
            ),
            (
                "threads = 0",
                "key `threads`",
                "must be between 1 and 256 (got 0)",
            ),
            (
                "region = \"0.5,0.5,0.6,0.2\"",
                "key `region`",
                "0.5,0.5,0.6,0.2: the region reaches past the frame (x + w and y + h must be at most 1)",
            ),
            (
                "[review]\nkeep = 200000",
                "key `review.keep`",
                "must be between 0 and 5000 (0 = no review queue) (got 200000)",
            ),
            (
                "[review]\nduplicate = 0",
                "key `review.duplicate`",
                "must be above 0 and at most 1 (got 0)",
            ),
            (
                "[http]\nlisten = \"8080\"",
                "key `http.listen`",
                "\"8080\" is not ADDRESS:PORT",
            ),
            (
                "[mqtt]\nurl = \"broker:1883\"",
                "key `mqtt.url`",
                "not an mqtt:// address",
            ),
            (
                "[mqtt]\ndevice_id = \"my pi\"",
                "key `mqtt.device_id`",
                "use letters, digits, - and _ only",
            ),
            (
                "[http]\ntoken = \"a\"\ntoken_file = \"/t\"",
                "key `http.token_file`",
                "give either `http.token` or `http.token_file`, not both",
            ),
            (
                "[mqtt]\npassword = \"a\"\npassword_file = \"/p\"",
                "key `mqtt.password_file`",
                "give either `mqtt.password` or `mqtt.password_file`, not both",
            ),
            (
                "[mqtt]\nport = 1883",
                "/etc/edge-tl/config.toml: ",
                "unknown field `port`",
            ),
            (
                "threads = \"four\"",
                "/etc/edge-tl/config.toml: ",
                "invalid type: string \"four\"",
            ),
            (
                "[results]\ntop = 3\ntop = 4",
                "/etc/edge-tl/config.toml: ",
                "duplicate key",
            ),
            (
                "source = \"é\"\nthresold = 1",
                "line 2, column 1: ",
                "unknown field `thresold`",
            ),
            (
                "[[camera]]\nname = \"door\"\nsource = \"dir:x\"\nthreshold = 2",
                "key `camera.threshold`",
                "camera \"door\": must be between 0 and 1 (got 2)",
            ),
            (
                "[[camera]]\nname = \"front door\"\nsource = \"dir:x\"",
                "key `camera.name`",
                "camera name \"front door\": use letters, digits, - and _ only",
            ),
            (
                "[[camera]]\nname = \"door\"\nsource = \"rtmp://x\"",
                "key `camera.source`",
                "camera \"door\": unknown source \"rtmp://x\"",
            ),
            (
                "[[camera]]\nname = \"door\"\nsorce = \"dir:x\"",
                "in a [[camera]] table: ",
                "unknown field `sorce`",
            ),
            (
                "[camera]\nsource = \"dir:x\"",
                "in [camera]: ",
                "unknown field `source`",
            ),
        ];
        for (text, where_, what) in cases {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.starts_with("/etc/edge-tl/config.toml: "), "{err}");
            assert!(
                err.contains(where_) && err.contains(what),
                "{text:?}: {err}"
            );
        }
    }

    #[test]
    fn camera_tables_give_several_cameras() {
        let c = parse(
            "head = \"all.head\"\n\
             [[camera]]\nname = \"door\"\nsource = \"rtsp://viewer@cam/s\"\nsource_password = \"pw\"\n\
             head = \"door.head\"\nthreshold = 0.8\nsmooth = 3\nconfirm = 2\n\
             [[camera]]\nname = \"hall\"\nsource = \"dir:frames\"\ndata = \"hall-samples\"\n",
        )
        .unwrap();
        let cameras = c.cameras.unwrap();
        assert_eq!(cameras.len(), 2);
        assert_eq!(cameras[0].name, "door");
        assert_eq!(cameras[0].source.to_string(), "rtsp://***@cam/s");
        assert_eq!(cameras[0].head, Some(PathBuf::from("door.head")));
        assert_eq!(
            (cameras[0].threshold, cameras[0].smooth, cameras[0].confirm),
            (Some(0.8), Some(3), Some(2))
        );
        assert!(matches!(cameras[0].source_password, Some(Secret::Value(_))));
        assert_eq!(
            cameras[1].source,
            crate::source::SourceSpec::Dir("frames".into())
        );
        assert_eq!(cameras[1].head, None);
        assert_eq!(cameras[1].data, Some(PathBuf::from("hall-samples")));
        assert_eq!(cameras[0].data, None);
        // The one-camera mode table still reads as before.
        let c = parse("[camera]\nfps = 15").unwrap();
        assert_eq!((c.fps, c.cameras), (Some(15.0), None));
    }
}
