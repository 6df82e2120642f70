//! One file per command: thin shells that wire library parts together and print results.

#[cfg(feature = "grad")]
mod attack;
mod bench;
mod bench_loop;
mod capture;
mod classify;
#[cfg(feature = "grad")]
mod compare;
mod config;
mod devices;
#[cfg(feature = "grad")]
mod dream;
mod dump_inputs;
mod eval;
#[cfg(feature = "grad")]
mod explain;
mod features;
#[cfg(feature = "grad")]
mod finetune;
mod models;
mod predict;
mod run;
mod run_services;
mod train;

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::{Cli, Command, EmbedArgs, ModelsCommand};
use edge_tl::dataset::EmbedOptions;
use edge_tl::head::Head;
use edge_tl::model::store::{self, ResolvedModel};

/// Runs the parsed command line.
pub fn run(cli: Cli, matches: &clap::ArgMatches) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Models { command } => match command {
            ModelsCommand::List { json } => models::list(json),
            ModelsCommand::Pull { name, from, dir } => models::pull(&name, from.as_deref(), dir),
        },
        Command::Devices { json } => devices::run(json),
        Command::Config { command } => match command {
            crate::cli::ConfigCommand::Check { file } => config::check(&file),
        },
        Command::Capture {
            label,
            count,
            interval,
            countdown,
            data,
            source,
        } => capture::run(capture::CaptureArgs {
            label,
            count,
            interval,
            countdown,
            data,
            source,
        }),
        Command::Run {
            head,
            threshold,
            smooth,
            on_change,
            top,
            frames,
            no_watch,
            config,
            source,
            model,
            threads,
            service,
        } => run::run(run::RunArgs {
            service,
            mqtt_extra: Default::default(),
            threads: threads.threads,
            config,
            given: given_args(matches, "run"),
            head,
            live: edge_tl::live::LiveOptions {
                top,
                smooth,
                threshold,
                on_change,
                max_frames: frames,
            },
            watch: !no_watch,
            source,
            model: model.model,
        }),
        Command::Features {
            photo,
            layer,
            out,
            max_channels,
            model,
        } => features::run(features::FeaturesArgs {
            photo,
            layer,
            out,
            max_channels,
            model: model.model,
        }),
        #[cfg(feature = "grad")]
        Command::Dream {
            class,
            steps,
            tv,
            lr,
            jitter,
            seed,
            every,
            out,
            explain,
        } => dream::run(dream::DreamArgs {
            class,
            options: edge_tl::explain::dream::DreamOptions {
                steps,
                tv,
                lr,
                jitter,
                seed,
            },
            every,
            out,
            explain,
        }),
        #[cfg(feature = "grad")]
        Command::Attack {
            photos,
            target,
            eps,
            step,
            steps,
            until,
            out,
            explain,
        } => attack::run(attack::AttackArgs {
            photos,
            target,
            eps,
            step,
            steps,
            until,
            out,
            explain,
        }),
        #[cfg(feature = "grad")]
        Command::Finetune {
            data,
            out,
            train,
            json,
            model,
        } => finetune::run(&data, &out, &train, json, model.model.as_deref()),
        #[cfg(feature = "grad")]
        Command::Compare {
            train,
            test,
            out,
            finetune,
            json,
            model,
        } => compare::run(compare::CompareArgs {
            train,
            test,
            out,
            finetune,
            json,
            model: model.model,
        }),
        #[cfg(not(feature = "grad"))]
        Command::Dream { .. }
        | Command::Attack { .. }
        | Command::Finetune { .. }
        | Command::Compare { .. } => anyhow::bail!(
            "this edge-tl was built without the gradient engine that dream, attack, finetune and \
             compare need; build it with `cargo build --release --features grad` (workstation \
             tools: the device build leaves them out)"
        ),
        Command::Classify {
            files,
            top,
            json,
            model,
            threads,
        } => classify::run(&files, top, json, model.model.as_deref(), threads.resolve()),
        Command::Train {
            data,
            out,
            head,
            alpha,
            flip,
            folds,
            seed,
            json,
            model,
            embed,
        } => train::run(train::TrainArgs {
            data,
            out,
            head,
            alpha,
            flip,
            folds,
            seed,
            json,
            model: model.model,
            embed,
        }),
        Command::Predict {
            head,
            files,
            top,
            json,
            model,
            threads,
        } => predict::run(
            &head,
            &files,
            top,
            json,
            model.model.as_deref(),
            threads.resolve(),
        ),
        Command::Eval {
            head,
            testset,
            json,
            model,
            embed,
        } => eval::run(&head, &testset, json, model.model.as_deref(), &embed),
        Command::Bench {
            photos,
            rounds,
            train_data,
            stream,
            loop_frames,
            profile,
            json,
            model,
            threads,
        } => bench::run(bench::BenchArgs {
            profile,
            threads: threads.threads.unwrap_or(1),
            photos,
            rounds,
            train_data,
            stream,
            loop_frames,
            json,
            model: model.model,
        }),
        Command::DumpInputs {
            out,
            files,
            with_outputs,
            model,
        } => dump_inputs::run(&out, &files, with_outputs, model.model.as_deref()),
    }
}

/// Resolves `--model`, defaulting to the head's backbone when a head is in play.
fn resolve_model(spec: Option<&str>, head: Option<&Head>) -> anyhow::Result<ResolvedModel> {
    let spec = spec.or(head.map(|h| h.backbone.name.as_str()));
    store::resolve(spec).context("choosing the backbone (--model)")
}

/// Loads a head file with the path in the error.
fn load_head(path: &Path) -> anyhow::Result<Head> {
    edge_tl::head::file::load(path).with_context(|| format!("loading head {}", path.display()))
}

/// Embedding options from the flags.
fn embed_options(args: &EmbedArgs, flip: bool) -> EmbedOptions {
    let mut o = EmbedOptions {
        flip,
        cache_dir: args.cache_dir.clone(),
        no_cache: args.no_cache,
        ..EmbedOptions::default()
    };
    if let Some(j) = args.jobs {
        o.jobs = j.max(1);
    }
    o
}

/// Prints the pictures a dataset run skipped, each with its file and reason.
fn print_skipped<'a>(skipped: impl IntoIterator<Item = &'a edge_tl::error::DecodeError>) {
    for e in skipped {
        eprintln!("skipped {}: {}", e.path().display(), e.reason());
    }
}

/// A progress bar on stderr counting pictures (hidden when stderr is not a terminal).
fn progress(what: &str) -> ProgressBar {
    styled_bar(what, "{msg} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
}

/// A progress bar on stderr counting bytes, for downloads.
fn byte_progress(what: &str) -> ProgressBar {
    styled_bar(
        what,
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
    )
}

fn styled_bar(what: &str, template: &str) -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(template)
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

/// The arguments of a subcommand that the user gave (flag or environment variable), as
/// opposed to clap defaults: only those override the settings file.
fn given_args(matches: &clap::ArgMatches, subcommand: &str) -> std::collections::HashSet<String> {
    let Some(sub) = matches.subcommand_matches(subcommand) else {
        return Default::default();
    };
    sub.ids()
        .filter(|id| {
            sub.value_source(id.as_str())
                .is_some_and(|s| s != clap::parser::ValueSource::DefaultValue)
        })
        .map(|id| id.to_string())
        .collect()
}

/// Opens the source named on the command line.
fn open_source(
    args: &crate::cli::SourceArgs,
) -> anyhow::Result<Box<dyn edge_tl::source::FrameSource>> {
    let options = edge_tl::source::SourceOptions {
        looping: args.looping,
        replay_fps: args.replay_fps,
        camera: edge_tl::source::Want {
            format: args.format,
            size: args.size,
            fps: args.fps,
        },
    };
    Ok(edge_tl::source::open(&args.source, &options)?)
}

/// A flag set by SIGINT or SIGTERM; a second SIGINT ends the process at once.
fn stop_flag() -> anyhow::Result<std::sync::Arc<std::sync::atomic::AtomicBool>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, 130, stop.clone())
            .context("installing the signal handler")?;
        signal_hook::flag::register(signal, stop.clone())
            .context("installing the signal handler")?;
    }
    Ok(stop)
}

/// Classifies each file and prints one line (or JSON object) per file; a file that cannot be
/// read goes to stderr with its reason and the others go on. Exit code 1 if any failed.
fn print_classified(
    pipeline: &edge_tl::pipeline::Pipeline,
    files: &[std::path::PathBuf],
    top: usize,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let mut failed = 0;
    for path in files {
        match pipeline.classify_file(path) {
            Ok(c) => {
                let ranked = pipeline.top(&c, top.max(1));
                if json {
                    let line = serde_json::json!({
                        "path": path,
                        "label": ranked[0].label,
                        "prob": ranked[0].prob,
                        "top": ranked,
                    });
                    println!("{line}");
                } else {
                    let answers: Vec<String> = ranked
                        .iter()
                        .map(|r| format!("{} {:.1}%", r.label, 100.0 * r.prob))
                        .collect();
                    println!("{}: {}", path.display(), answers.join(", "));
                }
            }
            Err(e) => {
                failed += 1;
                eprintln!("error: {:#}", anyhow::Error::from(e));
            }
        }
    }
    if failed > 0 {
        eprintln!(
            "{failed} of {} pictures could not be classified",
            files.len()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
