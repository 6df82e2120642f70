//! `edge-tl finetune`: train the last blocks and a new classifier, export an ONNX file for the
//! device, and check that tract reads it back with the engine's answers.

use std::path::PathBuf;

use clap::Args;

use super::args::{FinetuneArgs, ModelArg};

#[derive(Debug, Args)]
#[cfg_attr(not(feature = "grad"), allow(dead_code))]
pub struct Flags {
    /// Training pictures in <data>/<label>/ folders
    #[arg(long, short = 'd', value_name = "DIR")]
    data: PathBuf,
    /// The ONNX file to write (a manifest <name>.toml and <name>.labels.txt go beside it)
    #[arg(long, short = 'o', value_name = "FILE.onnx")]
    out: PathBuf,
    #[command(flatten)]
    train: FinetuneArgs,
    /// One JSON object with the epochs and the files written, instead of text
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    model: ModelArg,
}

#[cfg(not(feature = "grad"))]
pub fn run(_: Flags) -> anyhow::Result<std::process::ExitCode> {
    Err(super::needs_grad("finetune"))
}

#[cfg(feature = "grad")]
pub use imp::{run, train_and_export};

#[cfg(feature = "grad")]
mod imp {
    use super::Flags;
    use std::path::Path;
    use std::process::ExitCode;
    use std::time::Instant;

    use anyhow::Context;

    use super::super::args::{FinetuneArgs, OptimizerArg, ScheduleArg};
    use edge_tl::dataset::Dataset;
    use edge_tl::finetune::export::{export, Exported};
    use edge_tl::finetune::{finetune, FinetuneOptions, Finetuned, OptimizerKind, Progress};
    use edge_tl::grad::{pixels, Net};
    use edge_tl::model::store::ResolvedModel;
    use edge_tl::model::{Extractor, Outputs};
    use edge_tl::predict::{argmax, softmax};
    use edge_tl::preprocess;

    /// The library's options from the flags.
    fn options(args: &FinetuneArgs) -> FinetuneOptions {
        FinetuneOptions {
            unfreeze: args.unfreeze,
            epochs: args.epochs,
            lr: args.lr,
            optimizer: match args.optimizer {
                OptimizerArg::Adam => OptimizerKind::Adam,
                OptimizerArg::Sgd => OptimizerKind::Sgd,
            },
            cosine: args.schedule == ScheduleArg::Cosine,
            batch: args.batch,
            augment: args.augment,
            crop_area: args.crop_area,
            val_fraction: args.val_split,
            patience: args.patience,
            weight_decay: args.weight_decay,
            label_smoothing: args.label_smoothing,
            mix: args.mix,
            refit: !args.no_refit,
            seed: args.seed,
        }
    }

    pub fn run(flags: Flags) -> anyhow::Result<ExitCode> {
        let (data, out, args, json) = (&flags.data, &flags.out, &flags.train, flags.json);
        let model = flags.model.model.as_deref();
        let base = super::super::resolve_model(model, None)?;
        let (ft, exported, seconds) = train_and_export(&base, data, out, args, !json)?;
        let agree = reload_check(&ft, &exported, data, 8)?;
        if json {
            let line = serde_json::json!({
                "labels": ft.labels,
                "trained_blocks": ft.cut.blocks,
                "train_pictures": ft.train_pictures,
                "val_pictures": ft.val_pictures,
                "best_epoch": ft.best_epoch,
                "refit_epochs": ft.refit_epochs,
                "mix": ft.mix,
                "epochs": ft.history,
                "train_s": seconds,
                "exported": exported,
                "reload_agreement": agree,
                "skipped": ft.skipped.iter().map(|e| serde_json::json!({"path": e.path(), "reason": e.reason()})).collect::<Vec<_>>(),
            });
            println!("{line}");
        } else {
            let best = &ft.history[ft.best_epoch.saturating_sub(1).min(ft.history.len() - 1)];
            println!(
                "wrote {} ({:.1} MB), {} and {}: {} labels, trained {} in {seconds:.0} s; kept epoch {}{}{}{}",
                exported.onnx.display(),
                exported.bytes as f64 / 1e6,
                exported.manifest.display(),
                exported.labels.display(),
                ft.labels.len(),
                ft.cut.blocks.join(", "),
                ft.best_epoch,
                best.val_accuracy
                    .map(|a| format!(" (validation accuracy {:.1}%)", 100.0 * a))
                    .unwrap_or_default(),
                if ft.refit_epochs > 0 {
                    format!(
                        ", then trained {} epochs again on all {} pictures",
                        ft.refit_epochs,
                        ft.train_pictures + ft.val_pictures
                    )
                } else {
                    String::new()
                },
                if ft.mix < 1.0 {
                    format!(
                        ", mixed {:.0}% with the starting weights",
                        100.0 * (1.0 - ft.mix)
                    )
                } else {
                    String::new()
                }
            );
            println!(
                "tract reads it back with the engine's answers on {} of {} pictures; run it with \
                 `edge-tl run --model {}` or `edge-tl classify --model {} PHOTO`",
                agree.0,
                agree.1,
                exported.onnx.display(),
                exported.onnx.display()
            );
        }
        Ok(ExitCode::SUCCESS)
    }

    /// Fine-tunes on `data` and writes `out`; (result, files, seconds).
    pub fn train_and_export(
        base: &ResolvedModel,
        data: &Path,
        out: &Path,
        args: &FinetuneArgs,
        show: bool,
    ) -> anyhow::Result<(Finetuned, Exported, f64)> {
        edge_tl::finetune::export::model_name(out)?;
        let start = Instant::now();
        let dataset = Dataset::open(data)
            .with_context(|| format!("reading training set {}", data.display()))?;
        let net = Net::load(&base.path)?;
        let bar = super::super::progress("caching the frozen layers").0;
        if !show {
            bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        let opts = options(args);
        let epochs = opts.epochs;
        let ft = finetune(net, &base.manifest, &dataset, &opts, |p| match p {
            Progress::Caching { done, total } => {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
                if done == total {
                    bar.finish_and_clear();
                }
            }
            Progress::Epoch(e) => {
                if show {
                    eprintln!(
                        "epoch {:>2}/{epochs}  lr {:.2e}  loss {:.3}  train {:.1}%{}",
                        e.epoch,
                        e.lr,
                        e.train_loss,
                        100.0 * e.train_accuracy,
                        match (e.val_accuracy, e.val_loss) {
                            (Some(a), Some(l)) =>
                                format!("  validation {:.1}% (loss {l:.3})", 100.0 * a),
                            _ => String::new(),
                        }
                    );
                }
            }
            Progress::Refit { epoch: e, of } => {
                if show {
                    eprintln!(
                        "refit {:>2}/{of}  lr {:.2e}  loss {:.3}  train {:.1}%  (every picture, \
                         validation ones included)",
                        e.epoch,
                        e.lr,
                        e.train_loss,
                        100.0 * e.train_accuracy
                    );
                }
            }
        })
        .with_context(|| format!("fine-tuning on {}", data.display()))?;
        super::super::print_skipped(&ft.skipped);
        let exported = export(&ft, base, out, args.int8)?;
        Ok((ft, exported, start.elapsed().as_secs_f64()))
    }

    /// Runs the exported file in tract on the first `n` pictures of `data` and counts those whose
    /// top label equals the engine's; (agreeing, checked).
    pub fn reload_check(
        ft: &Finetuned,
        exported: &Exported,
        data: &Path,
        n: usize,
    ) -> anyhow::Result<(usize, usize)> {
        let model = super::super::resolve_spec(exported.onnx.to_str())
            .with_context(|| format!("reading back {}", exported.onnx.display()))?;
        let tract = Extractor::load(&model, Outputs::EmbeddingAndLogits)?;
        let dataset = Dataset::open(data)?;
        let (mut agree, mut checked) = (0, 0);
        for item in dataset
            .items
            .iter()
            .step_by((dataset.items.len() / n.max(1)).max(1))
            .take(n)
        {
            let Ok(frame) = preprocess::decode_file(&item.path) else {
                continue;
            };
            let input = preprocess::to_input(&frame, &model.manifest);
            let engine = ft.probs(&pixels(&input)?)?.remove(0);
            let logits = tract.run(&input)?.logits.unwrap_or_default();
            checked += 1;
            agree += usize::from(argmax(&engine) == argmax(&softmax(&logits)));
        }
        Ok((agree, checked))
    }
}
