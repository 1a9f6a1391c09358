use super::*;

/// A tar stream built with the tar crate's writer.
struct Layer(tar::Builder<Vec<u8>>);

impl Layer {
    fn new() -> Self {
        Layer(tar::Builder::new(Vec::new()))
    }
    fn entry(mut self, path: &str, ty: tar::EntryType, data: &[u8], link: Option<&str>) -> Self {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(ty);
        h.set_mode(if ty == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_size(data.len() as u64);
        h.set_uid(1000);
        h.set_gid(1000);
        // Write names raw so hostile ones are not refused by the writer.
        let name = path.as_bytes();
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        if let Some(l) = link {
            h.as_old_mut().linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }
    fn file(self, path: &str, data: &str) -> Self {
        self.entry(path, tar::EntryType::Regular, data.as_bytes(), None)
    }
    fn dir(self, path: &str) -> Self {
        self.entry(path, tar::EntryType::Directory, b"", None)
    }
    fn bytes(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

fn apply(tree: &mut Tree, layer: Layer) -> Result<(), LayerError> {
    tree.apply_layer(&layer.bytes()[..], u64::MAX)
}

#[test]
fn layers_and_whiteouts() {
    let mut t = Tree::default();
    apply(
        &mut t,
        Layer::new()
            .dir("etc/")
            .file("etc/a", "1")
            .file("etc/b", "2")
            .file("./var/lib/x", "x")
            .entry("bin/sh", tar::EntryType::Symlink, b"", Some("/bin/busybox"))
            .entry("etc/hard", tar::EntryType::Link, b"", Some("etc/a")),
    )
    .unwrap();
    assert_eq!(t.read("etc/a"), Some(&b"1"[..]));
    assert_eq!(t.get("var/lib").map(|n| n.kind.clone()), Some(Kind::Dir));
    assert_eq!(
        t.get("bin/sh").unwrap().kind,
        Kind::Symlink("/bin/busybox".into())
    );
    match (&t.get("etc/a").unwrap().kind, &t.get("etc/hard").unwrap().kind) {
        (Kind::File(a), Kind::File(b)) => assert!(Arc::ptr_eq(a, b)),
        other => panic!("{other:?}"),
    }
    assert_eq!(t.get("etc/a").unwrap().uid, 1000);
    // Whiteout a file and a directory; opaque /var keeps what this layer adds.
    apply(
        &mut t,
        Layer::new()
            .file("etc/.wh.b", "")
            .file("var/new", "n")
            .file("var/.wh..wh..opq", ""),
    )
    .unwrap();
    assert!(t.get("etc/b").is_none());
    assert!(t.get("var/lib").is_none() && t.get("var/lib/x").is_none());
    assert_eq!(t.read("var/new"), Some(&b"n"[..]));
    // A file replaced by a directory, and a directory replaced by a file.
    apply(&mut t, Layer::new().dir("etc/a").file("var", "now a file")).unwrap();
    assert_eq!(t.get("etc/a").unwrap().kind, Kind::Dir);
    assert!(t.get("var/new").is_none());
    assert_eq!(t.read("var"), Some(&b"now a file"[..]));
}

#[test]
fn hostile_entries_are_refused() {
    for (layer, want) in [
        (Layer::new().file("/etc/passwd", "x"), "escapes"),
        (Layer::new().file("a/../../etc/passwd", "x"), "escapes"),
        (Layer::new().file("../x", "x"), "escapes"),
        (
            Layer::new()
                .entry("etc", tar::EntryType::Symlink, b"", Some("/tmp"))
                .file("etc/passwd", "x"),
            "through the symlink",
        ),
        (
            Layer::new()
                .entry("e", tar::EntryType::Symlink, b"", Some(".."))
                .file("e/x", "x"),
            "through the symlink",
        ),
        (
            Layer::new().entry("h", tar::EntryType::Link, b"", Some("/etc/shadow")),
            "escapes",
        ),
        (
            Layer::new().entry("h", tar::EntryType::Link, b"", Some("missing")),
            "not a regular file",
        ),
        (
            Layer::new()
                .entry("l", tar::EntryType::Symlink, b"", Some("/"))
                .entry("h", tar::EntryType::Link, b"", Some("l/etc/passwd")),
            "not a regular file",
        ),
    ] {
        let mut t = Tree::default();
        let err = apply(&mut t, layer).unwrap_err().to_string();
        assert!(err.contains(want), "{err} should contain {want}");
    }
    // A whiteout through a symlink a lower layer made.
    let mut t = Tree::default();
    apply(
        &mut t,
        Layer::new().entry("l", tar::EntryType::Symlink, b"", Some("/etc")),
    )
    .unwrap();
    let err = apply(&mut t, Layer::new().file("l/.wh.passwd", ""))
        .unwrap_err()
        .to_string();
    assert!(err.contains("through the symlink"), "{err}");
}

#[test]
fn digest_sees_content_mode_and_links() {
    let base = |mode: u32| {
        let mut t = Tree::default();
        t.insert("a", Node::file(b"x".to_vec(), mode)).unwrap();
        t
    };
    assert_eq!(base(0o644).digest(), base(0o644).digest());
    assert_ne!(base(0o644).digest(), base(0o755).digest());
    let mut linked = base(0o644);
    let node = linked.get("a").unwrap().clone();
    linked.insert("b", node).unwrap();
    let mut copied = base(0o644);
    copied.insert("b", Node::file(b"x".to_vec(), 0o644)).unwrap();
    assert_ne!(linked.digest(), copied.digest());
}

/// One tar header claiming `size` bytes for `path` (raw bytes), then `data`.
fn lying_entry(path: &[u8], size: u64, data: &[u8]) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..path.len()].copy_from_slice(path);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend_from_slice(data);
    out
}

#[test]
fn tar_sizes_are_never_trusted() {
    // A header claiming a terabyte, with ten bytes behind it: an error, not
    // an allocation of a terabyte.
    let mut t = Tree::default();
    let err = t.apply_layer(&lying_entry(b"big", 1 << 40, &[0; 10])[..], u64::MAX);
    assert!(err.is_err());
    // Two megabytes behind the same lie, under a one-megabyte limit: refused
    // by name, having read no more than the limit.
    let mut t = Tree::default();
    let err = t
        .apply_layer(&lying_entry(b"big", 1 << 40, &vec![7; 2 << 20])[..], 1 << 20)
        .unwrap_err();
    assert!(
        matches!(&err, LayerError::OverLimit { entry, limit } if entry == "big" && *limit == 1 << 20),
        "{err}"
    );
}

#[test]
fn the_limit_counts_the_whole_image() {
    let layer = || Layer::new().file("a", &"x".repeat(600)).bytes();
    let mut t = Tree::default();
    // Each layer alone fits (512 + 600); the image does not: the first
    // layer's data counts against the second.
    t.apply_layer(&layer()[..], 1500).unwrap();
    let second = Layer::new().file("b", &"y".repeat(600)).bytes();
    let err = t.apply_layer(&second[..], 1500).unwrap_err();
    assert!(err.to_string().contains("POD1_MAX_IMAGE_SIZE"), "{err}");
}

#[test]
fn names_are_bytes_end_to_end() {
    // "caf\xe9" and "caf\xe8" are not UTF-8; converted lossily both would
    // be "caf\u{fffd}" and one would replace the other.
    let mut layer = lying_entry(b"caf\xe9", 1, b"a");
    layer.resize(1024, 0);
    let mut second = lying_entry(b"caf\xe8", 1, b"b");
    second.resize(1024, 0);
    layer.extend(second);
    layer.resize(layer.len() + 1024, 0);
    let mut t = Tree::default();
    t.apply_layer(&layer[..], u64::MAX).unwrap();
    assert_eq!(t.read(b"caf\xe9"), Some(&b"a"[..]));
    assert_eq!(t.read(b"caf\xe8"), Some(&b"b"[..]));
    // And into the archive as they are.
    let mut out = Vec::new();
    crate::initramfs::write_uncompressed(&t, &mut out).unwrap();
    let names: Vec<Vec<u8>> = crate::initramfs::read(&out[..])
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, [b".".to_vec(), b"caf\xe8".to_vec(), b"caf\xe9".to_vec()]);
}
