//! What the camera-side tests share: a fixture of camera frames with what `predict` says
//! about each, and `edge-tl` running in the background with its JSON lines on a channel.
//!
//! Used by the live-loop tests (`live.rs`, `capture.rs`) and by the service and MQTT tests,
//! which all check the loop against the same frames; building the fixture once (a trained
//! head, 12 JPEGs, a recording) keeps the suite affordable.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use edge_tl::source::jpeg_stream::write_part;
use edge_tl::source::recording::camera_frame;
use edge_tl::source::Size;
use serde_json::Value;

use crate::common::{
    cache_dir, edge_tl, pictures, shared, small_catsdogs, stderr, stdout, train_cli,
};

/// A head, 12 camera frames (640x480 JPEGs: cat, dog, cat, ...) as files and as one
/// multipart recording, and what `predict` says about each frame.
pub(crate) struct Fixture {
    _dir: tempfile::TempDir,
    pub(crate) head: PathBuf,
    pub(crate) frames: PathBuf,
    /// The same frames as one multipart recording.
    pub(crate) stream: PathBuf,
    pub(crate) jpegs: Vec<Vec<u8>>,
    /// (label, prob) per frame from `edge-tl predict --json`.
    pub(crate) predicted: Vec<(String, f64)>,
}

pub(crate) const FRAMES: usize = 12;

pub(crate) fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let data = root.join("data");
        small_catsdogs(&data, 20);
        let head = root.join("catsdogs.head");
        train_without_cv(&data, &head);

        let cats = pictures("catsdogs/test/cat", FRAMES / 2);
        let dogs = pictures("catsdogs/test/dog", FRAMES / 2);
        let frames = root.join("frames");
        std::fs::create_dir_all(&frames).unwrap();
        let size = Size {
            width: 640,
            height: 480,
        };
        let mut jpegs = Vec::new();
        let mut recording = Vec::new();
        for (i, photo) in cats.iter().zip(&dogs).flat_map(|(c, d)| [c, d]).enumerate() {
            let jpeg = camera_frame(photo, size).unwrap();
            std::fs::write(frames.join(format!("{i:03}.jpg")), &jpeg).unwrap();
            write_part(&mut recording, &jpeg).unwrap();
            jpegs.push(jpeg);
        }
        let stream = root.join("stream.mjpg");
        std::fs::write(&stream, &recording).unwrap();

        let mut args = vec![
            "predict".to_string(),
            head.display().to_string(),
            "--json".into(),
        ];
        args.extend((0..FRAMES).map(|i| frames.join(format!("{i:03}.jpg")).display().to_string()));
        let out = edge_tl(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(out.status.success(), "{}", stderr(&out));
        let predicted: Vec<(String, f64)> = json_lines(&stdout(&out))
            .iter()
            .map(|v| {
                (
                    v["label"].as_str().unwrap().to_string(),
                    v["prob"].as_f64().unwrap(),
                )
            })
            .collect();
        assert_eq!(predicted.len(), FRAMES);
        // The head sees cats and dogs in the camera frames, alternating.
        let right = predicted
            .iter()
            .enumerate()
            .filter(|(i, (label, _))| label == if i % 2 == 0 { "cat" } else { "dog" })
            .count();
        assert!(right >= FRAMES - 1, "{predicted:?}");
        Fixture {
            _dir: dir,
            head,
            frames,
            stream,
            jpegs,
            predicted,
        }
    })
}

/// `edge-tl train` without cross-validation, with the shared embedding cache.
pub(crate) fn train_without_cv(data: &Path, head: &Path) {
    let cache = cache_dir();
    let out = train_cli(
        data,
        head,
        &["--folds", "0", "--cache-dir", cache.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

/// One JSON value per line of `text`.
pub(crate) fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Every result equals `predict` on the frame it names (by position in the source).
pub(crate) fn assert_same_as_predict(lines: &[Value], f: &Fixture) {
    for line in lines {
        let frame = line["frame"].as_u64().unwrap() as usize % FRAMES;
        let (label, prob) = &f.predicted[frame];
        assert_eq!(line["label"], label.as_str(), "frame {frame}: {line}");
        // The same f32 (JSON may print it with f32 or f64 digits).
        let got = line["prob"].as_f64().unwrap() as f32;
        assert_eq!(got, *prob as f32, "frame {frame}: {line}");
    }
}

/// A `--source` argument: `prefix` (`dir:`, `file:`) and the path.
pub(crate) fn path_arg(prefix: &str, p: &Path) -> String {
    format!("{prefix}{}", p.display())
}

/// `run --head HEAD --source SOURCE --loop --replay-fps FPS EXTRA...`: a replay that behaves
/// like a live camera.
pub(crate) fn live_replay(head: &Path, source: &str, fps: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["run", "--head", head.to_str().unwrap(), "--source", source]
        .iter()
        .chain(&["--loop", "--replay-fps", fps])
        .map(|s| s.to_string())
        .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// The arguments as `&str`s, for `edge_tl` and `Background::start`.
pub(crate) fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// `edge-tl` running in the background, its JSON lines arriving on a channel.
pub(crate) struct Background {
    pub(crate) child: Child,
    lines: Receiver<Value>,
    stderr: Arc<std::sync::Mutex<String>>,
}

impl Background {
    pub(crate) fn start(args: &[&str]) -> Background {
        Background::start_with(args, &[])
    }

    /// [`Background::start`] with more environment variables.
    pub(crate) fn start_with(args: &[&str], env: &[(&str, &str)]) -> Background {
        let mut child = Command::new(env!("CARGO_BIN_EXE_edge-tl"))
            .args(args)
            .envs(env.iter().copied())
            .env("EDGE_TL_MODELS", shared().join("models"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(serde_json::from_str(&line).unwrap()).is_err() {
                    return;
                }
            }
        });
        let stderr = Arc::new(std::sync::Mutex::new(String::new()));
        let mut err = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    return;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Background {
            child,
            lines,
            stderr,
        }
    }

    /// Lines until one satisfies `until` (included), failing after a minute.
    pub(crate) fn wait_for(&self, what: &str, until: impl Fn(&Value) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(90);
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
                let done = until(&line);
                seen.push(line);
                if done {
                    return seen;
                }
            }
        }
        panic!("no {what} within 90 s; stderr: {}", self.stderr());
    }

    pub(crate) fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Resident memory now, in KiB.
    pub(crate) fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// SIGTERM, then the exit status.
    pub(crate) fn terminate(mut self) -> (ExitStatus, String) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let status = self.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        (status, self.stderr())
    }
}

/// A port nothing listens on now (bound and released), for a server a test starts.
#[cfg(feature = "service")]
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP/1.1 exchange on a fresh connection (`request` up to the blank line, then `body`):
/// status, head, body.
#[cfg(feature = "service")]
pub fn http(port: u16, request: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let split = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer: {:?}", String::from_utf8_lossy(&all)));
    let head = String::from_utf8_lossy(&all[..split]).to_string();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head, all[split + 4..].to_vec())
}

#[cfg(feature = "service")]
pub(crate) use scene::Scene;

/// The switchable MJPEG camera (the service and RTSP tests use it; both need `service`).
#[cfg(feature = "service")]
mod scene {
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use edge_tl::source::jpeg_stream::write_part;

    /// An MJPEG server whose picture the test switches: what a camera pointed at one thing,
    /// then another, would send.
    pub(crate) struct Scene {
        showing: Arc<Mutex<Vec<Vec<u8>>>>,
        pub(crate) url: String,
    }

    impl Scene {
        pub(crate) fn start(first: Vec<Vec<u8>>) -> Scene {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let url = format!("http://{}/stream.mjpg", listener.local_addr().unwrap());
            let showing = Arc::new(Mutex::new(first));
            let scene = showing.clone();
            std::thread::spawn(move || {
                for socket in listener.incoming() {
                    let Ok(mut socket) = socket else { return };
                    let scene = scene.clone();
                    std::thread::spawn(move || {
                        let mut byte = [0u8; 1];
                        let mut request = Vec::new();
                        while !request.ends_with(b"\r\n\r\n")
                            && socket.read(&mut byte).unwrap_or(0) == 1
                        {
                            request.push(byte[0]);
                        }
                        let head = "HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; \
                                    boundary=edgetlframe\r\n\r\n";
                        if socket.write_all(head.as_bytes()).is_err() {
                            return;
                        }
                        for i in 0.. {
                            let jpeg = {
                                let s = scene.lock().unwrap();
                                s[i % s.len()].clone()
                            };
                            let mut part = Vec::new();
                            write_part(&mut part, &jpeg).unwrap();
                            if socket.write_all(&part).is_err() {
                                return;
                            }
                            std::thread::sleep(Duration::from_millis(100));
                        }
                    });
                }
            });
            Scene { showing, url }
        }

        pub(crate) fn show(&self, jpegs: Vec<Vec<u8>>) {
            *self.showing.lock().unwrap() = jpegs;
        }
    }
}
