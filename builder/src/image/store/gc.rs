//! Garbage collection: mark from `index.json`, sweep `blobs/` and `ingest/`.

use std::collections::HashSet;
use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};
use nix::fcntl::{Flock, FlockArg};
use oci_spec::image::Descriptor;
use serde::Deserialize;

use super::blob::{parse_digest, PUT_TMP};
use super::{ref_name, ImageStore, INDEX_TMP, MAX_JSON};

/// What one garbage collection removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcStats {
    /// Blobs deleted.
    pub blobs: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Partial downloads and temporary files deleted.
    pub partials: usize,
    /// Their bytes.
    pub partial_bytes: u64,
}

/// The children an index or a manifest names (OCI or Docker schema 2).
#[derive(Deserialize)]
pub(super) struct Children {
    #[serde(default)]
    pub(super) manifests: Vec<Descriptor>,
    pub(super) config: Option<Descriptor>,
    #[serde(default)]
    pub(super) layers: Vec<Descriptor>,
    #[serde(default)]
    blobs: Vec<Descriptor>,
    subject: Option<Descriptor>,
}

/// Whether a media type is a manifest or index (a JSON document naming other blobs).
fn names_blobs(media_type: &str) -> bool {
    media_type.ends_with("+json") && (media_type.contains("manifest") || media_type.contains("index"))
}

impl ImageStore {
    /// Deletes every blob no name reaches, and partial downloads and
    /// temporary files nobody holds. With `wait` false, returns `None` at
    /// once when the store is in use (a pull, load or build holds it).
    pub fn gc(&self, wait: bool) -> Result<Option<GcStats>> {
        let how = if wait {
            FlockArg::LockExclusive
        } else {
            FlockArg::LockExclusiveNonblock
        };
        let Some(_gc) = self.lock("gc.lock", how)? else {
            return Ok(None);
        };
        let mut stats = GcStats::default();
        let live = {
            // index.lock: rmi may be rewriting index.json (and its
            // temporary files) while this runs.
            let _index = self.index_lock()?;
            remove_stale(&self.root, |n| n.starts_with(INDEX_TMP), &mut stats)?;
            self.mark()?
        };
        for alg in ["sha256", "sha512"] {
            let dir = self.root.join("blobs").join(alg);
            let Ok(entries) = fs::read_dir(&dir) else { continue };
            for entry in entries {
                let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
                let name = entry.file_name();
                let digest = format!("{alg}:{}", name.to_string_lossy());
                if parse_digest(&digest).is_err() || live.contains(&digest) {
                    continue;
                }
                let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                fs::remove_file(entry.path())
                    .with_context(|| format!("removing {}", entry.path().display()))?;
                stats.blobs += 1;
                stats.bytes += size;
            }
        }
        // Writers hold gc.lock shared, so every temporary file is stale;
        // a partial download is also checked for its own lock.
        let ingest = self.root.join("ingest");
        remove_stale(&ingest, |n| n.starts_with(PUT_TMP), &mut stats)?;
        remove_stale(
            &ingest,
            |n| {
                let path = ingest.join(n);
                let Ok(file) = fs::OpenOptions::new().read(true).open(&path) else {
                    return false;
                };
                Flock::lock(file, FlockArg::LockExclusiveNonblock).is_ok()
            },
            &mut stats,
        )?;
        Ok(Some(stats))
    }

    /// The digests reachable from `index.json`. A blob that is missing
    /// (such as the other platforms' manifests of a pulled index) reaches
    /// nothing; one that is present but unreadable stops the collection,
    /// since what it names cannot be known.
    fn mark(&self) -> Result<HashSet<String>> {
        let mut live = HashSet::new();
        let mut todo: Vec<(Descriptor, String)> = Vec::new();
        for d in self.read_index()?.manifests() {
            let name = ref_name(d).unwrap_or("an unnamed image").to_string();
            todo.push((d.clone(), name));
        }
        while let Some((d, name)) = todo.pop() {
            let digest = d.digest().to_string();
            if !live.insert(digest.clone()) || !names_blobs(d.media_type().as_ref()) {
                continue;
            }
            if !self.has_blob(&digest) {
                continue;
            }
            let children = self
                .read_blob(&digest, MAX_JSON)
                .and_then(|raw| serde_json::from_slice::<Children>(&raw).map_err(Into::into));
            let c = match children {
                Ok(c) => c,
                Err(e) => bail!(
                    "{digest} (of {name}) cannot be read, so what it uses is unknown; nothing was deleted \
                     (remove the image with pod1 rmi {name}): {e:#}"
                ),
            };
            let more = c.manifests.into_iter().chain(c.config).chain(c.layers);
            for child in more.chain(c.blobs).chain(c.subject) {
                todo.push((child, name.clone()));
            }
        }
        Ok(live)
    }
}

/// Removes the files of `dir` that `stale` picks, counting them.
fn remove_stale(dir: &Path, stale: impl Fn(&str) -> bool, stats: &mut GcStats) -> Result<()> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !entry.file_type().is_ok_and(|t| t.is_file()) || !stale(&name) {
            continue;
        }
        let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
        fs::remove_file(entry.path()).with_context(|| format!("removing {}", entry.path().display()))?;
        stats.partials += 1;
        stats.partial_bytes += size;
    }
    Ok(())
}
