//! One file per command, each with its flags (`Flags`, a clap `Args` struct) beside the thin
//! shell that wires library parts together; this file holds the list of commands, the
//! dispatch, and helpers several commands share.

mod args;
mod attack;
mod bench;
mod bench_loop;
mod capture;
mod classify;
mod compare;
mod config;
mod devices;
mod dream;
mod dump_inputs;
mod eval;
#[cfg(feature = "grad")]
mod explain;
mod features;
mod finetune;
mod models;
mod predict;
mod run;
mod run_services;
mod train;

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};

use edge_tl::head::Head;
use edge_tl::model::store::{self, ModelDirs, ResolvedModel};
use edge_tl::model::Kernels;
use edge_tl::progress::Progress;

/// The commands, in the order `edge-tl --help` lists them.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a settings file for `run --config`
    #[command(subcommand)]
    Config(config::Command),
    /// List V4L2 cameras with their formats, sizes and frame rates
    Devices(devices::Flags),
    /// Save camera frames as training pictures: <data>/<label>/<timestamp>-<n>.jpg
    Capture(capture::Flags),
    /// Classify frames in real time; one JSON line per result on stdout
    Run(Box<run::Flags>),
    /// List, inspect and install backbones
    #[command(subcommand)]
    Models(models::Command),
    /// What the network sees: a layer's feature maps for one picture, as a grid PNG
    Features(features::Flags),
    /// What the network sees: a picture optimised from noise until the network calls it a
    /// class (an ImageNet class, or a head's label with --head); needs `--features grad`
    Dream(dream::Flags),
    /// How easily the network is fooled: nudge pictures, within a pixel budget, until the
    /// network calls them the target class; needs `--features grad`
    Attack(attack::Flags),
    /// Fine-tune the backbone's last blocks and a new classifier on a workstation, and export
    /// an ONNX file the device runs with `--model FILE.onnx`; needs `--features grad`
    Finetune(finetune::Flags),
    /// Compare the on-device head (frozen features) with fine-tuning on the same train and
    /// test folders: accuracy, training time, model size, latency; needs `--features grad`
    Compare(compare::Flags),
    /// Name what is in pictures with the backbone's own ImageNet classifier (no head needed)
    Classify(classify::Flags),
    /// Train a head on a dataset folder (<data>/<label>/*.jpg)
    Train(train::Flags),
    /// Classify pictures with a trained head
    Predict(predict::Flags),
    /// Measure a head on a labelled test folder (<testset>/<label>/*.jpg)
    Eval(eval::Flags),
    /// Measure speed and memory on real pictures (see docs/performance.md for the onnxruntime
    /// peer)
    Bench(bench::Flags),
    /// Write the input tensors edge-tl feeds the network, for comparison with other runtimes
    DumpInputs(dump_inputs::Flags),
}

impl Command {
    /// Whether the command keeps running and must notice a closed stdout itself (so SIGPIPE
    /// stays ignored for it).
    pub fn streams(&self) -> bool {
        matches!(self, Command::Run(_) | Command::Capture(_))
    }
}

/// Runs one command.
pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Config(c) => config::run(c),
        Command::Devices(f) => devices::run(f),
        Command::Capture(f) => capture::run(f),
        Command::Run(f) => run::run(*f),
        Command::Models(c) => models::run(c),
        Command::Features(f) => features::run(f),
        Command::Dream(f) => dream::run(f),
        Command::Attack(f) => attack::run(f),
        Command::Finetune(f) => finetune::run(f),
        Command::Compare(f) => compare::run(f),
        Command::Classify(f) => classify::run(f),
        Command::Train(f) => train::run(f),
        Command::Predict(f) => predict::run(f),
        Command::Eval(f) => eval::run(f),
        Command::Bench(f) => bench::run(f),
        Command::DumpInputs(f) => dump_inputs::run(f),
    }
}

/// The error of a workstation command in a build without the gradient engine.
#[cfg(not(feature = "grad"))]
fn needs_grad(command: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "this edge-tl was built without the gradient engine that {command} needs (dream, attack, \
         finetune and compare do); build it with `cargo build --release --features grad` \
         (workstation tools: the device build leaves them out)"
    )
}

/// The folder of the shared test models and photos: `$EDGE_TL_SHARED`, default `../shared`.
/// Only `bench` defaults to it; the library never reads it.
fn shared_dir() -> std::path::PathBuf {
    std::env::var_os("EDGE_TL_SHARED")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from("../shared"))
}

/// The model folders: `$EDGE_TL_MODELS` (one folder, or several separated by `:`) first.
fn model_dirs() -> ModelDirs {
    let named = std::env::var_os("EDGE_TL_MODELS")
        .map(|v| std::env::split_paths(&v).collect::<Vec<_>>())
        .unwrap_or_default();
    ModelDirs::new(named)
}

/// A model by name or path, found in [`model_dirs`], to run on the kernels `EDGE_TL_KERNELS`
/// names (`fused`, the default: the best this CPU has; `avx512`, `avx2`, `neon`, `portable`,
/// or `tract`).
fn resolve_spec(spec: Option<&str>) -> anyhow::Result<ResolvedModel> {
    let mut model = store::resolve(spec, &model_dirs())?;
    model.kernels = kernels_from_env()?;
    Ok(model)
}

/// The kernels `EDGE_TL_KERNELS` names (unset: the best this CPU has).
fn kernels_from_env() -> anyhow::Result<Kernels> {
    std::env::var("EDGE_TL_KERNELS")
        .unwrap_or_default()
        .parse()
        .map_err(|e| anyhow::anyhow!("EDGE_TL_KERNELS: {e}"))
}

/// Resolves `--model`, defaulting to the head's backbone when a head is in play.
fn resolve_model(spec: Option<&str>, head: Option<&Head>) -> anyhow::Result<ResolvedModel> {
    let spec = spec.or(head.map(|h| h.backbone.name.as_str()));
    resolve_spec(spec).context("choosing the backbone (--model)")
}

/// Loads a head file with the path in the error.
fn load_head(path: &Path) -> anyhow::Result<Head> {
    edge_tl::head::file::load(path).with_context(|| format!("loading head {}", path.display()))
}

/// Prints the pictures a dataset run skipped, each with its file and reason.
fn print_skipped<'a>(skipped: impl IntoIterator<Item = &'a edge_tl::error::DecodeError>) {
    for e in skipped {
        eprintln!("skipped {}: {}", e.path().display(), e.reason());
    }
}

/// A progress bar on stderr (hidden when stderr is not a terminal), shown for the library's
/// long jobs.
struct Bar(ProgressBar);

impl Progress for Bar {
    fn set_total(&self, total: u64) {
        self.0.set_length(total);
    }
    fn advance(&self, n: u64) {
        self.0.inc(n);
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

/// A progress bar counting pictures.
fn progress(what: &str) -> Bar {
    styled_bar(what, "{msg} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
}

/// A progress bar counting bytes, for downloads.
fn byte_progress(what: &str) -> Bar {
    styled_bar(
        what,
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
    )
}

fn styled_bar(what: &str, template: &str) -> Bar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(template)
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    Bar(bar)
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
                let ranked = pipeline.top(&c, top);
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
