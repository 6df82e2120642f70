//! `edge-tl config check`: validate a settings file before the service reads it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use edge_tl::settings::{file, RunSettings, SettingsError};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Parse and check a settings file; name the exact key and problem if it is wrong
    Check {
        /// The file, e.g. /etc/edge-tl/config.toml
        file: PathBuf,
    },
}

pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    let Command::Check { file: path } = command;
    let layer = file::load(&path)?;
    // The checks that involve several keys, as `run` makes them; a token may still come from
    // the environment of the service, so its absence is a note here, not an error.
    let token_note = match RunSettings::resolve(layer.clone()) {
        Ok(_) => None,
        Err(SettingsError::NoToken(addr)) => Some(addr),
        Err(e) => return Err(e.into()),
    };
    println!("{}: ok", path.display());
    if let Some(s) = &layer.source {
        println!("  source  {s}");
    }
    for c in layer.cameras.iter().flatten() {
        let head = c
            .head
            .as_ref()
            .map_or(String::new(), |h| format!(" (head {})", h.display()));
        println!("  camera  {}: {}{head}", c.name, c.source);
    }
    if let Some(h) = &layer.head {
        println!("  head    {}", h.display());
    }
    if let Some(d) = &layer.data {
        println!("  data    {}", d.display());
    }
    if let Some(l) = &layer.http_listen {
        let token = if layer.http_token.is_some() {
            "with a token"
        } else {
            "no token"
        };
        println!("  http    {l} ({token})");
    }
    if let Some(u) = &layer.mqtt_url {
        println!("  mqtt    {u}");
    }
    if let Some(addr) = token_note {
        println!(
            "note: {addr} is not a loopback address: `run` refuses it unless a token comes from \
             --http-token-file, EDGE_TL_HTTP_TOKEN or --http-token"
        );
    }
    Ok(ExitCode::SUCCESS)
}
