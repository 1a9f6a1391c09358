//! The build cache of `pod1 run MANIFEST`: one initramfs per manifest path,
//! under `<cache>/builds/<hash of the path>/`, rebuilt only when what it was
//! made from changes.
//!
//! Two checks, cheapest first. If the inputs' fingerprint is unchanged (the
//! manifest's bytes; the metadata of every file under each image path, of
//! the init and of pod1 itself), the cached file is used without reading
//! the images: importing them verifies every blob again, which takes about
//! 0.1 s for busybox and seconds for large images. Otherwise the images are
//! imported and the tree's content digest decides: an unchanged tree keeps
//! the cached file (a `touch` rebuilds nothing).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use pod1_manifest::downward::Node as VmSize;

use crate::build::{add_init, find_init, Manifest};
use crate::cmd::build::write_atomically_mode;
use crate::tree::hex;

/// The initramfs for `manifest`, from the cache when its inputs are
/// unchanged; calls `built` with its path when it was (re)written.
pub fn build(
    manifest: &Path,
    extra: &[PathBuf],
    init: Option<&Path>,
    strict: bool,
    vm: VmSize,
    pull: Option<crate::image::policy::PullFlag>,
    built: impl FnOnce(&Path),
) -> Result<PathBuf> {
    let abs = std::fs::canonicalize(manifest)
        .with_context(|| format!("cannot read manifest {}", manifest.display()))?;
    let key = hex(&Sha256::digest(abs.as_os_str().as_encoded_bytes()))[..16].to_string();
    let dir = crate::kernel::cache_dir().join("builds").join(key);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // An initramfs may hold Secrets: the directory is its user's alone
    // (also for images an older pod1 left readable).
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .with_context(|| format!("making {} private", dir.display()))?;
    let (img, digest_file, inputs_file) = (
        dir.join("pod.img"),
        dir.join("pod.digest"),
        dir.join("pod.inputs"),
    );
    let m = Manifest::load(manifest, extra, strict, pull)?;
    let init = find_init(init)?;
    let inputs = fingerprint(&m, &init, &vm)?;
    let cached =
        |file: &Path, want: &str| img.is_file() && std::fs::read_to_string(file).is_ok_and(|s| s == want);
    if cached(&inputs_file, &inputs) {
        return Ok(img);
    }
    let mut assembled = m.assemble(vm)?;
    add_init(&mut assembled.tree, &init)?;
    let digest = assembled.tree.digest();
    if !cached(&digest_file, &digest) {
        // The cache is its user's alone: an initramfs may hold Secrets.
        write_atomically_mode(&img, 0o600, |f| crate::initramfs::write(&assembled.tree, f))?;
        std::fs::write(&digest_file, &digest)?;
        built(&img);
    }
    // Last: a run interrupted before this line checks the images again.
    std::fs::write(&inputs_file, &inputs)?;
    Ok(img)
}

/// A digest of everything the build reads, from metadata alone (contents
/// only for the manifest).
fn fingerprint(m: &Manifest, init: &Path, vm: &VmSize) -> Result<String> {
    let mut h = Sha256::new();
    for file in std::iter::once(&m.path).chain(&m.extra) {
        let text = std::fs::read(file).with_context(|| format!("cannot read manifest {}", file.display()))?;
        // Each length first: moving text from one file to the next is a change.
        h.update((text.len() as u64).to_le_bytes());
        h.update(text);
    }
    // The downward API's node capacity.
    h.update(format!("{vm:?}").as_bytes());
    let pod1 = std::env::current_exe().context("cannot find the pod1 executable")?;
    for file in [pod1.as_path(), init] {
        walk(&mut h, file, true);
    }
    // The size bound decides whether an image is taken at all.
    h.update(
        std::env::var("POD1_MAX_IMAGE_SIZE")
            .unwrap_or_default()
            .as_bytes(),
    );
    // A hostPath of type "" is a file share or a directory one as the
    // host has it at build time.
    h.update(crate::virtiofs::fingerprint(&m.pod, &m.dir).as_bytes());
    for file in m.seccomp_profiles() {
        walk(&mut h, &m.dir.join(file), true);
    }
    for name in m.image_names().into_keys() {
        h.update(name.as_bytes());
        // An unparsable name fails in the import, with its message.
        match pod1_manifest::image::Source::parse(&name) {
            Ok(pod1_manifest::image::Source::Local(r)) => walk(&mut h, &m.dir.join(&r.path), true),
            // Store content is named by its digest: what the name resolved
            // to decides (a tag moved by a pull under Always is a change).
            Ok(pod1_manifest::image::Source::Registry(_)) => {
                let at = m.located.get(&name).map(|l| l.target.digest().to_string());
                h.update(at.unwrap_or_default().as_bytes());
            }
            Err(_) => {}
        }
    }
    Ok(hex(&h.finalize()))
}

/// Feeds `path`'s metadata into `h`, then, for a directory, that of
/// everything below it in name order. The change time moves with any write,
/// rename-over or `touch` (and cannot be set back); the inode and size
/// catch the rest. `follow`: the path itself may be a symlink to the image;
/// below it symlinks are not followed (a `dir:` image's links point
/// anywhere on the host). What cannot be read counts as a marker, and the
/// import then says what is wrong with it.
fn walk(h: &mut Sha256, path: &Path, follow: bool) {
    h.update(path.as_os_str().as_encoded_bytes());
    let md = if follow {
        std::fs::metadata(path)
    } else {
        std::fs::symlink_metadata(path)
    };
    let Ok(md) = md else {
        h.update(b"\0unreadable");
        return;
    };
    for n in [
        md.dev(),
        md.ino(),
        u64::from(md.mode()),
        md.size(),
        md.ctime() as u64,
        md.ctime_nsec() as u64,
    ] {
        h.update(n.to_le_bytes());
    }
    if md.is_dir() {
        let mut entries: Vec<PathBuf> = match std::fs::read_dir(path) {
            Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(_) => {
                h.update(b"\0unlistable");
                return;
            }
        };
        entries.sort();
        for e in entries {
            walk(h, &e, false);
        }
    }
}
