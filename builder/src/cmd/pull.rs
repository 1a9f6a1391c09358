//! `pod1 pull`: images from their registries into the local store.

use anyhow::{bail, Context, Result};
use pod1_manifest::image::Source;

use crate::image::pull::{find, Puller};
use crate::image::registry::client::Client;
use crate::image::registry::config::Registries;
use crate::image::store::ImageStore;

/// Pull images from their registries into the local store.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Image references, as a manifest's `image` field names them
    /// (`busybox:1.36`, `ghcr.io/org/app@sha256:…`, `localhost:5000/app`).
    #[arg(required = true, value_name = "REF")]
    pub refs: Vec<String>,
}

/// Runs `pod1 pull`.
pub fn run(args: &Args) -> Result<()> {
    for r in &args.refs {
        if let Source::Local(_) = Source::parse(r).map_err(anyhow::Error::msg)? {
            bail!("{r:?} is a local image, not a registry reference: import it with pod1 load {r}");
        }
    }
    let registries = Registries::load()?;
    let store = ImageStore::open_default()?;
    let client = Client::new()?;
    let puller = Puller {
        registries: &registries,
        client: &client,
        store: &store,
        limit: crate::image::max_image_bytes()?,
    };
    for r in &args.refs {
        let before = find(&registries, &store, r)?.map(|l| l.target.digest().to_string());
        let l = puller.pull(r).with_context(|| format!("pod1 pull {r}"))?;
        let digest = l.target.digest().to_string();
        let status = if before.as_deref() == Some(digest.as_str()) {
            "Image is up to date for"
        } else {
            "Downloaded newer image for"
        };
        crate::print(&format!(
            "Digest: {digest}\nStatus: {status} {}\n{}\n",
            l.name, l.name
        ))?;
    }
    Ok(())
}
