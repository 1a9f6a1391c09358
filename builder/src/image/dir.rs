//! `dir:` images: a plain root filesystem on the host, no image config.

use std::collections::HashMap;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use pod1_manifest::ImageConfig;

use super::Image;
use crate::tree::{Kind, Node, Tree};

/// Reads a directory tree; modes, owners, symlinks and hard links are kept,
/// timestamps are not (the initramfs must not depend on them).
pub(super) fn import(root: &Path, limit: u64) -> Result<Image> {
    if !root.is_dir() {
        bail!("{} is not a directory", root.display());
    }
    let mut tree = Tree::default();
    let mut inodes: HashMap<(u64, u64), Arc<Vec<u8>>> = HashMap::new();
    let meta = std::fs::metadata(root).with_context(|| format!("reading {}", root.display()))?;
    tree.insert(
        "",
        Node {
            kind: Kind::Dir,
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
        },
    )?;
    let mut left = limit;
    walk(root, b"", &mut tree, &mut inodes, (limit, &mut left))?;
    if tree.is_empty() {
        bail!(
            "{} is empty: a dir: image is a root filesystem directory",
            root.display()
        );
    }
    Ok(Image {
        id: String::new(),
        config: ImageConfig::default(),
        tree,
    })
}

fn walk(
    dir: &Path,
    rel: &[u8],
    tree: &mut Tree,
    inodes: &mut HashMap<(u64, u64), Arc<Vec<u8>>>,
    (limit, left): (u64, &mut u64),
) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("reading {}", dir.display()))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name().into_vec();
        let at = if rel.is_empty() {
            name
        } else {
            [rel, b"/", &name].concat()
        };
        let meta = std::fs::symlink_metadata(&path).with_context(|| format!("reading {}", path.display()))?;
        let ft = meta.file_type();
        let rdev = || (libc::major(meta.rdev()), libc::minor(meta.rdev()));
        let kind = if ft.is_dir() {
            Kind::Dir
        } else if ft.is_file() {
            let key = (meta.dev(), meta.ino());
            let data = match inodes.get(&key) {
                Some(d) if meta.nlink() > 1 => d.clone(),
                _ => {
                    // `left` is what the image size limit still allows.
                    let d = Arc::new(super::read_bounded(&path, *left, limit)?);
                    *left -= d.len() as u64;
                    inodes.insert(key, d.clone());
                    d
                }
            };
            Kind::File(data)
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&path).with_context(|| format!("reading {}", path.display()))?;
            Kind::Symlink(target.into_os_string().into_vec())
        } else if ft.is_char_device() {
            let (a, b) = rdev();
            Kind::Char(a, b)
        } else if ft.is_block_device() {
            let (a, b) = rdev();
            Kind::Block(a, b)
        } else if ft.is_fifo() {
            Kind::Fifo
        } else {
            bail!("{}: sockets cannot be stored in an initramfs", path.display());
        };
        let is_dir = matches!(kind, Kind::Dir);
        tree.insert(
            &at,
            Node {
                kind,
                mode: meta.mode() & 0o7777,
                uid: meta.uid(),
                gid: meta.gid(),
            },
        )?;
        if is_dir {
            walk(&path, &at, tree, inodes, (limit, &mut *left))?;
        }
    }
    Ok(())
}
