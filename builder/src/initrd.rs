//! The initramfs QEMU loads: a build from `pod1 build` (or a manifest's
//! cached build), inflated on the host, with the kernel's modules appended.

use std::io::{BufReader, Read, Seek, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::tree::Tree;

/// Whether `path` is an initramfs (gzip or newc magic) rather than a manifest.
pub fn is_initramfs(path: &Path) -> Result<bool> {
    let head = file_head(path)?;
    Ok(head.starts_with(GZIP_MAGIC) || head.starts_with(b"070701"))
}

/// The first bytes of a gzip stream.
const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];

/// Up to the first 6 bytes of `path`: enough for the gzip and newc magics.
fn file_head(path: &Path) -> Result<Vec<u8>> {
    let mut head = Vec::with_capacity(6);
    let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    f.take(6).read_to_end(&mut head)?;
    Ok(head)
}

/// The initramfs QEMU loads: the pod's archive, inflated on the host, then a
/// second archive with the kernel modules the init loads when `kernel` has
/// `modules` (overlayfs, the channel's virtio drivers) as modules (the
/// kernel unpacks concatenated archives one after the other).
///
/// Inflating takes the host a few milliseconds; the guest's gunzip took
/// about 100 ms of a 1.2 s boot under TCG (BENCHMARKS.md). The uncompressed
/// copy sits in guest memory until the kernel has unpacked it, so an archive
/// that would take more than a quarter of `memory_mib` goes as it is, and so
/// does one that is not made of gzip members alone (another compressor, zero
/// padding): the kernel reads those itself, as before.
pub fn guest_initrd(initrd: &Path, modules: Option<Tree>, memory_mib: u32, work: &Path) -> Result<PathBuf> {
    let combined = work.join("initrd");
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(&combined).with_context(|| format!("creating {}", combined.display()))?,
    );
    let limit = u64::from(memory_mib) << 18; // a quarter of the guest's memory, in bytes
    let inflated = file_head(initrd)?.starts_with(GZIP_MAGIC) && inflate(initrd, &mut out, limit)?;
    if !inflated && modules.is_none() {
        return Ok(initrd.to_path_buf());
    }
    if !inflated {
        out.rewind()?;
        out.get_mut().set_len(0)?;
        let len = std::io::copy(&mut std::fs::File::open(initrd)?, &mut out)?;
        // The kernel takes a cpio header only at a multiple of 4 bytes
        // into the initrd, and skips zeros between archives: without the
        // padding, modules after an archive of odd length are "invalid
        // magic" to it, and silently missing.
        out.write_all(&[0u8; 3][..((4 - len % 4) % 4) as usize])?;
    }
    if let Some(modules) = modules {
        crate::initramfs::write_uncompressed(&modules, &mut out)?;
    }
    out.flush()?;
    Ok(combined)
}

/// Writes the gzip members of `path` inflated to `out`; false (and `out`
/// left to be rewritten) when the file is not gzip members alone or inflates
/// to more than `limit` bytes.
fn inflate(path: &Path, out: &mut impl Write, limit: u64) -> Result<bool> {
    let mut gz = flate2::read::MultiGzDecoder::new(BufReader::new(std::fs::File::open(path)?));
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = match gz.read(&mut buf) {
            Ok(0) => return Ok(true),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return Ok(false),
        };
        total += n as u64;
        if total > limit {
            return Ok(false);
        }
        out.write_all(&buf[..n])?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{write::GzEncoder, Compression};

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn inflated(file: &[u8], limit: u64) -> Option<Vec<u8>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("initrd");
        std::fs::write(&path, file).unwrap();
        let mut out = Vec::new();
        inflate(&path, &mut out, limit).unwrap().then_some(out)
    }

    #[test]
    fn inflates_concatenated_members() {
        let file = [gz(b"first archive"), gz(b" second")].concat();
        assert_eq!(
            inflated(&file, 1 << 20).as_deref(),
            Some(&b"first archive second"[..])
        );
    }

    #[test]
    fn modules_follow_an_archive_left_as_it_is_at_a_multiple_of_4() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pod.img");
        let mut padded = gz(b"archive");
        padded.extend([0u8; 5]);
        padded.resize(padded.len() / 4 * 4 + 3, 0); // zeros to an odd length
        std::fs::write(&path, &padded).unwrap();
        let mut modules = Tree::default();
        modules
            .insert("m", crate::tree::Node::file(b"x".to_vec(), 0o644))
            .unwrap();
        let combined = std::fs::read(guest_initrd(&path, Some(modules), 512, dir.path()).unwrap()).unwrap();
        let at = combined.windows(6).position(|w| w == b"070701").unwrap();
        assert_eq!(at % 4, 0);
        assert_eq!(&combined[..padded.len()], &padded[..]);
        assert!(combined[padded.len()..at].iter().all(|b| *b == 0));
    }

    #[test]
    fn leaves_what_it_cannot_inflate_whole() {
        let mut padded = gz(b"archive");
        padded.extend([0u8; 512]);
        assert_eq!(inflated(&padded, 1 << 20), None, "zero padding");
        let whole = gz(b"archive");
        assert_eq!(inflated(&whole[..whole.len() - 4], 1 << 20), None, "truncated");
        assert_eq!(inflated(&gz(&[7u8; 100_000]), 50_000), None, "over the limit");
    }
}
