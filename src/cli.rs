//! The command line: the program's name, version and about text over the commands of
//! [`crate::cmd`], whose flags live beside each command.

use clap::Parser;

/// Transfer learning on small devices: learn new classes from a few pictures, on the device.
#[derive(Debug, Parser)]
#[command(name = "edge-tl", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: crate::cmd::Command,
}
