//! Image import: the transports skopeo users know, unpacked into a [`Tree`].
//!
//! Every blob is checked against its digest (and every layer against the
//! config's diff_ids) before it is used; layers are applied in order with
//! whiteouts; hostile entries are refused with the image, layer and entry named.

mod dir;
mod docker;
pub(crate) mod oci;
pub mod policy;
pub mod progress;
pub mod pull;
pub mod registry;
pub mod store;

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use pod1_manifest::image::{Source, Transport};
use pod1_manifest::ImageConfig;
use sha2::{Digest, Sha256, Sha512};

use crate::tree::{hex, Tree};

/// An imported image.
#[derive(Debug)]
pub struct Image {
    /// Entrypoint, Cmd, Env, WorkingDir, User.
    pub config: ImageConfig,
    /// The image ID as the runtimes give it: `sha256:` and its config's
    /// digest; empty for a `dir:` root filesystem, which has no config.
    pub id: String,
    /// The unpacked root filesystem.
    pub tree: Tree,
}

/// The default bound of an image: any file the import reads (a blob, an
/// archive) and the unpacked root filesystem's data. The whole image is
/// held in memory and then in the VM's memory, so it is far more than any
/// pod can boot with.
pub const DEFAULT_MAX_IMAGE_BYTES: u64 = 4 << 30;

/// The image size bound: `POD1_MAX_IMAGE_SIZE` (bytes, or a quantity such
/// as `8Gi`), else [`DEFAULT_MAX_IMAGE_BYTES`].
pub fn max_image_bytes() -> Result<u64> {
    match std::env::var("POD1_MAX_IMAGE_SIZE") {
        Err(_) => Ok(DEFAULT_MAX_IMAGE_BYTES),
        Ok(v) => pod1_manifest::quantity::Quantity::Text(v.clone())
            .whole()
            .filter(|n| *n > 0)
            .with_context(|| format!("POD1_MAX_IMAGE_SIZE={v:?} is not a size (e.g. 8Gi or 8589934592)")),
    }
}

/// Reads at most `allowed` bytes of `path`, refusing a larger file with a
/// message naming the image size limit (`allowed` is what of it is left).
fn read_bounded(path: &Path, allowed: u64, limit: u64) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut data = Vec::new();
    file.take(allowed + 1)
        .read_to_end(&mut data)
        .with_context(|| format!("reading {}", path.display()))?;
    if data.len() as u64 > allowed {
        bail!(
            "{} takes the image past its size limit of {limit} bytes (set POD1_MAX_IMAGE_SIZE to raise it)",
            path.display()
        );
    }
    Ok(data)
}

/// Imports the image named by a manifest's `image` field: a registry
/// reference from the store where `located` says it is (see
/// [`policy::ensure`]); a local one from its path, relative to `base` (the
/// manifest's directory).
pub fn import(reference: &str, base: &Path, located: &BTreeMap<String, pull::Located>) -> Result<Image> {
    let limit = max_image_bytes()?;
    let r = match Source::parse(reference).map_err(anyhow::Error::msg)? {
        Source::Local(r) => r,
        Source::Registry(_) => {
            let l = located
                .get(reference)
                .context("the image was not looked up in the store (pod1 pull it first)")?;
            let store = store::ImageStore::open_default()?;
            // Held while the blobs are read: a concurrent rmi's collection waits.
            let _in_use = store.in_use()?;
            return oci::import_stored(&store, &l.target, limit)
                .with_context(|| format!("{} in the store {}", l.name, store.root().display()));
        }
    };
    let path = base.join(&r.path);
    if !path.exists() {
        bail!(
            "{} does not exist (relative paths are taken from the manifest's directory)",
            path.display()
        );
    }
    match r.transport {
        Transport::Oci => oci::import(&DirStore(path, limit), r.tag.as_deref(), limit),
        Transport::OciArchive => oci::import(&TarStore::open(&path, limit)?, r.tag.as_deref(), limit),
        Transport::DockerArchive => docker::import(&TarStore::open(&path, limit)?, r.tag.as_deref(), limit),
        Transport::Dir => dir::import(&path, limit),
    }
}

/// Where an image's files come from: a directory or an archive.
trait Store {
    /// The contents of `path`, relative to the layout's root.
    fn read(&self, path: &str) -> Result<Vec<u8>>;
    /// Whether `path` exists.
    fn exists(&self, path: &str) -> bool;
}

/// An image layout directory.
struct DirStore(PathBuf, u64);

impl Store for DirStore {
    fn read(&self, path: &str) -> Result<Vec<u8>> {
        read_bounded(&self.0.join(path), self.1, self.1)
    }
    fn exists(&self, path: &str) -> bool {
        self.0.join(path).exists()
    }
}

/// A tar archive of an image layout, held in memory.
struct TarStore {
    name: PathBuf,
    files: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl TarStore {
    /// Holds the archive's regular files, at most `limit` bytes of them.
    fn open(path: &Path, limit: u64) -> Result<TarStore> {
        let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let mut files = BTreeMap::new();
        let mut total = 0u64;
        let mut archive = tar::Archive::new(io::BufReader::new(file));
        let entries = archive
            .entries()
            .with_context(|| format!("{} is not a tar archive", path.display()))?;
        for entry in entries {
            let mut entry =
                entry.with_context(|| format!("{} is not a valid tar archive", path.display()))?;
            if entry.header().entry_type() != tar::EntryType::Regular {
                continue;
            }
            let name = crate::tree::clean(&entry.path_bytes()).map_err(anyhow::Error::msg)?;
            let shown = crate::tree::shown(&name);
            let mut data = Vec::new();
            (&mut entry)
                .take(limit - total + 1)
                .read_to_end(&mut data)
                .with_context(|| format!("reading {shown} in {}", path.display()))?;
            total += data.len() as u64;
            if total > limit {
                bail!(
                    "{}: {shown} takes the archive past the image size limit of {limit} bytes (set POD1_MAX_IMAGE_SIZE to raise it)",
                    path.display()
                );
            }
            files.insert(name, data);
        }
        Ok(TarStore {
            name: path.to_path_buf(),
            files,
        })
    }
}

impl Store for TarStore {
    fn read(&self, path: &str) -> Result<Vec<u8>> {
        let key = crate::tree::clean(path.as_bytes()).map_err(anyhow::Error::msg)?;
        self.files
            .get(&key)
            .cloned()
            .with_context(|| format!("{} has no file {path}", self.name.display()))
    }
    fn exists(&self, path: &str) -> bool {
        crate::tree::clean(path.as_bytes()).is_ok_and(|k| self.files.contains_key(&k))
    }
}

/// `sha256:<hex>` or `sha512:<hex>` of `data`.
fn digest_of(algorithm: &str, data: &[u8]) -> Result<String> {
    Ok(match algorithm {
        "sha256" => hex(&Sha256::digest(data)),
        "sha512" => hex(&Sha512::digest(data)),
        other => bail!("unsupported digest algorithm {other:?}"),
    })
}

/// Checks `data` against a digest string like `sha256:abc...`.
fn verify(what: &str, digest: &str, data: &[u8]) -> Result<()> {
    let (algorithm, want) = digest
        .split_once(':')
        .with_context(|| format!("{what}: malformed digest {digest:?}"))?;
    let got = digest_of(algorithm, data)?;
    if got != want {
        bail!("{what} {digest} is corrupt: its content has digest {algorithm}:{got}");
    }
    Ok(())
}

/// Applies one layer blob (gzip'd or plain tar) to `tree`, checking the
/// uncompressed stream against `diff_id` when the config gives one.
fn apply_layer(tree: &mut Tree, name: &str, blob: &[u8], diff_id: Option<&str>, limit: u64) -> Result<()> {
    let reader: Box<dyn Read + '_> = match blob {
        [0x1f, 0x8b, ..] => Box::new(flate2::read::MultiGzDecoder::new(blob)),
        // A zstd frame, or a skippable one.
        [0x28, 0xb5, 0x2f, 0xfd, ..] | [0x50..=0x5f, 0x2a, 0x4d, 0x18, ..] => Box::new(ZstdFrames {
            rest: blob,
            frame: None,
        }),
        _ => Box::new(blob),
    };
    let mut hashing = HashingReader {
        inner: reader,
        hasher: Sha256::new(),
    };
    tree.apply_layer(&mut hashing, limit)
        .with_context(|| format!("layer {name}"))?;
    // tar stops at its end marker; hash the rest of the stream too.
    io::copy(&mut hashing, &mut io::sink()).with_context(|| format!("layer {name}: reading to its end"))?;
    if let Some(diff_id) = diff_id {
        let got = format!("sha256:{}", hex(&hashing.hasher.finalize()));
        if diff_id.starts_with("sha256:") && got != diff_id {
            bail!(
                "layer {name} is corrupt: uncompressed it has digest {got}, the image config says {diff_id}"
            );
        }
    }
    Ok(())
}

/// Zstandard frames one after another, as zstd:chunked layers hold them
/// (ruzstd's decoder reads one frame); skippable frames are passed over.
struct ZstdFrames<'a> {
    rest: &'a [u8],
    frame: Option<ruzstd::decoding::StreamingDecoder<&'a [u8], ruzstd::decoding::FrameDecoder>>,
}

impl Read for ZstdFrames<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(frame) = &mut self.frame {
                let n = frame.read(buf)?;
                if n > 0 || buf.is_empty() {
                    return Ok(n);
                }
                self.rest = *frame.get_ref();
                self.frame = None;
            }
            match self.rest {
                [] => return Ok(0),
                // A skippable frame: magic 0x184D2A5?, then its length (LE).
                [0x50..=0x5f, 0x2a, 0x4d, 0x18, a, b, c, d, rest @ ..] => {
                    let len = u32::from_le_bytes([*a, *b, *c, *d]) as usize;
                    self.rest = rest
                        .get(len..)
                        .ok_or_else(|| bad_zstd("a skippable frame runs past the end"))?;
                }
                _ => {
                    let frame = ruzstd::decoding::StreamingDecoder::new(self.rest)
                        .map_err(|e| bad_zstd(&e.to_string()))?;
                    self.frame = Some(frame);
                }
            }
        }
    }
}

fn bad_zstd(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("invalid zstd stream: {why}"))
}

struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// The parts of an OCI/Docker image config that decide how a container runs.
fn image_config(config: &oci_spec::image::ImageConfiguration) -> Result<ImageConfig> {
    let os = config.os().to_string();
    let arch = config.architecture().to_string();
    if os != "linux" || arch != "amd64" {
        bail!("the image is for {os}/{arch}; pod1 runs linux/amd64 images");
    }
    let c = config.config().clone().unwrap_or_default();
    Ok(ImageConfig {
        entrypoint: c.entrypoint().clone().unwrap_or_default(),
        cmd: c.cmd().clone().unwrap_or_default(),
        env: c.env().clone().unwrap_or_default(),
        working_dir: c.working_dir().clone().unwrap_or_default(),
        user: c.user().clone().unwrap_or_default(),
        stop_signal: c.stop_signal().clone().unwrap_or_default(),
    })
}

/// Test layers, shared by the image and store tests.
#[cfg(test)]
pub(crate) mod testing {
    /// A tar of regular files, owned by root, mode 0644, mtime 0.
    pub(crate) fn tar(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            b.append_data(&mut h, path, *data).expect("a tar in memory");
        }
        b.into_inner().expect("a tar in memory")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::process::{Command, Stdio};

    fn tar_of(files: &[(&str, &str)]) -> Vec<u8> {
        let files: Vec<(&str, &[u8])> = files.iter().map(|(p, d)| (*p, d.as_bytes())).collect();
        testing::tar(&files)
    }

    /// The real zstd tool, as registries' producers use it.
    fn zstd(data: &[u8]) -> Vec<u8> {
        let mut child = Command::new("zstd")
            .args(["-q", "-c", "--check"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the zstd tool (apt-get install zstd)");
        let mut stdin = child.stdin.take().unwrap();
        let data = data.to_vec();
        let writer = std::thread::spawn(move || stdin.write_all(&data));
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        assert!(out.status.success());
        out.stdout
    }

    fn diff_id(tar: &[u8]) -> String {
        format!("sha256:{}", hex(&Sha256::digest(tar)))
    }

    #[test]
    fn zstd_layers_of_several_frames_and_skippable_ones() {
        let tar = tar_of(&[("a", "first"), ("b", "second frame")]);
        // Split the stream in two frames with a skippable frame between them,
        // as zstd:chunked writes its layers.
        let (one, two) = tar.split_at(1024);
        let mut blob = zstd(one);
        blob.extend([0x5e, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 1, 2, 3]);
        blob.extend(zstd(two));
        let mut tree = Tree::default();
        apply_layer(&mut tree, "l", &blob, Some(&diff_id(&tar)), u64::MAX).unwrap();
        assert_eq!(tree.read("b"), Some(&b"second frame"[..]));
        // The uncompressed digest is still checked.
        let e = apply_layer(&mut Tree::default(), "l", &blob, Some(&diff_id(b"x")), u64::MAX).unwrap_err();
        assert!(format!("{e:#}").contains("is corrupt"), "{e:#}");
        // A cut stream is an error, never a silently short layer.
        let cut = &blob[..blob.len() - 9];
        assert!(apply_layer(&mut Tree::default(), "l", cut, Some(&diff_id(&tar)), u64::MAX).is_err());
        let bad_skip = [0x50, 0x2a, 0x4d, 0x18, 0xff, 0xff, 0, 0];
        let e = apply_layer(&mut Tree::default(), "l", &bad_skip, None, u64::MAX).unwrap_err();
        assert!(format!("{e:#}").contains("skippable"), "{e:#}");
    }

    #[test]
    fn gzip_and_plain_layers() {
        let tar = tar_of(&[("etc/x", "y")]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        for blob in [gz.finish().unwrap(), tar.clone()] {
            let mut tree = Tree::default();
            apply_layer(&mut tree, "l", &blob, Some(&diff_id(&tar)), u64::MAX).unwrap();
            assert_eq!(tree.read("etc/x"), Some(&b"y"[..]));
        }
    }
}
