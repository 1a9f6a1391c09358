//! Blobs: content-addressed files under `blobs/`, written through `ingest/`.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::fcntl::{Flock, FlockArg};
use sha2::{Digest, Sha256, Sha512};

use super::{sync_dir, ImageStore, UseGuard};
use crate::tree::hex;

/// The prefix of the temporary files [`ImageStore::put_blob`] writes in `ingest/`.
pub(super) const PUT_TMP: &str = ".put-";

/// A digest's algorithm and hex, checked: `sha256:` and 64 lowercase hex
/// digits, or `sha512:` and 128.
pub(super) fn parse_digest(digest: &str) -> Result<(&str, &str)> {
    let (alg, hex) = digest.split_once(':').unwrap_or(("", digest));
    let len = match alg {
        "sha256" => 64,
        "sha512" => 128,
        _ => bail!("unsupported or malformed digest {digest:?} (pod1 stores sha256: and sha512: digests)"),
    };
    if hex.len() != len
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        bail!("malformed digest {digest:?}: {alg}: takes {len} lowercase hex digits");
    }
    Ok((alg, hex))
}

/// A running hash of either algorithm.
#[derive(Debug, Clone)]
enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    fn new(alg: &str) -> Hasher {
        if alg == "sha512" {
            Hasher::Sha512(Sha512::new())
        } else {
            Hasher::Sha256(Sha256::new())
        }
    }
    fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }
    fn finish(self) -> String {
        match self {
            Hasher::Sha256(h) => format!("sha256:{}", hex(&h.finalize())),
            Hasher::Sha512(h) => format!("sha512:{}", hex(&h.finalize())),
        }
    }
}

/// [`BlobWriter::commit`]'s error when the content is not the blob: the
/// source's fault, unlike the store's own I/O errors.
#[derive(Debug)]
pub struct DigestMismatch(String);

impl std::fmt::Display for DigestMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DigestMismatch {}

/// The outcome of [`ImageStore::ingest`].
#[derive(Debug)]
pub enum Ingest {
    /// The blob is in the store already: nothing to download.
    Present,
    /// Write the blob's bytes here (from [`BlobWriter::offset`] on), then commit.
    Writing(BlobWriter),
}

/// A partial download, `ingest/<alg>-<hex>`, held under an exclusive
/// flock. Dropping it without [`BlobWriter::commit`] keeps what was written
/// for a later resume.
#[derive(Debug)]
pub struct BlobWriter {
    file: Flock<File>,
    path: PathBuf,
    blob: PathBuf,
    digest: String,
    size: u64,
    offset: u64,
    // Boxed: a SHA-512 state would make every `Ingest` large.
    hasher: Box<Hasher>,
    _guard: UseGuard,
}

impl ImageStore {
    /// `blobs/<alg>/<hex>` of a checked digest.
    fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        let (alg, hex) = parse_digest(digest)?;
        Ok(self.root.join("blobs").join(alg).join(hex))
    }

    /// Whether the blob is stored (false for a malformed digest).
    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).is_ok_and(|p| p.is_file())
    }

    /// The blob's content, checked against its digest; one larger than
    /// `limit` bytes is refused. A blob whose content does not match is
    /// removed, so that the next pull or load writes it again.
    pub fn read_blob(&self, digest: &str, limit: u64) -> Result<Vec<u8>> {
        let path = self.blob_path(digest)?;
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                bail!("blob {digest} is not in the image store: pull or load the image again")
            }
            Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
        };
        let mut data = Vec::new();
        (&mut file)
            .take(limit.saturating_add(1))
            .read_to_end(&mut data)
            .with_context(|| format!("reading {}", path.display()))?;
        if data.len() as u64 > limit {
            bail!(
                "blob {digest} is larger than the image size limit of {limit} bytes (set POD1_MAX_IMAGE_SIZE to raise it)"
            );
        }
        let (alg, _) = parse_digest(digest)?;
        let mut hasher = Hasher::new(alg);
        hasher.update(&data);
        let got = hasher.finish();
        if got != digest {
            // Only the file read, not one a writer renamed in meanwhile.
            let same = |m: fs::Metadata, n: fs::Metadata| m.ino() == n.ino() && m.dev() == n.dev();
            if let (Ok(m), Ok(n)) = (file.metadata(), fs::metadata(&path)) {
                if same(m, n) {
                    let _ = fs::remove_file(&path);
                }
            }
            bail!(
                "blob {digest} in the image store is corrupt (its content has digest {got}); \
                 it was removed: pull or load the image again"
            );
        }
        Ok(data)
    }

    /// Stores `data` (when not stored already) and returns its sha256 digest.
    pub fn put_blob(&self, data: &[u8]) -> Result<String> {
        let digest = format!("sha256:{}", hex(&Sha256::digest(data)));
        if self.has_blob(&digest) {
            return Ok(digest);
        }
        let _guard = self.in_use()?;
        let ingest = self.root.join("ingest");
        let mut tmp = tempfile::Builder::new()
            .prefix(PUT_TMP)
            .tempfile_in(&ingest)
            .with_context(|| format!("creating a temporary file in {}", ingest.display()))?;
        tmp.write_all(data)
            .and_then(|()| tmp.as_file().sync_all())
            .with_context(|| format!("writing {}", tmp.path().display()))?;
        let blob = self.blob_path(&digest)?;
        tmp.persist(&blob)
            .map_err(|e| e.error)
            .with_context(|| format!("storing {}", blob.display()))?;
        sync_dir(blob.parent().unwrap_or(&self.root))?;
        Ok(digest)
    }

    /// Starts (or resumes) writing the blob `digest` of `size` bytes: waits
    /// for whoever else is writing it, and answers [`Ingest::Present`] when
    /// the blob is (or, after that wait, has become) stored.
    pub fn ingest(&self, digest: &str, size: u64) -> Result<Ingest> {
        let blob = self.blob_path(digest)?;
        if blob.is_file() {
            return Ok(Ingest::Present);
        }
        let guard = self.in_use()?;
        let (alg, hex) = parse_digest(digest)?;
        let name = format!("ingest/{alg}-{hex}");
        let path = self.root.join(&name);
        let file = loop {
            let file = self
                .lock(&name, FlockArg::LockExclusive)?
                .with_context(|| format!("waiting for {}", path.display()))?;
            // The holder before us may have committed (renamed) or dropped
            // (deleted) the file we waited on: start again on the path's file.
            if still_at(&file, &path) {
                break file;
            }
        };
        if blob.is_file() {
            let _ = fs::remove_file(&path);
            return Ok(Ingest::Present);
        }
        let mut writer = BlobWriter {
            file,
            path,
            blob,
            digest: digest.to_string(),
            size,
            offset: 0,
            hasher: Box::new(Hasher::new(alg)),
            _guard: guard,
        };
        writer.hash_existing()?;
        Ok(Ingest::Writing(writer))
    }
}

/// Whether `file` is still the file at `path`.
fn still_at(file: &File, path: &Path) -> bool {
    match (file.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
        _ => false,
    }
}

impl BlobWriter {
    /// Hashes what an earlier attempt left, so that writing resumes after it;
    /// a partial longer than the blob starts over.
    fn hash_existing(&mut self) -> Result<()> {
        let len = self
            .file
            .metadata()
            .with_context(|| format!("reading {}", self.path.display()))?
            .len();
        if len > self.size {
            return self.restart();
        }
        self.file.seek(SeekFrom::Start(0))?;
        let mut buf = vec![0; 1 << 16];
        let mut done = 0;
        while done < len {
            let n = self
                .file
                .read(&mut buf)
                .with_context(|| format!("reading {}", self.path.display()))?;
            if n == 0 {
                break;
            }
            self.hasher.update(&buf[..n]);
            done += n as u64;
        }
        self.offset = done;
        self.file.seek(SeekFrom::Start(done))?;
        Ok(())
    }

    /// The bytes already written (from an earlier, interrupted attempt):
    /// ask the server for the rest (`Range: bytes=OFFSET-`).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The digest being written.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Empties the partial file, for a server that ignored the Range.
    pub fn restart(&mut self) -> Result<()> {
        self.file
            .set_len(0)
            .and_then(|()| self.file.seek(SeekFrom::Start(0)).map(drop))
            .with_context(|| format!("truncating {}", self.path.display()))?;
        self.offset = 0;
        *self.hasher = Hasher::new(if self.digest.starts_with("sha512:") {
            "sha512"
        } else {
            "sha256"
        });
        Ok(())
    }

    /// Checks the whole file's size and digest and moves it under `blobs/`.
    /// On a digest mismatch the partial file is deleted; a short file is
    /// kept for a resume.
    pub fn commit(mut self) -> Result<()> {
        if self.offset != self.size {
            bail!(
                "blob {} is incomplete: {} of its {} bytes were received",
                self.digest,
                self.offset,
                self.size
            );
        }
        let got = std::mem::replace(&mut *self.hasher, Hasher::new("sha256")).finish();
        if got != self.digest {
            let _ = fs::remove_file(&self.path);
            return Err(DigestMismatch(format!(
                "digest mismatch: the content has digest {got}, expected {}",
                self.digest
            ))
            .into());
        }
        self.file
            .sync_all()
            .with_context(|| format!("syncing {}", self.path.display()))?;
        fs::rename(&self.path, &self.blob).with_context(|| format!("storing {}", self.blob.display()))?;
        sync_dir(self.blob.parent().unwrap_or(&self.path))
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.offset + buf.len() as u64 > self.size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "blob {} is longer than the {} bytes its descriptor says",
                    self.digest, self.size
                ),
            ));
        }
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.offset += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}
