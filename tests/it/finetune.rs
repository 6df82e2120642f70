//! Fine-tuning end to end (`--features grad`), reduced to a few epochs on a small subset: the
//! exported ONNX file gives in tract the answers the engine gives, loads with `--model` like
//! any model (`classify`, `run`), and a run repeats exactly with the same seed.

use edge_tl::dataset::Dataset;
use edge_tl::finetune::export::export;
use edge_tl::finetune::{finetune, FinetuneOptions};
use edge_tl::grad::{pixels, Net};
use edge_tl::model::{Extractor, Outputs};
use edge_tl::predict::{argmax, softmax};
use edge_tl::preprocess;

use crate::common::{cosine, default_model, edge_tl, pictures, small_catsdogs, stderr, stdout};

#[test]
fn the_exported_model_answers_in_tract_as_in_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    small_catsdogs(&data, 12);
    let dataset = Dataset::open(&data).unwrap();
    let net = Net::load(&default_model().path).unwrap();
    let options = FinetuneOptions {
        epochs: 3,
        ..FinetuneOptions::default()
    };
    let ft = finetune(net, &default_model().manifest, &dataset, &options, |_| {}).unwrap();
    assert_eq!(ft.labels, ["cat", "dog"]);
    assert_eq!(
        ft.cut.blocks,
        [
            "MobilenetV2/expanded_conv_15",
            "MobilenetV2/expanded_conv_16",
            "MobilenetV2/Conv_1"
        ]
    );
    assert!(
        ft.val_pictures >= 4 && ft.train_pictures >= 16,
        "{} {}",
        ft.val_pictures,
        ft.train_pictures
    );
    // The validation pictures chose the epoch, then every picture trained that many epochs.
    assert!(
        ft.best_epoch >= 1 && ft.refit_epochs == ft.best_epoch,
        "{} {}",
        ft.best_epoch,
        ft.refit_epochs
    );
    let out = dir.path().join("ft.onnx");
    let files = export(&ft, default_model(), &out, false).unwrap();
    assert!(files.manifest.is_file() && files.labels.is_file());

    let model = crate::common::resolve(out.to_str().unwrap());
    assert_eq!(
        model.labels.as_deref(),
        Some(&["cat".to_string(), "dog".to_string()][..])
    );
    let tract = Extractor::load(&model, Outputs::EmbeddingAndLogits).unwrap();
    let mut correct = 0;
    let mut tests = pictures("catsdogs/test/cat", 10);
    tests.extend(pictures("catsdogs/test/dog", 10));
    for (i, photo) in tests.iter().enumerate() {
        let frame = preprocess::decode_file(photo).unwrap();
        let input = preprocess::to_input(&frame, &model.manifest);
        let engine = ft.probs(&pixels(&input).unwrap()).unwrap().remove(0);
        let tract_probs = softmax(&tract.run(&input).unwrap().logits.unwrap());
        assert_eq!(argmax(&engine), argmax(&tract_probs), "{}", photo.display());
        for (a, b) in engine.iter().zip(&tract_probs) {
            assert!(
                (a - b).abs() < 1e-3,
                "{}: {engine:?} vs {tract_probs:?}",
                photo.display()
            );
        }
        correct += usize::from(argmax(&engine) == usize::from(i >= 10));
    }
    assert!(correct >= 18, "{correct} of 20 test photos right");

    // The int8 export: about a quarter of the bytes, and in tract nearly the float file's
    // embeddings (cosine > 0.95: every weight rounded again, to a new grid) and the same answers.
    let out8 = dir.path().join("ft8.onnx");
    let files8 = export(&ft, default_model(), &out8, true).unwrap();
    assert!(
        files8.bytes * 10 < files.bytes * 3,
        "{} vs {} bytes",
        files8.bytes,
        files.bytes
    );
    let model8 = crate::common::resolve(out8.to_str().unwrap());
    let tract8 = Extractor::load(&model8, Outputs::EmbeddingAndLogits).unwrap();
    let mut same = 0;
    for photo in &tests {
        let input = preprocess::to_input(&preprocess::decode_file(photo).unwrap(), &model.manifest);
        let (f, q) = (tract.run(&input).unwrap(), tract8.run(&input).unwrap());
        let cosine = cosine(&f.embedding, &q.embedding);
        assert!(cosine > 0.95, "{}: cosine {cosine}", photo.display());
        same += usize::from(argmax(&f.logits.unwrap()) == argmax(&q.logits.unwrap()));
    }
    assert!(same >= 19, "int8 export agrees on {same} of 20");
}

/// `mix` averages the trained weights with the starting ones, tensor by tensor: the mixed
/// network holds exactly the midpoint of the pretrained and the fully fine-tuned weights, and
/// mix 0 gives back the pretrained backbone's embeddings.
#[test]
fn mix_averages_the_fine_tuned_and_the_starting_weights() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    small_catsdogs(&data, 8);
    let dataset = Dataset::open(&data).unwrap();
    let tune_with = |mix: f64, refit: bool| {
        let net = Net::load(&default_model().path).unwrap();
        let options = FinetuneOptions {
            epochs: 2,
            augment: 1,
            mix,
            refit,
            ..FinetuneOptions::default()
        };
        finetune(net, &default_model().manifest, &dataset, &options, |_| {}).unwrap()
    };
    let tune = |mix: f64| tune_with(mix, true);
    let pretrained = Net::load(&default_model().path).unwrap();
    let (full, half, none) = (tune(1.0), tune(0.5), tune(0.0));
    assert_eq!(half.mix, 0.5);
    // Without the refit the kept epoch is exported as trained on the split's training part:
    // other weights than the refit's, which also saw the validation pictures.
    let kept = tune_with(1.0, false);
    assert_eq!((kept.refit_epochs, full.refit_epochs), (0, full.best_epoch));
    assert!(
        full.cut
            .weights
            .iter()
            .any(|n| full.net.weight_values(n).unwrap() != kept.net.weight_values(n).unwrap()),
        "the refit changed nothing"
    );
    let mut moved = 0.0f32;
    for name in &full.cut.weights {
        let w0 = pretrained.weight_values(name).unwrap();
        let w1 = full.net.weight_values(name).unwrap();
        let mid = half.net.weight_values(name).unwrap();
        assert_eq!(none.net.weight_values(name).unwrap(), w0, "{name}");
        for ((a, b), m) in w0.iter().zip(&w1).zip(&mid) {
            assert!(
                (0.5 * (a + b) - m).abs() <= 1e-6 * (1.0 + a.abs()),
                "{name}"
            );
            moved = moved.max((a - b).abs());
        }
    }
    assert!(moved > 1e-5, "training moved no weight ({moved})");
    let photo = &pictures("catsdogs/test/cat", 1)[0];
    let input = preprocess::to_input(
        &preprocess::decode_file(photo).unwrap(),
        &default_model().manifest,
    );
    let px = pixels(&input).unwrap();
    let emb = |net: &Net| {
        net.forward(&px, &[&default_model().manifest.embedding.output])
            .unwrap()[0]
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    assert_eq!(emb(&none.net), emb(&pretrained));
}

#[test]
fn finetune_cli_repeats_with_its_seed_and_names_bad_pictures() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    small_catsdogs(&data, 8);
    std::fs::copy(
        crate::common::data("bad/truncated.jpg"),
        data.join("cat/truncated.jpg"),
    )
    .unwrap();
    let run = |name: &str| {
        let out = dir.path().join(name);
        let o = edge_tl(&[
            "finetune",
            "-d",
            data.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--epochs",
            "2",
            "--unfreeze",
            "1",
            "--seed",
            "7",
            "--json",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
        (v, out)
    };
    let (a, out) = run("a.onnx");
    let (b, _) = run("b.onnx");
    assert_eq!(
        a["exported"]["sha256"], b["exported"]["sha256"],
        "same seed, same file"
    );
    assert_eq!(a["trained_blocks"].as_array().unwrap().len(), 2);
    assert_eq!(a["refit_epochs"], a["best_epoch"], "{a}");
    let skipped = a["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{a}");
    assert!(skipped[0]["path"]
        .as_str()
        .unwrap()
        .ends_with("truncated.jpg"));
    let agree = a["reload_agreement"].as_array().unwrap();
    assert_eq!(agree[0], agree[1], "{a}");

    // The file runs like any model, with its own labels.
    let cat = crate::common::data("catsdogs/test/cat/cat.101.jpg");
    let o = edge_tl(&[
        "classify",
        "--model",
        out.to_str().unwrap(),
        cat.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains(": cat "), "{}", stdout(&o));
    // `predict` takes it with no head: the same answers as `classify`.
    let o2 = edge_tl(&[
        "predict",
        "--model",
        out.to_str().unwrap(),
        cat.to_str().unwrap(),
        "--top",
        "5",
    ]);
    assert!(o2.status.success(), "{}", stderr(&o2));
    assert_eq!(stdout(&o2), stdout(&o));

    // `finetune` with one bad setting: it fails, and says why on stderr.
    let refused = |flag: &str, value: &str| {
        let d = data.to_str().unwrap();
        let o = edge_tl(&["finetune", "-d", d, "-o", "x.onnx", flag, value]);
        assert!(!o.status.success(), "{flag} {value}");
        stderr(&o)
    };
    let e = refused("--unfreeze", "40");
    assert!(
        e.contains("--unfreeze 40: the network has 19 blocks"),
        "{e}"
    );
    // A share outside its range is refused with the flag named, not quietly clamped.
    for (flag, value, range) in [
        ("--mix", "1.5", "between 0 and 1"),
        ("--label-smoothing", "0.7", "between 0 and 0.5"),
        ("--val-split", "0.95", "between 0 and 0.9"),
        ("--crop-area", "0", "between 0.05 and 1"),
    ] {
        let e = refused(flag, value);
        assert!(
            e.contains(flag) && e.contains(value) && e.contains(range),
            "{e}"
        );
    }
    // A wrong output name is refused before any training, naming the file.
    let o = edge_tl(&["finetune", "-d", data.to_str().unwrap(), "-o", "model.bin"]);
    let err = stderr(&o);
    assert!(
        err.contains("model.bin: the output must be a file name ending in .onnx"),
        "{err}"
    );
    assert!(!err.contains("epoch"), "refused only after training: {err}");
}
