//! `pod1 images` (being written).

use anyhow::Result;

/// (being written)
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `pod1 images`.
pub fn run(_args: &Args) -> Result<()> {
    anyhow::bail!("pod1 images is not written yet")
}
