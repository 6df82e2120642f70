//! The gradient engine (`--features grad`): candle running the float ONNX file agrees with
//! tract, and its gradients are the derivatives of what it computes.

use candle_core::{Tensor, Var};
use edge_tl::grad::{self, Net};
use edge_tl::preprocess;

use crate::common::{default_model, shared, use_shared_models};

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

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

fn argmax(v: &[f32]) -> usize {
    (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap()
}

#[test]
fn the_engine_reproduces_tracts_embeddings_and_classes() {
    use_shared_models();
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
    use_shared_models();
    let net = Net::load(&default_model().path).unwrap();
    let frame =
        preprocess::decode_file(&crate::common::data("catsdogs/test/cat/cat.101.jpg")).unwrap();
    let input = preprocess::to_input(&frame, &default_model().manifest);
    let x = Var::from_tensor(&grad::pixels(&input).unwrap()).unwrap();
    let logit = |t: &Tensor| -> Tensor {
        net.forward(t, &["logits"]).unwrap()[0]
            .narrow(1, 282, 1) // "tiger cat"
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

    let int8 = edge_tl::model::store::resolve(Some("mobilenet-v2-int8")).unwrap();
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
