//! `edge-tl dream`: the picture the network finds most like a class.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use super::explain::{target, top5, top5_text, Setup};
use crate::cli::ExplainArgs;
use edge_tl::atomic_file::save_png;
use edge_tl::explain::dream::{dream, DreamOptions};
use edge_tl::grad::to_image;

pub struct DreamArgs {
    pub class: String,
    pub options: DreamOptions,
    pub every: usize,
    pub out: PathBuf,
    pub explain: ExplainArgs,
}

pub fn run(args: DreamArgs) -> anyhow::Result<ExitCode> {
    let setup = Setup::load(&args.explain)?;
    let scorer = setup.scorer()?;
    let class = target(&scorer, &args.class).context("--class")?;
    let label = &scorer.labels()[class];
    let json = args.explain.json;
    if !json {
        eprintln!(
            "dreaming {label:?} on {} for {} steps (tv {}, lr {})",
            setup.model.manifest.name, args.options.steps, args.options.tv, args.options.lr
        );
    }
    let every = args.every.max(1);
    let pixels = dream(&scorer, setup.net.input_size(), class, &args.options, |s| {
        if !json && (s.step % every == 0 || s.step == 1) {
            eprintln!(
                "step {:>4}: p({label}) = {:.4}  total variation {:.0}",
                s.step, s.target_prob, s.tv
            );
        }
    })?;
    let image = to_image(&pixels)?;
    save_png(&image, &args.out).with_context(|| format!("writing {}", args.out.display()))?;
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
            "steps": args.options.steps,
            "out": args.out,
        });
        println!("{line}");
    } else {
        println!(
            "wrote {}: p({label}) = {:.1}%",
            args.out.display(),
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
