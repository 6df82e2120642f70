//! `edge-tl compare`: the on-device head (frozen features) against fine-tuning, trained on
//! the same folder and tested on the same folder, in one table.

use std::path::PathBuf;

use clap::Args;

use super::args::{FinetuneArgs, ModelArg};

#[derive(Debug, Args)]
#[cfg_attr(not(feature = "grad"), allow(dead_code))]
pub struct Flags {
    /// Training pictures in <dir>/<label>/ folders
    #[arg(long, value_name = "DIR")]
    train: PathBuf,
    /// Test pictures in <dir>/<label>/ folders (labels named as in --train)
    #[arg(long, value_name = "DIR")]
    test: PathBuf,
    /// Keep the fine-tuned model here [default: a temporary folder]
    #[arg(long, value_name = "FILE.onnx")]
    out: Option<PathBuf>,
    #[command(flatten)]
    finetune: FinetuneArgs,
    /// One JSON object with `head` and `finetuned` entries, instead of the table
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    model: ModelArg,
}

#[cfg(not(feature = "grad"))]
pub fn run(_: Flags) -> anyhow::Result<std::process::ExitCode> {
    Err(super::needs_grad("compare"))
}

#[cfg(feature = "grad")]
pub use imp::run;

#[cfg(feature = "grad")]
mod imp {
    use super::Flags;
    use std::process::ExitCode;
    use std::time::Instant;

    use anyhow::Context;
    use serde::Serialize;

    use edge_tl::dataset::{Dataset, EmbedOptions};
    use edge_tl::frame::Frame;
    use edge_tl::head::train::{train_folder, TrainParams};
    use edge_tl::metrics::evaluate;
    use edge_tl::model::{Extractor, Outputs};
    use edge_tl::predict::softmax;
    use edge_tl::preprocess;

    /// One row of the table.
    #[derive(Debug, Serialize)]
    struct Row {
        accuracy: f64,
        top5_accuracy: f64,
        /// Wall-clock training time, including computing features of the training pictures.
        train_s: f64,
        /// Bytes the device needs: backbone file (+ head file for the head).
        model_bytes: u64,
        /// Median per-picture time in tract on this machine, one thread, decode excluded.
        latency_ms: f64,
        test_pictures: usize,
    }

    /// Pictures timed for the latency column.
    const LATENCY_PICTURES: usize = 20;

    pub fn run(args: Flags) -> anyhow::Result<ExitCode> {
        let base = super::super::resolve_model(args.model.model.as_deref(), None)?;
        let train_set = Dataset::open(&args.train)
            .with_context(|| format!("reading training set {}", args.train.display()))?;
        let test_set = Dataset::open(&args.test)
            .with_context(|| format!("reading test set {}", args.test.display()))?;
        let to_train = test_set.label_indexes_in(&train_set.labels)?;
        let (test, skipped) = test_set.decode_all();
        super::super::print_skipped(&skipped);

        // The head: features of every training picture (not cached: part of its training cost),
        // then the logistic head `edge-tl train` fits.
        eprintln!(
            "head: embedding {} training pictures and fitting",
            train_set.items.len()
        );
        let start = Instant::now();
        let mut extractor = Extractor::load(&base, Outputs::Embedding)?;
        let head = train_folder(
            &train_set,
            &extractor,
            &EmbedOptions {
                no_cache: true,
                ..EmbedOptions::default()
            },
            &TrainParams::default(),
            &edge_tl::progress::Silent,
        )?
        .head;
        let head_train_s = start.elapsed().as_secs_f64();
        // Measured on the file `edge-tl train` would write.
        let tmp = tempfile::tempdir()?;
        let head_path = tmp.path().join("compare.head");
        edge_tl::head::file::save(&head, &head_path)?;
        let head_bytes = std::fs::metadata(&head_path)?.len();
        extractor.set_threads(1);
        let head_row = measure(&test, &to_train, &train_set.labels, |frame| {
            let input = preprocess::to_input(frame, &base.manifest);
            Ok(head.predict(&extractor.run(&input)?.embedding))
        })?;
        let head_row = Row {
            train_s: head_train_s,
            model_bytes: base.manifest.bytes.unwrap_or(0) + head_bytes,
            ..head_row
        };

        // Fine-tuning, exported and run in tract like any model.
        eprintln!("fine-tuning ({} epochs at most)", args.finetune.epochs);
        let out = args
            .out
            .clone()
            .unwrap_or_else(|| tmp.path().join("finetuned.onnx"));
        let (ft, exported, ft_train_s) = super::super::finetune::train_and_export(
            &base,
            &args.train,
            &out,
            &args.finetune,
            !args.json,
        )?;
        let model = super::super::resolve_spec(exported.onnx.to_str())?;
        let mut tuned = Extractor::load(&model, Outputs::EmbeddingAndLogits)?;
        tuned.set_threads(1);
        let ft_row = measure(&test, &to_train, &ft.labels, |frame| {
            let input = preprocess::to_input(frame, &model.manifest);
            Ok(softmax(&tuned.run(&input)?.logits.unwrap_or_default()))
        })?;
        let ft_row = Row {
            train_s: ft_train_s,
            model_bytes: exported.bytes,
            ..ft_row
        };

        if args.json {
            let line = serde_json::json!({
                "train": args.train,
                "test": args.test,
                "labels": train_set.labels.len(),
                "head": head_row,
                "finetuned": ft_row,
                "finetune": {
                    "trained_blocks": ft.cut.blocks,
                    "best_epoch": ft.best_epoch,
                    "refit_epochs": ft.refit_epochs,
                    "mix": ft.mix,
                    "epochs_run": ft.history.len(),
                },
            });
            println!("{line}");
        } else {
            println!(
                "{} labels, {} training and {} test pictures (fine-tuning chose its epoch on {} of \
                 them{})",
                train_set.labels.len(),
                ft.train_pictures + ft.val_pictures,
                head_row.test_pictures,
                ft.val_pictures,
                if ft.refit_epochs > 0 {
                    ", then trained again on all"
                } else {
                    ""
                }
            );
            println!(
                "{:<12} {:>8} {:>8} {:>9} {:>9} {:>11}",
                "", "top-1", "top-5", "train s", "MB", "latency ms"
            );
            for (name, r) in [("head", &head_row), ("fine-tuned", &ft_row)] {
                println!(
                    "{name:<12} {:>7.1}% {:>7.1}% {:>9.1} {:>9.1} {:>11.1}",
                    100.0 * r.accuracy,
                    100.0 * r.top5_accuracy,
                    r.train_s,
                    r.model_bytes as f64 / 1e6,
                    r.latency_ms
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    }

    /// Accuracy, top-5 accuracy and median latency of `classify` on the test pictures.
    fn measure(
        test: &[(usize, Frame)],
        to_train: &[usize],
        labels: &[String],
        classify: impl Fn(&Frame) -> anyhow::Result<Vec<f32>>,
    ) -> anyhow::Result<Row> {
        let mut results = Vec::new();
        let mut times = Vec::new();
        for (i, (label, frame)) in test.iter().enumerate() {
            let start = Instant::now();
            let probs = classify(frame)?;
            if i < LATENCY_PICTURES {
                times.push(start.elapsed().as_secs_f64() * 1e3);
            }
            results.push((to_train[*label], probs));
        }
        let report = evaluate(labels, &results);
        times.sort_by(f64::total_cmp);
        Ok(Row {
            accuracy: report.accuracy,
            top5_accuracy: report.top5_accuracy,
            train_s: 0.0,
            model_bytes: 0,
            latency_ms: times.get(times.len() / 2).copied().unwrap_or(0.0),
            test_pictures: results.len(),
        })
    }
}
