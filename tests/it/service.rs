//! The HTTP service of `run --http`: API answers checked against `predict`, the token, clients
//! that misbehave, capturing and training over the API while inference goes on, and a restart
//! after a kill. (The page itself is driven in Chromium by `tests/browser/page.test.mjs`.)

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use edge_tl::source::jpeg_stream::JpegFrames;
use serde_json::Value;

use crate::common::{pictures, stderr};
use crate::harness::{fixture, free_port, http, path_arg, Background, Scene, FRAMES};

pub(crate) fn get(port: u16, path: &str, extra_headers: &str) -> (u16, String, Vec<u8>) {
    http(
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n{extra_headers}\r\n"),
        b"",
    )
}

pub(crate) fn get_json(port: u16, path: &str) -> (u16, Value) {
    let (status, _, body) = get(port, path, "");
    (status, serde_json::from_slice(&body).unwrap())
}

pub(crate) fn post_json(port: u16, path: &str, body: &str) -> (u16, Value) {
    let (status, _, body) = http(
        port,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        ),
        body.as_bytes(),
    );
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// `run --http 127.0.0.1:PORT ARGS...`, returned once `/healthz` says ok.
pub(crate) fn service(args: &[&str]) -> (Background, u16) {
    service_with(args, &[])
}

/// [`service`] with more environment variables.
pub(crate) fn service_with(args: &[&str], env: &[(&str, &str)]) -> (Background, u16) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut all = vec!["run", "--http", &listen];
    all.extend_from_slice(args);
    // Without a data folder of the test's own, the default `dataset` is in the working tree:
    // no review queue there.
    if !args.iter().any(|a| *a == "--data" || *a == "--config") {
        all.extend(["--review-keep", "0"]);
    }
    let run = Background::start_with(&all, env);
    wait_until(&run, "/healthz to say ok", || {
        TcpStream::connect(("127.0.0.1", port)).is_ok() && get(port, "/healthz", "").0 == 200
    });
    (run, port)
}

pub(crate) fn wait_until(run: &Background, what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no {what} within 90 s; stderr: {}", run.stderr());
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing in\n{text}"))
}

fn classified(port: u16) -> f64 {
    let (_, _, body) = get(port, "/metrics", "");
    metric(
        &String::from_utf8(body).unwrap(),
        "edge_tl_frames_classified_total",
    )
}

/// The service on the fixture's frames replayed in a loop at 10 frames/s, plus `extra` flags.
fn replay_service(extra: &[&str]) -> (Background, u16) {
    replay_service_at("10", extra, &[])
}

/// The service on the fixture's frames replayed in a loop at `fps`, with its head, plus
/// `extra` flags and `env`.
pub(crate) fn replay_service_at(
    fps: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (Background, u16) {
    let f = fixture();
    let frames = path_arg("dir:", &f.frames);
    let mut args = vec![
        "--head",
        f.head.to_str().unwrap(),
        "--source",
        &frames,
        "--loop",
        "--replay-fps",
        fps,
    ];
    args.extend_from_slice(extra);
    service_with(&args, env)
}

#[test]
fn the_api_serves_what_predict_says_with_metrics_preview_and_events() {
    let f = fixture();
    let (run, port) = replay_service(&[]);

    // The latest prediction is what `predict` says about that frame.
    let (status, p) = get_json(port, "/api/prediction");
    assert_eq!(status, 200, "{p}");
    let frame = p["frame"].as_u64().unwrap() as usize % FRAMES;
    assert_eq!(p["label"], f.predicted[frame].0.as_str(), "{p}");
    assert_eq!(
        p["prob"].as_f64().unwrap() as f32,
        f.predicted[frame].1 as f32
    );

    // Server-sent events: `prediction` events carrying the same JSON.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(format!("GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes())
        .unwrap();
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    while text.matches("event: prediction").count() < 3 {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "event stream closed: {text}");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(text.contains("content-type: text/event-stream"), "{text}");
    let data: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    for e in &data {
        let i = e["frame"].as_u64().unwrap() as usize % FRAMES;
        assert_eq!(e["label"], f.predicted[i].0.as_str(), "{e}");
    }

    // The preview: frames of the source, as JPEG, in a multipart stream and as a snapshot.
    let (status, head, jpeg) = get(port, "/snapshot.jpg", "");
    assert_eq!(status, 200, "{head}");
    assert!(
        f.jpegs.contains(&jpeg),
        "the snapshot is one of the source's frames"
    );
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(format!("GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes())
        .unwrap();
    let mut frames = JpegFrames::new(s);
    for _ in 0..3 {
        let jpeg = frames.next_frame().unwrap().unwrap();
        assert!(f.jpegs.contains(&jpeg), "a preview frame is a source frame");
    }

    // Prometheus text.
    let (status, head, body) = get(port, "/metrics", "");
    assert_eq!(status, 200);
    assert!(head.contains("application/openmetrics-text"), "{head}");
    let text = String::from_utf8(body).unwrap();
    assert!(metric(&text, "edge_tl_frames_classified_total") >= 3.0);
    let cats = metric(&text, "edge_tl_predictions_total{label=\"cat\"}");
    let dogs = metric(&text, "edge_tl_predictions_total{label=\"dog\"}");
    assert!(cats >= 1.0 && dogs >= 1.0, "{text}");
    assert!(
        metric(
            &text,
            "edge_tl_stage_latency_seconds_count{stage=\"extract\"}"
        ) >= 3.0
    );
    assert!(text.contains("edge_tl_frames_dropped_total"));
    assert!(text.contains("edge_tl_source_reconnects_total 0"));

    // The page and an unknown path.
    let (status, _, page) = get(port, "/", "");
    assert_eq!(status, 200);
    let page = String::from_utf8(page).unwrap();
    assert!(page.contains("id=\"train\"") && page.contains("stream.mjpg"));
    let (status, body) = get_json(port, "/nope");
    assert_eq!(status, 404);
    assert!(body["error"].as_str().unwrap().contains("no such page"));

    let (status, err) = run.terminate();
    assert!(status.success(), "{status:?}: {err}");
}

#[test]
fn a_token_guards_everything_but_health() {
    let f = fixture();
    let source = path_arg("dir:", &f.frames);
    // Listening beyond loopback without a token is refused before anything starts, whether
    // the address comes from a flag or from the settings file.
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("config.toml");
    std::fs::write(&settings, "[http]\nlisten = \"0.0.0.0:1\"\n").unwrap();
    let head = f.head.to_str().unwrap();
    for how in [
        ["--http", "0.0.0.0:1"],
        ["--config", settings.to_str().unwrap()],
    ] {
        let mut args = vec!["run", "--source", &source, "--head", head];
        args.extend(how);
        let out = crate::common::edge_tl(&args);
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains("refusing to serve on 0.0.0.0:1 without a token"),
            "{how:?}: {}",
            stderr(&out)
        );
    }

    let (run, port) = replay_service(&["--http-token", "s3cret"]);
    let (status, body) = get_json(port, "/api/prediction");
    assert_eq!(status, 401);
    assert!(body["error"].as_str().unwrap().contains("Bearer"), "{body}");
    assert_eq!(
        get(port, "/metrics", "Authorization: Bearer wrong\r\n").0,
        401
    );
    assert_eq!(
        get(port, "/metrics", "Authorization: Bearer s3cret\r\n").0,
        200
    );
    // `/?token=` lets a browser in and leaves a cookie for the page's own requests.
    let (status, head, _) = get(port, "/?token=s3cret", "");
    assert_eq!(status, 200);
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .unwrap_or_else(|| panic!("no cookie in {head}"));
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    let pair = cookie.split(';').next().unwrap();
    assert_eq!(
        get(port, "/api/prediction", &format!("Cookie: {pair}\r\n")).0,
        200
    );
    run.terminate();
}

#[test]
fn malformed_slow_and_many_clients_never_stop_inference() {
    let (run, port) = replay_service(&[]);
    // Malformed requests get an answer that says what is wrong.
    let (status, body) = post_json(port, "/api/capture", "{not json");
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("expected {\"label\""),
        "{body}"
    );
    let (status, body) = post_json(port, "/api/capture", r#"{"label": "../etc"}"#);
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("label"), "{body}");
    let (status, body) = post_json(port, "/api/capture", r#"{"label": "cat", "count": 0}"#);
    assert_eq!(status, 400, "{body}");
    let mut garbage = TcpStream::connect(("127.0.0.1", port)).unwrap();
    garbage
        .write_all(b"\x00\x01NOT HTTP AT ALL\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = garbage.read_to_end(&mut answer);
    assert!(
        answer.is_empty() || answer.starts_with(b"HTTP/1.1 400"),
        "{}",
        String::from_utf8_lossy(&answer)
    );

    // Slow clients: previews and event streams that are never read, and half-sent requests.
    let mut idle = Vec::new();
    for i in 0..20 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let request: String = match i % 3 {
            0 => format!("GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"),
            1 => format!("GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"),
            _ => "GET /api/predi".to_string(),
        };
        s.write_all(request.as_bytes()).unwrap();
        idle.push(s);
    }
    let before = classified(port);
    // A burst: 8 threads x 25 requests.
    let failures = Arc::new(Mutex::new(Vec::new()));
    let burst: Vec<_> = (0..8)
        .map(|_| {
            let failures = failures.clone();
            std::thread::spawn(move || {
                for _ in 0..25 {
                    let (status, _, _) = get(port, "/api/prediction", "");
                    if status != 200 {
                        failures.lock().unwrap().push(status);
                    }
                }
            })
        })
        .collect();
    for t in burst {
        t.join().unwrap();
    }
    assert!(failures.lock().unwrap().is_empty(), "{failures:?}");
    std::thread::sleep(Duration::from_secs(2));
    let after = classified(port);
    assert!(
        after >= before + 5.0,
        "inference slowed to {} frames in 2 s+ with slow clients connected",
        after - before
    );
    let (status, health) = get_json(port, "/healthz");
    assert_eq!(status, 200, "{health}");
    drop(idle);
    let (status, err) = run.terminate();
    assert!(status.success(), "{status:?}: {err}");
}

fn camera_frames(rel: &str, n: usize) -> Vec<Vec<u8>> {
    let size = edge_tl::source::Size {
        width: 640,
        height: 480,
    };
    pictures(rel, n)
        .iter()
        .map(|p| edge_tl::source::recording::camera_frame(p, size).unwrap())
        .collect()
}

fn decodes_whole(dir: &Path) -> usize {
    let files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    for f in &files {
        edge_tl::preprocess::decode_file(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    }
    files.len()
}

#[test]
fn samples_captured_and_trained_over_the_api_change_the_answer_without_a_restart() {
    let cats = camera_frames("catsdogs/test/cat", 8);
    let dogs = camera_frames("catsdogs/test/dog", 8);
    let scene = Scene::start(cats.clone());
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("dataset");
    let head = dir.path().join("home.head");
    let args = [
        "--source",
        &scene.url,
        "--data",
        data.to_str().unwrap(),
        "--head",
        head.to_str().unwrap(),
    ];
    let (run, port) = service(&args);
    assert!(
        run.stderr().contains("does not exist yet"),
        "{}",
        run.stderr()
    );
    // Before any training: ImageNet classes; training is refused without pictures.
    let (_, p) = get_json(port, "/api/prediction");
    assert_ne!(p["label"], "cat");
    let (status, _) = post_json(port, "/api/train", "");
    assert_eq!(status, 202);
    let status = wait_training(&run, port);
    assert_eq!(status["state"], "failed", "{status}");
    assert!(
        status["error"]
            .as_str()
            .unwrap()
            .contains(data.to_str().unwrap()),
        "{status}"
    );

    let (status, body) = post_json(
        port,
        "/api/capture",
        r#"{"label": "cat", "count": 6, "interval_ms": 50}"#,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["saved"].as_array().unwrap().len(), 6, "{body}");
    scene.show(dogs.clone());
    std::thread::sleep(Duration::from_millis(500));
    let (status, body) = post_json(
        port,
        "/api/capture",
        r#"{"label": "dog", "count": 6, "interval_ms": 50}"#,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["samples"], 6);
    let (_, labels) = get_json(port, "/api/labels");
    assert_eq!(
        labels["labels"],
        serde_json::json!([{"label": "cat", "samples": 6}, {"label": "dog", "samples": 6}])
    );
    assert_eq!(decodes_whole(&data.join("cat")), 6);

    let before = classified(port);
    let (status, body) = post_json(port, "/api/train", "");
    assert_eq!(status, 202, "{body}");
    let (again, _) = post_json(port, "/api/train", "");
    let status = wait_training(&run, port);
    assert!(
        again == 409 || again == 202,
        "a second request while training: {again}"
    );
    assert_eq!(status["state"], "done", "{status}");
    assert!(status["cv_accuracy"].as_f64().unwrap() >= 0.8, "{status}");
    // Per label, from the cross-validation; every mistake is one of the captured pictures.
    let labels: Vec<_> = status["per_class"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["label"].clone())
        .collect();
    assert_eq!(labels, ["cat", "dog"], "{status}");
    for m in status["mistakes"].as_array().unwrap() {
        assert!(
            Path::new(m["path"].as_str().unwrap()).starts_with(&data),
            "{m}"
        );
    }
    assert!(head.exists());
    assert!(
        classified(port) > before,
        "inference went on during training"
    );

    // The loop swaps the new head in: the dog it sees is a dog, then the cat a cat.
    wait_until(&run, "label dog", || {
        get_json(port, "/api/prediction").1["label"] == "dog"
    });
    scene.show(cats);
    wait_until(&run, "label cat", || {
        get_json(port, "/api/prediction").1["label"] == "cat"
    });
    assert!(
        run.stderr().contains("new head loaded (2 labels)"),
        "{}",
        run.stderr()
    );

    // A crash (SIGKILL) loses nothing; the service starts again on the same port.
    let mut run = run;
    run.child.kill().unwrap();
    run.child.wait().unwrap();
    assert_eq!(decodes_whole(&data.join("dog")), 6);
    let listen = format!("127.0.0.1:{port}");
    let mut restart = vec!["run", "--http", &listen];
    restart.extend_from_slice(&args);
    let again = Background::start(&restart);
    wait_until(&again, "the restarted service", || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
            && get(port, "/healthz", "").0 == 200
            && get_json(port, "/api/prediction").1["label"] == "cat"
    });
    let (status, err) = again.terminate();
    assert!(status.success(), "{status:?}: {err}");
}

fn wait_training(run: &Background, port: u16) -> Value {
    let mut last = Value::Null;
    wait_until(run, "the end of training", || {
        last = get_json(port, "/api/train").1;
        last["state"] != "running"
    });
    last
}

#[test]
fn sigterm_during_a_capture_from_the_page_keeps_every_saved_sample_whole() {
    let scene = Scene::start(camera_frames("catsdogs/test/cat", 4));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("dataset");
    let (run, port) = service(&["--source", &scene.url, "--data", data.to_str().unwrap()]);
    // Without --head there is nowhere to write a trained head: the page is told so.
    let (status, body) = post_json(port, "/api/train", "");
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("--head FILE"),
        "{body}"
    );
    let capturing = std::thread::spawn(move || {
        // The answer may never come: the service stops mid-request.
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let body = r#"{"label": "cat", "count": 100, "interval_ms": 10}"#;
        let _ = write!(
            s,
            "POST /api/capture HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
    });
    let label = data.join("cat");
    wait_until(&run, "a few saved samples", || {
        label.is_dir() && std::fs::read_dir(&label).unwrap().count() >= 3
    });
    let (status, err) = run.terminate();
    assert!(status.success(), "{status:?}: {err}");
    capturing.join().unwrap();
    let saved = decodes_whole(&label);
    assert!((3..100).contains(&saved), "{saved} samples");
}

/// The API's one JSON body, `/api/capture`, on random bytes and random mutations of a valid
/// body: every request gets an answer that is not a server error, and the service goes on
/// classifying. (A mutation that is still valid captures a few frames, which is fine.)
#[test]
fn capture_bodies_of_any_bytes_get_an_answer_and_inference_goes_on() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    let data = tempfile::tempdir().unwrap();
    let (run, port) = replay_service(&["--data", data.path().to_str().unwrap()]);
    let valid = br#"{"label": "cat", "count": 1, "interval_ms": 0}"#.to_vec();
    let len = valid.len();
    let bodies = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        (
            prop::collection::vec((0..len, any::<u8>()), 1..6),
            prop::option::of(0..len)
        )
            .prop_map(move |(writes, cut)| {
                let mut b = valid.clone();
                for (i, v) in writes {
                    b[i] = v;
                }
                b.truncate(cut.unwrap_or(len));
                b
            }),
    ];
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200u32);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let before = classified(port);
    runner
        .run(&bodies, |body| {
            let (status, _, _) = http(
                port,
                &format!(
                    "POST /api/capture HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                ),
                &body,
            );
            prop_assert!(status < 500, "status {status} for {:?}", String::from_utf8_lossy(&body));
            Ok(())
        })
        .unwrap();
    assert_eq!(get(port, "/healthz", "").0, 200);
    wait_until(&run, "inference to go on", || classified(port) > before);
    run.terminate();
}

/// Two `[[camera]]` tables behind one `--http`: every route answers for the camera its
/// `?camera=` names (the first without one), metrics carry a `camera` label, and what is
/// captured and trained on one camera's page goes to that camera's folder and head alone;
/// two cameras of their own heads on one folder are refused.
#[test]
fn several_cameras_each_have_their_page_api_metrics_and_teaching() {
    let f = fixture();
    let scene = Scene::start(camera_frames("catsdogs/test/cat", 8));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("dataset");
    let door_data = dir.path().join("door-samples");
    let door_head = dir.path().join("door.head");
    let hall_head = dir.path().join("hall.head");
    std::fs::copy(&f.head, &hall_head).unwrap();
    let hall_before = std::fs::read(&hall_head).unwrap();
    let config = dir.path().join("edge-tl.toml");
    let toml_path = |p: &Path| p.display().to_string().replace('\\', "/");
    let settings = |door_data: &str| {
        format!(
            "data = \"{}\"\n\
             [[camera]]\nname = \"door\"\nsource = \"{}\"\nhead = \"{}\"\n{door_data}\
             [[camera]]\nname = \"hall\"\nsource = \"dir:{}\"\nhead = \"{}\"\n",
            toml_path(&data),
            scene.url,
            toml_path(&door_head),
            toml_path(&f.frames),
            toml_path(&hall_head),
        )
    };
    let config_arg = config.to_str().unwrap();
    std::fs::write(&config, settings("")).unwrap();
    let out = crate::common::edge_tl(&["run", "--config", config_arg, "--http", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cameras door and hall have different heads but capture into"),
        "{}",
        stderr(&out)
    );
    std::fs::write(
        &config,
        settings(&format!("data = \"{}\"\n", toml_path(&door_data))),
    )
    .unwrap();
    let (run, port) = service(&["--config", config_arg, "--loop", "--replay-fps", "10"]);

    // The list of cameras, and each camera's own results.
    wait_until(&run, "results from both cameras", || {
        let (_, list) = get_json(port, "/api/cameras");
        list["cameras"]
            .as_array()
            .is_some_and(|c| c.len() == 2 && c.iter().all(|c| c["status"] == "ok"))
    });
    let (_, list) = get_json(port, "/api/cameras");
    let names: Vec<_> = list["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].clone())
        .collect();
    assert_eq!(names, ["door", "hall"], "{list}");
    let (_, first) = get_json(port, "/api/prediction");
    assert_eq!(first["camera"], "door", "no ?camera= is the first camera");
    let (status, p) = get_json(port, "/api/prediction?camera=hall");
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["camera"], "hall");
    let frame = p["frame"].as_u64().unwrap() as usize % FRAMES;
    assert_eq!(p["label"], f.predicted[frame].0.as_str(), "{p}");
    let (status, e) = get_json(port, "/api/prediction?camera=garage");
    assert_eq!(status, 404);
    assert_eq!(
        e["error"], "no camera \"garage\": this service has door, hall",
        "{e}"
    );
    let (status, _, jpeg) = get(port, "/snapshot.jpg?camera=hall", "");
    assert_eq!(status, 200);
    assert!(
        f.jpegs.contains(&jpeg),
        "hall's snapshot is one of its frames"
    );
    let (status, health) = get_json(port, "/healthz");
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["cameras"]["hall"]["status"], "ok", "{health}");
    let (_, _, body) = get(port, "/metrics", "");
    let text = String::from_utf8(body).unwrap();
    for camera in ["door", "hall"] {
        let name = format!("edge_tl_frames_classified_total{{camera=\"{camera}\"}}");
        assert!(metric(&text, &name) >= 1.0, "{text}");
    }

    // Teaching the door camera: its samples (door's frames, not hall's) go to its folder,
    // its head alone is written.
    let (_, labels) = get_json(port, "/api/labels?camera=hall");
    assert_eq!(labels["data"], data.to_str().unwrap(), "{labels}");
    let (_, labels) = get_json(port, "/api/labels?camera=door");
    assert_eq!(labels["data"], door_data.to_str().unwrap(), "{labels}");
    for (label, photos) in [("cat", "catsdogs/test/cat"), ("dog", "catsdogs/test/dog")] {
        let shown = camera_frames(photos, 8);
        scene.show(shown.clone());
        std::thread::sleep(Duration::from_millis(500));
        let (status, body) = post_json(
            port,
            "/api/capture?camera=door",
            &format!(r#"{{"label": "{label}", "count": 6, "interval_ms": 50}}"#),
        );
        assert_eq!(status, 200, "{body}");
        for saved in std::fs::read_dir(door_data.join(label)).unwrap() {
            let bytes = std::fs::read(saved.unwrap().path()).unwrap();
            assert!(
                shown.contains(&bytes),
                "a {label} sample is one of door's frames"
            );
        }
        assert_eq!(decodes_whole(&door_data.join(label)), 6);
    }
    // Hall's folder holds only its review queue (hidden): nothing was captured for it.
    let hall: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(hall, [".review"], "nothing captured for hall");
    let (status, body) = post_json(port, "/api/train?camera=door", "");
    assert_eq!(status, 202, "{body}");
    let mut trained = Value::Null;
    wait_until(&run, "the end of door's training", || {
        trained = get_json(port, "/api/train?camera=door").1;
        trained["state"] != "running"
    });
    assert_eq!(trained["state"], "done", "{trained}");
    assert_eq!(get_json(port, "/api/train?camera=hall").1["state"], "idle");
    wait_until(&run, "door to answer dog", || {
        get_json(port, "/api/prediction?camera=door").1["label"] == "dog"
    });
    assert_eq!(std::fs::read(&hall_head).unwrap(), hall_before);
    let p = get_json(port, "/api/prediction?camera=hall").1;
    let frame = p["frame"].as_u64().unwrap() as usize % FRAMES;
    assert_eq!(p["label"], f.predicted[frame].0.as_str(), "{p}");

    let (status, err) = run.terminate();
    assert!(status.success(), "{status:?}: {err}");
}
