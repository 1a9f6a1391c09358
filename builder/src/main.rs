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
    Run(Box<cmd::run::Args>),
    Pull(cmd::pull::Args),
    Images(cmd::images::Args),
    Rmi(cmd::rmi::Args),
    Load(cmd::load::Args),
    Tag(cmd::tag::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Build(a) => cmd::build::run(a).map(|()| 0),
        Command::Plan(a) => cmd::plan::run(a).map(|()| 0),
        Command::Inspect(a) => cmd::inspect::run(a).map(|()| 0),
        Command::Run(a) => cmd::run::run(a).map(|code| u8::try_from(code).unwrap_or(EXIT_POD1_FAILED)),
        Command::Pull(a) => cmd::pull::run(a).map(|()| 0),
        Command::Images(a) => cmd::images::run(a).map(|()| 0),
        Command::Rmi(a) => cmd::rmi::run(a).map(|()| 0),
        Command::Load(a) => cmd::load::run(a).map(|()| 0),
        Command::Tag(a) => cmd::tag::run(a).map(|()| 0),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("pod1: error: {e:#}");
            ExitCode::from(EXIT_POD1_FAILED)
        }
    }
}
