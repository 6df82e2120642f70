//! A head taught on a region of the frame: Cats vs Dogs photos pasted into a busy 640x480
//! frame (a flower photo) at one place, with an animal of the other label elsewhere in the
//! frame. Trained with `--region` on such frames, the head classifies the test frames as well
//! as a head of the bare photos classifies the bare test photos (within 2 points); `predict`
//! and `run` give the same answers on them, as they cut the same pixels.

use std::path::{Path, PathBuf};

use image::{imageops, RgbImage};
use serde_json::Value;

use crate::common::{cache_dir, data, edge_tl, stderr, stdout, train_cli};
use crate::harness::json_lines;

/// Where the photo goes: x, y, w, h as shares of the frame (`--region`).
const REGION: &str = "0.5,0.25,0.4,0.5";
/// The frame, and the region in its pixels.
const FRAME: (u32, u32) = (640, 480);
const PASTE: (u32, u32, u32, u32) = (320, 120, 256, 240);
/// Where the other animal goes (outside the region).
const OTHER: (u32, u32, u32, u32) = (24, 200, 224, 200);

fn photos(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

fn load(p: &Path, w: u32, h: u32) -> RgbImage {
    let img = image::open(p).unwrap().to_rgb8();
    imageops::resize(&img, w, h, imageops::FilterType::Triangle)
}

/// `<out>/<label>/<name>.jpg` for every photo of `split`: a flower background, the photo in
/// the region, an animal of the other label beside it.
fn synthetic(split: &str, out: &Path) {
    let flowers = photos(&data("newdomain/test/roses"));
    for (label, other) in [("cat", "dog"), ("dog", "cat")] {
        let dir = out.join(label);
        std::fs::create_dir_all(&dir).unwrap();
        let others = photos(&data(&format!("catsdogs/{split}/{other}")));
        for (i, photo) in photos(&data(&format!("catsdogs/{split}/{label}")))
            .iter()
            .enumerate()
        {
            let mut frame = load(&flowers[i % flowers.len()], FRAME.0, FRAME.1);
            let (x, y, w, h) = PASTE;
            imageops::replace(&mut frame, &load(photo, w, h), x.into(), y.into());
            let (x, y, w, h) = OTHER;
            let o = &others[(i * 7 + 3) % others.len()];
            imageops::replace(&mut frame, &load(o, w, h), x.into(), y.into());
            let name = dir.join(photo.file_name().unwrap()).with_extension("jpg");
            frame.save(name).unwrap();
        }
    }
}

fn train(data: &Path, head: &Path, extra: &[&str]) {
    let cache = cache_dir();
    let mut args = vec!["--folds", "0", "--cache-dir", cache.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = train_cli(data, head, &args);
    assert!(out.status.success(), "{}", stderr(&out));
}

fn accuracy(head: &Path, test: &Path) -> f64 {
    let cache = cache_dir();
    let out = edge_tl(&[
        "eval",
        head.to_str().unwrap(),
        test.to_str().unwrap(),
        "--json",
        "--cache-dir",
        cache.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    v["accuracy"].as_f64().unwrap()
}

#[test]
fn a_head_taught_on_a_region_classifies_the_pasted_photo_as_well_as_the_bare_photo() {
    let dir = tempfile::tempdir().unwrap();
    let (train_frames, test_frames) = (dir.path().join("train"), dir.path().join("test"));
    synthetic("train", &train_frames);
    synthetic("test", &test_frames);

    let bare = dir.path().join("bare.head");
    train(&data("catsdogs/train"), &bare, &[]);
    let bare_accuracy = accuracy(&bare, &data("catsdogs/test"));

    let region = dir.path().join("region.head");
    train(&train_frames, &region, &["--region", REGION]);
    let file: Value = serde_json::from_slice(&std::fs::read(&region).unwrap()).unwrap();
    assert_eq!(
        file["version"], 2,
        "a head with a region is a version-2 file"
    );
    assert_eq!(
        file["head"]["region"],
        serde_json::json!({"x": 0.5, "y": 0.25, "w": 0.4, "h": 0.5})
    );
    let region_accuracy = accuracy(&region, &test_frames);

    // The whole frame, for comparison: the other animal and the flowers are in every picture.
    let whole = dir.path().join("whole.head");
    train(&train_frames, &whole, &[]);
    let whole_accuracy = accuracy(&whole, &test_frames);
    eprintln!(
        "catsdogs test: bare photos {bare_accuracy:.4}, region of the frames {region_accuracy:.4}, \
         whole frames {whole_accuracy:.4}"
    );
    assert!(
        (region_accuracy - bare_accuracy).abs() <= 0.02,
        "region {region_accuracy} against bare {bare_accuracy}"
    );
    assert!(
        region_accuracy > whole_accuracy + 0.05,
        "the region should matter: region {region_accuracy}, whole frame {whole_accuracy}"
    );

    // `predict` and `run` cut the same pixels: the same labels and probabilities.
    let some: Vec<PathBuf> = photos(&test_frames.join("cat"))
        .into_iter()
        .take(4)
        .chain(photos(&test_frames.join("dog")).into_iter().take(4))
        .collect();
    let replay = dir.path().join("replay");
    std::fs::create_dir_all(&replay).unwrap();
    for (i, p) in some.iter().enumerate() {
        std::fs::copy(p, replay.join(format!("{i:02}.jpg"))).unwrap();
    }
    let mut args = vec![
        "predict".to_string(),
        region.display().to_string(),
        "--json".into(),
    ];
    args.extend((0..some.len()).map(|i| replay.join(format!("{i:02}.jpg")).display().to_string()));
    let out = edge_tl(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", stderr(&out));
    let predicted = json_lines(&stdout(&out));
    let source = format!("dir:{}", replay.display());
    let out = edge_tl(&[
        "run",
        "--head",
        region.to_str().unwrap(),
        "--source",
        &source,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let live = json_lines(&stdout(&out));
    assert_eq!(live.len(), some.len());
    for (p, l) in predicted.iter().zip(&live) {
        assert_eq!(p["label"], l["label"], "{p} / {l}");
        assert_eq!(
            p["prob"].as_f64().map(|v| v as f32),
            l["prob"].as_f64().map(|v| v as f32)
        );
    }
    let right = live
        .iter()
        .enumerate()
        .filter(|(i, l)| l["label"] == if *i < 4 { "cat" } else { "dog" })
        .count();
    assert!(right >= 7, "{live:?}");
}
