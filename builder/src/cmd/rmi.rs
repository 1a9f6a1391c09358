//! `pod1 rmi` (being written).

use anyhow::Result;

/// (being written)
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `pod1 rmi`.
pub fn run(_args: &Args) -> Result<()> {
    anyhow::bail!("pod1 rmi is not written yet")
}
