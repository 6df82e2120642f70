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
    if let Some(d) = &config.data {
        println!("  data    {}", d.display());
    }
    if let Some(l) = &config.http.listen {
        let token = if config.http.token.is_some() {
            "with a token"
        } else {
            "no token"
        };
        println!("  http    {l} ({token})");
    }
    if let Some(u) = &config.mqtt.url {
        println!("  mqtt    {u}");
    }
    Ok(ExitCode::SUCCESS)
}
