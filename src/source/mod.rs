//! Where frames come from: a V4L2 camera, a folder of pictures, a recorded MJPEG stream, an
//! MJPEG stream over HTTP or an RTSP camera (H.264), all behind one small trait. A source hands out frames still encoded
//! (or raw RGB for uncompressed cameras); decoding is left to [`RawFrame::decode`], which goes
//! through the same [`preprocess`](crate::preprocess) path as training, and happens on the
//! inference side so frames that are dropped are never decoded.

mod dir;
pub mod feed;
mod file;
#[cfg(feature = "rtsp")]
pub mod h264;
mod http;
pub mod jpeg_stream;
pub mod recording;
#[cfg(feature = "rtsp")]
mod rtsp;
pub mod v4l;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::error::DecodeError;
use crate::frame::Frame;

pub use feed::{Feed, FeedStats, Next, Wake};
pub use http::redact_url;
pub use v4l::negotiate::{PixelFormat, Size, Want};

/// The pixels of one frame as the source delivered them.
#[derive(Debug, Clone)]
pub enum FrameData {
    /// An encoded picture (JPEG from MJPEG sources, any supported format from folders).
    Encoded(Vec<u8>),
    /// Already RGB (converted from an uncompressed camera format).
    Rgb(image::RgbImage),
}

/// One frame from a source.
#[derive(Debug, Clone)]
pub struct RawFrame {
    /// Position in the source, from 0 (keeps counting across loops and reconnects).
    pub index: u64,
    /// When the source delivered it.
    pub captured: SystemTime,
    /// The file it came from, for folder replays.
    pub name: Option<String>,
    pub data: FrameData,
}

impl RawFrame {
    /// The frame as an upright RGB picture, through the same decoder as training pictures;
    /// MJPEG frames without Huffman tables get the standard ones first.
    pub fn decode(&self) -> Result<Frame, DecodeError> {
        let mut frame = match &self.data {
            FrameData::Encoded(bytes) => {
                let name = self
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("frame {}", self.index));
                preprocess_bytes(bytes, Path::new(&name))?
            }
            FrameData::Rgb(image) => Frame::new(image.clone()),
        };
        frame.timestamp = self.captured;
        Ok(frame)
    }
}

fn preprocess_bytes(bytes: &[u8], name: &Path) -> Result<Frame, DecodeError> {
    crate::preprocess::decode_bytes(&jpeg_stream::with_huffman_tables(bytes), name)
}

/// Anything that produces frames.
pub trait FrameSource: Send {
    /// The next frame; `Ok(None)` when a finite source has ended. May block until the
    /// device or the network delivers.
    fn next_frame(&mut self) -> Result<Option<RawFrame>, SourceError>;

    /// Whether frames arrive in real time whether or not anyone reads them (cameras, network
    /// streams, paced replays): then the newest frame wins and older ones are dropped.
    /// Unpaced replays are not live: every frame is processed.
    fn is_live(&self) -> bool;

    /// Re-opens after [`SourceError::Disconnected`].
    fn reconnect(&mut self) -> Result<(), SourceError>;

    /// For messages: "camera /dev/video0 (MJPEG 640x480 at 30 fps)".
    fn describe(&self) -> String;
}

/// How to open a source, beyond its address.
#[derive(Debug, Clone, Default)]
pub struct SourceOptions {
    /// Replays (`dir:`, `file:`) start again after their last frame.
    pub looping: bool,
    /// Replays deliver frames at this rate, like a camera (then they are live).
    pub replay_fps: Option<f64>,
    /// Camera mode requested from the command line.
    pub camera: Want,
    /// The password for an `rtsp://` URL that names only its user (from the settings file or
    /// `EDGE_TL_SOURCE_PASSWORD`, so it stays out of `ps` and of logged URLs).
    pub password: Option<String>,
}

/// Why a source could not be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(
        "unknown source {spec:?}: use v4l:/dev/videoN, dir:FOLDER, file:RECORDING.mjpg or an \
         http(s):// MJPEG URL or an rtsp:// (H.264) URL"
    )]
    BadSpec { spec: String },
    /// `cameras` says which cameras exist (from [`v4l::cameras_hint`], taken when the error
    /// is made, so showing the error does no device I/O).
    #[error("no camera at {}: {cameras}", path.display())]
    NoCamera { path: PathBuf, cameras: String },
    #[error("{} is not a V4L2 video capture device ({reason}); {cameras}", path.display())]
    NotACamera {
        path: PathBuf,
        reason: String,
        cameras: String,
    },
    #[error("camera {}: {problem}", path.display())]
    Camera { path: PathBuf, problem: String },
    #[error(
        "camera {} cannot give {wanted}; it offers:\n{offered}\nchoose one of these with \
         --format, --size and --fps",
        path.display()
    )]
    Unsupported {
        path: PathBuf,
        wanted: String,
        offered: String,
    },
    #[error("{what} disconnected: {reason}")]
    Disconnected { what: String, reason: String },
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} holds no pictures to replay", path.display())]
    EmptyFolder { path: PathBuf },
    #[error("{} holds no JPEG frames: record an MJPEG stream (multipart or concatenated JPEGs)", path.display())]
    EmptyRecording { path: PathBuf },
    #[error("{url}: {reason}")]
    Http { url: String, reason: String },
    #[error("{url}: {reason}")]
    Rtsp { url: String, reason: String },
}

impl SourceError {
    /// Worth retrying: the device or stream went away after working.
    pub fn is_transient(&self) -> bool {
        matches!(self, SourceError::Disconnected { .. })
    }
}

/// Where frames come from, as written after `--source` or in the settings file's `source`:
/// `v4l:/dev/videoN` (or a bare `/dev/videoN`), `dir:FOLDER`, `file:RECORDING`, an
/// `http(s)://` URL or an `rtsp://` URL. Parsed once, where the setting is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// A V4L2 camera device.
    Camera(PathBuf),
    /// Pictures in a folder, in name order.
    Dir(PathBuf),
    /// A recorded MJPEG stream.
    Recording(PathBuf),
    /// An MJPEG stream over HTTP(S).
    Http(String),
    /// An RTSP camera sending H.264.
    Rtsp(String),
}

impl std::str::FromStr for SourceSpec {
    type Err = SourceError;

    fn from_str(spec: &str) -> Result<SourceSpec, SourceError> {
        if let Some(path) = spec
            .strip_prefix("v4l:")
            .or(spec.starts_with("/dev/").then_some(spec))
        {
            let path = if path.is_empty() { "/dev/video0" } else { path };
            return Ok(SourceSpec::Camera(PathBuf::from(path)));
        }
        let nonempty = |path: &str, f: fn(PathBuf) -> SourceSpec| {
            if path.is_empty() {
                Err(SourceError::BadSpec {
                    spec: http::redact_url(spec).into_owned(),
                })
            } else {
                Ok(f(PathBuf::from(path)))
            }
        };
        if let Some(path) = spec.strip_prefix("dir:") {
            return nonempty(path, SourceSpec::Dir);
        }
        if let Some(path) = spec.strip_prefix("file:") {
            return nonempty(path, SourceSpec::Recording);
        }
        if spec.starts_with("http://") || spec.starts_with("https://") {
            return Ok(SourceSpec::Http(spec.to_string()));
        }
        if spec.starts_with("rtsp://") {
            return Ok(SourceSpec::Rtsp(spec.to_string()));
        }
        Err(SourceError::BadSpec {
            spec: http::redact_url(spec).into_owned(),
        })
    }
}

/// For messages: a URL's password is shown as `***` (`http://admin:***@cam/x`), since what is
/// printed ends up in logs and journals that more people read than the settings.
impl std::fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceSpec::Camera(p) => write!(f, "v4l:{}", p.display()),
            SourceSpec::Dir(p) => write!(f, "dir:{}", p.display()),
            SourceSpec::Recording(p) => write!(f, "file:{}", p.display()),
            SourceSpec::Http(url) | SourceSpec::Rtsp(url) => f.write_str(&http::redact_url(url)),
        }
    }
}

/// Opens a source.
pub fn open(
    spec: &SourceSpec,
    options: &SourceOptions,
) -> Result<Box<dyn FrameSource>, SourceError> {
    let paced = |s: Box<dyn FrameSource>| -> Box<dyn FrameSource> {
        match options.replay_fps {
            Some(fps) if fps > 0.0 => Box::new(Paced::new(s, fps)),
            _ => s,
        }
    };
    Ok(match spec {
        SourceSpec::Camera(path) => Box::new(v4l::CameraSource::open(path, options.camera)?),
        SourceSpec::Dir(path) => paced(Box::new(dir::DirSource::open(path, options.looping)?)),
        SourceSpec::Recording(path) => paced(Box::new(file::RecordingSource::open(
            path,
            options.looping,
        )?)),
        SourceSpec::Http(url) => Box::new(http::HttpSource::open(url)?),
        #[cfg(feature = "rtsp")]
        SourceSpec::Rtsp(url) => {
            Box::new(rtsp::RtspSource::open(url, options.password.as_deref())?)
        }
        #[cfg(not(feature = "rtsp"))]
        SourceSpec::Rtsp(url) => {
            return Err(SourceError::Rtsp {
                url: http::redact_url(url).into_owned(),
                reason: "this edge-tl was built without RTSP support (cargo feature `rtsp`)".into(),
            })
        }
    })
}

/// Delivers a replay's frames at a fixed rate, as a camera would.
struct Paced {
    inner: Box<dyn FrameSource>,
    interval: Duration,
    next_due: Option<Instant>,
}

impl Paced {
    fn new(inner: Box<dyn FrameSource>, fps: f64) -> Self {
        Paced {
            inner,
            interval: Duration::from_secs_f64(1.0 / fps),
            next_due: None,
        }
    }
}

impl FrameSource for Paced {
    fn next_frame(&mut self) -> Result<Option<RawFrame>, SourceError> {
        let due = self.next_due.unwrap_or_else(Instant::now);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        // Falling behind (a slow disk) does not cause a burst later.
        self.next_due = Some((due + self.interval).max(Instant::now()));
        let mut frame = self.inner.next_frame()?;
        if let Some(f) = frame.as_mut() {
            f.captured = SystemTime::now();
        }
        Ok(frame)
    }
    fn is_live(&self) -> bool {
        true
    }
    fn reconnect(&mut self) -> Result<(), SourceError> {
        self.inner.reconnect()
    }
    fn describe(&self) -> String {
        format!(
            "{} at {:.1} fps",
            self.inner.describe(),
            1.0 / self.interval.as_secs_f64()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_sources_say_what_is_accepted() {
        let err = "rtmp://cam/stream".parse::<SourceSpec>().unwrap_err();
        assert!(
            err.to_string().contains("use v4l:/dev/videoN, dir:FOLDER"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_camera_names_itself_and_what_exists() {
        let err = open(
            &"v4l:/dev/video97".parse().unwrap(),
            &SourceOptions::default(),
        )
        .err()
        .unwrap();
        let text = err.to_string();
        assert!(text.starts_with("no camera at /dev/video97: "), "{text}");
        assert!(text.contains("--source"), "{text}");
    }

    #[test]
    fn a_file_that_is_not_a_camera_is_named() {
        let err = open(&"v4l:/dev/null".parse().unwrap(), &SourceOptions::default())
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .starts_with("/dev/null is not a V4L2 video capture device"),
            "{err}"
        );
    }
}
