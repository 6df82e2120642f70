//! Every number a user can set is checked against one range, whether it comes as a flag or as
//! a settings-file key: a bad value is refused with the flag or key, the value and the range
//! named, never clamped or ignored. Also: errors say each cause once, and the inputs that used
//! to panic are errors.

use std::process::Output;

use crate::common::{data, shared, stderr};

/// `edge-tl ARGS` with no settings from the environment.
fn run(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_edge-tl"))
        .args(args)
        .env("EDGE_TL_MODELS", shared().join("models"))
        .env("EDGE_TL_SHARED", shared())
        .env_remove("EDGE_TL_MODEL")
        .env_remove("EDGE_TL_SOURCE")
        .env_remove("EDGE_TL_CONFIG")
        .env_remove("EDGE_TL_THREADS")
        .output()
        .expect("edge-tl runs")
}

/// The command fails with `code` and its stderr holds every one of `wanted`.
fn refused(args: &[&str], code: i32, wanted: &[&str]) {
    let out = run(args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
    for w in wanted {
        assert!(err.contains(w), "{args:?}: {w:?} not in {err:?}");
    }
    assert!(!err.contains("panicked"), "{args:?}: {err}");
}

#[test]
fn bad_numbers_are_refused_as_flags_with_the_flag_the_value_and_the_range() {
    let photo = data("catsdogs/test/cat/cat.101.jpg");
    let photo = photo.to_str().unwrap();
    let train = data("catsdogs/train");
    let train = train.to_str().unwrap();
    let src = format!("dir:{}", data("catsdogs/test/cat").display());
    let run_with = |flag: &'static str| -> Vec<String> {
        vec!["run".into(), "--source".into(), src.clone(), flag.into()]
    };
    // (arguments, flag, value, range)
    let cases: Vec<(Vec<String>, &str, &str, &str)> = vec![
        (
            run_with("--threshold=7"),
            "--threshold",
            "7",
            "must be between 0 and 1 (got 7)",
        ),
        (
            run_with("--threshold=-1"),
            "--threshold",
            "-1",
            "must be between 0 and 1 (got -1)",
        ),
        (
            run_with("--threshold=NaN"),
            "--threshold",
            "NaN",
            "must be between 0 and 1 (got NaN)",
        ),
        (
            run_with("--smooth=0"),
            "--smooth",
            "0",
            "must be between 1 and 1000 (1 = no smoothing) (got 0)",
        ),
        (
            run_with("--top=0"),
            "--top",
            "0",
            "must be between 1 and 1000 (got 0)",
        ),
        (
            run_with("--threads=0"),
            "--threads",
            "0",
            "must be between 1 and 256 (got 0)",
        ),
        (
            run_with("--fps=-1"),
            "--fps",
            "-1",
            "must be above 0 and at most 1000 (got -1)",
        ),
        (
            run_with("--replay-fps=0"),
            "--replay-fps",
            "0",
            "must be above 0 and at most 1000 (got 0)",
        ),
        (
            run_with("--replay-fps=-5"),
            "--replay-fps",
            "-5",
            "must be above 0 and at most 1000 (got -5)",
        ),
        (
            run_with("--frames=0"),
            "--frames",
            "0",
            "must be at least 1 (got 0)",
        ),
        (
            run_with("--threads=four"),
            "--threads",
            "four",
            "not a number or `auto`; must be between 1 and 256",
        ),
        (
            vec![
                "train".into(),
                "--data".into(),
                train.into(),
                "--out".into(),
                "x.head".into(),
                "--folds=1".into(),
            ],
            "--folds",
            "1",
            "must be between 2 and 100 (--folds 0 turns cross-validation off) (got 1)",
        ),
        (
            vec![
                "train".into(),
                "--data".into(),
                train.into(),
                "--out".into(),
                "x.head".into(),
                "--alpha=0".into(),
            ],
            "--alpha",
            "0",
            "must be above 0",
        ),
        (
            vec![
                "train".into(),
                "--data".into(),
                train.into(),
                "--out".into(),
                "x.head".into(),
                "--jobs=0".into(),
            ],
            "--jobs",
            "0",
            "must be between 1 and 256 (got 0)",
        ),
        (
            vec!["bench".into(), "--rounds=0".into()],
            "--rounds",
            "0",
            "must be between 1 and 100000 (got 0)",
        ),
        (
            vec!["bench".into(), "--threads=0".into()],
            "--threads",
            "0",
            "must be between 1 and 256 (got 0)",
        ),
        (
            vec![
                "capture".into(),
                "--label".into(),
                "cat".into(),
                "--count=0".into(),
            ],
            "--count",
            "0",
            "must be between 1 and 1000000 (got 0)",
        ),
        (
            vec![
                "capture".into(),
                "--label".into(),
                "cat".into(),
                "--interval=2h".into(),
            ],
            "--interval",
            "2h",
            "must be at most 1h (got 2h)",
        ),
        (
            vec![
                "capture".into(),
                "--label".into(),
                "cat".into(),
                "--interval=soon".into(),
            ],
            "--interval",
            "soon",
            "write e.g. 500ms or 2s",
        ),
        (
            vec!["classify".into(), photo.into(), "--top=0".into()],
            "--top",
            "0",
            "must be between 1 and 1000 (got 0)",
        ),
        (
            vec![
                "predict".into(),
                "x.head".into(),
                photo.into(),
                "--top=0".into(),
            ],
            "--top",
            "0",
            "must be between 1 and 1000 (got 0)",
        ),
        (
            vec!["features".into(), photo.into(), "--max-channels=0".into()],
            "--max-channels",
            "0",
            "must be between 1 and 4096 (got 0)",
        ),
        (
            vec![
                "finetune".into(),
                "--data".into(),
                train.into(),
                "--out".into(),
                "m.onnx".into(),
                "--epochs=0".into(),
            ],
            "--epochs",
            "0",
            "must be between 1 and 10000 (got 0)",
        ),
        (
            vec![
                "finetune".into(),
                "--data".into(),
                train.into(),
                "--out".into(),
                "m.onnx".into(),
                "--mix=2".into(),
            ],
            "--mix",
            "2",
            "must be between 0 and 1 (got 2)",
        ),
        (
            vec![
                "finetune".into(),
                "--data".into(),
                train.into(),
                "--out".into(),
                "m.onnx".into(),
                "--lr=0".into(),
            ],
            "--lr",
            "0",
            "must be above 0 and at most 10 (got 0)",
        ),
        (
            vec![
                "finetune".into(),
                "--data".into(),
                train.into(),
                "--out".into(),
                "m.onnx".into(),
                "--unfreeze=99999".into(),
            ],
            "--unfreeze",
            "99999",
            "must be between 0 and 1000 (got 99999)",
        ),
        (
            vec![
                "dream".into(),
                "--class".into(),
                "zebra".into(),
                "--steps=0".into(),
            ],
            "--steps",
            "0",
            "must be between 1 and 100000 (got 0)",
        ),
        (
            vec![
                "attack".into(),
                photo.into(),
                "--target".into(),
                "zebra".into(),
                "--until=0".into(),
            ],
            "--until",
            "0",
            "must be above 0 and at most 1 (got 0)",
        ),
    ];
    for (args, flag, value, range) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        refused(&args, 2, &[&format!("'{value}'"), flag, range]);
    }
}

#[test]
fn bad_numbers_are_refused_as_settings_keys_with_the_file_the_key_and_the_range() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    let f = file.to_str().unwrap();
    let cases = [
        (
            "[results]\nthreshold = 7",
            "results.threshold",
            "must be between 0 and 1 (got 7)",
        ),
        (
            "[results]\nthreshold = -1",
            "results.threshold",
            "must be between 0 and 1 (got -1)",
        ),
        (
            "[results]\nthreshold = nan",
            "results.threshold",
            "must be between 0 and 1 (got NaN)",
        ),
        (
            "[results]\nsmooth = 0",
            "results.smooth",
            "must be between 1 and 1000 (1 = no smoothing) (got 0)",
        ),
        (
            "[results]\ntop = 0",
            "results.top",
            "must be between 1 and 1000 (got 0)",
        ),
        (
            "threads = 0",
            "threads",
            "must be between 1 and 256 (got 0)",
        ),
        (
            "[camera]\nfps = -1",
            "camera.fps",
            "must be above 0 and at most 1000 (got -1)",
        ),
        (
            "[camera]\nfps = 0",
            "camera.fps",
            "must be above 0 and at most 1000 (got 0)",
        ),
        (
            "[mqtt]\ntopic_prefix = \"a/#\"",
            "mqtt.topic_prefix",
            "'#' cannot be in a topic prefix",
        ),
    ];
    for (text, key, range) in cases {
        std::fs::write(&file, text).unwrap();
        let want = format!("{f}: key `{key}`: {range}");
        refused(&["config", "check", f], 1, &[&want]);
        refused(&["run", "--config", f], 1, &[&want]);
    }
}

#[test]
fn an_mqtt_password_without_a_user_is_refused_from_a_flag_or_the_file() {
    let src = format!("dir:{}", data("catsdogs/test/cat").display());
    let wanted = [
        "an MQTT password is set",
        "no user",
        "--mqtt-user",
        "mqtt.user",
    ];
    refused(
        &[
            "run",
            "--source",
            &src,
            "--mqtt",
            "mqtt://127.0.0.1:9",
            "--mqtt-password",
            "pw",
        ],
        1,
        &wanted,
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    std::fs::write(
        &file,
        "[mqtt]\nurl = \"mqtt://127.0.0.1:9\"\npassword = \"pw\"\n",
    )
    .unwrap();
    refused(&["config", "check", file.to_str().unwrap()], 1, &wanted);
    refused(&["run", "--config", file.to_str().unwrap()], 1, &wanted);
}

#[test]
fn errors_say_their_cause_once() {
    let missing = "/nonexistent/config.toml";
    let out = run(&["config", "check", missing]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(
        err.trim(),
        format!(
            "error: {missing}: cannot read the settings file: No such file or directory (os error 2)"
        )
    );
    let out = run(&["run", "--source", "dir:/nonexistent"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
    assert!(err.contains("/nonexistent"), "{err}");
}

#[test]
fn a_head_with_non_ascii_text_where_the_hash_goes_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let head = dir.path().join("odd.head");
    let out = crate::common::train_cli(
        &data("catsdogs/train"),
        &head,
        &[
            "--folds",
            "0",
            "--cache-dir",
            crate::common::cache_dir().to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&head).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let sha = v["head"]["backbone"]["sha256"]
        .as_str()
        .unwrap()
        .to_string();
    // Two-byte characters, so byte 12 falls inside one.
    std::fs::write(&head, text.replace(&sha, &"é".repeat(32))).unwrap();
    let photo = data("catsdogs/test/cat/cat.101.jpg");
    refused(
        &[
            "predict",
            "--model",
            "mobilenet-v2-f32",
            head.to_str().unwrap(),
            photo.to_str().unwrap(),
        ],
        1,
        &[
            "this head was trained on backbone",
            "éééééééééééé",
            "pass --model",
        ],
    );
}

#[test]
fn a_password_in_the_mqtt_address_is_refused_without_being_repeated() {
    let src = format!("dir:{}", data("catsdogs/test/cat").display());
    let out = run(&[
        "run",
        "--source",
        &src,
        "--mqtt",
        "mqtt://edge:hunter2@127.0.0.1:9",
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    assert!(
        err.contains("--mqtt: MQTT broker address \"mqtt://edge:***@127.0.0.1:9\""),
        "{err}"
    );
    assert!(err.contains("--mqtt-password-file"), "{err}");
}
