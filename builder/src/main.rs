//! `pod1`: build a Kubernetes-style pod into an initramfs and boot it as a microVM.
//!
//! The modules live in the library (`lib.rs`); this is only the command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pod1::cmd;

/// Exit code when pod1 itself failed (bad manifest or image, QEMU or init failure).
pub const EXIT_POD1_FAILED: u8 = 125;

/// A pod that boots as a tiny virtual machine.
#[derive(Debug, Parser)]
#[command(name = "pod1", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Build(cmd::build::Args),
    Plan(cmd::plan::Args),
    Inspect(cmd::inspect::Args),
    Run(cmd::run::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Build(a) => cmd::build::run(a).map(|()| 0),
        Command::Plan(a) => cmd::plan::run(a).map(|()| 0),
        Command::Inspect(a) => cmd::inspect::run(a).map(|()| 0),
        Command::Run(a) => cmd::run::run(a).map(|code| u8::try_from(code).unwrap_or(EXIT_POD1_FAILED)),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("pod1: error: {e:#}");
            ExitCode::from(EXIT_POD1_FAILED)
        }
    }
}
