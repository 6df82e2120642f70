//! The `edge-tl` binary: parse arguments, run one command, print the error chain on failure.

mod cli;
mod cmd;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    // Parsed in two steps so `run` can tell flags the user gave from defaults (the settings
    // file sits between them).
    let matches = cli::Cli::command().get_matches();
    let cli = cli::Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if !matches!(
        cli.command,
        cli::Command::Run { .. } | cli::Command::Capture { .. }
    ) {
        // Rust ignores SIGPIPE, so printing into a closed pipe (`| head`) panics. Commands
        // that print and end take the Unix default: end quietly. `run` and `capture` keep it
        // ignored: they notice a closed stdout themselves and must save what they hold.
        // SAFETY: no other thread exists yet; SIG_DFL is a valid disposition for SIGPIPE.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    match cmd::run(cli, &matches) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
