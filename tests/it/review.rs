//! The review queue and the dataset view through the running service: frames `run` kept for
//! review are filed under a label (exactly those files move), discarded, and the samples of a
//! label are moved and deleted; bad requests get an error naming what is wrong; the queue
//! stays within its bounds and a SIGKILL while it writes leaves only whole entries.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::service::{get, get_json, post_json, replay_service_at, wait_until};

/// The review queue's folder of a dataset folder.
fn review_dir(data: &Path) -> std::path::PathBuf {
    data.join(".review")
}

/// Visible file names of a folder (none when it does not exist).
fn names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|r| {
            r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

fn ids(review: &Value) -> Vec<String> {
    review["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect()
}

/// Bytes of every file in `dir`, temporary files included.
fn disk_use(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// The fixture's frames (cat, dog, cat, ...) replayed at `fps` into the page's service, with
/// a settings file of `[review]` keys.
fn review_service(
    data: &Path,
    fps: &str,
    review: &str,
    env: &[(&str, &str)],
) -> (crate::harness::Background, u16) {
    let config = data.with_extension("toml");
    std::fs::write(&config, format!("[review]\n{review}\n")).unwrap();
    replay_service_at(
        fps,
        &[
            "--data",
            data.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ],
        env,
    )
}

#[test]
fn frames_kept_for_review_are_filed_or_discarded_and_samples_moved_or_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("dataset");
    // Every frame of the replay changes label (cat, dog, ...): all 12 are worth a look.
    let (run, port) = review_service(&data, "20", "keep = 50", &[]);
    let mut review = Value::Null;
    wait_until(&run, "12 frames in the review queue", || {
        review = get_json(port, "/api/review").1;
        review["entries"].as_array().is_some_and(|e| e.len() >= 12)
    });
    // The replay loops, but the same frames again are near copies: not queued twice.
    std::thread::sleep(Duration::from_secs(2));
    let (status, review) = get_json(port, "/api/review");
    assert_eq!(status, 200, "{review}");
    let all = ids(&review);
    assert_eq!(all.len(), 12, "{review}");
    let e = &review["entries"][0];
    assert!(
        ["cat", "dog"].contains(&e["label"].as_str().unwrap()),
        "{e}"
    );
    let reasons: BTreeSet<&str> = review["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert!(reasons.contains("changed"), "{review}");
    assert!(
        reasons.is_subset(&BTreeSet::from(["changed", "unsure", "close"])),
        "{review}"
    );
    let stored = review_dir(&data);
    assert_eq!(names(&stored).len(), 24, "a picture and a record each");
    assert_eq!(review["used_bytes"].as_u64().unwrap(), disk_use(&stored));
    let (status, _, jpeg) = get(port, &format!("/api/review/picture?id={}", all[0]), "");
    assert_eq!(status, 200);
    assert_eq!(
        jpeg,
        std::fs::read(stored.join(format!("{}.jpg", all[0]))).unwrap()
    );

    // Three filed under `cat`: exactly those three pictures move, by name.
    let chosen = &all[..3];
    let body = serde_json::json!({ "ids": chosen, "label": "cat" }).to_string();
    let (status, r) = post_json(port, "/api/review/label", &body);
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["samples"], 3, "{r}");
    let want: BTreeSet<String> = chosen.iter().map(|id| format!("{id}.jpg")).collect();
    assert_eq!(names(&data.join("cat")), want);
    for id in chosen {
        assert!(!stored.join(format!("{id}.jpg")).exists());
        assert!(!stored.join(format!("{id}.json")).exists());
        edge_tl::preprocess::decode_file(&data.join("cat").join(format!("{id}.jpg"))).unwrap();
    }
    // Two discarded; one of the filed ones again is reported missing, not an error.
    let body = serde_json::json!({ "ids": [&all[3], &all[4], &all[0]] }).to_string();
    let (status, r) = post_json(port, "/api/review/discard", &body);
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["discarded"], serde_json::json!([&all[3], &all[4]]));
    assert_eq!(r["missing"], serde_json::json!([&all[0]]));
    let left = ids(&get_json(port, "/api/review").1);
    assert_eq!(left, all[5..], "the rest, in the same order");
    assert_eq!(names(&stored).len(), 14);

    // Bad requests name what is wrong.
    let (status, r) = post_json(
        port,
        "/api/review/label",
        r#"{"ids": ["x"], "label": "../up"}"#,
    );
    assert_eq!(status, 400);
    assert!(
        r["error"].as_str().unwrap().contains("path separators"),
        "{r}"
    );
    let (status, r) = post_json(port, "/api/review/label", r#"{"label": "cat"}"#);
    assert_eq!(status, 400);
    assert!(
        r["error"].as_str().unwrap().contains(r#"expected {"ids""#),
        "{r}"
    );
    let (status, r) = post_json(port, "/api/review/discard", r#"{"ids": []}"#);
    assert_eq!(
        (status, r["error"].as_str().unwrap()),
        (400, "name 1 to 1000 pictures per request (got 0)")
    );
    let (status, r) = get_json(port, "/api/review/picture?id=../../secret");
    assert_eq!(status, 404, "{r}");
    assert!(r["error"].as_str().unwrap().contains("no entry"), "{r}");

    // The dataset view: list, show, move one to `dog`, delete one.
    let (status, r) = get_json(port, "/api/samples?label=cat");
    assert_eq!(status, 200, "{r}");
    let files: Vec<String> = r["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(files.iter().cloned().collect::<BTreeSet<_>>(), want);
    let (status, _, picture) = get(
        port,
        &format!("/api/samples/picture?label=cat&name={}", files[0]),
        "",
    );
    assert_eq!(status, 200);
    assert_eq!(
        picture,
        std::fs::read(data.join("cat").join(&files[0])).unwrap()
    );
    let (status, r) = get_json(
        port,
        "/api/samples/picture?label=cat&name=..%2F..%2Fdataset.toml",
    );
    assert_eq!(status, 400, "{r}");
    assert!(
        r["error"].as_str().unwrap().contains("is not a file name"),
        "{r}"
    );
    let (status, r) = get_json(port, "/api/samples/picture?label=cat&name=nope.jpg");
    assert_eq!(status, 404, "{r}");
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("nope.jpg: no such picture"),
        "{r}"
    );

    let body = serde_json::json!({ "label": "cat", "names": [&files[0]], "to": "dog" }).to_string();
    let (status, r) = post_json(port, "/api/samples/move", &body);
    assert_eq!(status, 200, "{r}");
    assert_eq!(names(&data.join("dog")), BTreeSet::from([files[0].clone()]));
    // One bad name: nothing is deleted.
    let body = serde_json::json!({ "label": "cat", "names": [&files[1], "gone.jpg"] }).to_string();
    let (status, r) = post_json(port, "/api/samples/delete", &body);
    assert_eq!(status, 404, "{r}");
    assert_eq!(names(&data.join("cat")).len(), 2);
    let body = serde_json::json!({ "label": "cat", "names": [&files[1]] }).to_string();
    let (status, r) = post_json(port, "/api/samples/delete", &body);
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        (r["deleted"].as_u64(), r["samples"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(names(&data.join("cat")), BTreeSet::from([files[2].clone()]));
    let (status, labels) = get_json(port, "/api/labels");
    assert_eq!(status, 200);
    assert_eq!(
        labels["labels"],
        serde_json::json!([{"label": "cat", "samples": 1}, {"label": "dog", "samples": 1}]),
        "the queue's hidden folder is not a label"
    );

    // The region of the next Train: checked, kept, said back.
    let (status, r) = post_json(
        port,
        "/api/region",
        r#"{"region": {"x": 0.5, "y": 0, "w": 0.7, "h": 1}}"#,
    );
    assert_eq!(status, 400, "{r}");
    assert_eq!(
        r["error"],
        "region 0.5,0,0.7,1: the region reaches past the frame (x + w and y + h must be at most 1)"
    );
    let (status, r) = post_json(port, "/api/region", r#"{"region": "left half"}"#);
    assert_eq!(status, 400, "{r}");
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains(r#"or {"region": null}"#),
        "{r}"
    );
    let half = serde_json::json!({"x": 0.0, "y": 0.0, "w": 0.5, "h": 1.0});
    let (status, _) = post_json(
        port,
        "/api/region",
        &serde_json::json!({ "region": half }).to_string(),
    );
    assert_eq!(status, 200);
    let (_, r) = get_json(port, "/api/region");
    assert_eq!(
        r,
        serde_json::json!({ "region": half, "head_region": null }),
        "the fixture head has none"
    );
    let (status, err) = run.terminate();
    assert!(status.success(), "{status:?}: {err}");
}

#[test]
fn the_queue_stays_within_its_bounds_and_a_sigkill_leaves_only_whole_entries() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("dataset");
    let stored = review_dir(&data);
    // Four entries at most: with 12 frames that all change label, every frame makes room for
    // itself, so the queue writes and removes all the time. (The 12 frames fit in the smallest
    // byte bound, 1 MiB, so here the count binds; the byte bound is unit-tested with exact
    // sizes in `review::tests`.) Each write pauses 30 ms after half the picture and between
    // picture and record, so most kills land in one.
    let bound = 1 << 20;
    let mut cut = 0;
    let mut orphans: Vec<String> = Vec::new();
    for round in 0..4u64 {
        let (mut run, port) = review_service(
            &data,
            "50",
            "keep = 4\nmegabytes = 1\nduplicate = 0.999",
            &[("EDGE_TL_TEST_REVIEW_PAUSE_MS", "30")],
        );
        // Reopening removed the pictures the kill left without a record.
        for name in &orphans {
            assert!(
                !stored.join(name).exists(),
                "round {round}: {name} left behind"
            );
        }
        let mut seen = BTreeSet::new();
        wait_until(&run, "the queue to turn over", || {
            let (_, r) = get_json(port, "/api/review");
            let now = ids(&r);
            assert!(now.len() <= 4, "{r}");
            assert!(disk_use(&stored) <= bound, "{} bytes", disk_use(&stored));
            seen.extend(now);
            seen.len() >= 8
        });
        std::thread::sleep(Duration::from_millis(17 * round + 5));
        let pid = run.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .unwrap()
            .success());
        run.child.wait().unwrap();
        assert!(
            disk_use(&stored) <= bound,
            "{} bytes after a kill",
            disk_use(&stored)
        );
        let on_disk = names(&stored);
        orphans = on_disk
            .iter()
            .filter(|n| {
                n.strip_suffix(".jpg")
                    .is_some_and(|id| !on_disk.contains(&format!("{id}.json")))
            })
            .cloned()
            .collect();
        let temporary = std::fs::read_dir(&stored)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".part")
            })
            .count();
        if !orphans.is_empty() || temporary > 0 {
            cut += 1;
        }
        for name in on_disk {
            let path = stored.join(&name);
            if name.ends_with(".jpg") {
                edge_tl::preprocess::decode_file(&path)
                    .unwrap_or_else(|e| panic!("round {round}: {}: {e}", path.display()));
            } else {
                let record: Value = serde_json::from_slice(&std::fs::read(&path).unwrap())
                    .unwrap_or_else(|e| panic!("round {round}: {}: {e}", path.display()));
                assert_eq!(record["version"], 1);
            }
        }
    }
    assert!(
        cut > 0,
        "no kill landed in a write: the test did not test it"
    );
}
