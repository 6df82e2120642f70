//! `edge-tl capture` end to end: frames from a replayed camera saved whole under their label,
//! bad labels refused, and a SIGTERM that leaves no half-written file behind. Kept apart from
//! the `run` loop's tests (`live.rs`); both use the fixture in `harness.rs`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::{edge_tl, stderr, train_cli};
use crate::harness::{fixture, path_arg, Background, FRAMES};

fn jpgs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn capture_saves_whole_named_frames_and_refuses_bad_labels() {
    let f = fixture();
    let data = tempfile::tempdir().unwrap();
    let d = data.path().to_str().unwrap();
    let frames = path_arg("dir:", &f.frames);
    let out = edge_tl(&[
        "capture",
        "--label",
        "cat",
        "--count",
        "4",
        "--interval",
        "0ms",
        "--data",
        d,
        "--source",
        &frames,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let saved = jpgs(&data.path().join("cat"));
    assert_eq!(saved.len(), 4);
    for (i, p) in saved.iter().enumerate() {
        let name = p.file_name().unwrap().to_str().unwrap();
        let (stamp, n) = name.strip_suffix(".jpg").unwrap().rsplit_once('-').unwrap();
        assert_eq!(n.parse::<usize>().unwrap(), i + 1, "{name}");
        assert!(
            stamp.len() == 20 && stamp.ends_with('Z') && stamp.as_bytes()[8] == b'T',
            "{name}"
        );
        assert_eq!(
            std::fs::read(p).unwrap(),
            f.jpegs[i],
            "camera JPEGs are kept as they came"
        );
    }

    // A recording shorter than --count: everything is saved and the command ends well.
    let out = edge_tl(&[
        "capture",
        "--label",
        "dog",
        "--count",
        "50",
        "--interval",
        "0ms",
        "--data",
        d,
        "--source",
        &path_arg("file:", &f.stream),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the source ended"),
        "{}",
        stderr(&out)
    );
    assert_eq!(jpgs(&data.path().join("dog")).len(), FRAMES);

    for (label, problem) in [
        ("../x", "a label must not contain path separators"),
        ("", "a label must not be empty"),
        (".hidden", "a label must not start with a dot"),
    ] {
        let out = edge_tl(&[
            "capture", "--label", label, "--data", d, "--source", &frames,
        ]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains(&format!("invalid label {label:?}: {problem}")),
            "{}",
            stderr(&out)
        );
    }
    let labels: Vec<_> = std::fs::read_dir(data.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(labels.len(), 2, "{labels:?}");

    // The captured dataset trains.
    let head = data.path().join("captured.head");
    let out = train_cli(data.path(), &head, &["--folds", "0", "--no-cache"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn sigterm_during_capture_keeps_every_saved_frame_whole() {
    let f = fixture();
    let data = tempfile::tempdir().unwrap();
    let run = Background::start(&[
        "capture",
        "--label",
        "cat",
        "--count",
        "1000",
        "--interval",
        "100ms",
        "--data",
        data.path().to_str().unwrap(),
        "--source",
        &path_arg("dir:", &f.frames),
        "--loop",
    ]);
    let dir = data.path().join("cat");
    let deadline = Instant::now() + Duration::from_secs(60);
    while jpgs(&dir)
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .count()
        < 3
    {
        assert!(Instant::now() < deadline, "{}", run.stderr());
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, err) = run.terminate();
    assert!(status.success(), "{status:?}: {err}");
    assert!(err.contains("stopped"), "{err}");
    let files = jpgs(&dir);
    assert!(files.len() >= 3);
    for p in &files {
        let name = p.file_name().unwrap().to_string_lossy();
        assert!(
            name.ends_with(".jpg") && !name.starts_with('.'),
            "left behind: {name}"
        );
        edge_tl::preprocess::decode_file(p).unwrap();
    }
    assert!(
        err.contains(&format!("saved {} pictures", files.len())),
        "{err}"
    );
}
