//! The `edge-tl` binary: parse arguments, run one command, print the error chain on failure.

mod cli;
mod cmd;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = cli::Cli::parse();
    if !cli.command.streams() {
        // Rust ignores SIGPIPE, so printing into a closed pipe (`| head`) panics. Commands
        // that print and end take the Unix default: end quietly. `run` and `capture` keep it
        // ignored: they notice a closed stdout themselves and must save what they hold.
        // SAFETY: no other thread exists yet; SIG_DFL is a valid disposition for SIGPIPE.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    match cmd::run(cli.command) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
