//! `http://` and `https://` MJPEG streams (IP cameras, ESP32-CAM, `mjpg-streamer`): the
//! response body is cut into frames by JPEG structure, so both `multipart/x-mixed-replace`
//! streams and single-picture snapshot URLs (`image/jpeg`, fetched again for each frame) work.
//! A multipart stream that ends is a disconnect, retried with backoff by the feed.
//!
//! A URL may carry credentials (`http://admin:secret@cam/stream`, sent as Basic
//! authentication); every message shows it with the password as `***` ([`redact_url`]).

use std::borrow::Cow;
use std::ops::Range;
use std::time::{Duration, SystemTime};

use super::jpeg_stream::JpegFrames;
use super::{FrameData, FrameSource, RawFrame, SourceError};

type Body = JpegFrames<ureq::BodyReader<'static>>;

pub struct HttpSource {
    /// The URL as given, credentials included: only for requests.
    url: String,
    /// The URL for messages, its password hidden.
    shown: String,
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
            shown: redact_url(url).into_owned(),
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
            url: self.shown.clone(),
            reason,
        };
        // ureq's messages may quote the URL (a bad address, a redirect).
        let cannot =
            |e: ureq::Error| error(hide_credentials(&format!("cannot connect: {e}"), &self.url));
        let response = self.agent.get(&self.url).call().map_err(cannot)?;
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
            what: format!("stream {}", self.shown),
            reason: hide_credentials(&reason, &self.url),
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
        format!("stream {}", self.shown)
    }
}

/// Where the credentials (`user:password`) of `scheme://user:password@host/...` are, if any.
fn userinfo(url: &str) -> Option<Range<usize>> {
    let start = url.find("://")? + 3;
    let rest = &url[start..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let at = authority.rfind('@')?;
    Some(start..start + at)
}

/// Credentials as messages show them: the user name with `***` for the password, or `***`
/// alone for a lone user name, which is often a token (pip's rule, `redact_auth_from_url`).
fn redacted_userinfo(userinfo: &str) -> String {
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{user}:***"),
        None => "***".to_string(),
    }
}

/// `url` for messages: `http://admin:secret@cam/x` becomes `http://admin:***@cam/x`; URLs
/// without credentials are unchanged.
pub fn redact_url(url: &str) -> Cow<'_, str> {
    match userinfo(url) {
        Some(range) => Cow::Owned(format!(
            "{}{}{}",
            &url[..range.start],
            redacted_userinfo(&url[range.clone()]),
            &url[range.end..]
        )),
        None => Cow::Borrowed(url),
    }
}

/// `text` with the credentials of `url` (as `user:password@`) hidden wherever it quotes them.
pub(super) fn hide_credentials(text: &str, url: &str) -> String {
    match userinfo(url) {
        Some(range) => {
            let secret = &url[range.start..=range.end];
            let shown = format!("{}@", redacted_userinfo(&url[range]));
            text.replace(secret, &shown)
        }
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_urls_are_hidden() {
        assert_eq!(
            redact_url("http://admin:hunter2@127.0.0.1:8080/x"),
            "http://admin:***@127.0.0.1:8080/x"
        );
        assert_eq!(
            redact_url("https://tok3n@cam/s?a=b@c"),
            "https://***@cam/s?a=b@c"
        );
        // An `@` after the host is part of the path or query, not credentials.
        assert_eq!(redact_url("http://cam/x@y"), "http://cam/x@y");
        assert_eq!(redact_url("http://cam:81/"), "http://cam:81/");
        assert_eq!(
            hide_credentials(
                "bad uri: http://admin:hunter2@cam is missing host",
                "http://admin:hunter2@cam"
            ),
            "bad uri: http://admin:***@cam is missing host"
        );
    }

    #[test]
    fn an_unreachable_stream_names_its_url_without_the_password() {
        // Nothing listens on a port just freed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = HttpSource::open(&format!("http://admin:hunter2@127.0.0.1:{port}/x"))
            .err()
            .unwrap()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(
            err.starts_with(&format!(
                "http://admin:***@127.0.0.1:{port}/x: cannot connect"
            )),
            "{err}"
        );
    }
}
