//! `edge-tl dream`: the picture the network finds most like a class.

use std::path::PathBuf;

use clap::Args;

use super::args::ExplainArgs;
use edge_tl::settings::bounds::{self, flag};

#[derive(Debug, Args)]
#[cfg_attr(not(feature = "grad"), allow(dead_code))]
pub struct Flags {
    /// The class: an ImageNet label (exact, or a unique part of it), or a head label
    #[arg(long = "class", value_name = "LABEL")]
    class: String,
    /// Gradient steps
    #[arg(long, default_value_t = 300, value_name = "N", value_parser = flag::<usize>(bounds::STEPS))]
    steps: usize,
    /// Weight of the total-variation penalty (smoothness) against the class log-probability
    #[arg(long, default_value_t = 0.001, value_name = "WEIGHT", value_parser = flag::<f64>(bounds::TV))]
    tv: f64,
    /// Adam step size, in pixel levels
    #[arg(long, default_value_t = 4.0, value_name = "LEVELS", value_parser = flag::<f64>(bounds::DREAM_LR))]
    lr: f64,
    /// Shift the picture randomly by up to N pixels each step (0: none)
    #[arg(long, default_value_t = 4, value_name = "N", value_parser = flag::<usize>(bounds::JITTER))]
    jitter: usize,
    /// Seed of the starting noise and the jitter
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print the class probability every N steps
    #[arg(long, default_value_t = 25, value_name = "N", value_parser = flag::<usize>(bounds::EVERY))]
    every: usize,
    /// Where to write the PNG
    #[arg(
        long,
        short = 'o',
        default_value = "ideal.png",
        value_name = "FILE.png"
    )]
    out: PathBuf,
    #[command(flatten)]
    explain: ExplainArgs,
}

#[cfg(not(feature = "grad"))]
pub fn run(_: Flags) -> anyhow::Result<std::process::ExitCode> {
    Err(super::needs_grad("dream"))
}

#[cfg(feature = "grad")]
pub use imp::run;

#[cfg(feature = "grad")]
mod imp {
    use super::Flags;
    use std::process::ExitCode;

    use anyhow::Context;

    use super::super::explain::{target, top5, top5_text, Setup};
    use edge_tl::atomic_file::save_png;
    use edge_tl::explain::dream::{dream, DreamOptions};
    use edge_tl::grad::to_image;

    pub fn run(flags: Flags) -> anyhow::Result<ExitCode> {
        let options = DreamOptions {
            steps: flags.steps,
            tv: flags.tv,
            lr: flags.lr,
            jitter: flags.jitter,
            seed: flags.seed,
        };
        let setup = Setup::load(&flags.explain)?;
        let scorer = setup.scorer()?;
        let class = target(&scorer, &flags.class).context("--class")?;
        let label = &scorer.labels()[class];
        let json = flags.explain.json;
        if !json {
            eprintln!(
                "dreaming {label:?} on {} for {} steps (tv {}, lr {})",
                setup.model.manifest.name, options.steps, options.tv, options.lr
            );
        }
        let every = flags.every;
        let pixels = dream(&scorer, setup.net.input_size(), class, &options, |s| {
            if !json && (s.step % every == 0 || s.step == 1) {
                eprintln!(
                    "step {:>4}: p({label}) = {:.4}  total variation {:.0}",
                    s.step, s.target_prob, s.tv
                );
            }
        })?;
        let image = to_image(&pixels)?;
        save_png(&image, &flags.out).with_context(|| format!("writing {}", flags.out.display()))?;
        // Scored again from the saved whole-level pixels: what the PNG really gets.
        let probs = scorer.probs(&pixels)?;
        let int8 = setup
            .tract
            .probs(&image)
            .context("checking the picture in tract")?;
        let engine_top = top5(&probs, scorer.labels());
        let int8_top = top5(&int8, scorer.labels());
        if json {
            let line = serde_json::json!({
                "target": label,
                "target_prob": probs[class],
                "top5": engine_top,
                "int8_model": setup.tract.model_name(),
                "int8_target_prob": int8[class],
                "int8_top5": int8_top,
                "steps": options.steps,
                "out": flags.out,
            });
            println!("{line}");
        } else {
            println!(
                "wrote {}: p({label}) = {:.1}%",
                flags.out.display(),
                100.0 * probs[class]
            );
            println!(
                "  {} (float, engine): {}",
                setup.model.manifest.name,
                top5_text(&engine_top)
            );
            println!(
                "  {} (tract): {}",
                setup.tract.model_name(),
                top5_text(&int8_top)
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}
