//! `http://` and `https://` MJPEG streams (IP cameras, ESP32-CAM, `mjpg-streamer`): the
//! response body is cut into frames by JPEG structure, so both `multipart/x-mixed-replace`
//! streams and single-picture snapshot URLs (`image/jpeg`, fetched again for each frame) work.
//! A multipart stream that ends is a disconnect, retried with backoff by the feed.

use std::time::{Duration, SystemTime};

use super::jpeg_stream::JpegFrames;
use super::{FrameData, FrameSource, RawFrame, SourceError};

type Body = JpegFrames<ureq::BodyReader<'static>>;

pub struct HttpSource {
    url: String,
    agent: ureq::Agent,
    body: Option<Body>,
    index: u64,
    /// Frames read on the current connection.
    in_connection: u64,
    /// The server answers one picture per request (not a multipart stream).
    snapshot: bool,
}

impl HttpSource {
    /// Connects; a server that cannot be reached at start is an error (later drops are
    /// reconnected).
    pub fn open(url: &str) -> Result<HttpSource, SourceError> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(5)))
            .timeout_recv_response(Some(Duration::from_secs(10)))
            // A stream that stalls this long counts as dropped.
            .timeout_per_read(Some(Duration::from_secs(10)))
            .build()
            .into();
        let mut source = HttpSource {
            url: url.to_string(),
            agent,
            body: None,
            index: 0,
            in_connection: 0,
            snapshot: false,
        };
        source.body = Some(source.connect()?);
        Ok(source)
    }

    fn connect(&mut self) -> Result<Body, SourceError> {
        let error = |reason: String| SourceError::Http {
            url: self.url.clone(),
            reason,
        };
        let response = self
            .agent
            .get(&self.url)
            .call()
            .map_err(|e| error(format!("cannot connect: {e}")))?;
        let status = response.status();
        if !status.is_success() {
            return Err(error(format!("the server answered {status}")));
        }
        self.snapshot = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.trim().to_ascii_lowercase().starts_with("image/"));
        Ok(JpegFrames::new(response.into_body().into_reader()))
    }

    fn disconnected(&self, reason: String) -> SourceError {
        SourceError::Disconnected {
            what: format!("stream {}", self.url),
            reason,
        }
    }
}

impl FrameSource for HttpSource {
    fn next_frame(&mut self) -> Result<Option<RawFrame>, SourceError> {
        let Some(body) = self.body.as_mut() else {
            return Err(self.disconnected("not connected".into()));
        };
        match body.next_frame() {
            Ok(Some(bytes)) => {
                let index = self.index;
                self.index += 1;
                self.in_connection += 1;
                Ok(Some(RawFrame {
                    index,
                    captured: SystemTime::now(),
                    name: None,
                    data: FrameData::Encoded(bytes),
                }))
            }
            Ok(None) if self.snapshot && self.in_connection > 0 => {
                // A snapshot URL answers one picture per request: ask again at once.
                self.body = None;
                self.in_connection = 0;
                let body = self
                    .connect()
                    .map_err(|e| self.disconnected(e.to_string()))?;
                self.body = Some(body);
                self.next_frame()
            }
            Ok(None) => {
                self.body = None;
                Err(self.disconnected("the server closed the stream".into()))
            }
            Err(e) => {
                self.body = None;
                Err(self.disconnected(e.to_string()))
            }
        }
    }

    fn is_live(&self) -> bool {
        true
    }

    fn reconnect(&mut self) -> Result<(), SourceError> {
        let body = self
            .connect()
            .map_err(|e| self.disconnected(e.to_string()))?;
        self.body = Some(body);
        self.in_connection = 0;
        Ok(())
    }

    fn describe(&self) -> String {
        format!("stream {}", self.url)
    }
}
