//! `pod1 load`: copy an image from a local layout or archive into the store.

use anyhow::Result;

use crate::image::max_image_bytes;
use crate::image::store::{load, ImageStore};

/// Load images from a docker-archive or oci-archive tar, or an OCI layout,
/// into the local store ($POD1_CACHE/images). Blobs are copied as they are;
/// those the store has are not written again.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A path to a docker-archive or oci-archive tar or an OCI layout
    /// directory, or `oci:DIR[:TAG]`, `oci-archive:TAR[:TAG]`,
    /// `docker-archive:TAR[:REPO:TAG]`.
    #[arg(value_name = "SOURCE")]
    pub source: String,
    /// The name to give the image (`busybox:1.36` is
    /// docker.io/library/busybox:1.36), instead of the names it carries
    /// (a docker-archive's RepoTags, an OCI layout's full ref.name).
    #[arg(value_name = "NAME")]
    pub name: Option<String>,
}

/// Runs `pod1 load`.
pub fn run(args: &Args) -> Result<()> {
    let store = ImageStore::open_default()?;
    let loaded = load::load(&store, &args.source, args.name.as_deref(), max_image_bytes()?)?;
    let mut out = String::new();
    for l in &loaded {
        out.push_str(&format!("Loaded image: {}", l.name));
        if l.unchanged {
            out.push_str(" (unchanged)");
        } else if l.written == 0 {
            out.push_str(" (its blobs were in the store already)");
        }
        out.push('\n');
    }
    crate::print(&out)
}
