//! The service's settings file (`/etc/edge-tl/config.toml`, or `--config FILE`): what
//! `edge-tl run` would otherwise take as flags. Precedence, highest first: command-line flag,
//! environment variable (`EDGE_TL_SOURCE`, `EDGE_TL_MODEL`, `EDGE_TL_THREADS`, `EDGE_TL_HTTP`,
//! `EDGE_TL_HTTP_TOKEN`, `EDGE_TL_MQTT`, ...: see `edge-tl run --help`), this file, built-in
//! default. Unknown keys are errors, so a typo cannot be silently ignored.
//!
//! ```toml
//! source = "v4l:/dev/video0"
//! model = "mobilenet-v2-f32"
//! head = "/var/lib/edge-tl/home.head"
//! threads = 4
//! data = "/var/lib/edge-tl/dataset"
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
//! token = "..."            # required when listen is not a loopback address
//!
//! [mqtt]
//! url = "mqtt://localhost:1883"
//! user = "edge-tl"
//! password = "..."
//! device_id = "kitchen"    # default: the host name
//! discovery = true         # Home Assistant discovery
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::source::{PixelFormat, Size};

/// Settings for `edge-tl run`; every key is optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Frame source, as `--source`.
    pub source: Option<String>,
    /// Backbone name or path, as `--model`.
    pub model: Option<String>,
    /// Head file, as `--head`.
    pub head: Option<PathBuf>,
    /// Threads per picture, as `--threads`.
    pub threads: Option<usize>,
    /// Reload the head when its file changes (default true).
    pub watch_head: Option<bool>,
    /// Dataset folder the page's captures go to, as `--data`.
    pub data: Option<PathBuf>,
    #[serde(default)]
    pub camera: CameraConfig,
    #[serde(default)]
    pub results: ResultsConfig,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub mqtt: MqttConfig,
}

/// `[http]`: the HTTP service (off unless `listen` is set).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub listen: Option<String>,
    pub token: Option<String>,
}

/// `[mqtt]`: publishing to a broker (off unless `url` is set).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    pub url: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub device_id: Option<String>,
    pub topic_prefix: Option<String>,
    pub discovery: Option<bool>,
    pub discovery_prefix: Option<String>,
}

/// `[camera]`: the V4L2 mode.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    pub format: Option<String>,
    pub size: Option<String>,
    pub fps: Option<f64>,
}

/// `[results]`: shaping the answers.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultsConfig {
    pub threshold: Option<f32>,
    pub smooth: Option<usize>,
    pub on_change: Option<bool>,
    pub top: Option<usize>,
}

/// Why a settings file cannot be used; always names the file, and the key when there is one.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read the settings file: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Syntax { path: PathBuf, message: String },
    #[error("{}: key `{key}`: {problem}", path.display())]
    Value {
        path: PathBuf,
        key: String,
        problem: String,
    },
}

/// The values of the file after checking, in the types `run` uses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Checked {
    pub format: Option<PixelFormat>,
    pub size: Option<Size>,
    pub listen: Option<SocketAddr>,
}

impl Config {
    /// Reads and checks a settings file.
    pub fn load(path: &Path) -> Result<(Config, Checked), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parses and checks settings text; `path` is for messages.
    pub fn parse(text: &str, path: &Path) -> Result<(Config, Checked), ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let place = e.span().map_or(String::new(), |span| {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                format!("line {line}, column {column}: ")
            });
            ConfigError::Syntax {
                path: path.to_path_buf(),
                message: format!("{place}{}", e.message()),
            }
        })?;
        let checked = config.check(path)?;
        Ok((config, checked))
    }

    fn check(&self, path: &Path) -> Result<Checked, ConfigError> {
        let bad = |key: &str, problem: String| ConfigError::Value {
            path: path.to_path_buf(),
            key: key.to_string(),
            problem,
        };
        if let Some(s) = &self.source {
            let known = ["v4l:", "/dev/", "dir:", "file:", "http://", "https://"];
            if !known.iter().any(|k| s.starts_with(k)) {
                return Err(bad(
                    "source",
                    format!("{s:?} is not v4l:/dev/videoN, dir:FOLDER, file:RECORDING or an http(s):// URL"),
                ));
            }
        }
        if self.threads == Some(0) {
            return Err(bad("threads", "must be at least 1".into()));
        }
        let r = &self.results;
        if let Some(t) = r.threshold {
            if !(0.0..=1.0).contains(&t) {
                return Err(bad(
                    "results.threshold",
                    format!("must be between 0 and 1 (got {t})"),
                ));
            }
        }
        if r.smooth == Some(0) {
            return Err(bad(
                "results.smooth",
                "must be at least 1 (1 = no smoothing)".into(),
            ));
        }
        if r.top == Some(0) {
            return Err(bad("results.top", "must be at least 1".into()));
        }
        if let Some(f) = self.camera.fps {
            if !(f > 0.0 && f.is_finite()) {
                return Err(bad(
                    "camera.fps",
                    format!("must be a positive number (got {f})"),
                ));
            }
        }
        let format = match &self.camera.format {
            Some(f) => Some(f.parse().map_err(|e| bad("camera.format", e))?),
            None => None,
        };
        let size = match &self.camera.size {
            Some(s) => Some(s.parse().map_err(|e| bad("camera.size", e))?),
            None => None,
        };
        let listen = match &self.http.listen {
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
        let m = &self.mqtt;
        if let Some(url) = &m.url {
            crate::sink::mqtt::parse_url(url).map_err(|e| bad("mqtt.url", e.to_string()))?;
        }
        if m.password.is_some() && m.user.is_none() {
            return Err(bad("mqtt.password", "is set but mqtt.user is not".into()));
        }
        if let Some(id) = &m.device_id {
            crate::sink::mqtt::check_device_id(id)
                .map_err(|e| bad("mqtt.device_id", e.to_string()))?;
        }
        Ok(Checked {
            format,
            size,
            listen,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
source = "v4l:/dev/video0"
model = "mobilenet-v2-f32"
head = "/var/lib/edge-tl/home.head"
threads = 4
watch_head = true

[camera]
format = "mjpeg"
size = "640x480"
fps = 30

[results]
threshold = 0.7
smooth = 5
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
"#;

    fn parse(text: &str) -> Result<(Config, Checked), ConfigError> {
        Config::parse(text, Path::new("/etc/edge-tl/config.toml"))
    }

    #[test]
    fn every_key_parses_into_its_type() {
        let (c, checked) = parse(FULL).unwrap();
        assert_eq!(c.threads, Some(4));
        assert_eq!(c.results.threshold, Some(0.7));
        assert_eq!(checked.format, Some(PixelFormat::Mjpeg));
        assert_eq!(
            checked.size,
            Some(Size {
                width: 640,
                height: 480
            })
        );
        assert_eq!(checked.listen, Some("0.0.0.0:8080".parse().unwrap()));
        assert_eq!(c.mqtt.device_id.as_deref(), Some("kitchen-pi"));
        assert_eq!(c.mqtt.discovery, Some(false));
        assert_eq!(parse("").unwrap().0, Config::default());
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
                "[results]\nsmooth = 0",
                "key `results.smooth`",
                "must be at least 1",
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
                "source = \"rtsp://x\"",
                "key `source`",
                "is not v4l:/dev/videoN",
            ),
            ("threads = 0", "key `threads`", "must be at least 1"),
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
                "[mqtt]\nurl = \"mqtt://b\"\npassword = \"x\"",
                "key `mqtt.password`",
                "is set but mqtt.user is not",
            ),
            (
                "[mqtt]\ndevice_id = \"my pi\"",
                "key `mqtt.device_id`",
                "use letters, digits, - and _ only",
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
}
