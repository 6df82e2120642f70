//! The user's commands end to end through the binary on real photos: train, eval, predict,
//! classify, and the errors a user meets first.

use edge_tl::head::file as head_file;
use edge_tl::pipeline::Pipeline;

use crate::common::{
    cache_dir, data, default_model, edge_tl, pictures, shared, small_catsdogs, stderr, stdout,
    train_cli,
};

#[test]
fn train_eval_predict_on_catsdogs() {
    let dir = tempfile::tempdir().unwrap();
    let head = dir.path().join("catsdogs.head");
    let cache = cache_dir();
    let (head_s, cache_s) = (head.to_str().unwrap(), cache.to_str().unwrap());
    let out = train_cli(&data("catsdogs/train"), &head, &["--cache-dir", cache_s]);
    assert!(out.status.success(), "{}", stderr(&out));
    let so = stdout(&out);
    assert!(so.contains("5-fold cross-validated accuracy"), "{so}");
    assert!(so.contains(&format!("wrote {head_s}")), "{so}");
    // The default alpha is chosen by cross-validation, and the head says which and from what.
    assert!(so.contains("chosen by cross-validation (100 "), "{so}");
    let saved = edge_tl::head::file::load(&head).unwrap();
    assert_eq!(
        saved.training.alpha_search.as_ref().map(Vec::len),
        Some(edge_tl::head::train::ALPHA_GRID.len())
    );
    let fixed = dir.path().join("fixed.head");
    let out = train_cli(
        &data("catsdogs/train"),
        &fixed,
        &["--cache-dir", cache_s, "--alpha", "3"],
    );
    assert!(!stdout(&out).contains("chosen by"), "{}", stdout(&out));
    let fixed = edge_tl::head::file::load(&fixed).unwrap();
    assert_eq!(fixed.training.alpha_search, None);
    assert!(matches!(
        fixed.classifier,
        edge_tl::head::Classifier::Logistic { ref model, .. } if model.alpha == 3.0
    ));

    let test_dir = data("catsdogs/test");
    let out = edge_tl(&[
        "eval",
        head_s,
        test_dir.to_str().unwrap(),
        "--json",
        "--cache-dir",
        cache_s,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in ["accuracy", "top5_accuracy", "n", "per_class", "confusion"] {
        assert!(
            report.get(key).is_some(),
            "eval --json lacks {key}: {report}"
        );
    }
    assert_eq!(report["n"], 400);
    assert!(report["accuracy"].as_f64().unwrap() >= 0.96, "{report}");

    // predict through the binary == the library pipeline on the same files
    let mut files = pictures("catsdogs/test/cat", 5);
    files.extend(pictures("catsdogs/test/dog", 5));
    let mut args = vec![
        "predict".to_string(),
        head_s.to_string(),
        "--json".into(),
        "--top".into(),
        "2".into(),
    ];
    args.extend(files.iter().map(|p| p.to_str().unwrap().to_string()));
    let out = edge_tl(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), files.len());
    let loaded = head_file::load(&head).unwrap();
    let pipeline = Pipeline::with_head(default_model(), loaded, &head).unwrap();
    for (line, file) in lines.iter().zip(&files) {
        let c = pipeline.classify_file(file).unwrap();
        let top = pipeline.top(&c, 2);
        assert_eq!(line["label"], top[0].label.as_str(), "{}", file.display());
        let p = line["prob"].as_f64().unwrap();
        assert!((p - f64::from(top[0].prob)).abs() < 1e-6);
        assert_eq!(line["top"].as_array().unwrap().len(), 2);
    }
}

/// A dog photo filed under `cat`: cross-validation takes it for a dog, and `train` says so
/// by name (text and JSON), with each label's precision and recall.
#[test]
fn train_names_the_pictures_cross_validation_got_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    small_catsdogs(&root, 20);
    let misfiled = &pictures("catsdogs/test/dog", 1)[0];
    let name = misfiled.file_name().unwrap().to_str().unwrap();
    std::fs::copy(misfiled, root.join("cat").join(name)).unwrap();
    let head = dir.path().join("h.head");
    let cache = cache_dir();
    let out = train_cli(&root, &head, &["--cache-dir", cache.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let so = stdout(&out);
    let line = format!(
        "{} (cat) taken for dog",
        root.join("cat").join(name).display()
    );
    assert!(so.lines().any(|l| l.trim() == line), "{so}");
    assert!(so.contains("pictures taken for another label"), "{so}");
    for label in ["cat", "dog"] {
        assert!(
            so.lines()
                .any(|l| l.trim_start().starts_with(label) && l.contains("recall")),
            "{so}"
        );
    }
    let out = train_cli(
        &root,
        &head,
        &["--cache-dir", cache.to_str().unwrap(), "--json"],
    );
    let summary: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let mistakes = summary["cv_mistakes"].as_array().unwrap();
    assert!(
        mistakes
            .iter()
            .any(|m| m["path"].as_str().unwrap().ends_with(name)
                && m["label"] == "cat"
                && m["taken_for"] == "dog"),
        "{summary}"
    );
    // The confusion counts every picture once, and recall agrees with it.
    let confusion = &summary["cv_confusion"];
    let total: u64 = confusion
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(total, 41);
    assert_eq!(summary["imbalance"], serde_json::Value::Null);
    // 20 cats against 6 dogs: named, with what to do.
    let lopsided = dir.path().join("lopsided");
    crate::common::copy_pictures("catsdogs/train/cat", &lopsided.join("cat"), 20);
    crate::common::copy_pictures("catsdogs/train/dog", &lopsided.join("dog"), 6);
    let out = train_cli(&lopsided, &head, &["--cache-dir", cache.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).lines().any(|l| l
            == "warning: cat has 20 pictures and dog only 6 (3.3x): the head will lean \
                towards cat; capture more of dog (at most 3x is advised)"),
        "{}",
        stdout(&out)
    );
    let cat_recall = summary["cv_per_class"][0]["recall"].as_f64().unwrap();
    assert!((cat_recall - confusion[0][0].as_f64().unwrap() / 21.0).abs() < 1e-12);
}

#[test]
fn eval_report_is_one_file_with_the_numbers_the_wrong_pictures_and_the_curve() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    small_catsdogs(&root, 20);
    let head = dir.path().join("h.head");
    let cache = cache_dir();
    let cache = cache.to_str().unwrap();
    let out = train_cli(&root, &head, &["--cache-dir", cache, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let summary: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let curve = summary["learning_curve"].as_array().unwrap();
    let sizes: Vec<u64> = curve
        .iter()
        .map(|p| p["per_label"].as_u64().unwrap())
        .collect();
    assert_eq!(sizes, [5, 10, 20], "{summary}");
    assert_eq!(curve[2]["accuracy"], summary["cv_accuracy"]);

    let report = dir.path().join("report.html");
    let test = data("catsdogs/test");
    let out = edge_tl(&[
        "eval",
        head.to_str().unwrap(),
        test.to_str().unwrap(),
        "--json",
        "--report",
        report.to_str().unwrap(),
        "--cache-dir",
        cache,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let measured: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let confusion = measured["confusion"].as_array().unwrap();
    let wrong = confusion[0][1].as_u64().unwrap() + confusion[1][0].as_u64().unwrap();
    assert!(
        wrong > 0,
        "a head of 40 pictures gets some of 400 wrong: {measured}"
    );
    let html = std::fs::read_to_string(&report).unwrap();
    let accuracy = format!(
        "<b>Accuracy {:.1}%</b> on 400 pictures",
        100.0 * measured["accuracy"].as_f64().unwrap()
    );
    assert!(html.contains(&accuracy), "{accuracy}");
    assert!(html.contains(&format!("Taken for another label ({wrong})")));
    assert_eq!(html.matches("<figure>").count() as u64, wrong.min(100));
    assert_eq!(
        html.matches("<img src=\"data:image/jpeg;base64,").count() as u64,
        wrong.min(100),
        "a thumbnail in the file for each"
    );
    for label in ["cat", "dog"] {
        assert!(html.contains(&format!("<tr><td>{label}</td>")));
    }
    // The confusion picture's cells and the curve's three points; nothing loaded from outside.
    assert_eq!(html.matches("<rect ").count(), 4);
    assert_eq!(html.matches("<circle ").count(), 3);
    assert!(html.contains("Enough pictures?"));
    assert!(!html.contains("src=\"http") && !html.contains("<script") && !html.contains("<link"));
}

#[test]
fn predict_reports_bad_files_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("d");
    small_catsdogs(&root, 3);
    let head = dir.path().join("small.head");
    let out = train_cli(&root, &head, &["--head", "centroid"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("no cross-validation: every label needs at least 5 pictures"));
    let good = pictures("catsdogs/test/cat", 1).remove(0);
    let bad = data("bad/truncated.jpg");
    let out = edge_tl(&[
        "predict",
        head.to_str().unwrap(),
        bad.to_str().unwrap(),
        good.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("truncated.jpg: truncated JPEG"),
        "{}",
        stderr(&out)
    );
    assert!(
        stdout(&out).starts_with(&format!("{}: ", good.display())),
        "{}",
        stdout(&out)
    );
}

#[test]
fn classify_names_imagenet_classes() {
    let photo = shared().join("models/testdata/hot_dog.jpg");
    let out = edge_tl(&["classify", photo.to_str().unwrap(), "--top", "1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(": hotdog, hot dog, red hot"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn first_errors_a_user_meets_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    // one label only
    let root = dir.path().join("one");
    std::fs::create_dir_all(root.join("cat")).unwrap();
    let p = pictures("catsdogs/train/cat", 1).remove(0);
    std::fs::copy(&p, root.join("cat/a.jpg")).unwrap();
    let head = dir.path().join("x.head");
    let out = train_cli(&root, &head, &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("only one label (cat); training needs at least two"),
        "{}",
        stderr(&out)
    );
    assert!(!head.exists(), "no head file after a failed training");
    // a label whose only picture is broken
    std::fs::create_dir_all(root.join("dog")).unwrap();
    std::fs::copy(data("bad/zero_bytes.jpg"), root.join("dog/z.jpg")).unwrap();
    let out = train_cli(&root, &head, &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("label \"dog\" has no usable image"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("z.jpg: the file is empty"),
        "{}",
        stderr(&out)
    );
    // a head for another backbone
    std::fs::copy(&p, root.join("dog/b.jpg")).unwrap();
    std::fs::remove_file(root.join("dog/z.jpg")).unwrap();
    let out = train_cli(
        &root,
        &head,
        &["--model", "mobilenet-v1-int8", "--head", "centroid"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = edge_tl(&[
        "predict",
        head.to_str().unwrap(),
        p.to_str().unwrap(),
        "--model",
        "mobilenet-v2-int8",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("trained on backbone mobilenet-v1-int8"),
        "{}",
        stderr(&out)
    );
    // not a head file
    let out = edge_tl(&["predict", p.to_str().unwrap(), p.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not an edge-tl head file"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn printing_into_a_closed_pipe_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    // `edge-tl models list | head -0`: the reader is gone before anything is written.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_edge-tl"))
        .args(["models", "list"])
        .env("EDGE_TL_MODELS", crate::common::shared().join("models"))
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{:?}", out.status);
}
