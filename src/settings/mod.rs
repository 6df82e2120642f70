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
use std::path::PathBuf;

use crate::live::LiveOptions;
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
    pub model: Option<String>,
    pub head: Option<PathBuf>,
    pub threads: Option<usize>,
    pub watch_head: Option<bool>,
    pub data: Option<PathBuf>,
    pub threshold: Option<f32>,
    pub smooth: Option<usize>,
    pub on_change: Option<bool>,
    pub top: Option<usize>,
    pub frames: Option<u64>,
    pub http_listen: Option<SocketAddr>,
    pub http_token: Option<String>,
    pub mqtt_url: Option<String>,
    pub mqtt_user: Option<String>,
    pub mqtt_password: Option<String>,
    pub device_id: Option<String>,
    pub topic_prefix: Option<String>,
    pub discovery: Option<bool>,
    pub discovery_prefix: Option<String>,
}

macro_rules! over {
    ($top:ident, $lower:ident, $($field:ident),*) => {
        RunLayer { $($field: $top.$field.or($lower.$field)),* }
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
            model,
            head,
            threads,
            watch_head,
            data,
            threshold,
            smooth,
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

/// Where the HTTP service listens and who may ask.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpSettings {
    pub listen: SocketAddr,
    /// Bearer token; required unless `listen` is a loopback address.
    pub token: Option<String>,
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

/// Everything `run` needs, checked.
#[derive(Debug, Clone)]
pub struct RunSettings {
    pub source: SourceSpec,
    pub source_options: SourceOptions,
    /// Backbone name or path; `None`: the head's backbone, else the default one.
    pub model: Option<String>,
    pub head: Option<PathBuf>,
    /// Threads per picture; `None`: all cores.
    pub threads: Option<usize>,
    pub watch_head: bool,
    /// Dataset folder the page's captures go to.
    pub data: PathBuf,
    pub live: LiveOptions,
    /// Print (JSON lines) only results whose label differs from the previous one.
    pub on_change: bool,
    pub http: Option<HttpSettings>,
    pub mqtt: Option<MqttSettings>,
}

/// A setting that cannot be used, or settings that do not go together.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SettingsError {
    #[error("{0}")]
    Conflict(String),
    #[error(
        "refusing to serve on {0} without a token: anyone on the network could capture and \
         train; set --http-token (EDGE_TL_HTTP_TOKEN) or [http] token in the settings file, or \
         listen on 127.0.0.1"
    )]
    NoToken(SocketAddr),
}

/// The first camera, when no source is given.
pub const DEFAULT_SOURCE: &str = "v4l:/dev/video0";
/// The dataset folder, when none is given.
pub const DEFAULT_DATA: &str = "dataset";

impl RunSettings {
    /// Applies the defaults to the merged layer and checks what involves several settings.
    pub fn resolve(layer: RunLayer) -> Result<RunSettings, SettingsError> {
        let live_defaults = LiveOptions::default();
        let http = match layer.http_listen {
            Some(listen) => {
                let http = HttpSettings {
                    listen,
                    token: layer.http_token.filter(|t| !t.is_empty()),
                };
                http.check()?;
                Some(http)
            }
            None => None,
        };
        if layer.mqtt_password.is_some() && layer.mqtt_user.is_none() {
            return Err(SettingsError::Conflict(
                "an MQTT password is set (--mqtt-password, EDGE_TL_MQTT_PASSWORD or mqtt.password) \
                 but no user: set --mqtt-user (EDGE_TL_MQTT_USER) or mqtt.user too"
                    .into(),
            ));
        }
        let mqtt = layer.mqtt_url.map(|url| {
            let mut m = MqttSettings::new(&url);
            m.user = layer.mqtt_user;
            m.password = layer.mqtt_password;
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
        let source = match layer.source {
            Some(s) => s,
            None => DEFAULT_SOURCE.parse().expect("the default source parses"),
        };
        Ok(RunSettings {
            source,
            source_options: SourceOptions {
                looping: layer.looping.unwrap_or(false),
                replay_fps: layer.replay_fps,
                camera: Want {
                    format: layer.format,
                    size: layer.size,
                    fps: layer.fps,
                },
            },
            model: layer.model,
            head: layer.head,
            threads: layer.threads,
            watch_head: layer.watch_head.unwrap_or(true),
            data: layer.data.unwrap_or_else(|| PathBuf::from(DEFAULT_DATA)),
            live: LiveOptions {
                top: layer.top.unwrap_or(live_defaults.top),
                smooth: layer.smooth.unwrap_or(live_defaults.smooth),
                threshold: layer.threshold,
                max_frames: layer.frames,
            },
            on_change: layer.on_change.unwrap_or(false),
            http,
            mqtt,
        })
    }
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
            };
            assert!(local.check().is_ok());
        }
    }

    #[test]
    fn settings_that_do_not_go_together_are_refused() {
        let e = RunSettings::resolve(RunLayer {
            mqtt_url: Some("mqtt://b".into()),
            mqtt_password: Some("pw".into()),
            ..RunLayer::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("no user"), "{e}");
        let e = RunSettings::resolve(RunLayer {
            http_listen: Some("0.0.0.0:8080".parse().unwrap()),
            ..RunLayer::default()
        })
        .unwrap_err();
        assert_eq!(e, SettingsError::NoToken("0.0.0.0:8080".parse().unwrap()));
        let ok = RunSettings::resolve(RunLayer {
            http_listen: Some("127.0.0.1:0".parse().unwrap()),
            ..RunLayer::default()
        })
        .unwrap();
        assert!(ok.http.unwrap().token.is_none());
    }
}
