//! `pod1 rmi`: remove image names, then the blobs no name uses.

use anyhow::{bail, Result};
use pod1_manifest::reference::Reference;

use super::images::human_size;
use crate::image::registry::config::Registries;
use crate::image::store::ImageStore;

/// Remove images from the local store by name or ID, then delete the blobs
/// no image uses (unless another pod1 is using the store: they stay until
/// the next rmi).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Image names (`busybox` is docker.io/library/busybox:latest), image IDs
    /// or manifest digests, or unambiguous prefixes of them.
    #[arg(required = true, value_name = "REF")]
    pub refs: Vec<String>,
    /// Remove every name of an image given by ID, however many it has.
    #[arg(short, long)]
    pub force: bool,
}

/// Runs `pod1 rmi`.
pub fn run(args: &Args) -> Result<()> {
    let store = ImageStore::open_default()?;
    let registries = Registries::load()?;
    let mut errors = Vec::new();
    let mut removed = 0;
    for r in &args.refs {
        let names = match lookup(&registries, &store, r) {
            Ok(Found::Name(n)) => vec![n],
            Ok(Found::Image { names, .. }) if names.len() == 1 || args.force => names,
            Ok(Found::Image { id, names }) => {
                errors.push(format!(
                    "image {} has {} names ({}): remove them by name, or all with --force",
                    short(&id),
                    names.len(),
                    names.join(", ")
                ));
                continue;
            }
            Err(e) => {
                errors.push(format!("{e:#}"));
                continue;
            }
        };
        for name in names {
            match store.remove_name(&name) {
                Ok(Some(_)) => {
                    crate::print(&format!("Untagged: {name}\n"))?;
                    removed += 1;
                }
                Ok(None) => {}
                // The others are still removed, and their blobs collected.
                Err(e) => errors.push(format!("removing {name}: {e:#}")),
            }
        }
    }
    if removed > 0 {
        match store.gc(false)? {
            Some(stats) if stats.blobs > 0 => crate::print(&format!(
                "Deleted: {} blobs, {}\n",
                stats.blobs,
                human_size(stats.bytes)
            ))?,
            Some(_) => {}
            None => {
                eprintln!("pod1: another pod1 is using the image store: the blobs stay until the next rmi")
            }
        }
    }
    match errors.len() {
        0 => Ok(()),
        1 => bail!("{}", errors[0]),
        _ => bail!("{}", errors.join("; ")),
    }
}

/// What a REF stands for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Found {
    /// A name the store has.
    Name(String),
    /// The one image whose ID or digest REF is or starts, with its names.
    Image {
        /// Its ID (config digest), else its manifest digest.
        id: String,
        /// Its names, sorted.
        names: Vec<String>,
    },
}

/// Looks REF up as a name, then as an image ID or manifest digest (or a
/// prefix of one) that matches exactly one image.
pub(crate) fn lookup(registries: &Registries, store: &ImageStore, r: &str) -> Result<Found> {
    let parsed = Reference::parse_normalized(r);
    if parsed.is_ok() {
        // As a pod names it: registries.conf's candidates, then Docker's reading.
        if let Some(l) = crate::image::pull::find(registries, store, r)? {
            return Ok(Found::Name(l.name));
        }
    }
    let hex = r.strip_prefix("sha256:").unwrap_or(r);
    let is_id = !hex.is_empty()
        && hex.len() <= 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !is_id {
        if let Err(e) = parsed {
            bail!("{e}");
        }
        bail!("no such image: {r} (pod1 images lists the store)");
    }
    let mut images: Vec<(String, Vec<String>)> = Vec::new();
    for l in store.list()? {
        let id = l.id.clone().unwrap_or_else(|| l.digest.clone());
        let matches = |d: &str| d.strip_prefix("sha256:").is_some_and(|h| h.starts_with(hex));
        let Some(name) = l.name.filter(|_| matches(&id) || matches(&l.digest)) else {
            continue;
        };
        match images.iter_mut().find(|(i, _)| *i == id) {
            Some((_, names)) => names.push(name),
            None => images.push((id, vec![name])),
        }
    }
    match images.len() {
        0 => bail!("no such image: {r} (pod1 images lists the store)"),
        1 => {
            let (id, mut names) = images.remove(0);
            names.sort();
            Ok(Found::Image { id, names })
        }
        n => bail!(
            "{r} is ambiguous: it matches {n} images ({})",
            images
                .iter()
                .map(|(i, _)| short(i))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn short(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    hex.get(..12).unwrap_or(hex)
}
