//! The `run` loop end to end through the binary, with real substitutes for a camera: a
//! folder replay, a recorded MJPEG file and a loopback HTTP MJPEG server. What `run` says
//! about a frame must be exactly what `predict` says about the same JPEG. The fixture and
//! the background runner are in `harness.rs`; `capture` is tested in `capture.rs`.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use edge_tl::source::jpeg_stream::write_part;
use serde_json::Value;

use crate::common::{copy_pictures, edge_tl, shared, stderr, stdout};
use crate::harness::{
    assert_same_as_predict, fixture, json_lines, live_replay, path_arg, strs, train_without_cv,
    Background, FRAMES,
};

#[test]
fn run_on_a_replay_says_what_predict_says_and_ends_by_itself() {
    let f = fixture();
    let head = f.head.to_str().unwrap();
    for source in [path_arg("dir:", &f.frames), path_arg("file:", &f.stream)] {
        let out = edge_tl(&["run", "--head", head, "--source", &source, "--top", "2"]);
        assert!(out.status.success(), "{source}: {}", stderr(&out));
        let lines = json_lines(&stdout(&out));
        assert_eq!(
            lines.len(),
            FRAMES,
            "{source}: a replay processes every frame"
        );
        let frames: Vec<u64> = lines.iter().map(|l| l["frame"].as_u64().unwrap()).collect();
        assert_eq!(frames, (0..FRAMES as u64).collect::<Vec<_>>());
        assert_same_as_predict(&lines, f);
        for l in &lines {
            assert_eq!(l["top"].as_array().unwrap().len(), 2);
            assert_eq!(l["dropped"], 0);
            for stage in ["decode", "resize", "extract", "head", "total"] {
                assert!(l["latency_ms"][stage].as_f64().unwrap() >= 0.0, "{l}");
            }
            assert!(l["ts"].as_str().unwrap().ends_with('Z'));
        }
        assert!(
            stderr(&out).contains("12 frames classified, 0 dropped"),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn smoothing_threshold_and_on_change_shape_the_output() {
    let f = fixture();
    let head = f.head.to_str().unwrap();
    let frames = path_arg("dir:", &f.frames);
    // Alternating cat/dog averaged over two frames hovers near 0.5: under 0.9 it is unknown.
    let out = edge_tl(&[
        "run",
        "--head",
        head,
        "--source",
        &frames,
        "--smooth",
        "2",
        "--threshold",
        "0.9",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = json_lines(&stdout(&out));
    assert_eq!(
        lines[0]["label"],
        f.predicted[0].0.as_str(),
        "one frame is not averaged"
    );
    assert!(
        lines[1..].iter().all(|l| l["label"] == "unknown"),
        "{lines:?}"
    );
    let p1 = lines[1]["top"].as_array().unwrap();
    let sum: f64 = p1.iter().map(|t| t["prob"].as_f64().unwrap()).sum();
    assert!(
        (sum - 1.0).abs() < 1e-5,
        "smoothed probabilities still sum to 1: {p1:?}"
    );

    // Only changes: with the raw labels alternating, every result is a change; smoothed
    // and thresholded, only the first and the switch to unknown are.
    let out = edge_tl(&["run", "--head", head, "--source", &frames, "--on-change"]);
    let changes = json_lines(&stdout(&out));
    let mut expected = 1;
    for w in f.predicted.windows(2) {
        expected += usize::from(w[0].0 != w[1].0);
    }
    assert_eq!(changes.len(), expected);
    let out = edge_tl(&[
        "run",
        "--head",
        head,
        "--source",
        &frames,
        "--on-change",
        "--smooth",
        "2",
        "--threshold",
        "0.9",
    ]);
    let labels: Vec<Value> = json_lines(&stdout(&out))
        .iter()
        .map(|l| l["label"].clone())
        .collect();
    assert_eq!(
        labels,
        [
            Value::from(f.predicted[0].0.as_str()),
            Value::from("unknown")
        ]
    );
}

/// `--confirm 3` on a replay built from frames `predict` calls cat and dog: the state is
/// `unknown` until three cats agree, alternating frames never change it, and a lasting change
/// is published on its third frame exactly, in the JSON lines and so in every sink
/// (`--on-change` sees three states).
#[test]
fn confirm_publishes_a_change_only_after_n_agreeing_frames() {
    let f = fixture();
    let by_label = |want: &str| {
        let i = f.predicted.iter().position(|(l, _)| l == want).unwrap();
        f.frames.join(format!("{i:03}.jpg"))
    };
    let (cat, dog) = (by_label("cat"), by_label("dog"));
    let dir = tempfile::tempdir().unwrap();
    let mut shown = Vec::new();
    shown.extend([&cat; 4]);
    for _ in 0..4 {
        shown.extend([&dog, &cat]);
    }
    shown.extend([&dog; 5]);
    for (i, photo) in shown.iter().enumerate() {
        std::fs::copy(photo, dir.path().join(format!("{i:03}.jpg"))).unwrap();
    }
    let replay = path_arg("dir:", dir.path());
    let head = f.head.to_str().unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "--head", head, "--source", &replay, "--confirm", "3"];
        args.extend_from_slice(extra);
        let out = edge_tl(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        json_lines(&stdout(&out))
    };
    let lines = run(&[]);
    let labels: Vec<&str> = lines.iter().map(|l| l["label"].as_str().unwrap()).collect();
    let mut expected = vec!["unknown", "unknown", "cat", "cat"];
    expected.extend(["cat"; 8]);
    expected.extend(["cat", "cat", "dog", "dog", "dog"]);
    assert_eq!(labels, expected);
    // What each frame decided, while it waits: the two dogs before the change.
    assert_eq!(lines[0]["pending"], "cat");
    assert_eq!(lines[12]["pending"], "dog");
    assert!(lines[14].get("pending").is_none(), "{}", lines[14]);
    // `prob` is that of the published label: cat's, on a frame that decided dog.
    let cat_prob = lines[12]["top"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["label"] == "cat")
        .map(|t| t["prob"].as_f64().unwrap())
        .unwrap();
    assert_eq!(lines[12]["prob"].as_f64().unwrap(), cat_prob);

    let changes = run(&["--on-change"]);
    let states: Vec<(&str, u64)> = changes
        .iter()
        .map(|l| (l["label"].as_str().unwrap(), l["frame"].as_u64().unwrap()))
        .collect();
    assert_eq!(states, [("unknown", 0), ("cat", 2), ("dog", 14)]);
}

#[test]
fn without_a_head_run_names_imagenet_classes() {
    let f = fixture();
    let out = edge_tl(&[
        "run",
        "--source",
        &path_arg("dir:", &f.frames),
        "--frames",
        "2",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = json_lines(&stdout(&out));
    assert_eq!(lines.len(), 2, "--frames stops the loop");
    let first = lines[0]["top"].as_array().unwrap();
    assert!(
        first
            .iter()
            .any(|t| t["label"].as_str().unwrap().contains("cat")),
        "a cat photo: {first:?}"
    );
}

#[test]
fn a_live_source_faster_than_inference_drops_frames_instead_of_queueing() {
    let f = fixture();
    let args = live_replay(
        &f.head,
        &path_arg("dir:", &f.frames),
        "200",
        &["--frames", "15"],
    );
    let out = edge_tl(&strs(&args));
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = json_lines(&stdout(&out));
    assert_eq!(lines.len(), 15);
    for (i, l) in lines.iter().enumerate() {
        // Every frame before this one was either classified or dropped, never left queued.
        let frame = l["frame"].as_u64().unwrap();
        assert!(l["dropped"].as_u64().unwrap() >= frame - i as u64, "{l}");
    }
    let frames: Vec<u64> = lines.iter().map(|l| l["frame"].as_u64().unwrap()).collect();
    assert!(frames.windows(2).all(|w| w[0] < w[1]), "{frames:?}");
    assert!(
        frames.windows(2).any(|w| w[1] > w[0] + 1),
        "frames were skipped: {frames:?}"
    );
    assert!(lines.last().unwrap()["dropped"].as_u64().unwrap() > 0);
    // What was classified is still classified right.
    assert_same_as_predict(&lines, f);
}

#[test]
fn bad_frames_are_named_and_the_replay_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture();
    std::fs::copy(f.frames.join("000.jpg"), dir.path().join("a.jpg")).unwrap();
    for bad in ["truncated.jpg", "text_not_image.jpg", "zero_bytes.jpg"] {
        std::fs::copy(
            shared().join("data/bad").join(bad),
            dir.path().join(format!("b_{bad}")),
        )
        .unwrap();
    }
    std::fs::copy(f.frames.join("001.jpg"), dir.path().join("c.jpg")).unwrap();
    let out = edge_tl(&[
        "run",
        "--head",
        f.head.to_str().unwrap(),
        "--source",
        &path_arg("dir:", dir.path()),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = json_lines(&stdout(&out));
    let names: Vec<&str> = lines.iter().map(|l| l["name"].as_str().unwrap()).collect();
    assert!(
        names[0].ends_with("a.jpg") && names[1].ends_with("c.jpg"),
        "{names:?}"
    );
    let err = stderr(&out);
    for bad in ["truncated.jpg", "text_not_image.jpg", "zero_bytes.jpg"] {
        assert!(err.contains(&format!("b_{bad}")), "{bad} named: {err}");
    }
    assert!(err.contains("3 undecodable"), "{err}");
}

#[test]
fn sources_that_cannot_work_say_why() {
    let f = fixture();
    let cases: [(&[&str], i32, &str); 4] = [
        (
            &["run", "--source", "v4l:/dev/video63"],
            1,
            "no camera at /dev/video63: ",
        ),
        (
            &["run", "--source", "rtmp://x"],
            1,
            "--source: unknown source \"rtmp://x\": use v4l:/dev/videoN",
        ),
        (
            &["run", "--source", "dir:/nonexistent/frames"],
            1,
            "/nonexistent/frames: No such file",
        ),
        (
            &["run", "--source", "http://127.0.0.1:9/stream"],
            1,
            "http://127.0.0.1:9/stream: cannot connect",
        ),
    ];
    for (args, code, expected) in cases {
        let out = edge_tl(args);
        assert_eq!(out.status.code(), Some(code), "{args:?}");
        assert!(
            stderr(&out).contains(expected),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    let empty = tempfile::tempdir().unwrap();
    std::fs::write(empty.path().join("x.mjpg"), b"no frames here").unwrap();
    let out = edge_tl(&[
        "run",
        "--head",
        f.head.to_str().unwrap(),
        "--source",
        &path_arg("file:", &empty.path().join("x.mjpg")),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("holds no JPEG frames"),
        "{}",
        stderr(&out)
    );
    let out = edge_tl(&["devices"]);
    assert!(out.status.success());
    assert!(
        stdout(&out).contains("no cameras on this machine"),
        "{}",
        stdout(&out)
    );
}

/// Serves the fixture's frames as `multipart/x-mixed-replace`: the first connection gets
/// frames 0..6 and is then cut; the next gets 6..12 and is held open.
fn flaky_mjpeg_server(jpegs: Vec<Vec<u8>>, done: Arc<AtomicBool>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/stream.mjpg", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for (connection, range) in [(0, 0..6), (1, 6..FRAMES)] {
            let (mut socket, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut byte = [0u8; 1];
            while !request.ends_with(b"\r\n\r\n") && socket.read(&mut byte).unwrap_or(0) == 1 {
                request.push(byte[0]);
            }
            let head = "HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; \
                        boundary=edgetlframe\r\nConnection: close\r\n\r\n";
            socket.write_all(head.as_bytes()).unwrap();
            for i in range {
                let mut part = Vec::new();
                write_part(&mut part, &jpegs[i]).unwrap();
                if socket.write_all(&part).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(150));
            }
            if connection == 1 {
                while !done.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    });
    url
}

#[test]
fn an_http_stream_that_drops_is_reconnected_and_sigterm_stops_cleanly() {
    let f = fixture();
    let done = Arc::new(AtomicBool::new(false));
    let url = flaky_mjpeg_server(f.jpegs.clone(), done.clone());
    let run = Background::start(&["run", "--head", f.head.to_str().unwrap(), "--source", &url]);
    let lines = run.wait_for("the last frame", |l| l["frame"] == FRAMES as u64 - 1);
    let (status, err) = run.terminate();
    done.store(true, Ordering::SeqCst);
    assert!(status.success(), "{status:?}: {err}");
    assert!(err.contains("disconnected"), "{err}");
    assert!(err.contains(" 1 reconnects"), "{err}");
    assert!(
        lines.iter().any(|l| l["frame"].as_u64().unwrap() < 6),
        "frames before the cut"
    );
    assert_same_as_predict(&lines, f);
}

#[test]
fn a_new_head_is_swapped_in_and_a_broken_one_refused() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let head = dir.path().join("live.head");
    std::fs::copy(&f.head, &head).unwrap();
    let args = live_replay(&head, &path_arg("dir:", &f.frames), "5", &[]);
    let run = Background::start(&strs(&args));
    run.wait_for("a first result", |l| {
        l["label"] == "cat" || l["label"] == "dog"
    });

    // Retrain under other names into the same file, as a user would.
    let data = dir.path().join("renamed");
    for (from, to) in [("cat", "kitty"), ("dog", "puppy")] {
        copy_pictures(&format!("catsdogs/train/{from}"), &data.join(to), 10);
    }
    train_without_cv(&data, &head);
    run.wait_for("the new head's labels", |l| {
        l["label"] == "kitty" || l["label"] == "puppy"
    });

    // A broken head file (renamed into place, so it is whole but wrong) is refused.
    let tmp = dir.path().join("broken.tmp");
    std::fs::write(&tmp, b"{\"format\": \"edge-tl-head\", \"version\": 1}").unwrap();
    std::fs::rename(&tmp, &head).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !run.stderr().contains("keeping the head in use") {
        assert!(
            Instant::now() < deadline,
            "no error for the broken head: {}",
            run.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let after = run.wait_for("results after the broken head", |_| true);
    let more = run.wait_for("more results", |_| true);
    for l in after.iter().chain(&more) {
        assert!(
            l["label"] == "kitty" || l["label"] == "puppy",
            "old head kept: {l}"
        );
    }
    let (status, err) = run.terminate();
    assert!(status.success(), "{err}");
    assert!(
        err.contains(head.to_str().unwrap()),
        "the broken file is named: {err}"
    );
    assert!(err.contains("1 head reloads"), "{err}");
}

#[test]
fn five_thousand_frames_through_the_loop_keep_memory_flat() {
    let f = fixture();
    let args = live_replay(&f.head, &path_arg("file:", &f.stream), "250", &[]);
    let run = Background::start(&strs(&args));
    run.wait_for("frame 300", |l| l["frame"].as_u64().unwrap() >= 300);
    let start = run.rss_kib();
    let lines = run.wait_for("frame 5000", |l| l["frame"].as_u64().unwrap() >= 5000);
    let end = run.rss_kib();
    let (status, err) = run.terminate();
    assert!(status.success(), "{err}");
    eprintln!(
        "soak: RSS {start} KiB after 300 frames, {end} KiB after 5000 ({} classified since)",
        lines.len()
    );
    // One leaked 640x480 frame per iteration would be ~4 GiB here; allow allocator noise.
    assert!(
        end <= start + 8 * 1024,
        "RSS grew from {start} KiB to {end} KiB"
    );
    assert_same_as_predict(&lines, f);
}

/// `edge-tl ARGS` with extra environment variables.
fn edge_tl_env(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_edge-tl"));
    cmd.args(args)
        .env("EDGE_TL_MODELS", shared().join("models"))
        .env_remove("EDGE_TL_SOURCE")
        .env_remove("EDGE_TL_CONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn a_settings_file_fills_in_what_flags_and_environment_do_not_say() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "source = \"dir:{}\"\nhead = \"{}\"\n\n[results]\ntop = 1\nsmooth = 2\nthreshold = 0.9\n",
            f.frames.display(),
            f.head.display()
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    // From the file alone: its source, head, top, smoothing and threshold.
    let out = edge_tl_env(&["run", "--config", cfg], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = json_lines(&stdout(&out));
    assert_eq!(lines.len(), FRAMES);
    assert!(lines
        .iter()
        .all(|l| l["top"].as_array().unwrap().len() == 1));
    assert!(
        lines[1..].iter().all(|l| l["label"] == "unknown"),
        "{lines:?}"
    );
    // Flags win over the file, the environment too.
    let out = edge_tl_env(
        &["run", "--config", cfg, "--top", "2", "--smooth", "1"],
        &[],
    );
    let lines = json_lines(&stdout(&out));
    assert!(lines
        .iter()
        .all(|l| l["top"].as_array().unwrap().len() == 2));
    assert_same_as_predict(&lines[..1], f);
    let one = tempfile::tempdir().unwrap();
    std::fs::copy(f.frames.join("003.jpg"), one.path().join("only.jpg")).unwrap();
    let env_source = path_arg("dir:", one.path());
    let out = edge_tl_env(
        &["run"],
        &[("EDGE_TL_CONFIG", cfg), ("EDGE_TL_SOURCE", &env_source)],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        json_lines(&stdout(&out)).len(),
        1,
        "the environment's source"
    );

    // `config check`: the shipped default file passes, a typo is named with its key.
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/config.toml");
    let out = edge_tl(&["config", "check", shipped.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(": ok"));
    std::fs::write(&config, "[results]\nthreshold = 7\n").unwrap();
    for args in [vec!["config", "check", cfg], vec!["run", "--config", cfg]] {
        let out = edge_tl(&args);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains(&format!(
                "{cfg}: key `results.threshold`: must be between 0 and 1 (got 7)"
            )),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn under_systemd_the_loop_reports_ready_then_feeds_the_watchdog() {
    use std::os::unix::net::UnixDatagram;
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    // Read while edge-tl runs, as systemd does: a full socket queue would block its sends.
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut messages = Vec::new();
            let mut buf = [0u8; 512];
            while !done.load(Ordering::SeqCst) {
                if let Ok(n) = socket.recv(&mut buf) {
                    messages.push(String::from_utf8_lossy(&buf[..n]).to_string());
                }
            }
            messages
        })
    };
    // systemd sets WATCHDOG_PID to the service's pid: `exec` keeps the shell's.
    let out = Command::new("sh")
        .args(["-c", "WATCHDOG_PID=$$ exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_edge-tl"))
        .args([
            "run",
            "--head",
            f.head.to_str().unwrap(),
            "--source",
            &path_arg("dir:", &f.frames),
        ])
        .env("EDGE_TL_MODELS", shared().join("models"))
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "100000")
        .output()
        .unwrap();
    done.store(true, Ordering::SeqCst);
    let messages = reader.join().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        json_lines(&stdout(&out)).len(),
        FRAMES,
        "results still go to stdout"
    );
    assert!(messages[0].contains("READY=1"), "{messages:?}");
    let pings = messages.iter().filter(|m| m.contains("WATCHDOG=1")).count();
    // 12 frames take 0.3 s or more; the pings come every 50 ms.
    assert!(pings >= 2, "{messages:?}");
}
