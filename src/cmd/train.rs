//! `edge-tl train`: embed a dataset (through the cache), train a head, write it atomically.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;

use crate::cli::{EmbedArgs, HeadKindArg};
use edge_tl::dataset::{embed_dataset, Dataset};
use edge_tl::head::train::{train, HeadKind, TrainParams};
use edge_tl::head::{file as head_file, Backbone, LogisticParams};
use edge_tl::model::{Extractor, Outputs};

pub struct TrainArgs {
    pub data: PathBuf,
    pub out: PathBuf,
    pub head: HeadKindArg,
    pub alpha: f64,
    pub flip: bool,
    pub folds: usize,
    pub seed: u64,
    pub json: bool,
    pub model: Option<String>,
    pub embed: EmbedArgs,
}

pub fn run(args: TrainArgs) -> anyhow::Result<ExitCode> {
    let kind = match args.head {
        HeadKindArg::Logistic => {
            let params = LogisticParams {
                alpha: args.alpha,
                ..LogisticParams::default()
            };
            params.clone().check().context("--alpha")?;
            HeadKind::Logistic(params)
        }
        HeadKindArg::Centroid => HeadKind::Centroid,
    };
    let dataset = Dataset::open(&args.data)
        .with_context(|| format!("reading dataset {}", args.data.display()))?;
    let model = super::resolve_model(args.model.as_deref(), None)?;
    let extractor = Extractor::load(&model, Outputs::Embedding)
        .with_context(|| format!("loading {}", model.path.display()))?;
    let bar = super::progress("embedding");
    let options = super::embed_options(&args.embed, args.flip);
    let t = Instant::now();
    let set = embed_dataset(&dataset, &extractor, &options, &bar)?;
    let embed_s = t.elapsed().as_secs_f64();
    super::print_skipped(set.skipped.iter().map(|(_, e)| e.as_ref()));
    let m = &model.manifest;
    let backbone = Backbone::of(&model);
    let params = TrainParams {
        kind,
        folds: args.folds,
        seed: args.seed,
    };
    let t = Instant::now();
    let head = train(&set, &args.data, backbone, &params)
        .with_context(|| format!("training on {}", args.data.display()))?;
    let train_s = t.elapsed().as_secs_f64();
    head_file::save(&head, &args.out)?;
    let counts = set.counts();
    if args.json {
        let summary = serde_json::json!({
            "out": args.out,
            "model": m.name,
            "labels": head.labels,
            "samples": counts,
            "skipped": set.skipped.iter().map(|(_, e)| serde_json::json!({
                "path": e.path(), "reason": e.reason()})).collect::<Vec<_>>(),
            "cached": set.cached,
            "computed": set.computed,
            "cv_accuracy": head.training.cv_accuracy,
            "cv_folds": head.training.cv_folds,
            "embed_s": embed_s,
            "train_s": train_s,
        });
        println!("{summary}");
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:<24} {:>8}", "label", "pictures");
    for (label, n) in head.labels.iter().zip(&counts) {
        println!("{label:<24} {n:>8}");
    }
    if !set.skipped.is_empty() {
        println!("{} pictures skipped (reasons above)", set.skipped.len());
    }
    println!(
        "embedded {} pictures in {embed_s:.1} s ({} from cache, {} computed{}); trained in {train_s:.2} s",
        set.samples.len(),
        set.cached,
        set.computed,
        if args.flip { ", with mirrored copies" } else { "" }
    );
    match head.training.cv_accuracy {
        Some(acc) => println!(
            "{}-fold cross-validated accuracy: {:.1}%",
            params.folds,
            100.0 * acc
        ),
        None if params.folds >= 2 => println!(
            "no cross-validation: every label needs at least {} pictures",
            params.folds
        ),
        None => {}
    }
    println!("wrote {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}
