//! An in-memory root filesystem: what an image unpacks to and what the
//! initramfs is written from.
//!
//! Layers are applied here rather than on the host's disk, so importing needs
//! no root, cannot be tricked into writing outside the tree, and yields the
//! same bytes wherever and whenever it runs.
//!
//! Paths and link targets are bytes, as Linux names are: an image's names
//! reach the initramfs exactly as its layers spell them, whether or not
//! they are UTF-8, so no two names can become one.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;

use sha2::{Digest, Sha256};

/// What a path is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Dir,
    /// A regular file. Paths that share one `Arc` are hard links of one inode.
    File(Arc<Vec<u8>>),
    /// A symbolic link to this target, stored as written.
    Symlink(Vec<u8>),
    /// A character device (major, minor).
    Char(u32, u32),
    /// A block device (major, minor).
    Block(u32, u32),
    /// A named pipe.
    Fifo,
}

/// One entry of a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Its kind and contents.
    pub kind: Kind,
    /// Permission bits, including setuid/setgid/sticky (`0o7777`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

impl Node {
    /// A root-owned directory.
    pub fn dir(mode: u32) -> Node {
        Node {
            kind: Kind::Dir,
            mode,
            uid: 0,
            gid: 0,
        }
    }

    /// A root-owned regular file.
    pub fn file(data: Vec<u8>, mode: u32) -> Node {
        Node {
            kind: Kind::File(Arc::new(data)),
            mode,
            uid: 0,
            gid: 0,
        }
    }

    /// A root-owned symlink.
    pub fn symlink(target: &str) -> Node {
        Node {
            kind: Kind::Symlink(target.as_bytes().to_vec()),
            mode: 0o777,
            uid: 0,
            gid: 0,
        }
    }
}

/// Paths are relative, `/`-separated, with no `.` or `..` components; the
/// root directory is the empty path. Sorted order puts every directory
/// before its contents, as the kernel's initramfs unpacker needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    nodes: BTreeMap<Vec<u8>, Node>,
}

impl Default for Tree {
    fn default() -> Self {
        Tree {
            nodes: BTreeMap::from([(Vec::new(), Node::dir(0o755))]),
        }
    }
}

/// Why a layer entry was refused or could not be applied. Paths are shown
/// as text, with any byte that is not UTF-8 replaced.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// Absolute path or `..`: would land outside the root filesystem.
    #[error("entry {0:?} escapes the root filesystem (absolute path or '..')")]
    Escapes(String),
    /// A parent of the entry is a symlink in the tree.
    #[error("entry {entry:?} would be written through the symlink {link:?}")]
    ThroughSymlink {
        /// The entry's path.
        entry: String,
        /// The symlink on its way.
        link: String,
    },
    /// A parent of the entry is not a directory.
    #[error("entry {entry:?}: parent {parent:?} is not a directory")]
    ParentNotDir {
        /// The entry's path.
        entry: String,
        /// The parent.
        parent: String,
    },
    /// A hard link whose target does not exist or is not a regular file.
    #[error("hard link {entry:?} points to {target:?}, which is not a regular file in the image")]
    BadHardlink {
        /// The link's path.
        entry: String,
        /// Its target.
        target: String,
    },
    /// A tar entry type pod1 cannot represent.
    #[error("entry {entry:?} has unsupported type {kind:?}")]
    Unsupported {
        /// The entry's path.
        entry: String,
        /// The tar type.
        kind: String,
    },
    /// The tar stream itself is broken.
    #[error("reading the layer: {0}")]
    Io(#[from] std::io::Error),
    /// The tree is larger than a newc archive can describe.
    #[error("entry {0:?} is larger than 4 GiB, which a newc cpio archive cannot hold")]
    TooLarge(String),
    /// The image grew past the size limit.
    #[error("entry {entry:?} takes the image past its size limit of {limit} bytes (set POD1_MAX_IMAGE_SIZE to raise it)")]
    OverLimit {
        /// The entry's path.
        entry: String,
        /// The limit in bytes.
        limit: u64,
    },
}

/// A path for a message.
pub fn shown(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

/// Normalises a path from a layer: strips `./` and trailing `/`; refuses
/// absolute paths and `..`.
pub fn clean(raw: &[u8]) -> Result<Vec<u8>, LayerError> {
    if raw.starts_with(b"/") {
        return Err(LayerError::Escapes(shown(raw)));
    }
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in raw.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err(LayerError::Escapes(shown(raw))),
            p => parts.push(p),
        }
    }
    Ok(parts.join(&b'/'))
}

fn parent_of(path: &[u8]) -> &[u8] {
    path.iter().rposition(|b| *b == b'/').map_or(&[], |i| &path[..i])
}

/// `dir/name`, or `name` at the root.
fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    if dir.is_empty() {
        name.to_vec()
    } else {
        [dir, b"/", name].concat()
    }
}

impl Tree {
    /// All entries in sorted order (directories before their contents).
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &Node)> {
        self.nodes.iter().map(|(p, n)| (p.as_slice(), n))
    }

    /// The entry at `path`.
    #[cfg(test)]
    pub fn get(&self, path: impl AsRef<[u8]>) -> Option<&Node> {
        self.nodes.get(path.as_ref())
    }

    /// Number of entries, the root included.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the tree holds only its root.
    pub fn is_empty(&self) -> bool {
        self.nodes.len() <= 1
    }

    /// Total bytes of file data, each hard-linked inode counted once.
    pub fn data_size(&self) -> u64 {
        let mut seen = std::collections::HashSet::new();
        self.nodes
            .values()
            .filter_map(|n| match &n.kind {
                Kind::File(d) if seen.insert(Arc::as_ptr(d)) => Some(d.len() as u64),
                _ => None,
            })
            .sum()
    }

    /// The contents of a regular file at `path`.
    pub fn read(&self, path: impl AsRef<[u8]>) -> Option<&[u8]> {
        match &self.nodes.get(path.as_ref())?.kind {
            Kind::File(d) => Some(d),
            _ => None,
        }
    }

    /// Checks that every parent of `path` is a real directory. With
    /// `create`, missing parents are made (root-owned, 0755) as tar
    /// extraction does; without, returns whether they all exist.
    fn parents(&mut self, path: &[u8], create: bool) -> Result<bool, LayerError> {
        let mut at = 0;
        while let Some(i) = path[at..].iter().position(|b| *b == b'/') {
            let parent = &path[..at + i];
            match self.nodes.get(parent).map(|n| &n.kind) {
                None if create => {
                    self.nodes.insert(parent.to_vec(), Node::dir(0o755));
                }
                None => return Ok(false),
                Some(Kind::Dir) => {}
                Some(Kind::Symlink(_)) => {
                    return Err(LayerError::ThroughSymlink {
                        entry: shown(path),
                        link: shown(parent),
                    })
                }
                Some(_) => {
                    return Err(LayerError::ParentNotDir {
                        entry: shown(path),
                        parent: shown(parent),
                    })
                }
            }
            at += i + 1;
        }
        Ok(true)
    }

    /// Removes `path` and everything below it.
    fn remove_all(&mut self, path: &[u8]) {
        if path.is_empty() {
            self.remove_children(b"");
            return;
        }
        self.nodes.remove(path);
        self.remove_children(path);
    }

    /// Removes everything below the directory `path`.
    fn remove_children(&mut self, path: &[u8]) {
        let prefix = if path.is_empty() {
            Vec::new()
        } else {
            join(path, b"")
        };
        let doomed: Vec<Vec<u8>> = self
            .nodes
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .filter(|(p, _)| !p.is_empty())
            .map(|(p, _)| p.clone())
            .collect();
        for p in doomed {
            self.nodes.remove(&p);
        }
    }

    /// Puts `node` at `path` (already cleaned), replacing what was there;
    /// a directory over a directory keeps the contents and takes the new
    /// metadata, as tar extraction does.
    pub fn insert(&mut self, path: impl AsRef<[u8]>, node: Node) -> Result<(), LayerError> {
        let path = path.as_ref();
        if let Kind::File(d) = &node.kind {
            if d.len() > u32::MAX as usize {
                return Err(LayerError::TooLarge(shown(path)));
            }
        }
        self.parents(path, true)?;
        let both_dirs = matches!(node.kind, Kind::Dir)
            && matches!(self.nodes.get(path).map(|n| &n.kind), Some(Kind::Dir));
        if !both_dirs {
            self.remove_all(path);
        }
        self.nodes.insert(path.to_vec(), node);
        Ok(())
    }

    /// Applies one layer (an uncompressed tar stream) with OCI whiteouts:
    /// `.wh.NAME` deletes NAME from the layers below, `.wh..wh..opq` empties
    /// its directory of what the layers below put there.
    ///
    /// `limit` bounds the image's file data in bytes (what the tree holds
    /// already counts, and each entry costs its 512-byte header too): tar
    /// headers are never trusted for an allocation.
    pub fn apply_layer(&mut self, tar: impl Read, limit: u64) -> Result<(), LayerError> {
        let mut used = self.data_size();
        let mut archive = tar::Archive::new(tar);
        // Within a layer, opaque markers and whiteouts only hide lower
        // layers, so entries this layer adds must survive them whatever the
        // order. Collect first, then apply deletions, then additions.
        let mut additions: Vec<(Vec<u8>, Node, Option<Vec<u8>>)> = Vec::new();
        let mut deletions: Vec<(Vec<u8>, bool)> = Vec::new();
        for entry in archive.entries()? {
            let mut entry = entry?;
            let raw = entry.path_bytes().into_owned();
            let path = clean(&raw)?;
            let over = || LayerError::OverLimit {
                entry: shown(&raw),
                limit,
            };
            used = used.saturating_add(512);
            if used > limit {
                return Err(over());
            }
            let name = path.rsplit(|b| *b == b'/').next().unwrap_or_default();
            if name == b".wh..wh..opq" {
                deletions.push((parent_of(&path).to_vec(), true));
                continue;
            }
            if let Some(hidden) = name.strip_prefix(b".wh.") {
                deletions.push((clean(&join(parent_of(&path), hidden))?, false));
                continue;
            }
            let header = entry.header();
            let mode = header.mode()? & 0o7777;
            let uid = u32::try_from(header.uid()?).unwrap_or(u32::MAX);
            let gid = u32::try_from(header.gid()?).unwrap_or(u32::MAX);
            let ty = header.entry_type();
            let dev = || -> Result<(u32, u32), LayerError> {
                Ok((
                    header.device_major()?.unwrap_or(0),
                    header.device_minor()?.unwrap_or(0),
                ))
            };
            let (kind, link) = match ty {
                tar::EntryType::Directory => (Kind::Dir, None),
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    // Read at most one byte past the budget, whatever the
                    // header claims.
                    let mut data = Vec::new();
                    (&mut entry).take(limit - used + 1).read_to_end(&mut data)?;
                    used = used.saturating_add(data.len() as u64);
                    if used > limit {
                        return Err(over());
                    }
                    (Kind::File(Arc::new(data)), None)
                }
                tar::EntryType::Symlink => {
                    let target = entry.link_name_bytes().unwrap_or_default().into_owned();
                    (Kind::Symlink(target), None)
                }
                tar::EntryType::Link => {
                    let target = entry.link_name_bytes().unwrap_or_default().into_owned();
                    (Kind::Fifo, Some(target))
                }
                tar::EntryType::Char => {
                    let (ma, mi) = dev()?;
                    (Kind::Char(ma, mi), None)
                }
                tar::EntryType::Block => {
                    let (ma, mi) = dev()?;
                    (Kind::Block(ma, mi), None)
                }
                tar::EntryType::Fifo => (Kind::Fifo, None),
                other => {
                    return Err(LayerError::Unsupported {
                        entry: shown(&raw),
                        kind: format!("{other:?}"),
                    });
                }
            };
            if path.is_empty() && kind != Kind::Dir {
                return Err(LayerError::Escapes(shown(&raw)));
            }
            additions.push((path, Node { kind, mode, uid, gid }, link));
        }
        for (path, opaque) in deletions {
            // A whiteout through a symlink would name something outside the
            // directory it sits in: refuse it like any other entry.
            let probe = if opaque { join(&path, b"x") } else { path.clone() };
            if !self.parents(&probe, false)? {
                continue;
            }
            if opaque {
                self.remove_children(&path);
            } else {
                self.remove_all(&path);
            }
        }
        for (path, mut node, link) in additions {
            if let Some(target) = link {
                let target = clean(&target)?;
                let bad = || LayerError::BadHardlink {
                    entry: shown(&path),
                    target: shown(&target),
                };
                if !self.parents(&target, false).map_err(|_| bad())? {
                    return Err(bad());
                }
                match self.nodes.get(&target) {
                    Some(
                        t @ Node {
                            kind: Kind::File(_), ..
                        },
                    ) => node = t.clone(),
                    _ => return Err(bad()),
                }
            }
            self.insert(&path, node)?;
        }
        Ok(())
    }

    /// Places `other` under the directory `prefix` (created as needed).
    pub fn graft(&mut self, prefix: &str, other: &Tree) -> Result<(), LayerError> {
        for (path, node) in other.iter() {
            let at = if path.is_empty() {
                prefix.as_bytes().to_vec()
            } else {
                join(prefix.as_bytes(), path)
            };
            self.insert(&at, node.clone())?;
        }
        Ok(())
    }

    /// A digest of everything that ends up in an initramfs: paths, kinds,
    /// contents, modes, owners and the hard-link structure.
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        let mut links: std::collections::HashMap<*const Vec<u8>, usize> = Default::default();
        for (i, (path, n)) in self.nodes.iter().enumerate() {
            h.update(path);
            h.update([0]);
            h.update(format!("{:o} {} {}\0", n.mode, n.uid, n.gid));
            match &n.kind {
                Kind::Dir => h.update(b"d"),
                Kind::File(d) => {
                    let first = *links.entry(Arc::as_ptr(d)).or_insert(i);
                    h.update(format!("f{first} {}\0", d.len()));
                    h.update(d.as_slice());
                }
                Kind::Symlink(t) => {
                    h.update(b"l");
                    h.update(t);
                    h.update([0]);
                }
                Kind::Char(a, b) => h.update(format!("c{a},{b}")),
                Kind::Block(a, b) => h.update(format!("b{a},{b}")),
                Kind::Fifo => h.update(b"p"),
            }
        }
        hex(&h.finalize())
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `tree` into the empty or missing directory `dest` on the host,
/// owners, modes, links and devices included (owners and devices need root).
pub fn materialize(tree: &Tree, dest: &std::path::Path) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::{symlink, PermissionsExt};
    let mut first_path: std::collections::HashMap<*const Vec<u8>, std::path::PathBuf> = Default::default();
    std::fs::create_dir_all(dest).with_context(|| format!("creating {}", dest.display()))?;
    let mut dirs = Vec::new();
    for (path, node) in tree.iter() {
        let at = dest.join(OsStr::from_bytes(path));
        let ctx = || format!("writing {}", at.display());
        match &node.kind {
            Kind::Dir => {
                if !path.is_empty() {
                    std::fs::create_dir(&at).with_context(ctx)?;
                }
                dirs.push((at.clone(), node.mode));
            }
            Kind::File(d) => match first_path.get(&Arc::as_ptr(d)) {
                Some(first) => std::fs::hard_link(first, &at).with_context(ctx)?,
                None => {
                    std::fs::write(&at, d.as_slice()).with_context(ctx)?;
                    first_path.insert(Arc::as_ptr(d), at.clone());
                }
            },
            Kind::Symlink(t) => symlink(OsStr::from_bytes(t), &at).with_context(ctx)?,
            Kind::Char(a, b) | Kind::Block(a, b) => {
                let ty = if matches!(node.kind, Kind::Char(..)) {
                    nix::sys::stat::SFlag::S_IFCHR
                } else {
                    nix::sys::stat::SFlag::S_IFBLK
                };
                let dev = nix::sys::stat::makedev(u64::from(*a), u64::from(*b));
                nix::sys::stat::mknod(&at, ty, nix::sys::stat::Mode::from_bits_truncate(0o600), dev)
                    .with_context(ctx)?;
            }
            Kind::Fifo => {
                nix::unistd::mkfifo(&at, nix::sys::stat::Mode::from_bits_truncate(0o600)).with_context(ctx)?
            }
        }
        std::os::unix::fs::lchown(&at, Some(node.uid), Some(node.gid)).with_context(ctx)?;
        if !matches!(node.kind, Kind::Symlink(_) | Kind::Dir) {
            std::fs::set_permissions(&at, std::fs::Permissions::from_mode(node.mode)).with_context(ctx)?;
        }
    }
    // Directory modes last, so a read-only directory can still be filled.
    for (at, mode) in dirs {
        std::fs::set_permissions(&at, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("writing {}", at.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
