//! `pod1 inspect`: what an initramfs holds.

use std::path::PathBuf;

use std::fmt::Write;

use anyhow::{Context, Result};
use pod1_manifest::plan::PLAN_PATH;

use crate::initramfs;

/// List an initramfs's entries and print the plan it carries.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The initramfs file.
    pub file: PathBuf,
}

/// Runs `pod1 inspect`.
pub fn run(args: &Args) -> Result<()> {
    let file =
        std::fs::File::open(&args.file).with_context(|| format!("cannot open {}", args.file.display()))?;
    let entries =
        initramfs::read(file).with_context(|| format!("{} is not an initramfs", args.file.display()))?;
    let mut out = String::new();
    for e in &entries {
        let kind = match e.mode & 0o170000 {
            0o040000 => 'd',
            0o120000 => 'l',
            0o020000 => 'c',
            0o060000 => 'b',
            0o010000 => 'p',
            _ => '-',
        };
        let link = match kind {
            'l' => format!(" -> {}", String::from_utf8_lossy(&e.data)),
            '-' if e.nlink > 1 => format!("  (inode {}, {} links)", e.ino, e.nlink),
            _ => String::new(),
        };
        let (perm, size) = (e.mode & 0o7777, e.data.len());
        writeln!(
            out,
            "{kind}{perm:04o} {:>5}:{:<5} {size:>9} {}{link}",
            e.uid,
            e.gid,
            crate::tree::shown(&e.name)
        )?;
    }
    let plan = entries
        .iter()
        .find(|e| e.name == PLAN_PATH.as_bytes())
        .with_context(|| format!("{} has no {PLAN_PATH}: not built by pod1", args.file.display()))?;
    writeln!(out, "\n{PLAN_PATH}:\n{}", String::from_utf8_lossy(&plan.data))?;
    crate::print(&out)
}
