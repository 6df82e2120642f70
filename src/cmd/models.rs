//! `edge-tl models list`, `models pull` and `models import`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use serde::Serialize;

use edge_tl::atomic_file;
use edge_tl::frame::Frame;
use edge_tl::model::import::{self, ImportOptions};
use edge_tl::model::manifest::{Manifest, Normalize, ResizeMode, DEFAULT_MODEL};
use edge_tl::model::{store, Extractor, Outputs};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Known backbones: name, size, embedding width, installed or not
    List {
        /// One JSON array instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Download (or copy) a backbone, check its sha256 and install it
    Pull {
        /// Name from `edge-tl models list`
        name: String,
        /// An http(s) address or a local file to install from [default: the manifest's URLs]
        #[arg(long, value_name = "URL|FILE")]
        from: Option<String>,
        /// Folder to install into [default: first of $EDGE_TL_MODELS, else the user data folder]
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Describe your own ONNX image classifier: write the manifest beside it (FILE.toml) after
    /// checking that it loads and runs on a picture; then use it with `--model FILE.onnx`
    Import(ImportFlags),
}

#[derive(Debug, clap::Args)]
pub struct ImportFlags {
    /// The ONNX file
    file: PathBuf,
    /// Name used in heads and `--model` [default: the file name without .onnx]
    #[arg(long)]
    name: Option<String>,
    /// The image input, when the graph has several
    #[arg(long, value_name = "NAME")]
    input: Option<String>,
    /// Input size the network was trained at, when the file leaves it open: N or HxW
    #[arg(long, value_name = "N|HxW", value_parser = size)]
    size: Option<(usize, usize)>,
    /// Value range a float input expects: raw, unit, tf or imagenet (required for float inputs)
    #[arg(long, value_name = "RANGE", value_parser = normalize)]
    normalize: Option<Normalize>,
    /// How a picture becomes the input: stretch (whole picture) or center-crop
    #[arg(long, value_enum)]
    resize: Option<ResizeArg>,
    /// The tensor of features a head learns from, when none or several are found
    #[arg(long, value_name = "TENSOR")]
    embedding: Option<String>,
    /// The classifier's output tensor, or `none` [default: found from the graph]
    #[arg(long, value_name = "TENSOR")]
    logits: Option<String>,
    /// Labels of the classifier's output: a file beside the model, one label per line
    #[arg(long, value_name = "FILE")]
    labels: Option<String>,
    /// Picture to check the model on [default: a generated test pattern]
    #[arg(long, value_name = "FILE")]
    photo: Option<PathBuf>,
    /// Replace a manifest that is already there
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ResizeArg {
    Stretch,
    CenterCrop,
}

fn size(s: &str) -> Result<(usize, usize), String> {
    let parse = |v: &str| {
        v.trim()
            .parse::<usize>()
            .ok()
            .filter(|&n| (8..=4096).contains(&n))
    };
    let parsed = match s.split_once(['x', 'X']) {
        Some((h, w)) => parse(h).zip(parse(w)),
        None => parse(s).map(|n| (n, n)),
    };
    parsed.ok_or_else(|| format!("{s:?}: give N or HxW, each from 8 to 4096 pixels"))
}

fn normalize(s: &str) -> Result<Normalize, String> {
    import::normalize_by_name(s.trim())
        .ok_or_else(|| format!("{s:?}: one of {}", import::NORMALIZE_NAMES))
}

pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::List { json } => list(json),
        Command::Pull { name, from, dir } => pull(&name, from.as_deref(), dir),
        Command::Import(flags) => import_model(flags),
    }
}

fn import_model(flags: ImportFlags) -> anyhow::Result<ExitCode> {
    let file = &flags.file;
    let sidecar = file.with_extension("toml");
    if file.extension().and_then(|e| e.to_str()) != Some("onnx") {
        anyhow::bail!(
            "{}: name the .onnx file (its manifest is written beside it as <name>.toml)",
            file.display()
        );
    }
    if sidecar.exists() && !flags.force {
        anyhow::bail!(
            "{}: a manifest is already there; pass --force to replace it",
            sidecar.display()
        );
    }
    let sha256 = store::sha256_file(file).with_context(|| format!("reading {}", file.display()))?;
    let opts = ImportOptions {
        name: flags.name,
        input: flags.input,
        size: flags.size,
        normalize: flags.normalize,
        resize: flags.resize.map(|r| match r {
            ResizeArg::Stretch => ResizeMode::Stretch,
            ResizeArg::CenterCrop => ResizeMode::CenterCrop,
        }),
        embedding: flags.embedding,
        logits: flags.logits,
        labels: flags.labels,
    };
    let found = import::inspect(file, &sha256, &opts)?;
    let m = &found.manifest;
    for note in &found.notes {
        println!("note: {note}");
    }
    // Run it before writing anything: a manifest that does not load is not written.
    let mut model = store::finish(m.clone(), file.clone(), sha256)?;
    model.kernels = super::kernels_from_env()?;
    let outputs = match m.logits {
        Some(_) => Outputs::EmbeddingAndLogits,
        None => Outputs::Embedding,
    };
    let extractor = Extractor::load(&model, outputs)
        .with_context(|| format!("loading {} with the manifest found", file.display()))?;
    let (frame, what) = match &flags.photo {
        Some(p) => (
            edge_tl::preprocess::decode_file(p)?,
            p.display().to_string(),
        ),
        None => (test_pattern(), "a generated test pattern".to_string()),
    };
    let features = extractor
        .run(&edge_tl::preprocess::to_input(&frame, m))
        .with_context(|| format!("running {} on {what}", file.display()))?;
    if features.embedding.iter().any(|v| !v.is_finite()) {
        anyhow::bail!(
            "{}: the embedding {} is not finite on {what}; the input range may be wrong (--normalize)",
            file.display(),
            m.embedding.output
        );
    }
    let (h, w) = m.input_size();
    println!(
        "input {} {w}x{h} {:?} {:?}, normalize {}",
        m.input.name,
        m.input.layout,
        m.input.dtype,
        match &m.preprocess.normalize {
            Normalize::Raw => "raw (in the graph)".to_string(),
            Normalize::MeanStd { mean, std } => format!("mean {mean:?} std {std:?}"),
        }
    );
    println!(
        "embedding {} ({} values)",
        m.embedding.output, m.embedding.dim
    );
    match (&m.logits, &features.logits, &model.labels) {
        (Some(l), Some(logits), Some(labels)) => {
            let best = edge_tl::predict::argmax(logits);
            println!(
                "classifier {} ({} classes, labels {}{}); on {what}: {}",
                l.output,
                logits.len(),
                l.labels,
                if found.assumed_labels.is_some() {
                    ", assumed from the width: pass --labels if they are not ImageNet's"
                } else {
                    ""
                },
                labels.get(best).map_or("?", String::as_str)
            );
        }
        _ => println!("no classifier output kept (classify needs one; heads do not)"),
    }
    atomic_file::write(&sidecar, m.to_toml().as_bytes())
        .with_context(|| format!("writing {}", sidecar.display()))?;
    println!(
        "wrote {}; use it with --model {}",
        sidecar.display(),
        file.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// A colour gradient with a few edges: enough to run every layer when no photo is given.
fn test_pattern() -> Frame {
    Frame::new(image::RgbImage::from_fn(320, 240, |x, y| {
        let edge = if (x / 40 + y / 40) % 2 == 0 { 60 } else { 0 };
        image::Rgb([
            (x * 255 / 320) as u8,
            (y * 255 / 240) as u8,
            (128 + edge) as u8,
        ])
    }))
}

#[derive(Serialize)]
struct Row {
    name: String,
    default: bool,
    description: String,
    file: String,
    bytes: Option<u64>,
    embedding_dim: usize,
    input: String,
    installed: Option<PathBuf>,
}

fn list(json: bool) -> anyhow::Result<ExitCode> {
    let dirs = super::model_dirs();
    let rows: Vec<Row> = Manifest::builtin()
        .into_iter()
        .map(|m| {
            let (h, w) = m.input_size();
            Row {
                default: m.name == DEFAULT_MODEL,
                installed: dirs.find_installed(&m),
                input: format!("{w}x{h} {:?}", m.input.dtype).to_lowercase(),
                embedding_dim: m.embedding.dim,
                bytes: m.bytes,
                file: m.file,
                description: m.description,
                name: m.name,
            }
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    let width = rows.iter().map(|r| r.name.len() + 1).max().unwrap_or(4);
    println!(
        "{:<width$} {:>7} {:>5} {:<12} installed",
        "name", "MB", "dim", "input"
    );
    for r in &rows {
        println!(
            "{:<width$} {:>7.1} {:>5} {:<12} {}",
            format!("{}{}", r.name, if r.default { "*" } else { "" }),
            r.bytes.unwrap_or(0) as f64 / 1e6,
            r.embedding_dim,
            r.input,
            r.installed
                .as_ref()
                .map_or("no".to_string(), |p| p.display().to_string())
        );
    }
    println!("\n* default. Model folders searched, in order:");
    for d in dirs.search() {
        println!("  {}", d.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn pull(name: &str, from: Option<&str>, dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let manifest = store::manifest_by_name(name)?;
    let dest = dir.unwrap_or_else(|| super::model_dirs().install_dir());
    let bar = super::byte_progress(&format!("pulling {name}"));
    let path = edge_tl::model::pull::pull(&manifest, from, &dest, &bar)
        .with_context(|| format!("installing {name} into {}", dest.display()))?;
    println!(
        "installed {name} at {} (sha256 {})",
        path.display(),
        manifest.sha256
    );
    Ok(ExitCode::SUCCESS)
}
