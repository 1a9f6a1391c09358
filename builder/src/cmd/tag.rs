//! `pod1 tag`: give an image in the local store another name.

use anyhow::{Context, Result};

use super::rmi::{lookup, Found};
use crate::image::store::load::tag_name;
use crate::image::store::ImageStore;

/// Name an image in the local store DST as well (as `docker tag` does).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The image: a name (`busybox` is docker.io/library/busybox:latest) or an image ID.
    #[arg(value_name = "SRC")]
    pub source: String,
    /// The new name (`myapp:v1` is docker.io/library/myapp:v1); an image of
    /// that name loses it.
    #[arg(value_name = "DST")]
    pub target: String,
}

/// Runs `pod1 tag`.
pub fn run(args: &Args) -> Result<()> {
    let target = tag_name(&args.target)?;
    let store = ImageStore::open_default()?;
    // Held so that no gc deletes SRC's blobs before DST names them.
    let _guard = store.in_use()?;
    let registries = crate::image::registry::config::Registries::load()?;
    let name = match lookup(&registries, &store, &args.source)? {
        Found::Name(n) => n,
        Found::Image { mut names, .. } => names.remove(0),
    };
    let desc = store
        .resolve(&name)?
        .with_context(|| format!("no such image: {}", args.source))?;
    store.set_name(&target, &desc)
}
