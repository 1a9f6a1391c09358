//! `docker save` archives (`docker-archive:`).

use anyhow::{bail, Context, Result};
use oci_spec::image::ImageConfiguration;
use serde::Deserialize;

use super::{apply_layer, image_config, verify, Image, Store};
use sha2::Digest;

use crate::tree::{hex, Tree};

/// One entry of the archive's `manifest.json`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Entry {
    /// The config's path in the archive.
    pub(super) config: String,
    /// The names the image was saved with (`busybox:latest`).
    #[serde(default)]
    pub(super) repo_tags: Option<Vec<String>>,
    /// The layers' paths in the archive, bottom first.
    pub(super) layers: Vec<String>,
}

/// The images of the archive's `manifest.json`.
pub(super) fn entries(store: &dyn Store) -> Result<Vec<Entry>> {
    serde_json::from_slice(&store.read("manifest.json")?)
        .context("manifest.json is not a docker-archive manifest")
}

/// Reads an entry's config, checked against the digest its name carries
/// and against its layer list: the raw bytes and the config.
pub(super) fn read_config(store: &dyn Store, entry: &Entry) -> Result<(Vec<u8>, ImageConfiguration)> {
    let raw = store.read(&entry.config)?;
    if let Some(digest) = digest_in_name(&entry.config) {
        verify("config", &digest, &raw)?;
    }
    let config = super::oci::parse_config(&raw).with_context(|| format!("reading {}", entry.config))?;
    let layers = config.rootfs().diff_ids().len();
    if layers != entry.layers.len() {
        bail!(
            "the image config lists {layers} layers, manifest.json {}",
            entry.layers.len()
        );
    }
    Ok((raw, config))
}

/// Reads an entry's layer, checked against the digest its name carries
/// when it is a content-addressed blob.
pub(super) fn read_layer(store: &dyn Store, layer: &str) -> Result<Vec<u8>> {
    let data = store.read(layer)?;
    if let Some(digest) = digest_in_name(layer).filter(|_| layer.starts_with("blobs/")) {
        verify("layer", &digest, &data)?;
    }
    Ok(data)
}

/// The digest a content-addressed file name carries (`<hex>.json`,
/// `blobs/sha256/<hex>`), if it has one.
fn digest_in_name(name: &str) -> Option<String> {
    let base = name.rsplit('/').next()?;
    let hex = base
        .strip_suffix(".json")
        .or_else(|| base.strip_suffix(".tar"))
        .unwrap_or(base);
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| format!("sha256:{hex}"))
}

/// Imports a docker-archive, picking `tag` among its RepoTags if given.
pub(super) fn import(store: &dyn Store, tag: Option<&str>, limit: u64) -> Result<Image> {
    let entries = entries(store)?;
    let entry = match tag {
        Some(tag) => entries
            .iter()
            .find(|e| e.repo_tags.iter().flatten().any(|t| t == tag))
            .with_context(|| format!("no image tagged {tag:?} in the archive"))?,
        None if entries.len() == 1 => &entries[0],
        None => bail!(
            "the archive holds {} images; name one with :REPO:TAG",
            entries.len()
        ),
    };
    let (raw, config) = read_config(store, entry)?;
    let diff_ids = config.rootfs().diff_ids();
    let mut tree = Tree::default();
    for (layer, diff_id) in entry.layers.iter().zip(diff_ids) {
        let data = read_layer(store, layer)?;
        apply_layer(&mut tree, layer, &data, Some(diff_id), limit)?;
    }
    Ok(Image {
        config: image_config(&config)?,
        // Docker's image ID: the digest of the config as stored.
        id: format!("sha256:{}", hex(&sha2::Sha256::digest(&raw))),
        tree,
    })
}
