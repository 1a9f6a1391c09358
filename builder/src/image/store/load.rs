//! `pod1 load`: images from local layouts and archives into the store.
//!
//! Blobs are copied as they are (digests unchanged) and each is checked
//! against its digest on the way in. A docker-archive has no manifest of
//! OCI's kind: its layers (the files `docker save` wrote, uncompressed tars
//! as a rule) and its config become blobs as they are, and pod1 writes an
//! OCI manifest for them, the same bytes for the same archive. A blob the
//! store has is neither read again nor written.

use std::path::Path;

use anyhow::{bail, Context, Result};
use oci_spec::image::{Descriptor, ImageIndex, ImageManifestBuilder, MediaType};
use pod1_manifest::image::{ImageRef, Transport};
use sha2::Digest;

use super::{check_name, ref_name, ImageStore, Ingest};
use crate::image::oci::{is_index, is_manifest};
use crate::image::{docker, DirStore, Store, TarStore};
use crate::tree::hex;

/// One image a load named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// Its full name.
    pub name: String,
    /// The manifest (or index) digest the name now points at.
    pub digest: String,
    /// Blobs written.
    pub written: usize,
    /// Blobs the store had already.
    pub present: usize,
    /// Whether the name pointed at this very image before and no blob was written.
    pub unchanged: bool,
}

/// Loads `source` (`oci:DIR[:TAG]`, `oci-archive:TAR[:TAG]`,
/// `docker-archive:TAR[:REPO:TAG]`, or the path of a layout or either
/// archive), naming it `name` if given, else by the names it carries.
pub fn load(store: &ImageStore, source: &str, name: Option<&str>, limit: u64) -> Result<Vec<Loaded>> {
    let name = name.map(tag_name).transpose()?;
    let (transport, path, tag) = match source.split_once(':') {
        Some(("oci" | "oci-archive" | "docker-archive" | "dir", _)) => {
            let r = ImageRef::parse(source).map_err(anyhow::Error::msg)?;
            (r.transport, r.path, r.tag)
        }
        _ => {
            if !Path::new(source).exists() {
                bail!("{source} does not exist");
            }
            (detect(Path::new(source))?, source.to_string(), None)
        }
    };
    let path = Path::new(&path);
    if !path.exists() {
        bail!("{} does not exist", path.display());
    }
    let _guard = store.in_use()?;
    let mut copy = Copy {
        store,
        written: 0,
        present: 0,
    };
    let images = match transport {
        Transport::Oci => copy.oci(&DirStore(path.to_path_buf(), limit), tag.as_deref(), name)?,
        Transport::OciArchive => copy.oci(&TarStore::open(path, limit)?, tag.as_deref(), name)?,
        Transport::DockerArchive => copy.docker(&TarStore::open(path, limit)?, tag.as_deref(), name)?,
        Transport::Dir => bail!("a dir: root filesystem has no image config to load; build with it directly"),
    };
    let mut loaded = Vec::new();
    for (target, names) in images {
        for name in names {
            let before = store.resolve(&name)?;
            store.set_name(&name, &target)?;
            loaded.push(Loaded {
                unchanged: copy.written == 0 && before.is_some_and(|b| b.digest() == target.digest()),
                name,
                digest: target.digest().to_string(),
                written: copy.written,
                present: copy.present,
            });
        }
    }
    Ok(loaded)
}

/// Normalises a name to give an image: a tag, not a digest.
pub fn tag_name(s: &str) -> Result<String> {
    let r = pod1_manifest::reference::Reference::parse_normalized(s).map_err(anyhow::Error::msg)?;
    if r.digest.is_some() {
        bail!("{s:?} names a digest; an image is named with a tag (REPO:TAG)");
    }
    Ok(r.to_string())
}

/// Tells an OCI layout (directory or tar) from a docker-archive.
fn detect(path: &Path) -> Result<Transport> {
    if path.is_dir() {
        if path.join("oci-layout").exists() {
            return Ok(Transport::Oci);
        }
        bail!(
            "{} is a directory but not an OCI image layout (no oci-layout file)",
            path.display()
        );
    }
    let mut archive =
        tar::Archive::new(std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?);
    // tar's own message would quote the file's bytes: not shown.
    let not_tar = || {
        anyhow::anyhow!(
            "{} is neither a tar archive (docker save, oci-archive) nor an OCI layout directory",
            path.display()
        )
    };
    let entries = archive.entries().map_err(|_| not_tar())?;
    for entry in entries {
        let entry = entry.map_err(|_| not_tar())?;
        let name = entry.path_bytes();
        match crate::tree::clean(&name).as_deref() {
            Ok(b"oci-layout") => return Ok(Transport::OciArchive),
            Ok(b"manifest.json") => return Ok(Transport::DockerArchive),
            _ => {}
        }
    }
    bail!(
        "{} is neither an oci-archive (no oci-layout) nor a docker-archive (no manifest.json)",
        path.display()
    )
}

/// Blobs copied into the store, counted.
struct Copy<'a> {
    store: &'a ImageStore,
    written: usize,
    present: usize,
}

/// An image to name and its names.
type Named = Vec<(Descriptor, Vec<String>)>;

impl Copy<'_> {
    /// The images of a layout: the one tagged `tag`, else all.
    fn oci(&mut self, src: &dyn Store, tag: Option<&str>, name: Option<String>) -> Result<Named> {
        let index = ImageIndex::from_reader(&src.read("index.json")?[..])
            .context("index.json is not a valid OCI index")?;
        let entries: Vec<Descriptor> = match tag {
            Some(tag) => vec![crate::image::oci::pick_entry(src, Some(tag))?],
            None => index.manifests().clone(),
        };
        let mut out = Vec::new();
        for entry in &entries {
            let media_type = entry.media_type().to_string();
            if !is_index(&media_type) && !is_manifest(&media_type) {
                bail!("{} in the layout is a {media_type}, not an image", entry.digest());
            }
            let names = match (&name, ref_name(entry)) {
                (Some(n), _) => vec![n.clone()],
                (None, Some(r)) if check_name(r).is_ok() => vec![r.to_string()],
                (None, r) => bail!(
                    "the image {} ({}) has no full name such as docker.io/library/busybox:latest: \
                     give one: pod1 load SOURCE NAME",
                    r.unwrap_or("untagged"),
                    entry.digest()
                ),
            };
            self.oci_blob(src, entry, true)?;
            let mut target = entry.clone();
            target.set_annotations(None);
            out.push((target, names));
        }
        one_for_a_name(out, name.is_some())
    }

    /// Copies `d` and what it names, children first. An index's manifests
    /// missing from the layout (the other platforms) are skipped.
    fn oci_blob(&mut self, src: &dyn Store, d: &Descriptor, required: bool) -> Result<()> {
        let digest = d.digest().to_string();
        let (alg, hex) = super::blob::parse_digest(&digest)?;
        let path = format!("blobs/{alg}/{hex}");
        let media_type = d.media_type().to_string();
        let parent = is_index(&media_type) || is_manifest(&media_type);
        if !parent && self.store.has_blob(&digest) {
            self.present += 1;
            return Ok(());
        }
        if !src.exists(&path) {
            if required {
                bail!("the layout lacks blob {digest} ({media_type})");
            }
            return Ok(());
        }
        let data = src.read(&path)?;
        if parent {
            let children: super::gc::Children = serde_json::from_slice(&data)
                .with_context(|| format!("{digest} is not a valid {media_type}"))?;
            for m in &children.manifests {
                self.oci_blob(src, m, false)?;
            }
            for c in children.config.iter().chain(&children.layers) {
                self.oci_blob(src, c, true)?;
            }
            if self.store.has_blob(&digest) {
                self.present += 1;
                return Ok(());
            }
        }
        self.write(d, &data)
    }

    /// Writes one blob through the store's ingest (which checks its digest).
    fn write(&mut self, d: &Descriptor, data: &[u8]) -> Result<()> {
        match self.store.ingest(d.digest().as_ref(), d.size())? {
            Ingest::Present => self.present += 1,
            Ingest::Writing(mut w) => {
                w.restart()?;
                std::io::Write::write_all(&mut w, data)
                    .with_context(|| format!("writing blob {}", d.digest()))?;
                w.commit()?;
                self.written += 1;
            }
        }
        Ok(())
    }

    /// The images of a docker-archive: the one tagged `tag`, else all.
    fn docker(&mut self, src: &dyn Store, tag: Option<&str>, name: Option<String>) -> Result<Named> {
        let mut out = Vec::new();
        for entry in docker::entries(src)? {
            let tags = entry.repo_tags.clone().unwrap_or_default();
            let wanted = tag.map(tag_name).transpose()?;
            if wanted.is_some_and(|w| !tags.iter().any(|r| tag_name(r).is_ok_and(|r| r == w))) {
                continue;
            }
            let names = match (&name, tag) {
                (Some(n), _) => vec![n.clone()],
                (None, Some(t)) => vec![tag_name(t)?],
                (None, None) => tags.iter().map(|t| tag_name(t)).collect::<Result<_>>()?,
            };
            if names.is_empty() {
                bail!(
                    "an image of the archive ({}) has no RepoTags: give it a name: pod1 load SOURCE NAME",
                    entry.config
                );
            }
            out.push((self.docker_image(src, &entry)?, names));
        }
        if out.is_empty() {
            bail!("no image tagged {:?} in the archive", tag.unwrap_or_default());
        }
        one_for_a_name(out, name.is_some())
    }

    /// Stores one docker-archive image with an OCI manifest written for it.
    fn docker_image(&mut self, src: &dyn Store, entry: &docker::Entry) -> Result<Descriptor> {
        let (raw, config) = docker::read_config(src, entry)?;
        let diff_ids = config.rootfs().diff_ids();
        let mut layers = Vec::new();
        for (layer, diff_id) in entry.layers.iter().zip(diff_ids) {
            let data = docker::read_layer(src, layer)?;
            let media_type = match data.as_slice() {
                [0x1f, 0x8b, ..] => MediaType::ImageLayerGzip,
                [0x28, 0xb5, 0x2f, 0xfd, ..] => MediaType::ImageLayerZstd,
                _ => MediaType::ImageLayer,
            };
            let digest = format!("sha256:{}", hex(&sha2::Sha256::digest(&data)));
            if media_type == MediaType::ImageLayer && &digest != diff_id {
                bail!("layer {layer} is corrupt: it has digest {digest}, the image config says {diff_id}");
            }
            layers.push(self.put(media_type, &data, Some(digest))?);
        }
        let config = self.put(MediaType::ImageConfig, &raw, None)?;
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(config)
            .layers(layers)
            .build()
            .context("writing the image manifest")?;
        let manifest = serde_json::to_vec(&manifest).context("writing the image manifest")?;
        self.put(MediaType::ImageManifest, &manifest, None)
    }

    /// Stores `data` unless present; `digest` when already computed.
    fn put(&mut self, media_type: MediaType, data: &[u8], digest: Option<String>) -> Result<Descriptor> {
        let digest = digest.unwrap_or_else(|| format!("sha256:{}", hex(&sha2::Sha256::digest(data))));
        if self.store.has_blob(&digest) {
            self.present += 1;
        } else {
            self.store.put_blob(data)?;
            self.written += 1;
        }
        let digest: oci_spec::image::Digest = digest.parse().context("a sha256 digest")?;
        Ok(Descriptor::new(media_type, data.len() as u64, digest))
    }
}

/// A NAME names one image: refuses a source with several.
fn one_for_a_name(images: Named, named: bool) -> Result<Named> {
    if named && images.len() > 1 {
        bail!(
            "the source holds {} images and NAME names one: pick it with :TAG on the source",
            images.len()
        );
    }
    Ok(images)
}
