//! `edge-tl attack`: pictures nudged within a pixel budget until the network calls them the
//! target class, checked in tract on the int8 model too.

use std::path::PathBuf;

use clap::Args;

use super::args::ExplainArgs;
use edge_tl::settings::bounds::{self, flag};

#[derive(Debug, Args)]
#[cfg_attr(not(feature = "grad"), allow(dead_code))]
pub struct Flags {
    /// Pictures to attack (JPEG, PNG, GIF, BMP, WebP)
    #[arg(required = true)]
    photos: Vec<PathBuf>,
    /// The class to aim for: an ImageNet label (exact, or a unique part), or a head label
    #[arg(long, value_name = "LABEL")]
    target: String,
    /// Largest change of any pixel, as a fraction of the range (8/255, 0.03)
    #[arg(long, default_value = "8/255", value_name = "FRACTION")]
    eps: String,
    /// Change per step in pixel levels [default: a quarter of the budget, at least 1]
    #[arg(long, value_name = "LEVELS", value_parser = flag::<u8>(bounds::STEP_LEVELS))]
    step: Option<u8>,
    /// Most gradient steps per picture
    #[arg(long, default_value_t = 50, value_name = "N", value_parser = flag::<usize>(bounds::STEPS))]
    steps: usize,
    /// Stop once the target has this probability
    #[arg(long, default_value_t = 0.9, value_name = "P", value_parser = flag::<f32>(bounds::UNTIL))]
    until: f32,
    /// The PNG to write; with several pictures, a folder for <name>.adv.png files
    /// [default: adv.png, or adv/]
    #[arg(long, short = 'o', value_name = "PATH")]
    out: Option<PathBuf>,
    #[command(flatten)]
    explain: ExplainArgs,
}

#[cfg(not(feature = "grad"))]
pub fn run(_: Flags) -> anyhow::Result<std::process::ExitCode> {
    Err(super::needs_grad("attack"))
}

#[cfg(feature = "grad")]
pub use imp::run;

#[cfg(feature = "grad")]
mod imp {
    use super::Flags;
    use std::path::{Path, PathBuf};
    use std::process::ExitCode;

    use anyhow::Context;

    use super::super::explain::{target, top5, top5_text, Setup};
    use edge_tl::atomic_file::save_png;
    use edge_tl::explain::attack::{attack, parse_eps, AttackOptions};
    use edge_tl::explain::Scorer;
    use edge_tl::grad::{pixels, to_image};
    use edge_tl::preprocess;

    /// Counts over all pictures.
    #[derive(Default)]
    struct Tally {
        done: usize,
        fooled: usize,
        transferred: usize,
        failed: usize,
    }

    pub fn run(args: Flags) -> anyhow::Result<ExitCode> {
        let eps = parse_eps(&args.eps).map_err(anyhow::Error::msg)?;
        let options = AttackOptions {
            eps,
            step: args.step.unwrap_or((eps / 4).max(1)),
            max_steps: args.steps,
            until: args.until,
        };
        let many = args.photos.len() > 1;
        let out = args
            .out
            .clone()
            .unwrap_or_else(|| PathBuf::from(if many { "adv" } else { "adv.png" }));
        if many {
            std::fs::create_dir_all(&out)
                .with_context(|| format!("creating the output folder {}", out.display()))?;
        }
        let setup = Setup::load(&args.explain)?;
        let scorer = setup.scorer()?;
        let class = target(&scorer, &args.target).context("--target")?;
        let mut tally = Tally::default();
        for photo in &args.photos {
            let dest = if many {
                out.join(adv_name(photo))
            } else {
                out.clone()
            };
            match one(
                &setup,
                &scorer,
                photo,
                &dest,
                class,
                &options,
                args.explain.json,
            ) {
                Ok((fooled, transferred)) => {
                    tally.done += 1;
                    tally.fooled += usize::from(fooled);
                    tally.transferred += usize::from(transferred);
                }
                Err(e) => {
                    tally.failed += 1;
                    eprintln!("error: {e:#}");
                }
            }
        }
        if many || tally.failed > 0 {
            let pct = |n: usize| 100.0 * n as f64 / tally.done.max(1) as f64;
            eprintln!(
                "{} pictures attacked (eps {eps}/255): {} ({:.1}%) now {:?} in the float model, {} \
                 ({:.1}%) also in {} in tract{}",
                tally.done,
                tally.fooled,
                pct(tally.fooled),
                scorer.labels()[class],
                tally.transferred,
                pct(tally.transferred),
                setup.tract.model_name(),
                if tally.failed > 0 {
                    format!("; {} could not be read", tally.failed)
                } else {
                    String::new()
                }
            );
        }
        Ok(if tally.failed > 0 {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        })
    }

    /// `dog.102.jpg` -> `dog.102.adv.png`.
    fn adv_name(photo: &Path) -> PathBuf {
        let stem = photo.file_stem().unwrap_or(photo.as_os_str());
        let mut name = stem.to_os_string();
        name.push(".adv.png");
        PathBuf::from(name)
    }

    /// Attacks one picture; (fooled the float model, fooled tract too).
    fn one(
        setup: &Setup,
        scorer: &Scorer,
        photo: &Path,
        dest: &Path,
        class: usize,
        options: &AttackOptions,
        json: bool,
    ) -> anyhow::Result<(bool, bool)> {
        let frame = preprocess::decode_file(photo)?;
        let input = preprocess::to_input(&frame, &setup.model.manifest);
        let original = pixels(&input)?;
        let before = scorer.probs(&original)?;
        let result = attack(scorer, &original, class, options)
            .with_context(|| format!("attacking {}", photo.display()))?;
        let image = to_image(&result.pixels)?;
        save_png(&image, dest).with_context(|| format!("writing {}", dest.display()))?;
        let after = scorer.probs(&result.pixels)?;
        let int8 = setup
            .tract
            .probs(&image)
            .with_context(|| format!("checking {} in tract", dest.display()))?;
        let labels = scorer.labels();
        let is_top = |p: &[f32]| top5(p, labels).first().map(|r| &r.label) == Some(&labels[class]);
        let (fooled, transferred) = (is_top(&after), is_top(&int8));
        if json {
            let line = serde_json::json!({
                "path": photo,
                "out": dest,
                "target": labels[class],
                "target_prob": after[class],
                "original_target_prob": before[class],
                "top5": top5(&after, labels),
                "original_top5": top5(&before, labels),
                "linf": result.linf,
                "eps": options.eps,
                "steps": result.steps,
                "fooled": fooled,
                "int8_model": setup.tract.model_name(),
                "int8_target_prob": int8[class],
                "int8_top5": top5(&int8, labels),
                "transfers_int8": transferred,
            });
            println!("{line}");
        } else {
            println!(
                "{} -> {}: p({}) {:.1}% -> {:.1}% in {} steps, largest change {}/255",
                photo.display(),
                dest.display(),
                labels[class],
                100.0 * before[class],
                100.0 * after[class],
                result.steps,
                result.linf
            );
            println!("  before: {}", top5_text(&top5(&before, labels)));
            println!("  after:  {}", top5_text(&top5(&after, labels)));
            println!(
                "  {} in tract: {} ({})",
                setup.tract.model_name(),
                top5_text(&top5(&int8, labels)),
                if transferred {
                    "fooled too"
                } else {
                    "not fooled"
                }
            );
        }
        Ok((fooled, transferred))
    }
}
