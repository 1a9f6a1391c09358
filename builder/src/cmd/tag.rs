//! `pod1 tag` (being written).

use anyhow::Result;

/// (being written)
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `pod1 tag`.
pub fn run(_args: &Args) -> Result<()> {
    anyhow::bail!("pod1 tag is not written yet")
}
