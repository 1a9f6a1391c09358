//! OCI image layouts (`oci:` directories and `oci-archive:` tars).

use anyhow::{bail, Context, Result};
use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};

use super::store::ImageStore;
use super::{apply_layer, image_config, verify, Image, Store};
use crate::tree::Tree;

const REF_NAME: &str = "org.opencontainers.image.ref.name";

fn tagged(d: &Descriptor) -> Option<&str> {
    d.annotations()
        .as_ref()
        .and_then(|a| a.get(REF_NAME))
        .map(String::as_str)
}

/// Reads the blob a descriptor names, checked against its size and digest.
type ReadBlob<'a> = dyn Fn(&Descriptor) -> Result<Vec<u8>> + 'a;

/// Reads the blob a descriptor names from a layout, checking its size and digest.
fn blob(store: &dyn Store, d: &Descriptor) -> Result<Vec<u8>> {
    let digest = d.digest().to_string();
    let (algorithm, hex) = digest
        .split_once(':')
        .with_context(|| format!("malformed digest {digest:?}"))?;
    let data = store.read(&format!("blobs/{algorithm}/{hex}"))?;
    check_size(d, &data)?;
    verify("blob", &digest, &data)?;
    Ok(data)
}

fn check_size(d: &Descriptor, data: &[u8]) -> Result<()> {
    if data.len() as u64 != d.size() {
        bail!(
            "blob {} is corrupt: {} bytes, the descriptor says {}",
            d.digest(),
            data.len(),
            d.size()
        );
    }
    Ok(())
}

/// An image index: OCI's or Docker's manifest list.
pub(crate) fn is_index(media_type: &str) -> bool {
    matches!(
        media_type,
        "application/vnd.oci.image.index.v1+json"
            | "application/vnd.docker.distribution.manifest.list.v2+json"
    )
}

/// An image manifest: OCI's or Docker's schema 2.
pub(crate) fn is_manifest(media_type: &str) -> bool {
    matches!(
        media_type,
        "application/vnd.oci.image.manifest.v1+json" | "application/vnd.docker.distribution.manifest.v2+json"
    )
}

/// The layer media types pod1 applies: OCI's and Docker's, tar, tar+gzip
/// and tar+zstd (told apart by their content when applied).
fn is_layer(media_type: &str) -> bool {
    matches!(
        media_type,
        "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.docker.image.rootfs.diff.tar"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.zstd"
    )
}

/// Picks the `index.json` entry for `tag` (or the only one) of a layout.
pub(super) fn pick_entry(store: &dyn Store, tag: Option<&str>) -> Result<Descriptor> {
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
    let Some(desc) = chosen.cloned() else {
        let tags: Vec<&str> = index.manifests().iter().filter_map(tagged).collect();
        match tag {
            Some(tag) => bail!("no image tagged {tag:?}; tags in the layout: {tags:?}"),
            None => bail!(
                "the layout holds {} images; name one with :TAG (tags: {tags:?})",
                index.manifests().len()
            ),
        }
    };
    Ok(desc)
}

/// Parses an image config. `history` is optional in the image spec and
/// absent from some real images, but oci-spec 0.7 requires it: an absent
/// one is read as empty.
pub(super) fn parse_config(raw: &[u8]) -> Result<ImageConfiguration> {
    let mut value: serde_json::Value = serde_json::from_slice(raw).context("the image config is not JSON")?;
    if let Some(object) = value.as_object_mut() {
        object.entry("history").or_insert_with(|| serde_json::json!([]));
    }
    serde_json::from_value(value).context("the image config is invalid")
}

/// The manifest `desc` names: itself, or the linux/amd64 one of an index
/// (nested indexes included).
pub(crate) fn platform_manifest(read: &ReadBlob, desc: &Descriptor) -> Result<Descriptor> {
    let mut desc = desc.clone();
    while is_index(desc.media_type().as_ref()) {
        let nested = ImageIndex::from_reader(&read(&desc)?[..]).context("the image index is invalid")?;
        desc = super::pull::pick_platform(&nested)
            .map_err(|e| anyhow::anyhow!("the image index {}: {e}", desc.digest()))?;
    }
    Ok(desc)
}

/// Imports the image `desc` names (a manifest or an index), reading its
/// blobs with `read`.
fn import_from(read: &ReadBlob, desc: &Descriptor, limit: u64) -> Result<Image> {
    let desc = platform_manifest(read, desc)?;
    let media_type = desc.media_type().to_string();
    if !is_manifest(&media_type) {
        bail!("{} is a {media_type}, not an image manifest", desc.digest());
    }
    let manifest = ImageManifest::from_reader(&read(&desc)?[..]).context("the image manifest is invalid")?;
    let config_type = manifest.config().media_type().to_string();
    if !matches!(
        config_type.as_str(),
        "application/vnd.oci.image.config.v1+json" | "application/vnd.docker.container.image.v1+json"
    ) {
        bail!(
            "{} is not a container image: its config is a {config_type}",
            desc.digest()
        );
    }
    let config = parse_config(&read(manifest.config())?)?;
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
        let layer_type = layer.media_type().to_string();
        if !is_layer(&layer_type) {
            bail!(
                "layer {} is a {layer_type}; pod1 applies tar, tar+gzip and tar+zstd layers",
                layer.digest()
            );
        }
        let data = read(layer)?;
        apply_layer(&mut tree, layer.digest().as_ref(), &data, Some(diff_id), limit)?;
    }
    Ok(Image {
        config: image_config(&config)?,
        id: manifest.config().digest().to_string(),
        tree,
    })
}

/// Imports an OCI image layout.
pub(super) fn import(store: &dyn Store, tag: Option<&str>, limit: u64) -> Result<Image> {
    let desc = pick_entry(store, tag)?;
    import_from(&|d: &Descriptor| blob(store, d), &desc, limit)
}

/// Imports the image `target` (a manifest or index in the store, as
/// [`ImageStore::resolve`] gives it), holding the store in use meanwhile.
pub(crate) fn import_stored(store: &ImageStore, target: &Descriptor, limit: u64) -> Result<Image> {
    let _guard = store.in_use()?;
    let read = |d: &Descriptor| {
        let data = store.read_blob(d.digest().as_ref(), limit)?;
        check_size(d, &data)?;
        Ok(data)
    };
    import_from(&read, target, limit)
}
