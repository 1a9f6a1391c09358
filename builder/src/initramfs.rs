//! Writing and reading the initramfs: a gzip'd newc cpio archive.
//!
//! The kernel's unpacker (init/initramfs.c) wants directories before their
//! contents and 4-byte alignment; it hard-links a regular file whose
//! (ino, mode, nlink ≥ 2) it has seen before, and writes any data that
//! entry carries into the shared inode. So the first path of each hard-linked
//! inode carries the data and the others carry none. Everything that could
//! vary between hosts or runs is fixed: entries sorted, inode numbers
//! counted from 1, every mtime 0, gzip header without name or time.
//!
//! The newc format is written and read here rather than with a cpio crate:
//! the ones available hold names as `String`, and an image's names are
//! bytes that must reach the archive unchanged. The format is a 110-byte
//! ASCII header (magic `070701`, then 13 fields of 8 hex digits), the name
//! and its NUL padded to 4 bytes, then the data padded to 4 bytes; a
//! `TRAILER!!!` entry ends it (the kernel's init/initramfs.c, cpio(5)).

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use flate2::{read::MultiGzDecoder, write::GzEncoder, Compression};

use crate::tree::{Kind, Tree};

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;
const S_IFBLK: u32 = 0o060000;
const S_IFIFO: u32 = 0o010000;

/// What was written.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    /// Entries, the trailer not counted.
    pub entries: usize,
    /// Size of the cpio stream before compression.
    pub cpio_bytes: u64,
}

/// Counts bytes passing through.
struct Counting<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes `tree` as a gzip'd newc archive to `out`.
pub fn write(tree: &Tree, out: impl Write) -> Result<Stats> {
    // Level 6: within 4% of level 9's size at about half the time (BENCHMARKS.md).
    let mut gz = GzEncoder::new(out, Compression::new(6));
    let stats = write_newc(tree, &mut gz)?;
    gz.finish()?.flush()?;
    Ok(stats)
}

/// Writes `tree` as an uncompressed newc archive to `out`.
pub fn write_uncompressed(tree: &Tree, mut out: impl Write) -> Result<Stats> {
    let stats = write_newc(tree, &mut out)?;
    out.flush()?;
    Ok(stats)
}

fn write_newc(tree: &Tree, out: &mut impl Write) -> Result<Stats> {
    let mut w = Counting { inner: out, count: 0 };
    // Hard links: how many paths share each inode, and its number once given.
    let mut nlinks: HashMap<*const Vec<u8>, u32> = HashMap::new();
    for (_, node) in tree.iter() {
        if let Kind::File(d) = &node.kind {
            *nlinks.entry(Arc::as_ptr(d)).or_default() += 1;
        }
    }
    let mut inodes: HashMap<*const Vec<u8>, u32> = HashMap::new();
    let mut next_ino = 1u32;
    let mut entries = 0;
    for (path, node) in tree.iter() {
        let name: &[u8] = if path.is_empty() { b"." } else { path };
        let (ty, nlink, mut data, rdev): (u32, u32, &[u8], (u32, u32)) = match &node.kind {
            Kind::Dir => (S_IFDIR, 2, &[], (0, 0)),
            Kind::File(d) => (S_IFREG, nlinks[&Arc::as_ptr(d)], d.as_slice(), (0, 0)),
            Kind::Symlink(t) => (S_IFLNK, 1, t.as_slice(), (0, 0)),
            Kind::Char(a, b) => (S_IFCHR, 1, &[], (*a, *b)),
            Kind::Block(a, b) => (S_IFBLK, 1, &[], (*a, *b)),
            Kind::Fifo => (S_IFIFO, 1, &[], (0, 0)),
        };
        let ino = match &node.kind {
            Kind::File(d) if nlink > 1 => match inodes.get(&Arc::as_ptr(d)) {
                Some(ino) => {
                    data = &[];
                    *ino
                }
                None => {
                    inodes.insert(Arc::as_ptr(d), next_ino);
                    next_ino += 1;
                    next_ino - 1
                }
            },
            _ => {
                next_ino += 1;
                next_ino - 1
            }
        };
        let size = u32::try_from(data.len())
            .with_context(|| format!("{}: larger than 4 GiB", crate::tree::shown(path)))?;
        let header = Header {
            ino,
            mode: ty | node.mode,
            uid: node.uid,
            gid: node.gid,
            nlink,
            size,
            rdev,
        };
        write_entry(&mut w, &header, name, data)?;
        entries += 1;
    }
    let trailer = Header {
        nlink: 1,
        ..Header::default()
    };
    write_entry(&mut w, &trailer, TRAILER, &[])?;
    Ok(Stats {
        entries,
        cpio_bytes: w.count,
    })
}

const MAGIC: &[u8; 6] = b"070701";
const HEADER_LEN: usize = 110;
const TRAILER: &[u8] = b"TRAILER!!!";
/// PATH_MAX: no longer name is read back.
const MAX_NAME: usize = 4096;

/// The header fields pod1 sets (mtime, dev and check are always 0).
#[derive(Debug, Default, Clone, Copy)]
struct Header {
    ino: u32,
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u32,
    size: u32,
    rdev: (u32, u32),
}

/// Zeros that bring `len` to a multiple of 4.
fn padding(len: usize) -> &'static [u8] {
    &[0u8; 3][..(4 - len % 4) % 4]
}

fn write_entry(w: &mut impl Write, h: &Header, name: &[u8], data: &[u8]) -> io::Result<()> {
    let fields = [
        h.ino,
        h.mode,
        h.uid,
        h.gid,
        h.nlink,
        0, // mtime
        h.size,
        0, // dev major
        0, // dev minor
        h.rdev.0,
        h.rdev.1,
        name.len() as u32 + 1,
        0, // check
    ];
    let mut head = Vec::with_capacity(HEADER_LEN + name.len() + 4);
    head.extend_from_slice(MAGIC);
    for f in fields {
        head.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    head.extend_from_slice(name);
    head.push(0);
    head.extend_from_slice(padding(head.len()));
    w.write_all(&head)?;
    w.write_all(data)?;
    w.write_all(padding(data.len()))
}

/// One entry read back from an archive.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Path as stored.
    pub name: Vec<u8>,
    /// Full mode, type bits included.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Link count.
    pub nlink: u32,
    /// Inode number.
    pub ino: u32,
    /// Contents (for a symlink, its target).
    pub data: Vec<u8>,
}

/// Reads every entry of a gzip'd (or plain) newc archive.
pub fn read(input: impl Read) -> Result<Vec<Entry>> {
    let mut r = open(input)?;
    let mut all = Vec::new();
    while let Some(entry) = read_entry(&mut r)? {
        all.push(entry);
    }
    if all.is_empty() {
        bail!("the archive has no entries");
    }
    Ok(all)
}

/// The data of the entry named `name`, reading the archive only as far as
/// that entry (the plan comes before the images' files, which sort after
/// it); `None` if the archive has none.
pub fn find(input: impl Read, name: &[u8]) -> Result<Option<Vec<u8>>> {
    let mut r = open(input)?;
    while let Some(entry) = read_entry(&mut r)? {
        if entry.name == name {
            return Ok(Some(entry.data));
        }
    }
    Ok(None)
}

/// The archive's bytes, inflated if it is gzip'd.
fn open<'a>(input: impl Read + 'a) -> Result<Box<dyn Read + 'a>> {
    let mut input = io::BufReader::new(input);
    let mut magic = [0u8; 2];
    input.read_exact(&mut magic).context("the file is empty")?;
    let chained = io::Cursor::new(magic).chain(input);
    Ok(if magic == [0x1f, 0x8b] {
        Box::new(MultiGzDecoder::new(chained))
    } else {
        Box::new(chained)
    })
}

/// The next entry, or `None` at the trailer.
fn read_entry(r: &mut impl Read) -> Result<Option<Entry>> {
    let mut head = [0u8; HEADER_LEN];
    r.read_exact(&mut head)
        .context("not a newc cpio archive: truncated header")?;
    if &head[..6] != MAGIC {
        bail!(
            "not a newc cpio archive: bad magic {:?}",
            String::from_utf8_lossy(&head[..6])
        );
    }
    let field = |i: usize| -> Result<u32> {
        let text = std::str::from_utf8(&head[6 + 8 * i..14 + 8 * i]).unwrap_or("");
        u32::from_str_radix(text, 16)
            .with_context(|| format!("not a newc cpio archive: bad header field {text:?}"))
    };
    let (ino, mode, uid, gid, nlink, size, namesize) = (
        field(0)?,
        field(1)?,
        field(2)?,
        field(3)?,
        field(4)?,
        field(6)?,
        field(11)? as usize,
    );
    if namesize == 0 || namesize > MAX_NAME {
        bail!("not a newc cpio archive: name of {namesize} bytes");
    }
    let mut name = vec![0u8; namesize + padding(HEADER_LEN + namesize).len()];
    r.read_exact(&mut name).context("truncated name")?;
    name.truncate(namesize);
    if name.pop() != Some(0) {
        bail!("not a newc cpio archive: a name without its NUL");
    }
    if name == TRAILER {
        return Ok(None);
    }
    // Read through `take`: the size field is not trusted for an allocation.
    let mut data = Vec::new();
    r.take(u64::from(size)).read_to_end(&mut data)?;
    if data.len() != size as usize {
        bail!("{}: truncated data", crate::tree::shown(&name));
    }
    r.read_exact(&mut [0u8; 3][..padding(data.len()).len()])?;
    Ok(Some(Entry {
        name,
        mode,
        uid,
        gid,
        nlink,
        ino,
        data,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::Node;

    #[test]
    fn round_trip_with_hard_links() {
        let mut t = Tree::default();
        t.insert("bin/busybox", Node::file(b"ELF".to_vec(), 0o755))
            .unwrap();
        let bb = t.get("bin/busybox").unwrap().clone();
        t.insert("bin/sh", bb).unwrap();
        t.insert("bin/ls", Node::symlink("busybox")).unwrap();
        t.insert("odd", Node::file(b"12345".to_vec(), 0o4711)).unwrap();
        // A name that is not UTF-8 goes through unchanged.
        t.insert(b"caf\xe9", Node::file(b"x".to_vec(), 0o644)).unwrap();
        let mut out = Vec::new();
        let stats = write(&t, &mut out).unwrap();
        assert_eq!(stats.entries, t.len());
        let entries = read(&out[..]).unwrap();
        let names: Vec<&[u8]> = entries.iter().map(|e| e.name.as_slice()).collect();
        assert_eq!(
            names,
            [
                &b"."[..],
                b"bin",
                b"bin/busybox",
                b"bin/ls",
                b"bin/sh",
                b"caf\xe9",
                b"odd"
            ]
        );
        let get = |n: &str| entries.iter().find(|e| e.name == n.as_bytes()).unwrap();
        assert_eq!(get("bin/busybox").data, b"ELF");
        assert_eq!((get("bin/busybox").nlink, get("bin/sh").nlink), (2, 2));
        assert_eq!(get("bin/busybox").ino, get("bin/sh").ino);
        assert!(get("bin/sh").data.is_empty());
        assert_eq!(get("bin/ls").mode, S_IFLNK | 0o777);
        assert_eq!(get("bin/ls").data, b"busybox");
        assert_eq!(get("odd").mode, S_IFREG | 0o4711);
        // The stream is aligned: every header starts on a 4-byte boundary
        // (the reader would fail otherwise), and it is reproducible.
        let mut again = Vec::new();
        write(&t, &mut again).unwrap();
        assert_eq!(out, again);
        // One entry, found without reading the others.
        assert_eq!(find(&out[..], b"odd").unwrap().unwrap(), b"12345");
        assert_eq!(find(&out[..], b"missing").unwrap(), None);
    }
}
