//! OCI image layouts (`oci:` directories and `oci-archive:` tars).

use anyhow::{bail, Context, Result};
use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest, MediaType};

use super::{apply_layer, image_config, verify, Image, Store};
use crate::tree::Tree;

const REF_NAME: &str = "org.opencontainers.image.ref.name";

fn tagged(d: &Descriptor) -> Option<&str> {
    d.annotations()
        .as_ref()
        .and_then(|a| a.get(REF_NAME))
        .map(String::as_str)
}

/// Reads the blob a descriptor names, checking its size and digest.
fn blob(store: &dyn Store, d: &Descriptor) -> Result<Vec<u8>> {
    let digest = d.digest().to_string();
    let (algorithm, hex) = digest
        .split_once(':')
        .with_context(|| format!("malformed digest {digest:?}"))?;
    let data = store.read(&format!("blobs/{algorithm}/{hex}"))?;
    if data.len() as u64 != d.size() {
        bail!(
            "blob {digest} is corrupt: {} bytes, the descriptor says {}",
            data.len(),
            d.size()
        );
    }
    verify("blob", &digest, &data)?;
    Ok(data)
}

fn is_index(m: &MediaType) -> bool {
    matches!(m, MediaType::ImageIndex)
        || m.to_string() == "application/vnd.docker.distribution.manifest.list.v2+json"
}

/// Picks the manifest for `tag` (or the only one) from `index.json`,
/// descending into nested indexes for linux/amd64.
fn pick_manifest(store: &dyn Store, tag: Option<&str>) -> Result<Descriptor> {
    if !store.exists("oci-layout") {
        bail!("not an OCI image layout: no oci-layout file (for a docker save archive use docker-archive:)");
    }
    let index = ImageIndex::from_reader(&store.read("index.json")?[..])
        .context("index.json is not a valid OCI index")?;
    let chosen = match tag {
        Some(tag) => index.manifests().iter().find(|d| tagged(d) == Some(tag)),
        None if index.manifests().len() == 1 => index.manifests().first(),
        None => None,
    };
    let Some(mut desc) = chosen.cloned() else {
        let tags: Vec<&str> = index.manifests().iter().filter_map(tagged).collect();
        match tag {
            Some(tag) => bail!("no image tagged {tag:?}; tags in the layout: {tags:?}"),
            None => bail!(
                "the layout holds {} images; name one with :TAG (tags: {tags:?})",
                index.manifests().len()
            ),
        }
    };
    while is_index(desc.media_type()) {
        let nested =
            ImageIndex::from_reader(&blob(store, &desc)?[..]).context("nested image index is invalid")?;
        desc = nested
            .manifests()
            .iter()
            .find(|d| {
                d.platform()
                    .as_ref()
                    .is_some_and(|p| p.os().to_string() == "linux" && p.architecture().to_string() == "amd64")
            })
            .cloned()
            .context("the image index has no linux/amd64 image")?;
    }
    Ok(desc)
}

/// Imports an OCI image layout.
pub(super) fn import(store: &dyn Store, tag: Option<&str>, limit: u64) -> Result<Image> {
    let desc = pick_manifest(store, tag)?;
    let manifest =
        ImageManifest::from_reader(&blob(store, &desc)?[..]).context("the image manifest is invalid")?;
    let config = ImageConfiguration::from_reader(&blob(store, manifest.config())?[..])
        .context("the image config is invalid")?;
    let diff_ids = config.rootfs().diff_ids();
    if diff_ids.len() != manifest.layers().len() {
        bail!(
            "the image config lists {} layers, the manifest {}",
            diff_ids.len(),
            manifest.layers().len()
        );
    }
    let mut tree = Tree::default();
    for (layer, diff_id) in manifest.layers().iter().zip(diff_ids) {
        let data = blob(store, layer)?;
        apply_layer(&mut tree, layer.digest().as_ref(), &data, Some(diff_id), limit)?;
    }
    Ok(Image {
        config: image_config(&config)?,
        id: manifest.config().digest().to_string(),
        tree,
    })
}
