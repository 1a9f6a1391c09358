//! `pod1 pull` (being written).

use anyhow::Result;

/// (being written)
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `pod1 pull`.
pub fn run(_args: &Args) -> Result<()> {
    anyhow::bail!("pod1 pull is not written yet")
}
