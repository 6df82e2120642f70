//! `rtsp://` cameras (IP cameras, doorbells, NVR re-streams): RTSP over TCP (interleaved, so
//! it passes NAT and firewalls that drop UDP) through `retina`, H.264 decoded by OpenH264.
//!
//! Every access unit must be decoded, dropped frames included, because later frames are
//! predicted from earlier ones: decoding ([`super::h264`]) therefore runs here on the capture
//! thread and hands RGB frames over; the newest-frame-wins slot then drops what inference has
//! no time for.
//!
//! Credentials come from the URL (`rtsp://user:password@cam/stream`) or, for the password,
//! from [`SourceOptions::password`](super::SourceOptions::password) (the settings file or
//! `EDGE_TL_SOURCE_PASSWORD`); they are sent as RTSP Basic or Digest authentication, as the
//! camera asks, and never printed: messages show the URL with `***` for the password.

use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use retina::client::{
    Credentials, Demuxed, PlayOptions, Session, SessionOptions, SetupOptions, TcpTransportOptions,
    Transport,
};
use retina::codec::{CodecItem, FrameFormat};

use super::h264::H264Decoder;
use super::http::{hide_credentials, redact_url};
use super::{FrameData, FrameSource, RawFrame, SourceError};

/// Connecting and the RTSP handshake (DESCRIBE, SETUP, PLAY) must finish within this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A stream that sends no picture for this long counts as dropped.
const FRAME_TIMEOUT: Duration = Duration::from_secs(10);

pub struct RtspSource {
    /// The URL without credentials, as sent in requests.
    url: url::Url,
    credentials: Option<Credentials>,
    /// The URL as given, only to hide its credentials in messages from below.
    given: String,
    /// For messages: the password as `***`.
    shown: String,
    runtime: tokio::runtime::Runtime,
    stream: Option<Demuxed>,
    decoder: H264Decoder,
    /// The pictures' size once one is decoded, for messages.
    size: Option<(u32, u32)>,
    index: u64,
}

impl RtspSource {
    /// Connects; a camera that cannot be reached, refuses the credentials, has no such path
    /// or sends no H.264 is an error at start (later drops are reconnected by the feed).
    pub fn open(given: &str, password: Option<&str>) -> Result<RtspSource, SourceError> {
        let shown = redact_url(given).into_owned();
        let error = |reason: String| SourceError::Rtsp {
            url: shown.clone(),
            reason,
        };
        let mut url =
            url::Url::parse(given).map_err(|e| error(format!("not a valid rtsp:// URL ({e})")))?;
        if url.host_str().is_none_or(str::is_empty) {
            return Err(error(
                "the URL names no camera: rtsp://HOST[:PORT]/PATH".into(),
            ));
        }
        let user = percent_decoded(url.username());
        let password = match (url.password(), password) {
            (Some(p), _) => Some(percent_decoded(p)),
            (None, Some(p)) => Some(p.to_string()),
            (None, None) => None,
        };
        let credentials = match (user.is_empty(), password) {
            (true, None) => None,
            (true, Some(_)) => {
                return Err(error(
                    "a password is set but the URL names no user: write it as \
                     rtsp://USER@host/path"
                        .into(),
                ))
            }
            (false, password) => Some(Credentials {
                username: user,
                password: password.unwrap_or_default(),
            }),
        };
        // retina sends the credentials itself, as the camera asks (Basic or Digest).
        let _ = url.set_username("");
        let _ = url.set_password(None);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| error(format!("cannot start the network runtime: {e}")))?;
        let mut source = RtspSource {
            url,
            credentials,
            given: given.to_string(),
            shown: shown.clone(),
            runtime,
            stream: None,
            decoder: H264Decoder::new(shown.clone()).map_err(error)?,
            size: None,
            index: 0,
        };
        source.connect().map_err(error)?;
        Ok(source)
    }

    /// DESCRIBE, SETUP of the first video stream, PLAY; the reason of a failure, worded for
    /// the user.
    fn connect(&mut self) -> Result<(), String> {
        self.close();
        let options = SessionOptions::default()
            .creds(self.credentials.clone())
            .user_agent(format!("edge-tl/{}", env!("CARGO_PKG_VERSION")));
        let url = self.url.clone();
        let handshake = async move {
            let mut session = Session::describe(url, options)
                .await
                .map_err(|e| Refusal::Rtsp(e.status_code(), e.to_string()))?;
            let streams = session.streams();
            let Some(video) = streams.iter().position(|s| s.media() == "video") else {
                let media: Vec<&str> = streams.iter().map(|s| s.media()).collect();
                return Err(Refusal::NoVideo(media.join(", ")));
            };
            let encoding = streams[video].encoding_name().to_ascii_lowercase();
            if encoding != "h264" {
                return Err(Refusal::Codec(encoding));
            }
            session
                .setup(
                    video,
                    SetupOptions::default()
                        .transport(Transport::Tcp(TcpTransportOptions::default()))
                        .frame_format(FrameFormat::SIMPLE),
                )
                .await
                .map_err(|e| Refusal::Rtsp(e.status_code(), e.to_string()))?;
            let playing = session
                .play(PlayOptions::default())
                .await
                .map_err(|e| Refusal::Rtsp(e.status_code(), e.to_string()))?;
            playing
                .demuxed()
                .map_err(|e| Refusal::Rtsp(None, e.to_string()))
        };
        let stream = self
            .runtime
            .block_on(async { tokio::time::timeout(CONNECT_TIMEOUT, handshake).await })
            .map_err(|_| {
                format!(
                    "no answer within {} s: check the address and port (RTSP is usually \
                     port 554)",
                    CONNECT_TIMEOUT.as_secs()
                )
            })?
            .map_err(|refusal| hide_credentials(&refusal.to_string(), &self.given))?;
        self.stream = Some(stream);
        // A new session starts a new prediction chain.
        self.decoder = H264Decoder::new(self.shown.clone())?;
        Ok(())
    }

    /// Drops the session inside the runtime: retina tears an RTSP session down from a task it
    /// spawns there (so the camera frees it at once, not after its session timeout).
    fn close(&mut self) {
        let _inside = self.runtime.enter();
        self.stream = None;
    }

    fn disconnected(&self, reason: String) -> SourceError {
        SourceError::Disconnected {
            what: format!("camera {}", self.shown),
            reason: hide_credentials(&reason, &self.given),
        }
    }
}

/// Why the camera would not stream, before any picture.
enum Refusal {
    Rtsp(Option<u16>, String),
    NoVideo(String),
    Codec(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Rtsp(Some(401), _) => f.write_str(
                "the camera refused the user name or password (401 Unauthorized): check them \
                 (rtsp://USER:PASSWORD@host/path, or the user in the URL and the password in \
                 EDGE_TL_SOURCE_PASSWORD, --source-password-file or the settings' \
                 source_password_file)",
            ),
            Refusal::Rtsp(Some(403), _) => f.write_str(
                "the camera refused access (403 Forbidden): this user may not view the stream",
            ),
            Refusal::Rtsp(Some(404), _) => f.write_str(
                "the camera has no stream at this path (404 Not Found): look up the stream \
                 path in the camera's manual or web page (often /stream1, /h264 or \
                 /Streaming/Channels/101)",
            ),
            Refusal::Rtsp(_, message) => {
                // retina's messages carry connection details after a blank line.
                let first = message.split("\n\n").next().unwrap_or(message);
                write!(f, "cannot stream: {first}")
            }
            Refusal::NoVideo(media) => write!(
                f,
                "the stream has no video, only {}",
                if media.is_empty() { "nothing" } else { media }
            ),
            Refusal::Codec(codec) if codec == "h265" => f.write_str(
                "the camera sends H.265 (HEVC), and edge-tl decodes H.264 only: switch this \
                 stream's video encoding to H.264 in the camera's settings (or use its \
                 sub-stream, which is often H.264)",
            ),
            Refusal::Codec(codec) => write!(
                f,
                "the camera sends {codec} video, and edge-tl decodes H.264 only: switch the \
                 stream's video encoding to H.264 in the camera's settings"
            ),
        }
    }
}

/// URL user names and passwords are percent-encoded (`p%40ss` for `p@ss`).
fn percent_decoded(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

impl Drop for RtspSource {
    fn drop(&mut self) {
        self.close();
    }
}

impl FrameSource for RtspSource {
    fn next_frame(&mut self) -> Result<Option<RawFrame>, SourceError> {
        loop {
            let Some(stream) = self.stream.as_mut() else {
                return Err(self.disconnected("not connected".into()));
            };
            let item = self
                .runtime
                .block_on(async { tokio::time::timeout(FRAME_TIMEOUT, stream.next()).await });
            let frame = match item {
                Ok(Some(Ok(CodecItem::VideoFrame(frame)))) => frame,
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(e))) => {
                    self.close();
                    let message = e.to_string();
                    let first = message.split("\n\n").next().unwrap_or(&message);
                    return Err(self.disconnected(first.to_string()));
                }
                Ok(None) => {
                    self.close();
                    return Err(self.disconnected("the camera ended the stream".into()));
                }
                Err(_) => {
                    self.close();
                    return Err(
                        self.disconnected(format!("no picture for {} s", FRAME_TIMEOUT.as_secs()))
                    );
                }
            };
            if frame.loss() > 0 {
                self.decoder.lost(frame.loss());
            }
            if let Some(rgb) = self
                .decoder
                .decode(frame.data(), frame.is_random_access_point())
            {
                self.size = Some(rgb.dimensions());
                let index = self.index;
                self.index += 1;
                return Ok(Some(RawFrame {
                    index,
                    captured: SystemTime::now(),
                    name: None,
                    data: FrameData::Rgb(rgb),
                }));
            }
        }
    }

    fn is_live(&self) -> bool {
        true
    }

    fn reconnect(&mut self) -> Result<(), SourceError> {
        self.connect().map_err(|e| self.disconnected(e))
    }

    fn describe(&self) -> String {
        match self.size {
            Some((width, height)) => format!("camera {} (H.264 {width}x{height})", self.shown),
            None => format!("camera {} (H.264)", self.shown),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_percent_decoded() {
        assert_eq!(percent_decoded("p%40ss%3Aw"), "p@ss:w");
        assert_eq!(percent_decoded("a+b"), "a+b");
    }

    #[test]
    fn a_camera_that_is_not_there_is_named_without_the_password() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = RtspSource::open(&format!("rtsp://admin:hunter2@127.0.0.1:{port}/x"), None)
            .err()
            .unwrap()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(
            err.starts_with(&format!(
                "rtsp://admin:***@127.0.0.1:{port}/x: cannot stream: "
            )),
            "{err}"
        );
    }

    #[test]
    fn a_password_without_a_user_is_refused() {
        let err = RtspSource::open("rtsp://127.0.0.1:1/x", Some("pw"))
            .err()
            .unwrap()
            .to_string();
        assert_eq!(
            err,
            "rtsp://127.0.0.1:1/x: a password is set but the URL names no user: write it as \
             rtsp://USER@host/path"
        );
    }
}
