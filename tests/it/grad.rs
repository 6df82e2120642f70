//! The gradient engine (`--features grad`): candle running the float ONNX file agrees with
//! tract, and its gradients are the derivatives of what it computes.

use candle_core::{Tensor, Var};
use edge_tl::grad::{self, Net};
use edge_tl::preprocess;

use crate::common::{cosine, default_model, shared};

/// The seven upstream test photos and two from catsdogs.
fn photos() -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(shared().join("models/testdata"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v.push(crate::common::data("catsdogs/test/cat/cat.101.jpg"));
    v.push(crate::common::data("catsdogs/test/dog/dog.102.jpg"));
    v
}

fn argmax(v: &[f32]) -> usize {
    (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap()
}

#[test]
fn the_engine_reproduces_tracts_embeddings_and_classes() {
    let net = Net::load(&default_model().path).unwrap();
    assert_eq!(net.input_size(), (224, 224));
    let tract_net = edge_tl::model::Extractor::load(
        default_model(),
        edge_tl::model::Outputs::EmbeddingAndLogits,
    )
    .unwrap();
    let photos = photos();
    assert!(photos.len() >= 9, "{photos:?}");
    for photo in &photos {
        let frame = preprocess::decode_file(photo).unwrap();
        let input = preprocess::to_input(&frame, &default_model().manifest);
        let tract = tract_net.run(&input).unwrap();
        let start = std::time::Instant::now();
        let out = net
            .forward(&grad::pixels(&input).unwrap(), &["embedding", "logits"])
            .unwrap();
        let ms = start.elapsed().as_secs_f64() * 1e3;
        let emb = out[0].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let logits = out[1].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let c = cosine(&emb, &tract.embedding);
        let tract_logits = tract.logits.as_ref().unwrap();
        println!("{}: cosine {c:.6}, {ms:.0} ms", photo.display());
        assert!(c >= 0.999, "{}: cosine {c}", photo.display());
        assert_eq!(argmax(&logits), argmax(tract_logits), "{}", photo.display());
    }
}

/// The gradient of a logit with respect to the picture predicts how the logit changes when the
/// picture moves a little along it (a central difference), and a model that is not float is
/// refused with the node named.
#[test]
fn input_gradients_match_finite_differences() {
    let net = Net::load(&default_model().path).unwrap();
    let frame =
        preprocess::decode_file(&crate::common::data("catsdogs/test/cat/cat.101.jpg")).unwrap();
    let input = preprocess::to_input(&frame, &default_model().manifest);
    let x = Var::from_tensor(&grad::pixels(&input).unwrap()).unwrap();
    let logit = |t: &Tensor| -> Tensor {
        net.forward(t, &["logits"]).unwrap()[0]
            .narrow(1, 282, 1) // "tabby, tabby cat"
            .unwrap()
            .sum_all()
            .unwrap()
    };
    let value = logit(x.as_tensor());
    let g = value
        .backward()
        .unwrap()
        .get(x.as_tensor())
        .unwrap()
        .clone();
    let norm = g
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap()
        .sqrt()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(norm > 0.0 && norm.is_finite(), "gradient norm {norm}");
    let h = 0.05f64; // pixel levels along the unit gradient direction
    let dir = (g / f64::from(norm)).unwrap();
    let plus = logit(&(x.as_tensor() + (&dir * h).unwrap()).unwrap())
        .to_scalar::<f32>()
        .unwrap();
    let minus = logit(&(x.as_tensor() - (&dir * h).unwrap()).unwrap())
        .to_scalar::<f32>()
        .unwrap();
    let slope = f64::from(plus - minus) / (2.0 * h);
    let rel = (slope - f64::from(norm)).abs() / f64::from(norm);
    println!("gradient norm {norm}, finite difference {slope}");
    assert!(
        rel < 0.05,
        "gradient norm {norm} vs finite difference {slope}"
    );

    let int8 = crate::common::resolve("mobilenet-v2-int8");
    let e = Net::load(&int8.path)
        .unwrap()
        .forward(x.as_tensor(), &["logits"])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("is a DequantizeLinear") || e.contains("is a QuantizeLinear"),
        "{e}"
    );
    assert!(e.contains("mobilenet-v2-f32"), "{e}");
}

/// Dreaming from noise raises the class probability step after step (a few steps here; the
/// documented 300-step run (docs/explain.md) reaches >= 0.9).
#[test]
fn dreaming_raises_the_class_probability() {
    use edge_tl::explain::dream::{dream, DreamOptions};
    use edge_tl::explain::{find_label, Scorer};
    let net = Net::load(&default_model().path).unwrap();
    let scorer = Scorer::backbone(&net, default_model()).unwrap();
    let zebra = find_label(scorer.labels(), "zebra", "ImageNet").unwrap();
    let mut seen = Vec::new();
    let options = DreamOptions {
        steps: 6,
        ..DreamOptions::default()
    };
    let pixels = dream(&scorer, net.input_size(), zebra, &options, |s| {
        seen.push(s.target_prob)
    })
    .unwrap();
    println!("p(zebra) per step: {seen:?}");
    assert_eq!(seen.len(), 6);
    assert!(seen[5] > 10.0 * seen[0], "{seen:?}");
    // The picture is whole pixel levels within 0..255.
    let v = pixels.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert!(v
        .iter()
        .all(|&x| x == x.round() && (0.0..=255.0).contains(&x)));
}

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Largest absolute difference between a written PNG and the picture the model saw.
fn linf_against_original(png: &std::path::Path, photo: &std::path::Path) -> u8 {
    let adv = image::open(png).unwrap().to_rgb8();
    let frame = preprocess::decode_file(photo).unwrap();
    let original = preprocess::resize_for(&frame, &default_model().manifest);
    assert_eq!(adv.dimensions(), original.dimensions());
    adv.as_raw()
        .iter()
        .zip(original.as_raw())
        .map(|(a, b)| a.abs_diff(*b))
        .max()
        .unwrap()
}

/// A targeted attack on real dog photos: the target's probability rises, the written PNG is
/// within the budget to the pixel level, tract's verdict on the int8 model is reported, and a
/// broken file in the list is named while the others go on.
#[test]
fn attack_raises_the_target_within_the_budget_and_names_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let dogs = crate::common::pictures("catsdogs/test/dog", 2);
    let bad = crate::common::data("bad/truncated.jpg");
    let mut args = vec!["attack"];
    args.extend(dogs.iter().map(|p| p.to_str().unwrap()));
    args.push(bad.to_str().unwrap());
    let out = dir.path().join("adv");
    args.extend([
        "--target",
        "tabby cat",
        "--eps",
        "4/255",
        "--steps",
        "8",
        "--json",
        "-o",
        out.to_str().unwrap(),
    ]);
    let o = crate::common::edge_tl(&args);
    let err = crate::common::stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("truncated.jpg") && err.contains("truncated JPEG"),
        "{err}"
    );
    assert!(err.contains("2 pictures attacked (eps 4/255)"), "{err}");
    let lines = json_lines(&crate::common::stdout(&o));
    assert_eq!(lines.len(), 2);
    for (line, dog) in lines.iter().zip(&dogs) {
        assert_eq!(line["target"], "tabby, tabby cat");
        let before = line["original_target_prob"].as_f64().unwrap();
        let after = line["target_prob"].as_f64().unwrap();
        assert!(after > 10.0 * before, "{line}");
        let linf = line["linf"].as_u64().unwrap();
        assert!(linf <= 4, "{line}");
        let png = std::path::PathBuf::from(line["out"].as_str().unwrap());
        assert_eq!(linf_against_original(&png, dog) as u64, linf, "{line}");
        assert_eq!(line["int8_model"], "mobilenet-v2-int8");
        assert!(line["transfers_int8"].is_boolean(), "{line}");
        assert_eq!(line["top5"].as_array().unwrap().len(), 5);
    }

    let o = crate::common::edge_tl(&["attack", dogs[0].to_str().unwrap(), "--target", "tiger"]);
    let err = crate::common::stderr(&o);
    assert!(
        err.contains("\"tiger\" is part of") && err.contains("give the whole label"),
        "{err}"
    );
    let o = crate::common::edge_tl(&[
        "attack",
        dogs[0].to_str().unwrap(),
        "--target",
        "cat",
        "--eps",
        "0.001",
    ]);
    assert!(crate::common::stderr(&o).contains("--eps 0.001 is 0 pixel levels"));
}

/// With --head the attack aims at the user's own labels: dogs become "cat" under the head.
#[test]
fn attack_with_a_head_turns_dogs_into_cats() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    crate::common::small_catsdogs(&data, 6);
    let head = dir.path().join("cats.head");
    let o = crate::common::train_cli(&data, &head, &["--no-cache"]);
    assert!(o.status.success(), "{}", crate::common::stderr(&o));
    let dog = crate::common::pictures("catsdogs/test/dog", 1).remove(0);
    let out = dir.path().join("adv.png");
    let o = crate::common::edge_tl(&[
        "attack",
        dog.to_str().unwrap(),
        "--head",
        head.to_str().unwrap(),
        "--target",
        "cat",
        "--steps",
        "20",
        "--json",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", crate::common::stderr(&o));
    let line = &json_lines(&crate::common::stdout(&o))[0];
    assert_eq!(line["target"], "cat");
    assert_eq!(line["original_top5"][0]["label"], "dog", "{line}");
    assert_eq!(line["top5"][0]["label"], "cat", "{line}");
    assert!(line["linf"].as_u64().unwrap() <= 8, "{line}");
    assert_eq!(
        linf_against_original(&out, &dog) as u64,
        line["linf"].as_u64().unwrap()
    );
}
