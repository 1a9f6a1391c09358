//! Pulling an image into the store: the reference's candidates and
//! endpoints from registries.conf, the manifest (linux/amd64 from an
//! index), then the config and layers in parallel, each verified and
//! renamed into the store, and last the name.

use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use oci_spec::image::{Descriptor, DescriptorBuilder, ImageIndex, ImageManifest, MediaType};
use pod1_manifest::reference::Reference;

use super::progress::Progress;
use super::registry::client::{self, Client, Error as RegistryError};
use super::registry::config::{Endpoint, Registries};
use super::registry::errors;
use super::store::{BlobWriter, DigestMismatch, ImageStore, Ingest};

/// Layers downloaded at once (docker pulls three).
const PARALLEL: usize = 3;
/// Attempts per blob: the first, then retries after 1, 2 and 4 s, each
/// resuming where the last stopped.
const ATTEMPTS: u32 = 4;

/// What a name resolves to in the store.
#[derive(Debug, Clone)]
pub struct Located {
    /// Its full name there (`docker.io/library/busybox:1.36`).
    pub name: String,
    /// The manifest or index it names.
    pub target: Descriptor,
}

/// The registries, the client and the store of one `pod1` command.
#[derive(Debug)]
pub struct Puller<'a> {
    pub registries: &'a Registries,
    pub client: &'a Client,
    pub store: &'a ImageStore,
    /// Bound of the image's layers (`POD1_MAX_IMAGE_SIZE`).
    pub limit: u64,
}

/// The name an image has in the store: `repo:tag`, or `repo@digest` when
/// a digest is given (a tag beside it means nothing once the digest is
/// known, and Docker drops it too).
pub fn store_name(r: &Reference) -> String {
    match &r.digest {
        Some(d) => format!("{}@{d}", r.name()),
        None => r.to_string(),
    }
}

/// Where `written` is in the store: its registries.conf candidates in
/// order, then Docker's reading of it (the name `pod1 load` and `pod1 tag`
/// give a short name).
pub fn find(registries: &Registries, store: &ImageStore, written: &str) -> Result<Option<Located>> {
    let docker = Reference::parse_normalized(written).map_err(anyhow::Error::msg)?;
    // A short name nowhere to search for is still found under Docker's name.
    let candidates = registries.candidates(written);
    let mut names: Vec<String> = candidates
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(store_name)
        .collect();
    names.push(store_name(&docker));
    for name in names {
        if let Some(target) = store.resolve(&name)? {
            return Ok(Some(Located { name, target }));
        }
    }
    // Not there: the pull (if the policy asks for one) says why the name
    // cannot be resolved.
    Ok(None)
}

impl Puller<'_> {
    /// Pulls `written` (as a manifest names it) from the first candidate
    /// and endpoint that has it.
    pub fn pull(&self, written: &str) -> Result<Located> {
        let mut failures = Vec::new();
        for r in self.registries.candidates(written)? {
            for ep in self.registries.endpoints(&r)? {
                match self.pull_from(&r, &ep) {
                    Ok(located) => return Ok(located),
                    Err(Failure::Registry(e)) => {
                        let at = if ep.mirror {
                            format!(" (mirror {})", ep.host)
                        } else {
                            String::new()
                        };
                        failures.push(format!("{r}{at}: {e}"));
                    }
                    // The store or the image itself: another endpoint would not help.
                    Err(Failure::Fatal(e)) => return Err(e.context(format!("pulling {r}"))),
                }
            }
        }
        match failures.as_slice() {
            [one] => bail!("pulling {one}"),
            _ => bail!(
                "pulling {written:?}: every candidate failed:\n  {}",
                failures.join("\n  ")
            ),
        }
    }

    fn pull_from(&self, r: &Reference, ep: &Endpoint) -> Result<Located, Failure> {
        let _in_use = self.store.in_use().map_err(Failure::Fatal)?;
        let reference = r
            .digest
            .clone()
            .or_else(|| r.tag.clone())
            .unwrap_or_else(|| "latest".into());
        let top = self.client.manifest(ep, &reference)?;
        let top_desc = descriptor(&top.media_type, &top.digest, top.bytes.len())?;
        // The platform's manifest when the top is an index.
        let (manifest, platform) = if is_index(&top.media_type) {
            // Indexes may nest (an index of indexes): a few levels at most.
            let mut nested = Vec::new();
            let mut index_bytes = top.bytes.clone();
            let m = loop {
                let index = ImageIndex::from_reader(&index_bytes[..])
                    .map_err(|e| invalid(format!("the image index of {r} is invalid: {e}")))?;
                let chosen =
                    pick_platform(&index).map_err(|e| Failure::Fatal(anyhow::anyhow!("{r}: {e}")))?;
                let m = self.client.manifest(ep, chosen.digest().as_ref())?;
                if !is_index(&m.media_type) {
                    break m;
                }
                if nested.len() == 3 {
                    return Err(invalid(format!("{r}: image indexes nested more than 4 deep")));
                }
                index_bytes = m.bytes.clone();
                nested.push(m.bytes);
            };
            // Stored with the platform's manifest, before the name.
            for bytes in &nested {
                self.store_manifest(bytes)?;
            }
            (parse_manifest(r, &m.bytes)?, Some(m.bytes))
        } else if is_manifest(&top.media_type) {
            (parse_manifest(r, &top.bytes)?, None)
        } else if top.media_type.contains("manifest.v1") {
            return Err(fatal(format!(
                "{r} is a Docker schema 1 image, which registries stopped serving in 2019 and pod1 does not read: push it again with a current tool"
            )));
        } else {
            return Err(invalid(format!(
                "{r}: unknown manifest media type {:?}",
                errors::printable(&top.media_type, 100)
            )));
        };
        check(r, &manifest, self.limit)?;
        self.fetch_blobs(ep, &manifest)?;
        // Bottom up: whatever names a blob comes after it.
        if let Some(bytes) = platform {
            self.store_manifest(&bytes)?;
        }
        self.store_manifest(&top.bytes)?;
        let name = store_name(r);
        self.store.set_name(&name, &top_desc).map_err(Failure::Fatal)?;
        Ok(Located {
            name,
            target: top_desc,
        })
    }

    fn store_manifest(&self, bytes: &[u8]) -> Result<(), Failure> {
        self.store.put_blob(bytes).map(drop).map_err(Failure::Fatal)
    }

    /// The config and the layers, the missing ones `PARALLEL` at a time.
    fn fetch_blobs(&self, ep: &Endpoint, m: &ImageManifest) -> Result<(), Failure> {
        let progress = Progress::new();
        let mut work = Vec::new();
        for (i, d) in std::iter::once(m.config()).chain(m.layers()).enumerate() {
            let digest = d.digest().to_string();
            if self.store.has_blob(&digest) {
                if i > 0 {
                    let line = progress.add(&digest, d.size(), "Already exists");
                    progress.finish(line, "Already exists");
                }
                continue;
            }
            let line = (i > 0).then(|| progress.add(&digest, d.size(), "Waiting"));
            work.push((digest, d.size(), line));
        }
        let queue = Mutex::new(work.into_iter());
        let first_error: Mutex<Option<Failure>> = Mutex::new(None);
        std::thread::scope(|s| {
            for _ in 0..PARALLEL {
                s.spawn(|| loop {
                    if first_error.lock().map(|e| e.is_some()).unwrap_or(true) {
                        return;
                    }
                    let Some((digest, size, line)) = queue.lock().ok().and_then(|mut q| q.next()) else {
                        return;
                    };
                    let result = self.fetch_blob(ep, &digest, size, line, &progress);
                    if let Err(e) = result {
                        if let Ok(mut first) = first_error.lock() {
                            first.get_or_insert(e);
                        }
                        return;
                    }
                    if let Some(line) = line {
                        progress.finish(line, "Pull complete");
                    }
                });
            }
        });
        match first_error
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
        {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// One blob into the store, retried with resumption.
    fn fetch_blob(
        &self,
        ep: &Endpoint,
        digest: &str,
        size: u64,
        line: Option<usize>,
        progress: &Progress,
    ) -> Result<(), Failure> {
        let mut attempt = 0;
        loop {
            let mut writer = match self.store.ingest(digest, size).map_err(Failure::Fatal)? {
                Ingest::Present => return Ok(()),
                Ingest::Writing(w) => w,
            };
            let report = |done: u64| {
                if let Some(line) = line {
                    progress.update(line, done);
                }
            };
            let resumed = writer.offset() > 0;
            let result = self.client.blob(ep, digest, size, &mut writer, &report);
            match result {
                Ok(()) => match writer.commit() {
                    Ok(()) => return Ok(()),
                    // What an earlier attempt (or another registry) left may
                    // be the wrong part: once more from the start (the
                    // partial file is gone) before blaming this one.
                    Err(e) if e.is::<DigestMismatch>() && resumed && attempt + 1 < ATTEMPTS => attempt += 1,
                    Err(e) if e.is::<DigestMismatch>() => {
                        return Err(Failure::Registry(RegistryError::Invalid(format!(
                            "{} served a corrupt blob, discarded: {e:#}",
                            ep.host
                        ))))
                    }
                    // The store's own failure (a full disk): no registry helps.
                    Err(e) => return Err(Failure::Fatal(e.context(format!("storing blob {digest}")))),
                },
                Err(RegistryError::Transient(_)) if attempt + 1 < ATTEMPTS => {
                    // The partial file stays: the next attempt resumes it.
                    drop(writer);
                    std::thread::sleep(std::time::Duration::from_secs(1 << attempt));
                    attempt += 1;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl client::Sink for BlobWriter {
    fn offset(&self) -> u64 {
        BlobWriter::offset(self)
    }
    fn restart(&mut self) -> std::io::Result<()> {
        BlobWriter::restart(self).map_err(|e| std::io::Error::other(format!("{e:#}")))
    }
}

/// Why one endpoint failed: the registry (try the next) or the rest.
#[derive(Debug)]
enum Failure {
    Registry(RegistryError),
    Fatal(anyhow::Error),
}

impl From<RegistryError> for Failure {
    fn from(e: RegistryError) -> Failure {
        match e {
            RegistryError::Local(m) => Failure::Fatal(anyhow::anyhow!(m)),
            e => Failure::Registry(e),
        }
    }
}

fn invalid(m: String) -> Failure {
    Failure::Registry(RegistryError::Invalid(m))
}

fn fatal(m: String) -> Failure {
    Failure::Fatal(anyhow::anyhow!(m))
}

fn is_index(media_type: &str) -> bool {
    media_type == client::MANIFEST_TYPES[0] || media_type == client::MANIFEST_TYPES[2]
}

fn is_manifest(media_type: &str) -> bool {
    media_type == client::MANIFEST_TYPES[1] || media_type == client::MANIFEST_TYPES[3]
}

fn descriptor(media_type: &str, digest: &str, size: usize) -> Result<Descriptor, Failure> {
    let digest = digest
        .parse::<oci_spec::image::Digest>()
        .map_err(|e| invalid(format!("bad digest {digest}: {e}")))?;
    DescriptorBuilder::default()
        .media_type(MediaType::from(media_type))
        .digest(digest)
        .size(size as u64)
        .build()
        .map_err(|e| invalid(format!("{e}")))
}

fn parse_manifest(r: &Reference, bytes: &[u8]) -> Result<ImageManifest, Failure> {
    ImageManifest::from_reader(bytes)
        .map_err(|e| invalid(format!("the image manifest of {r} is invalid: {e}")))
}

/// The linux/amd64 entry of an index, or an error naming what it has.
pub fn pick_platform(index: &ImageIndex) -> Result<Descriptor> {
    let platforms: Vec<String> = index
        .manifests()
        .iter()
        .filter_map(|d| d.platform().as_ref())
        .map(|p| {
            let mut s = format!("{}/{}", p.os(), p.architecture());
            if let Some(v) = p.variant().as_deref().filter(|v| !v.is_empty()) {
                s.push('/');
                s.push_str(v);
            }
            s
        })
        .collect();
    // Among linux/amd64 entries the baseline first (no variant or v1), then
    // the lowest microarchitecture level: a TCG guest's CPU (qemu64) runs
    // v1 code only, as containerd prefers what the CPU supports.
    let level = |d: &&Descriptor| match d.platform().as_ref().and_then(|p| p.variant().clone()).as_deref() {
        None | Some("") | Some("v1") => 1,
        Some("v2") => 2,
        Some("v3") => 3,
        Some("v4") => 4,
        Some(_) => 5,
    };
    index
        .manifests()
        .iter()
        .filter(|d| {
            d.platform()
                .as_ref()
                .is_some_and(|p| p.os().to_string() == "linux" && p.architecture().to_string() == "amd64")
        })
        .min_by_key(level)
        .cloned()
        .with_context(|| {
            format!(
                "the image has no linux/amd64 variant (pod1 boots x86_64 VMs); it has {}",
                if platforms.is_empty() {
                    "no platform listed".to_string()
                } else {
                    platforms.join(", ")
                }
            )
        })
}

/// Refuses what is not a runnable container image before anything is
/// downloaded: artifacts, foreign layers, an image past the size bound.
pub fn check_image(r: &Reference, m: &ImageManifest, limit: u64) -> Result<()> {
    check(r, m, limit).map_err(|f| match f {
        Failure::Fatal(e) => e,
        Failure::Registry(e) => anyhow::anyhow!(e),
    })
}

fn check(r: &Reference, m: &ImageManifest, limit: u64) -> Result<(), Failure> {
    let config = m.config().media_type().to_string();
    if !matches!(
        config.as_str(),
        "application/vnd.oci.image.config.v1+json" | "application/vnd.docker.container.image.v1+json"
    ) {
        return Err(fatal(format!(
            "{r} is not a container image: its config is {:?} (an OCI artifact such as a Helm chart)",
            errors::printable(&config, 100)
        )));
    }
    let mut total = m.config().size();
    for l in m.layers() {
        let t = l.media_type().to_string();
        let known = matches!(
            t.as_str(),
            "application/vnd.oci.image.layer.v1.tar"
                | "application/vnd.oci.image.layer.v1.tar+gzip"
                | "application/vnd.oci.image.layer.v1.tar+zstd"
                | "application/vnd.docker.image.rootfs.diff.tar"
                | "application/vnd.docker.image.rootfs.diff.tar.gzip"
        );
        if !known {
            return Err(fatal(format!(
                "{r}: layer {} has media type {:?}, which pod1 cannot unpack (foreign and non-distributable layers are Windows images')",
                l.digest(),
                errors::printable(&t, 100)
            )));
        }
        total = total.saturating_add(l.size());
    }
    if total > limit {
        return Err(fatal(format!(
            "{r} is {total} bytes compressed, past the image size limit of {limit} bytes (set POD1_MAX_IMAGE_SIZE to raise it)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(entries: &[(&str, Option<&str>)]) -> ImageIndex {
        let manifests: Vec<serde_json::Value> = entries
            .iter()
            .enumerate()
            .map(|(i, (arch, variant))| {
                let mut platform = serde_json::json!({"os": "linux", "architecture": arch});
                if let Some(v) = variant {
                    platform["variant"] = serde_json::json!(v);
                }
                serde_json::json!({
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": format!("sha256:{}", format!("{i}").repeat(64)),
                    "size": 1,
                    "platform": platform,
                })
            })
            .collect();
        let v = serde_json::json!({"schemaVersion": 2, "manifests": manifests});
        ImageIndex::from_reader(v.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn the_baseline_amd64_image_first() {
        let pick = |entries: &[(&str, Option<&str>)]| {
            pick_platform(&index(entries)).map(|d| d.digest().to_string().chars().last().unwrap())
        };
        assert_eq!(
            pick(&[("amd64", Some("v3")), ("amd64", None), ("arm64", Some("v8"))]).unwrap(),
            '1'
        );
        assert_eq!(
            pick(&[("amd64", Some("v3")), ("amd64", Some("v2"))]).unwrap(),
            '1'
        );
        assert_eq!(pick(&[("arm64", None), ("amd64", Some("v1"))]).unwrap(), '1');
        let e = pick(&[("arm64", Some("v8")), ("s390x", None)])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no linux/amd64") && e.contains("linux/arm64/v8, linux/s390x"),
            "{e}"
        );
    }

    #[test]
    fn store_names_drop_a_tag_beside_a_digest() {
        let d = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse_normalized(&format!("busybox:1.36@{d}")).unwrap();
        assert_eq!(store_name(&r), format!("docker.io/library/busybox@{d}"));
        let r = Reference::parse_normalized("busybox:1.36").unwrap();
        assert_eq!(store_name(&r), "docker.io/library/busybox:1.36");
    }
}
