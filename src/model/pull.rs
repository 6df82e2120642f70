//! `models pull`: installing a model file from an address or a local file, checked against its
//! manifest on the way in. Bounded: at most one byte more than the manifest's size is read, and
//! a transfer that goes silent for [`STALL_TIMEOUT`] ends (a slow link that keeps sending does
//! not). Nothing half-written is ever left under the model's name.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::StoreError;
use crate::model::manifest::Manifest;
use crate::progress::Progress;

/// Installs the model file of `manifest` into `dest_dir`, from `from` (an `http(s)://` address
/// or a local file) or else from the manifest's own addresses. The bytes go to a temporary file
/// in `dest_dir`, are hashed on the way, and only a file with the right sha256 is renamed into
/// place: an interrupted or wrong download leaves nothing behind. At most one byte more than
/// the manifest's size is read, and a download ends when no byte came for [`STALL_TIMEOUT`]
/// (however long it takes while data flows). The temporary file is named so that a later pull
/// removes it if this one is killed ([`crate::atomic_file`]).
pub fn pull(
    manifest: &Manifest,
    from: Option<&str>,
    dest_dir: &Path,
    progress: &dyn Progress,
) -> Result<PathBuf, StoreError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StoreError::Io { path, source }
    };
    std::fs::create_dir_all(dest_dir).map_err(io(dest_dir))?;
    let sources: Vec<String> = match from {
        Some(f) => vec![f.to_string()],
        None if manifest.urls.is_empty() => {
            return Err(StoreError::NoUrl {
                name: manifest.name.clone(),
            })
        }
        None => manifest.urls.clone(),
    };
    let mut last_err = None;
    for source in &sources {
        // The first pull into a folder also removes what killed pulls left there.
        let mut tmp = crate::atomic_file::temp_file_in(dest_dir).map_err(io(dest_dir))?;
        let result = if source.starts_with("http://") || source.starts_with("https://") {
            download(
                source,
                manifest.bytes,
                tmp.as_file_mut(),
                progress,
                STALL_TIMEOUT,
            )
        } else {
            copy_local(
                Path::new(source),
                manifest.bytes,
                tmp.as_file_mut(),
                progress,
            )
        };
        let sha256 = match result {
            Ok(sha) => sha,
            Err(e) => {
                last_err = Some(e);
                continue;
            }
        };
        if sha256 != manifest.sha256 {
            last_err = Some(StoreError::HashMismatch {
                from: source.clone(),
                name: manifest.name.clone(),
                expected: manifest.sha256.clone(),
                actual: sha256,
            });
            continue;
        }
        tmp.as_file().sync_all().map_err(io(tmp.path()))?;
        let dest = dest_dir.join(&manifest.file);
        crate::atomic_file::persist(tmp, &dest).map_err(io(&dest))?;
        progress.finish();
        return Ok(dest);
    }
    progress.finish();
    Err(last_err.expect("at least one source was tried"))
}

/// How long a download may go without a byte before it is given up: a slow link is fine as
/// long as data keeps coming, a server that stops sending is not.
pub const STALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Streams `url` into `out`, returning the sha256 of what arrived. With `expected_len` (the
/// manifest's size) at most one byte more is read: a server that sends more, or announces more,
/// is not sending this model, and an endless one must not fill the disk. There is no limit on
/// the total time, only on silence: no byte for `stall` ends the download.
fn download(
    url: &str,
    expected_len: Option<u64>,
    out: &mut File,
    progress: &dyn Progress,
    stall: std::time::Duration,
) -> Result<String, StoreError> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(std::time::Duration::from_secs(20)))
        .timeout_recv_response(Some(stall))
        // Restarted on every read of the socket, so it measures silence, not the transfer.
        .timeout_per_read(Some(stall))
        .build()
        .into();
    let mut response = agent.get(url).call().map_err(|e| StoreError::Http {
        url: url.to_string(),
        source: Box::new(e),
    })?;
    let status = response.status().as_u16();
    if status != 200 {
        return Err(StoreError::Status {
            url: url.to_string(),
            status,
        });
    }
    let body = response.body_mut();
    let content_length = body.content_length();
    if let (Some(announced), Some(expected)) = (content_length, expected_len) {
        if announced > expected {
            return Err(StoreError::AnnouncedTooLong {
                url: url.to_string(),
                announced,
                expected,
            });
        }
    }
    let announced = content_length.or(expected_len);
    if let Some(len) = announced {
        progress.set_total(len);
    }
    let limit = expected_len.map_or(u64::MAX, |len| len.saturating_add(1));
    let mut reader = body.with_config().limit(u64::MAX).reader().take(limit);
    let mut got = 0;
    let result = copy_hashing(&mut reader, out, progress, &mut got);
    let of = announced.map(|n| format!(" of {n}")).unwrap_or_default();
    let sha = result.map_err(|e| {
        if is_stall(&e) {
            StoreError::Stalled {
                url: url.to_string(),
                seconds: stall.as_secs(),
                got,
                of: of.clone(),
            }
        } else {
            StoreError::Incomplete {
                url: url.to_string(),
                got,
                expected: format!("{of} ({e})"),
            }
        }
    })?;
    if let Some(expected) = expected_len.filter(|&len| got > len) {
        return Err(StoreError::TooLong {
            from: url.to_string(),
            expected,
            got,
        });
    }
    if let Some(len) = body_len_check(announced, got) {
        return Err(StoreError::Incomplete {
            url: url.to_string(),
            got,
            expected: format!(" of {len}"),
        });
    }
    Ok(sha)
}

/// Whether a read failed because no byte came for the per-read timeout: ureq reports it as its
/// own timeout error inside the I/O error.
fn is_stall(e: &std::io::Error) -> bool {
    let ureq_timeout = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<ureq::Error>())
        .is_some_and(|u| matches!(u, ureq::Error::Timeout(_)));
    ureq_timeout
        || matches!(
            e.kind(),
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
        )
}

/// `Some(expected)` when fewer bytes arrived than announced.
fn body_len_check(announced: Option<u64>, got: u64) -> Option<u64> {
    announced.filter(|&len| got < len)
}

/// Copies a local file, at most one byte more than the manifest's size (`/dev/zero` is a file
/// too).
fn copy_local(
    path: &Path,
    expected_len: Option<u64>,
    out: &mut File,
    progress: &dyn Progress,
) -> Result<String, StoreError> {
    let io = |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    if let Ok(meta) = file.metadata() {
        progress.set_total(meta.len());
    }
    let mut got = 0;
    let limit = expected_len.map_or(u64::MAX, |len| len.saturating_add(1));
    let sha = copy_hashing(&mut file.take(limit), out, progress, &mut got).map_err(io)?;
    if let Some(expected) = expected_len.filter(|&len| got > len) {
        return Err(StoreError::TooLong {
            from: path.display().to_string(),
            expected,
            got,
        });
    }
    Ok(sha)
}

/// Copies everything, hashing it and counting the bytes in `copied` (also when it fails);
/// returns the sha256 in hex.
fn copy_hashing(
    src: &mut impl Read,
    out: &mut File,
    progress: &dyn Progress,
    copied: &mut u64,
) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = src.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])?;
        *copied += n as u64;
        progress.advance(n as u64);
    }
    out.flush()?;
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::store::sha256_file;

    #[test]
    fn local_pull_checks_hash_and_leaves_nothing_on_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src.bin");
        std::fs::write(&src, b"hello").unwrap();
        let mut m = Manifest::builtin().remove(0);
        let dest = dir.path().join("models");
        let err = pull(
            &m,
            Some(src.to_str().unwrap()),
            &dest,
            &crate::progress::Silent,
        )
        .unwrap_err();
        assert!(matches!(err, StoreError::HashMismatch { .. }), "{err}");
        assert_eq!(std::fs::read_dir(&dest).unwrap().count(), 0);
        m.sha256 = sha256_file(&src).unwrap();
        let path = pull(
            &m,
            Some(src.to_str().unwrap()),
            &dest,
            &crate::progress::Silent,
        )
        .unwrap();
        assert_eq!(std::fs::read(path).unwrap(), b"hello");
        assert_eq!(std::fs::read_dir(&dest).unwrap().count(), 1);
    }

    /// A loopback HTTP server for one request: it reads the request head, sends `head`, then
    /// does what `body` does with the socket. Returns the URL.
    fn serve_once(
        head: &str,
        body: impl FnOnce(&mut std::net::TcpStream) + Send + 'static,
    ) -> String {
        use std::io::BufRead;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let head = head.to_string();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = std::io::BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while request.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                line.clear();
            }
            if stream.write_all(head.as_bytes()).is_ok() {
                body(&mut stream);
            }
        });
        format!("http://{addr}/model.onnx")
    }

    /// `download` of `url` into a temporary file, capped at `size` bytes, cut after `stall`
    /// seconds of silence: its answer and the file.
    fn fetch(url: &str, size: u64, stall: u64) -> (Result<String, StoreError>, File) {
        let mut out = tempfile::tempfile().unwrap();
        let stall = std::time::Duration::from_secs(stall);
        let got = download(url, Some(size), &mut out, &crate::progress::Silent, stall);
        (got, out)
    }

    #[test]
    fn an_endless_server_is_cut_one_byte_past_the_manifest_size() {
        let url = serve_once("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", |s| {
            let chunk = [7u8; 1 << 16];
            while s.write_all(&chunk).is_ok() {}
        });
        let (err, out) = fetch(&url, 1_000_000, 30);
        let err = err.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{url}: more than the manifest's 1000000 bytes arrived (stopped after 1000001); \
                 this is not the model's file, nothing was installed"
            )
        );
        let written = out.metadata().unwrap().len();
        assert!(written <= 1_000_000 + (1 << 16), "{written} bytes written");
    }

    #[test]
    fn a_larger_announced_size_is_refused_before_reading() {
        let url = serve_once(
            "HTTP/1.1 200 OK\r\nContent-Length: 300000000\r\nConnection: close\r\n\r\n",
            |s| {
                let _ = s.write_all(&[0u8; 4096]);
            },
        );
        let (err, out) = fetch(&url, 1_000_000, 30);
        let err = err.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "downloading {url}: the server announces 300000000 bytes but the manifest says \
                 1000000; this is not the model's file, nothing was installed"
            )
        );
        assert_eq!(out.metadata().unwrap().len(), 0);
    }

    #[test]
    fn a_server_that_stops_sending_is_reported_as_stalled() {
        let url = serve_once(
            "HTTP/1.1 200 OK\r\nContent-Length: 200000\r\nConnection: close\r\n\r\n",
            |s| {
                let _ = s.write_all(&[1u8; 100_000]);
                let _ = s.flush();
                // Silent, with the connection open, until the client hangs up.
                let _ = s.read(&mut [0u8; 1]);
            },
        );
        let err = fetch(&url, 200_000, 1).0.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "downloading {url}: no data for 1 s after 100000 of 200000 bytes; the server \
                 stalled, nothing was installed, try again"
            )
        );
    }

    #[test]
    fn a_slow_link_that_keeps_sending_is_not_cut() {
        // 20 chunks 100 ms apart: two seconds in all, twice the stall time, never silent for
        // as long as it. A total-time limit would cut it; a stall limit must not.
        let url = serve_once(
            "HTTP/1.1 200 OK\r\nContent-Length: 200000\r\nConnection: close\r\n\r\n",
            |s| {
                for _ in 0..20 {
                    let _ = s.write_all(&[3u8; 10_000]);
                    let _ = s.flush();
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
            },
        );
        let (sha, out) = fetch(&url, 200_000, 1);
        let sha = sha.unwrap();
        assert_eq!(sha, hex::encode(Sha256::digest([3u8; 200_000])));
        assert_eq!(out.metadata().unwrap().len(), 200_000);
    }

    #[test]
    fn pulling_cleans_dead_leftovers_and_keeps_a_replaced_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("models");
        std::fs::create_dir_all(&dest).unwrap();
        let [dead, live, fresh] = crate::atomic_file::test_leftovers::plant(&dest);
        let src = dir.path().join("src.bin");
        std::fs::write(&src, b"hello").unwrap();
        let mut m = Manifest::builtin().remove(0);
        m.sha256 = sha256_file(&src).unwrap();
        let from = src.to_str().unwrap();
        let path = pull(&m, Some(from), &dest, &crate::progress::Silent).unwrap();
        assert!(!dead.exists() && live.exists() && fresh.exists());
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o666 & !crate::atomic_file::test_umask());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        pull(&m, Some(from), &dest, &crate::progress::Silent).unwrap();
        assert_eq!(mode(&path), 0o640);
        // A local file longer than the manifest says is refused the same way.
        m.bytes = Some(3);
        let err = pull(&m, Some(from), &dest, &crate::progress::Silent).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{from}: more than the manifest's 3 bytes arrived (stopped after 4); this is not \
                 the model's file, nothing was installed"
            )
        );
    }

    #[test]
    fn short_body_is_detected() {
        assert_eq!(body_len_check(Some(10), 4), Some(10));
        assert_eq!(body_len_check(Some(10), 10), None);
        assert_eq!(body_len_check(None, 4), None);
    }
}
