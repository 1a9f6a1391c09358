//! The image targets.
//!
//! - `oci`: an image layout built from the input and imported by
//!   `pod1::image::import`, the builder's own entry point: the JSON of the
//!   index (or docker-archive manifest), the image manifest and config, then
//!   the layers applied in order.
//! - `layer`: a tar stream applied by `Tree::apply_layer` on top of a fixed
//!   lower layer (directories, files, a symlink, a hard link), so that
//!   whiteouts, opaque markers and hard links have something to act on.
//!
//! Either way the resulting tree is digested and packed as a cpio archive.
//!
//! Shared by the fuzz targets (`fuzz/src/bin/`) and the regression test
//! (`builder/tests/fuzz_regressions.rs`), which includes this file by path
//! so both run exactly the same code.
//!
//! ## The `oci` input
//!
//! The first line names the transport: `oci` (a layout directory),
//! `oci-archive` (a tar of one) or `docker-archive`. The rest is split at
//! lines holding only `%%` into parts. Part 0 is `index.json` (for
//! `docker-archive`, `manifest.json`); every later part N is a blob, stored
//! as `blobs/sha256/<its sha256>`. So that the fuzzer need not compute
//! digests, each part may refer to any later part N (1-9) as `@N` (its
//! digest, `sha256:<hex>`), `^N` (the bare hex) and `#N` (its size).

use std::io::Write;
use std::sync::OnceLock;

use pod1::tree::Tree;
use sha2::{Digest, Sha256};

/// The data bound `layer` passes to `Tree::apply_layer`: small, so the
/// limit's checks are reached by small inputs too.
pub const LAYER_LIMIT: u64 = 1 << 20;

const SEPARATOR: &[u8] = b"\n%%\n";

fn split<'a>(mut data: &'a [u8], sep: &[u8]) -> Vec<&'a [u8]> {
    let mut parts = Vec::new();
    while let Some(at) = data.windows(sep.len()).position(|w| w == sep) {
        parts.push(&data[..at]);
        data = &data[at + sep.len()..];
    }
    parts.push(data);
    parts
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// Replaces `@N`, `^N` and `#N` by part N's digest, hex and size, for every
/// N after the part it appears in; last part first, so that digests are
/// taken of the final bytes.
fn substitute(parts: &[&[u8]]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = parts.iter().map(|p| p.to_vec()).collect();
    let mut hexes = vec![String::new(); out.len()];
    for i in (0..out.len()).rev() {
        let src = &out[i];
        let mut result = Vec::with_capacity(src.len());
        let mut k = 0;
        while k < src.len() {
            let c = src[k];
            let n = src
                .get(k + 1)
                .filter(|d| d.is_ascii_digit())
                .map(|d| usize::from(d - b'0'));
            match n {
                Some(n) if matches!(c, b'@' | b'^' | b'#') && n > i && n < out.len() => {
                    match c {
                        b'@' => result.extend_from_slice(format!("sha256:{}", hexes[n]).as_bytes()),
                        b'^' => result.extend_from_slice(hexes[n].as_bytes()),
                        _ => result.extend_from_slice(out[n].len().to_string().as_bytes()),
                    }
                    k += 2;
                }
                _ => {
                    result.push(c);
                    k += 1;
                }
            }
        }
        hexes[i] = sha256_hex(&result);
        out[i] = result;
    }
    out
}

/// What the builder does with an imported tree: digest it, pack it.
fn exercise(tree: &Tree) {
    let _ = tree.digest();
    let _ = tree.data_size();
    let _ = pod1::initramfs::write_uncompressed(tree, std::io::sink());
}

fn tar_of(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        if let Err(e) = b.append_data(&mut h, path, &data[..]) {
            panic!("harness: cannot add {path} to a tar: {e}");
        }
    }
    match b.into_inner() {
        Ok(bytes) => bytes,
        Err(e) => panic!("harness: cannot finish a tar: {e}"),
    }
}

/// Runs one `oci` input. Errors are expected; a panic is the bug.
pub fn oci(data: &[u8]) {
    let Some(nl) = data.iter().position(|&b| b == b'\n') else {
        return;
    };
    let transport = match &data[..nl] {
        b"oci" => "oci",
        b"oci-archive" => "oci-archive",
        b"docker-archive" => "docker-archive",
        _ => return,
    };
    let parts = substitute(&split(&data[nl + 1..], SEPARATOR));
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut parts = parts.into_iter();
    let first = parts.next().unwrap_or_default();
    if transport == "docker-archive" {
        files.push(("manifest.json".into(), first));
    } else {
        files.push(("oci-layout".into(), br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()));
        files.push(("index.json".into(), first));
    }
    for blob in parts {
        files.push((format!("blobs/sha256/{}", sha256_hex(&blob)), blob));
    }
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(e) => panic!("harness: cannot make a temporary directory: {e}"),
    };
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        if let Some(parent) = path.parent() {
            if let Err(e) = std::fs::create_dir_all(parent) {
                panic!("harness: cannot create {}: {e}", parent.display());
            }
        }
        let mut f = match std::fs::File::create(&path) {
            Ok(f) => f,
            Err(e) => panic!("harness: cannot create {}: {e}", path.display()),
        };
        if let Err(e) = f.write_all(bytes) {
            panic!("harness: cannot write {}: {e}", path.display());
        }
    };
    // Relative to the base directory, as a manifest names its images.
    let reference = if transport == "oci" {
        for (name, bytes) in &files {
            write(&format!("layout/{name}"), bytes);
        }
        "oci:layout".to_string()
    } else {
        write("image.tar", &tar_of(&files));
        format!("{transport}:image.tar")
    };
    if let Ok(image) = pod1::image::import(&reference, dir.path(), &Default::default()) {
        exercise(&image.tree);
    }
}

/// The lower layer `layer` inputs are applied on.
fn base() -> &'static Tree {
    static BASE: OnceLock<Tree> = OnceLock::new();
    BASE.get_or_init(|| {
        let mut b = tar::Builder::new(Vec::new());
        let mut add = |path: &str, ty: tar::EntryType, data: &[u8], link: Option<&str>| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(ty);
            h.set_mode(if ty == tar::EntryType::Directory {
                0o755
            } else {
                0o644
            });
            h.set_size(data.len() as u64);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            if ty == tar::EntryType::Char {
                // /dev/null's numbers; a GNU header has room for them.
                if let Err(e) = h.set_device_major(1).and_then(|()| h.set_device_minor(3)) {
                    panic!("harness: cannot build the base layer: {e}");
                }
            }
            let done = match link {
                Some(target) => b.append_link(&mut h, path, target),
                None => b.append_data(&mut h, path, data),
            };
            if let Err(e) = done {
                panic!("harness: cannot build the base layer: {e}");
            }
        };
        add("bin/", tar::EntryType::Directory, b"", None);
        add("bin/busybox", tar::EntryType::Regular, b"\x7fELF", None);
        add("bin/sh", tar::EntryType::Symlink, b"", Some("busybox"));
        add("etc/", tar::EntryType::Directory, b"", None);
        add(
            "etc/passwd",
            tar::EntryType::Regular,
            b"root:x:0:0::/root:/bin/sh\n",
            None,
        );
        add("etc/group", tar::EntryType::Regular, b"root:x:0:\n", None);
        add("etc/hard", tar::EntryType::Link, b"", Some("etc/passwd"));
        add("usr/lib/libc.so", tar::EntryType::Regular, b"lib", None);
        add("lib", tar::EntryType::Symlink, b"", Some("usr/lib"));
        add("var/lib/x/y", tar::EntryType::Regular, b"y", None);
        add("dev/null", tar::EntryType::Char, b"", None);
        let bytes = match b.into_inner() {
            Ok(bytes) => bytes,
            Err(e) => panic!("harness: cannot finish the base layer: {e}"),
        };
        let mut tree = Tree::default();
        if let Err(e) = tree.apply_layer(&bytes[..], LAYER_LIMIT) {
            panic!("harness: the base layer does not apply: {e}");
        }
        tree
    })
}

/// Runs one `layer` input. Errors are expected; a panic is the bug.
pub fn layer(data: &[u8]) {
    let mut tree = base().clone();
    if tree.apply_layer(data, LAYER_LIMIT).is_ok() {
        exercise(&tree);
    }
}
