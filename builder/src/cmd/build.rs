//! `pod1 build`: a manifest into a reproducible initramfs.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::build::{add_init, find_init, Manifest};
use crate::{initramfs, tree};

/// Build the pod's initramfs (gzip'd newc cpio), byte-for-byte reproducible.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pod manifest (YAML or JSON).
    pub manifest: PathBuf,
    /// Refuse fields pod1 would ignore (they are warnings otherwise).
    #[arg(long)]
    pub strict: bool,
    /// Pull registry images: always, missing (only absent ones) or never;
    /// replaces every container's imagePullPolicy [default: the manifest's].
    #[arg(long, value_name = "WHEN")]
    pub pull: Option<crate::image::policy::PullFlag>,
    /// Another file of ConfigMaps and Secrets the pod reads (repeatable).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// The network the pod is built for: user (a NIC; /etc/hosts,
    /// resolv.conf and status.podIP follow) or none (loopback only).
    #[arg(long, value_enum, default_value_t = crate::net::Mode::User, value_name = "MODE")]
    pub network: crate::net::Mode,
    /// Where to write the initramfs.
    #[arg(short, long, required_unless_present = "tree")]
    pub output: Option<PathBuf>,
    /// Also (or instead) write the same contents as a directory tree, for `pod1-init --root`.
    #[arg(long)]
    pub tree: Option<PathBuf>,
    /// The static init binary [default: pod1-init next to pod1].
    #[arg(long)]
    pub init: Option<PathBuf>,
}

/// Runs `pod1 build`.
pub fn run(args: &Args) -> Result<()> {
    let manifest = Manifest::load(&args.manifest, &args.files, args.strict, args.pull)?;
    let init = find_init(args.init.as_deref())?;
    let mut assembled =
        manifest.assemble(crate::build::default_vm().with_network(crate::net::for_mode(args.network)))?;
    add_init(&mut assembled.tree, &init)?;
    if let Some(out) = &args.output {
        // Secrets are in the initramfs as they are: only its owner reads it.
        let mode = if manifest.sources.secrets.is_empty() {
            0o644
        } else {
            0o600
        };
        let stats = write_atomically_mode(out, mode, |f| initramfs::write(&assembled.tree, f))?;
        let size = std::fs::metadata(out)?.len();
        println!(
            "{}: {} compressed ({} uncompressed), {} entries",
            out.display(),
            human(size),
            human(stats.cpio_bytes),
            stats.entries
        );
    }
    if let Some(dir) = &args.tree {
        write_tree(&assembled.tree, dir)?;
        println!(
            "{}: {} entries (mode 0700: it holds the images' setuid files and device nodes)",
            dir.display(),
            assembled.tree.len()
        );
    }
    for img in &assembled.images {
        println!(
            "  image {} {}: {} in {} entries",
            img.id,
            img.names.join(", "),
            human(img.bytes),
            img.entries
        );
    }
    Ok(())
}

/// Writes through a temporary file in the same directory, renamed into
/// place only when complete: a failed build leaves no partial output.
pub fn write_atomically<T>(out: &Path, f: impl FnOnce(&mut std::fs::File) -> Result<T>) -> Result<T> {
    write_atomically_mode(out, 0o644, f)
}

/// As [`write_atomically`], the output with `mode` (0600 for an initramfs
/// holding Secrets).
pub fn write_atomically_mode<T>(
    out: &Path,
    mode: u32,
    f: impl FnOnce(&mut std::fs::File) -> Result<T>,
) -> Result<T> {
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".pod1-build-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    let value = f(tmp.as_file_mut())?;
    tmp.as_file_mut().flush()?;
    tmp.as_file().sync_all()?;
    // The temporary file is created 0600; then it gets its mode.
    std::fs::set_permissions(tmp.path(), std::os::unix::fs::PermissionsExt::from_mode(mode))?;
    tmp.persist(out)
        .with_context(|| format!("cannot write {}", out.display()))?;
    Ok(value)
}

/// Writes the tree to `dir` through a temporary sibling; replaces `dir`
/// only if it is missing, empty, or an earlier tree (it has the plan).
fn write_tree(tree: &tree::Tree, dir: &Path) -> Result<()> {
    if dir.exists() {
        let earlier = dir.join(pod1_manifest::plan::PLAN_PATH).exists();
        let empty = std::fs::read_dir(dir)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if !earlier && !empty {
            bail!(
                "{} exists and is not a pod1 tree; choose another --tree directory",
                dir.display()
            );
        }
    }
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .prefix(".pod1-tree-")
        .tempdir_in(parent)?;
    tree::materialize(tree, tmp.path())?;
    // The images' setuid files and device nodes are in it: only its owner
    // may enter (pod1-init --root runs as root and needs nothing more).
    std::fs::set_permissions(tmp.path(), std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    if dir.exists() {
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("removing the earlier tree {}", dir.display()))?;
    }
    std::fs::rename(tmp.keep(), dir).with_context(|| format!("cannot write {}", dir.display()))?;
    Ok(())
}

/// `1.2 MB`-style sizes.
pub fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / f64::from(1 << 20)),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}
