//! `edge-tl models list` and `edge-tl models pull`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use serde::Serialize;

use edge_tl::model::manifest::{Manifest, DEFAULT_MODEL};
use edge_tl::model::store;

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

pub fn list(json: bool) -> anyhow::Result<ExitCode> {
    let rows: Vec<Row> = Manifest::builtin()
        .into_iter()
        .map(|m| {
            let (h, w) = m.input_size();
            Row {
                default: m.name == DEFAULT_MODEL,
                installed: store::find_installed(&m),
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
    for d in store::search_dirs() {
        println!("  {}", d.display());
    }
    Ok(ExitCode::SUCCESS)
}

pub fn pull(name: &str, from: Option<&str>, dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let manifest = store::manifest_by_name(name)?;
    let dest = dir.unwrap_or_else(store::install_dir);
    let bar = super::byte_progress(&format!("pulling {name}"));
    let path = store::pull(&manifest, from, &dest, &bar)
        .with_context(|| format!("installing {name} into {}", dest.display()))?;
    println!(
        "installed {name} at {} (sha256 {})",
        path.display(),
        manifest.sha256
    );
    Ok(ExitCode::SUCCESS)
}
