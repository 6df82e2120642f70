//! `edge-tl train`: embed a dataset (through the cache), train a head, write it atomically.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};

use super::args::{EmbedArgs, ModelArg};
use edge_tl::dataset::{Dataset, EmbedOptions};
use edge_tl::head::train::{train_folder, FolderTraining, HeadKind, TrainParams};
use edge_tl::head::{file as head_file, LogisticParams};
use edge_tl::model::{Extractor, Outputs};
use edge_tl::region::Region;
use edge_tl::settings::bounds::{self, flag};

#[derive(Debug, Args)]
pub struct Flags {
    /// Dataset folder: one sub-folder per label
    #[arg(long, short = 'd', value_name = "DIR")]
    data: PathBuf,
    /// Where to write the head
    #[arg(long, short = 'o', value_name = "FILE")]
    out: PathBuf,
    /// Kind of head
    #[arg(long, value_enum, default_value_t = HeadKindArg::Logistic)]
    head: HeadKindArg,
    /// L2 regularisation of the logistic head (scikit-learn's 1/C), or `auto`: the best of a
    /// small grid by cross-validated accuracy on the training pictures
    #[arg(long, default_value = "auto", value_parser = alpha, value_name = "auto|NUMBER")]
    alpha: Alpha,
    /// Also learn from each picture mirrored left-right
    #[arg(long)]
    flip: bool,
    /// Learn from this part of each picture only, X,Y,W,H as shares of its width and height
    /// (e.g. 0.25,0.1,0.5,0.6); stored in the head, which then looks at the same part of every
    /// frame in predict, eval and run [default: the whole picture]
    #[arg(long, value_name = "X,Y,W,H")]
    region: Option<Region>,
    /// Cross-validation folds for the accuracy estimate (0 = none)
    #[arg(long, default_value_t = 5, value_parser = folds)]
    folds: usize,
    /// Seed of the cross-validation split
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print a JSON summary instead of text
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    model: ModelArg,
    #[command(flatten)]
    embed: EmbedArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HeadKindArg {
    /// Multinomial logistic regression (linfa-logistic) on standardised features
    Logistic,
    /// Nearest class mean (works from one picture per label)
    Centroid,
}

/// `--folds`: 0 (no cross-validation) or at least two folds.
fn folds(s: &str) -> Result<usize, String> {
    match s.trim() {
        "0" => Ok(0),
        _ => flag::<usize>(bounds::FOLDS)(s),
    }
}

/// `--alpha`: chosen by cross-validation, or given.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Alpha {
    Auto,
    Fixed(f64),
}

/// `--alpha`: `auto` or a positive number.
fn alpha(s: &str) -> Result<Alpha, String> {
    match s.trim() {
        "auto" => Ok(Alpha::Auto),
        _ => flag::<f64>(bounds::ALPHA)(s)
            .map(Alpha::Fixed)
            .map_err(|e| format!("{e}, or auto")),
    }
}

pub fn run(args: Flags) -> anyhow::Result<ExitCode> {
    let kind = match args.head {
        HeadKindArg::Logistic => {
            let params = LogisticParams {
                alpha: match args.alpha {
                    Alpha::Fixed(a) => a,
                    Alpha::Auto => LogisticParams::default().alpha,
                },
                ..LogisticParams::default()
            };
            HeadKind::Logistic(params)
        }
        HeadKindArg::Centroid => HeadKind::Centroid,
    };
    let dataset = Dataset::open(&args.data)
        .with_context(|| format!("reading dataset {}", args.data.display()))?;
    let model = super::resolve_model(args.model.model.as_deref(), None)?;
    let extractor = Extractor::load(&model, Outputs::Embedding)
        .with_context(|| format!("loading {}", model.path.display()))?;
    let params = TrainParams {
        kind,
        folds: args.folds,
        seed: args.seed,
        choose_alpha: args.alpha == Alpha::Auto,
    };
    let FolderTraining {
        head,
        cv,
        imbalance,
        set,
        embed_s,
        train_s,
    } = train_folder(
        &dataset,
        &extractor,
        &EmbedOptions {
            region: args.region,
            ..args.embed.options(args.flip)
        },
        &params,
        &super::progress("embedding"),
    )
    .with_context(|| format!("training on {}", args.data.display()))?;
    super::print_skipped(set.skipped.iter().map(|(_, e)| e.as_ref()));
    let m = &model.manifest;
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
            "imbalance": imbalance,
            "cv_per_class": cv.as_ref().map(|r| &r.per_class),
            "cv_confusion": cv.as_ref().map(|r| &r.confusion),
            "cv_mistakes": cv.as_ref().map(|r| &r.mistakes),
            "alpha": head_alpha(&head),
            "alpha_search": head.training.alpha_search,
            "embed_s": embed_s,
            "train_s": train_s,
            "region": head.region,
            "learning_curve": head.training.learning_curve,
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
    if let Some(warning) = &imbalance {
        println!("warning: {warning}");
    }
    if let Some(r) = &head.region {
        println!("taught on the region {r} (x,y,w,h of each picture); predict, eval and run cut it out of every frame");
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
    if let Some(report) = &cv {
        print_cv_report(report);
    }
    if let Some(curve) = head
        .training
        .learning_curve
        .as_deref()
        .filter(|c| c.len() > 1)
    {
        let points: Vec<String> = curve
            .iter()
            .map(|p| format!("{} {:.1}%", p.per_label, 100.0 * p.accuracy))
            .collect();
        println!(
            "enough? cross-validated accuracy by pictures per label: {}",
            points.join(", ")
        );
        if let Some(v) = edge_tl::head::curve::verdict(curve) {
            println!("  {v}");
        }
    }
    if let (Some(search), Some(alpha)) = (&head.training.alpha_search, head_alpha(&head)) {
        let tried: Vec<String> = search
            .iter()
            .map(|s| format!("{} {:.1}%", s.alpha, 100.0 * s.cv_accuracy))
            .collect();
        println!(
            "alpha {alpha} chosen by cross-validation ({})",
            tried.join(", ")
        );
    }
    println!("wrote {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}

/// Most mistakes listed; the JSON summary has them all.
const MISTAKES_SHOWN: usize = 20;

/// Per-label precision and recall from the cross-validation, and the pictures it got wrong.
fn print_cv_report(report: &edge_tl::head::train::CvReport) {
    for c in &report.per_class {
        println!(
            "  {:<22} precision {:>5.1}%  recall {:>5.1}%",
            c.label,
            100.0 * c.precision,
            100.0 * c.recall
        );
    }
    if report.mistakes.is_empty() {
        return;
    }
    println!(
        "{} pictures taken for another label by cross-validation (look here first for a picture \
         under the wrong label):",
        report.mistakes.len()
    );
    for m in report.mistakes.iter().take(MISTAKES_SHOWN) {
        println!(
            "  {} ({}) taken for {}",
            m.path.display(),
            m.label,
            m.taken_for
        );
    }
    if report.mistakes.len() > MISTAKES_SHOWN {
        println!(
            "  ... and {} more (--json lists them all)",
            report.mistakes.len() - MISTAKES_SHOWN
        );
    }
}

/// The logistic head's regularisation, if it is one.
fn head_alpha(head: &edge_tl::head::Head) -> Option<f64> {
    match &head.classifier {
        edge_tl::head::Classifier::Logistic { model, .. } => Some(model.alpha),
        edge_tl::head::Classifier::Centroid { .. } => None,
    }
}
