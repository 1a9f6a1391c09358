//! `pod1 load` (being written).

use anyhow::Result;

/// (being written)
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `pod1 load`.
pub fn run(_args: &Args) -> Result<()> {
    anyhow::bail!("pod1 load is not written yet")
}
