//! The local image store: what `pod1 pull` and `pod1 load` write and
//! builds read by name.
//!
//! **Layout.** The store is an OCI image layout at
//! `$POD1_CACHE/images` (default `~/.cache/pod1/images`): `oci-layout`,
//! `index.json` and `blobs/<alg>/<hex>`, so skopeo and umoci read it as
//! they read any layout (`skopeo inspect oci:ROOT:docker.io/library/busybox:1.36`).
//! Each `index.json` entry is a manifest (or index) descriptor annotated
//! `org.opencontainers.image.ref.name` with the image's full normalised
//! reference (`docker.io/library/busybox:1.36`, or `REPO@sha256:…` for an
//! image pulled by digest). The directories are created 0700 and blobs
//! 0600: the store may hold private images.
//!
//! **Atomicity.** A blob is stored once, under its digest. It is written
//! to a file under `ingest/`, fsync'd, checked (size and digest) and only
//! then renamed into `blobs/`: a crash, a Ctrl-C or a bad download never
//! leaves a half or wrong blob under `blobs/`. `index.json` is rewritten
//! whole (a temporary file, fsync, rename) under an exclusive flock on
//! `index.lock`, so concurrent `set_name`s never lose each other's names.
//!
//! **Garbage collection.** `gc.lock` is held shared ([`ImageStore::in_use`])
//! by anyone writing blobs or reading an image (pulls, loads, builds, `tag`,
//! `images`) and exclusively by [`ImageStore::gc`]: gc never deletes a blob
//! that a running pull has written but not yet named. gc keeps every blob
//! reachable from an `index.json` entry (indexes, manifests, configs,
//! layers) and deletes the rest, with leftover temporary files and partial
//! downloads nobody holds. `pod1 rmi` removes names under `index.lock`,
//! then tries gc without waiting: when another pod1 holds the store, the
//! blobs stay until the next `rmi`.
//!
//! **Partial downloads.** [`ImageStore::ingest`] keeps a download in
//! `ingest/<alg>-<hex>`, under an exclusive flock on that file: two pulls of
//! one blob never interleave, the second waits and then finds the blob
//! present. A download cut short stays there for an HTTP Range resume.

mod blob;
mod gc;
pub mod load;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::fcntl::{Flock, FlockArg};
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};
use serde::Serialize;

pub use blob::{BlobWriter, DigestMismatch, Ingest};
pub use gc::GcStats;

/// The annotation naming an `index.json` entry.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The `oci-layout` file's content.
const OCI_LAYOUT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;

/// The largest `index.json`, manifest or config the store reads.
const MAX_JSON: u64 = 16 << 20;

/// The prefix of the temporary files `index.json` is written through.
const INDEX_TMP: &str = ".index.json.";

/// A local image store (see the module documentation).
#[derive(Debug)]
pub struct ImageStore {
    root: PathBuf,
}

/// A shared hold on the store: garbage collection waits until it is dropped.
#[derive(Debug)]
pub struct UseGuard {
    _lock: Flock<File>,
}

/// One name in the store, as `pod1 images` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listed {
    /// The full normalised reference; `None` for an entry another tool
    /// added without a name.
    pub name: Option<String>,
    /// The digest of the named manifest (or index).
    pub digest: String,
    /// The image ID: the linux/amd64 image's config digest (`None` when
    /// the store lacks it, or an index has no linux/amd64 image).
    pub id: Option<String>,
    /// The config's `created`, as the config gives it (RFC 3339).
    pub created: Option<String>,
    /// Manifest, config and layers of the linux/amd64 image, compressed, in bytes.
    pub size: Option<u64>,
}

impl ImageStore {
    /// Opens the store at `root`, creating the layout if `root` is missing
    /// or empty; refuses a directory that holds something else.
    pub fn open(root: PathBuf) -> Result<ImageStore> {
        let store = ImageStore { root };
        let root = &store.root;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .with_context(|| format!("creating the image store {}", root.display()))?;
        if store.complete() {
            return Ok(store);
        }
        store.check_is_ours()?;
        // Set up under index.lock: two first runs must not both write an
        // empty index.json over each other's first name.
        let _lock = store.index_lock()?;
        store.check_is_ours()?;
        if !root.join("oci-layout").exists() {
            fs::set_permissions(root, fs::Permissions::from_mode(0o700))
                .with_context(|| format!("setting the mode of {}", root.display()))?;
            // The marker first: a crash after it leaves a layout the next
            // open completes.
            store.write_atomic("oci-layout", ".oci-layout.", OCI_LAYOUT.as_bytes())?;
        }
        if !root.join("index.json").exists() {
            let empty = serde_json::json!({"schemaVersion": 2, "manifests": []});
            store.write_atomic("index.json", INDEX_TMP, empty.to_string().as_bytes())?;
        }
        for dir in ["blobs/sha256", "blobs/sha512", "ingest"] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(root.join(dir))
                .with_context(|| format!("creating {}", root.join(dir).display()))?;
        }
        Ok(store)
    }

    /// The store at `$POD1_CACHE/images` (default `~/.cache/pod1/images`).
    pub fn open_default() -> Result<ImageStore> {
        ImageStore::open(crate::kernel::cache_dir().join("images"))
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Holds `gc.lock` shared until the guard is dropped: take it before
    /// writing the first blob of an image and keep it until the image is
    /// named, and while reading an image. Waits while a gc runs.
    pub fn in_use(&self) -> Result<UseGuard> {
        let lock = self
            .lock("gc.lock", FlockArg::LockShared)?
            .context("waiting for the image store's gc.lock")?;
        Ok(UseGuard { _lock: lock })
    }

    /// The descriptor named `name` (a full normalised reference), if any.
    pub fn resolve(&self, name: &str) -> Result<Option<Descriptor>> {
        Ok(self
            .read_index()?
            .manifests()
            .iter()
            .find(|d| ref_name(d) == Some(name))
            .cloned())
    }

    /// Names `target` (a manifest or index in the store) `name`, replacing
    /// an entry of that name. `name` must be a full normalised reference.
    /// Hold [`ImageStore::in_use`] from writing the blobs until this returns.
    pub fn set_name(&self, name: &str, target: &Descriptor) -> Result<()> {
        check_name(name)?;
        let digest = target.digest().to_string();
        if !self.has_blob(&digest) {
            bail!("cannot name {name}: its manifest {digest} is not in the image store");
        }
        let mut entry = target.clone();
        let mut annotations = entry.annotations().clone().unwrap_or_default();
        annotations.insert(REF_NAME.to_string(), name.to_string());
        entry.set_annotations(Some(annotations));
        self.update_index(|entries| {
            entries.retain(|d| ref_name(d) != Some(name));
            entries.push(entry);
        })?;
        Ok(())
    }

    /// Removes the name `name`; its blobs stay until [`ImageStore::gc`].
    pub fn remove_name(&self, name: &str) -> Result<Option<Descriptor>> {
        let mut removed = None;
        self.update_index(|entries| {
            entries.retain(|d| {
                let named = ref_name(d) == Some(name);
                if named && removed.is_none() {
                    removed = Some(d.clone());
                }
                !named
            });
        })?;
        Ok(removed)
    }

    /// Every `index.json` entry, with its image's ID, creation time and size.
    pub fn list(&self) -> Result<Vec<Listed>> {
        let _guard = self.in_use()?;
        let index = self.read_index()?;
        let mut out = Vec::new();
        for d in index.manifests() {
            let mut listed = Listed {
                name: ref_name(d).map(str::to_string),
                digest: d.digest().to_string(),
                id: None,
                created: None,
                size: None,
            };
            // An image whose blobs are missing or unreadable is still listed.
            if let Ok((manifest_size, manifest)) = self.platform_manifest(d) {
                let config = manifest.config();
                listed.id = Some(config.digest().to_string());
                let layers: u64 = manifest.layers().iter().map(Descriptor::size).sum();
                listed.size = Some(manifest_size + config.size() + layers);
                listed.created = self
                    .read_blob(config.digest().as_ref(), MAX_JSON)
                    .ok()
                    .and_then(|raw| crate::image::oci::parse_config(&raw).ok())
                    .and_then(|c| c.created().clone());
            }
            out.push(listed);
        }
        Ok(out)
    }

    /// The linux/amd64 manifest `d` names (itself, or picked from an index),
    /// with its size.
    fn platform_manifest(&self, d: &Descriptor) -> Result<(u64, ImageManifest)> {
        let read = |d: &Descriptor| self.read_blob(d.digest().as_ref(), MAX_JSON.min(d.size()));
        let chosen = crate::image::oci::platform_manifest(&read, d)?;
        let manifest = ImageManifest::from_reader(&read(&chosen)?[..])?;
        Ok((chosen.size(), manifest))
    }

    /// Whether every part of the layout is there.
    fn complete(&self) -> bool {
        [
            "oci-layout",
            "index.json",
            "blobs/sha256",
            "blobs/sha512",
            "ingest",
        ]
        .iter()
        .all(|p| self.root.join(p).exists())
    }

    /// Refuses a root that is neither an OCI layout nor empty (the lock
    /// files aside, which a concurrent first open may have made).
    fn check_is_ours(&self) -> Result<()> {
        let root = &self.root;
        if let Ok(raw) = fs::read(root.join("oci-layout")) {
            let ok = serde_json::from_slice::<serde_json::Value>(&raw).is_ok_and(|v| {
                v["imageLayoutVersion"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("1."))
            });
            if !ok {
                bail!(
                    "{} is not an OCI image layout pod1 reads (its oci-layout file is not version 1.x)",
                    root.display()
                );
            }
            return Ok(());
        }
        let entries = fs::read_dir(root).with_context(|| format!("reading {}", root.display()))?;
        for entry in entries {
            let name = entry
                .with_context(|| format!("reading {}", root.display()))?
                .file_name();
            let name = name.to_string_lossy();
            if !matches!(&*name, "index.lock" | "gc.lock") && !name.starts_with(".oci-layout.") {
                bail!(
                    "{} is not an image store: it holds {name:?} but no oci-layout file; \
                     move it away, or point POD1_CACHE elsewhere",
                    root.display()
                );
            }
        }
        Ok(())
    }

    /// Opens (creating) `<root>/<name>` and flocks it; `None` when a
    /// non-blocking lock is held elsewhere.
    pub(super) fn lock(&self, name: &str, how: FlockArg) -> Result<Option<Flock<File>>> {
        let path = self.root.join(name);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        match Flock::lock(file, how) {
            Ok(lock) => Ok(Some(lock)),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, e)) => Err(e).with_context(|| format!("locking {}", path.display())),
        }
    }

    /// Holds `index.lock` exclusively.
    fn index_lock(&self) -> Result<Flock<File>> {
        self.lock("index.lock", FlockArg::LockExclusive)?
            .context("waiting for the image store's index.lock")
    }

    /// Reads `index.json`.
    fn read_index(&self) -> Result<ImageIndex> {
        let path = self.root.join("index.json");
        let raw = crate::image::read_bounded(&path, MAX_JSON, MAX_JSON)?;
        ImageIndex::from_reader(&raw[..])
            .with_context(|| format!("{} is not a valid OCI index", path.display()))
    }

    /// Rewrites `index.json` with `change` applied to its entries, under
    /// `index.lock`.
    fn update_index(&self, change: impl FnOnce(&mut Vec<Descriptor>)) -> Result<()> {
        let _lock = self.index_lock()?;
        let mut index = self.read_index()?;
        let mut entries = index.manifests().clone();
        change(&mut entries);
        index.set_manifests(entries);
        let text = serde_json::to_vec(&index).context("serialising index.json")?;
        self.write_atomic("index.json", INDEX_TMP, &text)
    }

    /// Writes `<root>/<name>` whole: a temporary file next to it, fsync,
    /// rename, fsync of the directory.
    fn write_atomic(&self, name: &str, tmp_prefix: &str, data: &[u8]) -> Result<()> {
        let path = self.root.join(name);
        let mut tmp = tempfile::Builder::new()
            .prefix(tmp_prefix)
            .tempfile_in(&self.root)
            .with_context(|| format!("creating a temporary file in {}", self.root.display()))?;
        tmp.write_all(data)
            .and_then(|()| tmp.as_file().sync_all())
            .with_context(|| format!("writing {}", tmp.path().display()))?;
        tmp.persist(&path)
            .map_err(|e| e.error)
            .with_context(|| format!("replacing {}", path.display()))?;
        sync_dir(&self.root)
    }
}

/// The `org.opencontainers.image.ref.name` of an index entry.
pub fn ref_name(d: &Descriptor) -> Option<&str> {
    d.annotations()
        .as_ref()
        .and_then(|a: &HashMap<String, String>| a.get(REF_NAME))
        .map(String::as_str)
}

/// `name` if it is a full normalised reference (`docker.io/library/busybox:1.36`).
pub fn check_name(name: &str) -> Result<()> {
    let normal = pod1_manifest::reference::Reference::parse_normalized(name).map_err(anyhow::Error::msg)?;
    if normal.to_string() != name {
        bail!("{name:?} is not a full image name; the store names it {normal}");
    }
    Ok(())
}

/// Makes a rename in `dir` durable.
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))
}
