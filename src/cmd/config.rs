//! `edge-tl config check`: validate a settings file before the service reads it.

use std::path::Path;
use std::process::ExitCode;

use edge_tl::config::Config;

pub fn check(file: &Path) -> anyhow::Result<ExitCode> {
    let (config, _) = Config::load(file)?;
    println!("{}: ok", file.display());
    if let Some(s) = &config.source {
        println!("  source  {s}");
    }
    if let Some(h) = &config.head {
        println!("  head    {}", h.display());
    }
    Ok(ExitCode::SUCCESS)
}
