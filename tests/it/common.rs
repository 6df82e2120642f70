//! Helpers shared by the end-to-end tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use edge_tl::dataset::{embed_dataset, Dataset, EmbedOptions, EmbeddedSet};
use edge_tl::model::{store, Extractor, ModelDirs, Outputs, ResolvedModel};

/// `$EDGE_TL_SHARED`, or `../shared` relative to the crate.
pub fn shared() -> PathBuf {
    match std::env::var_os("EDGE_TL_SHARED") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"),
    }
}

pub fn data(rel: &str) -> PathBuf {
    shared().join("data").join(rel)
}

/// An embedding cache kept between test runs (in the target folder), so reruns are quick.
pub fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("embedding-cache")
}

/// Model lookup in the shared models (passed as an argument: no test changes the environment
/// other tests read).
pub fn model_dirs() -> ModelDirs {
    ModelDirs::new([shared().join("models")])
}

/// A model from the shared folder, by name or path.
pub fn resolve(spec: &str) -> ResolvedModel {
    store::resolve(Some(spec), &model_dirs()).unwrap_or_else(|e| panic!("{spec}: {e}"))
}

/// The default model, resolved from the shared folder.
pub fn default_model() -> &'static ResolvedModel {
    static MODEL: OnceLock<ResolvedModel> = OnceLock::new();
    MODEL.get_or_init(|| {
        store::resolve(None, &model_dirs()).expect("default model in $EDGE_TL_SHARED/models")
    })
}

/// One embedding extractor for the default model, shared by all tests.
pub fn extractor() -> &'static Extractor {
    static EX: OnceLock<Extractor> = OnceLock::new();
    EX.get_or_init(|| Extractor::load(default_model(), Outputs::Embedding).expect("model loads"))
}

/// Embeds a shared dataset split with the default model through the persistent test cache.
pub fn embedded(rel: &str, flip: bool) -> EmbeddedSet {
    embedded_by(extractor(), rel, flip)
}

/// Embeds a shared dataset split with `extractor` through the persistent test cache (keyed by
/// the model's sha256, like every cache entry).
pub fn embedded_by(extractor: &Extractor, rel: &str, flip: bool) -> EmbeddedSet {
    let ds = Dataset::open(&data(rel)).expect("dataset opens");
    let options = EmbedOptions {
        flip,
        cache_dir: Some(cache_dir()),
        ..EmbedOptions::default()
    };
    embed_dataset(&ds, extractor, &options, &edge_tl::progress::Silent).expect("embeds")
}

/// Runs the edge-tl binary with the shared models and the test cache.
pub fn edge_tl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edge-tl"))
        .args(args)
        .env("EDGE_TL_MODELS", shared().join("models"))
        .env("EDGE_TL_SHARED", shared())
        .env_remove("EDGE_TL_MODEL")
        .output()
        .expect("edge-tl runs")
}

/// `edge-tl train --data DATA --out OUT EXTRA...`.
pub fn train_cli(data: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "train",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    edge_tl(&args)
}

/// The first `n` files (by name) of a shared data folder.
pub fn pictures(rel: &str, n: usize) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(data(rel))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v.truncate(n);
    v
}

/// A small cat/dog dataset in `root`: the first `per_label` training photos of each label.
pub fn small_catsdogs(root: &Path, per_label: usize) {
    for label in ["cat", "dog"] {
        copy_pictures(
            &format!("catsdogs/train/{label}"),
            &root.join(label),
            per_label,
        );
    }
}

/// Copies the first `n` pictures of a shared data folder into `dest` (created).
pub fn copy_pictures(rel: &str, dest: &Path, n: usize) {
    std::fs::create_dir_all(dest).unwrap();
    for p in pictures(rel, n) {
        std::fs::copy(&p, dest.join(p.file_name().unwrap())).unwrap();
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Cosine similarity of two embeddings, summed in f64 (the gradient-engine and kernel tests
/// compare with it).
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}
