//! `edge-tl models list` and `edge-tl models pull`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use serde::Serialize;

use edge_tl::model::manifest::{Manifest, DEFAULT_MODEL};
use edge_tl::model::store;

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
}

pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::List { json } => list(json),
        Command::Pull { name, from, dir } => pull(&name, from.as_deref(), dir),
    }
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
    println!(
        "{:<20} {:>7} {:>5} {:<12} installed",
        "name", "MB", "dim", "input"
    );
    for r in &rows {
        println!(
            "{:<20} {:>7.1} {:>5} {:<12} {}",
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
