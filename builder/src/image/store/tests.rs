//! The store against temporary directories: blobs, ingest, names, gc.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use oci_spec::image::{Descriptor, MediaType};
use sha2::Digest;

use super::*;
use crate::tree::hex;

fn store() -> (tempfile::TempDir, ImageStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path().join("images")).unwrap();
    (dir, store)
}

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex(&sha2::Sha256::digest(data)))
}

/// The files under `dir`, relative, sorted (directories end in '/').
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            if p.is_dir() {
                out.push(format!("{rel}/"));
                todo.push(p);
            } else {
                out.push(rel);
            }
        }
    }
    out.sort();
    out
}

/// A one-file layer tar.
fn layer(name: &str, content: &[u8]) -> Vec<u8> {
    crate::image::testing::tar(&[(name, content)])
}

/// Stores an image of `layers` for `platform`; returns its manifest descriptor.
fn image(store: &ImageStore, layers: &[Vec<u8>], platform: &str) -> Descriptor {
    let (os, arch) = platform.split_once('/').unwrap();
    let diff_ids: Vec<String> = layers.iter().map(|l| sha256(l)).collect();
    let config = serde_json::json!({
        "created": "2024-05-01T12:00:00Z", "os": os, "architecture": arch,
        "config": {"Cmd": ["sh"]}, "rootfs": {"type": "layers", "diff_ids": diff_ids},
    })
    .to_string();
    let config_digest = store.put_blob(config.as_bytes()).unwrap();
    let layer_descs: Vec<serde_json::Value> = layers
        .iter()
        .map(|l| {
            let d = store.put_blob(l).unwrap();
            serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": l.len()})
        })
        .collect();
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": layer_descs,
    })
    .to_string();
    let digest = store.put_blob(manifest.as_bytes()).unwrap();
    Descriptor::new(
        MediaType::ImageManifest,
        manifest.len() as u64,
        digest.parse::<oci_spec::image::Digest>().unwrap(),
    )
}

#[test]
fn open_makes_a_private_layout_and_refuses_other_directories() {
    let (dir, store) = store();
    let root = store.root();
    for d in ["", "blobs", "blobs/sha256", "ingest"] {
        let mode = fs::metadata(root.join(d)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{d}");
    }
    assert_eq!(fs::read_to_string(root.join("oci-layout")).unwrap(), OCI_LAYOUT);
    assert!(store.read_index().unwrap().manifests().is_empty());
    // Opened again, nothing changes.
    let blob = store.put_blob(b"x").unwrap();
    drop(ImageStore::open(root.to_path_buf()).unwrap());
    assert!(store.has_blob(&blob));
    let other = dir.path().join("photos");
    fs::create_dir(&other).unwrap();
    fs::write(other.join("cat.jpg"), b"").unwrap();
    let e = ImageStore::open(other.clone()).unwrap_err().to_string();
    assert!(
        e.contains("is not an image store") && e.contains("cat.jpg"),
        "{e}"
    );
    assert_eq!(files(&other), ["cat.jpg"], "nothing was written into it");
}

#[test]
fn digests_are_checked() {
    let (_dir, store) = store();
    let good = format!("sha256:{}", "a".repeat(64));
    assert!(blob::parse_digest(&good).is_ok());
    assert!(blob::parse_digest(&format!("sha512:{}", "0".repeat(128))).is_ok());
    for bad in [
        format!("sha256:{}", "A".repeat(64)),
        format!("sha256:{}", "a".repeat(63)),
        format!("md5:{}", "a".repeat(32)),
        format!("sha256:{}/../x", "a".repeat(60)),
        "a".repeat(64),
    ] {
        assert!(blob::parse_digest(&bad).is_err(), "{bad}");
        assert!(!store.has_blob(&bad));
        assert!(store.ingest(&bad, 1).is_err(), "{bad}");
    }
}

#[test]
fn put_and_read_blobs() {
    let (_dir, store) = store();
    let d = store.put_blob(b"hello").unwrap();
    assert_eq!(d, sha256(b"hello"));
    assert_eq!(store.read_blob(&d, 5).unwrap(), b"hello");
    let e = store.read_blob(&d, 4).unwrap_err().to_string();
    assert!(e.contains("size limit"), "{e}");
    // Stored once: a second put does no work.
    let path = store.root().join("blobs/sha256").join(&d[7..]);
    let before = fs::metadata(&path).unwrap().modified().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(store.put_blob(b"hello").unwrap(), d);
    assert_eq!(fs::metadata(&path).unwrap().modified().unwrap(), before);
    // A corrupt blob is refused and removed, so that it can be written again.
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(&path, b"hellO").unwrap();
    let e = store.read_blob(&d, 100).unwrap_err().to_string();
    assert!(e.contains("is corrupt") && e.contains(&sha256(b"hellO")), "{e}");
    assert!(!store.has_blob(&d));
    let e = store.read_blob(&d, 100).unwrap_err().to_string();
    assert!(e.contains("not in the image store"), "{e}");
    assert!(files(&store.root().join("ingest")).is_empty());
}

fn writer(store: &ImageStore, digest: &str, size: u64) -> BlobWriter {
    match store.ingest(digest, size).unwrap() {
        Ingest::Writing(w) => w,
        Ingest::Present => panic!("{digest} is present"),
    }
}

#[test]
fn ingest_commit_and_present() {
    let (_dir, store) = store();
    let data = b"some layer bytes".repeat(1000);
    let d = sha256(&data);
    let mut w = writer(&store, &d, data.len() as u64);
    assert_eq!(w.offset(), 0);
    w.write_all(&data).unwrap();
    w.commit().unwrap();
    assert!(store.has_blob(&d));
    assert_eq!(store.read_blob(&d, 1 << 20).unwrap(), data);
    assert!(matches!(
        store.ingest(&d, data.len() as u64).unwrap(),
        Ingest::Present
    ));
    assert!(files(&store.root().join("ingest")).is_empty());
}

#[test]
fn a_mismatch_deletes_the_partial() {
    let (_dir, store) = store();
    let want = sha256(b"expected");
    let mut w = writer(&store, &want, 8);
    w.write_all(b"imposter").unwrap();
    let e = w.commit().unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "digest mismatch: the content has digest {}, expected {want}",
            sha256(b"imposter")
        )
    );
    assert!(!store.has_blob(&want));
    assert!(
        files(&store.root().join("ingest")).is_empty(),
        "no partial or temporary file left"
    );
    assert!(files(&store.root().join("blobs/sha256")).is_empty());
    // Too many bytes are refused as they come, not stored.
    let mut w = writer(&store, &want, 8);
    assert!(w.write_all(b"expected!").is_err());
    drop(w);
    // A short one is kept for a resume.
    let mut w = writer(&store, &want, 8);
    w.restart().unwrap();
    w.write_all(b"expe").unwrap();
    let e = w.commit().unwrap_err().to_string();
    assert!(e.contains("incomplete: 4 of its 8 bytes"), "{e}");
    assert_eq!(writer(&store, &want, 8).offset(), 4);
}

#[test]
fn a_dropped_download_resumes() {
    let (_dir, store) = store();
    let data: Vec<u8> = (0..100_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let d = sha256(&data);
    let size = data.len() as u64;
    let mut w = writer(&store, &d, size);
    w.write_all(&data[..150_000]).unwrap();
    drop(w); // Ctrl-C
    let mut w = writer(&store, &d, size);
    assert_eq!(w.offset(), 150_000);
    w.write_all(&data[150_000..]).unwrap();
    w.commit().unwrap();
    assert_eq!(store.read_blob(&d, size).unwrap(), data);
    // A server that ignores Range: start over.
    let data2 = b"second blob".to_vec();
    let d2 = sha256(&data2);
    let mut w = writer(&store, &d2, data2.len() as u64);
    w.write_all(b"second").unwrap();
    drop(w);
    let mut w = writer(&store, &d2, data2.len() as u64);
    assert_eq!(w.offset(), 6);
    w.restart().unwrap();
    assert_eq!(w.offset(), 0);
    w.write_all(&data2).unwrap();
    w.commit().unwrap();
    assert!(store.has_blob(&d2));
}

#[test]
fn two_writers_of_one_blob_take_turns() {
    let (_dir, store) = store();
    let store = Arc::new(store);
    let data = b"shared layer".to_vec();
    let d = sha256(&data);
    let mut first = writer(&store, &d, data.len() as u64);
    first.write_all(&data[..3]).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let second = {
        let (store, d, done) = (store.clone(), d.clone(), done.clone());
        std::thread::spawn(move || {
            let r = store.ingest(&d, 12).unwrap();
            done.store(true, Ordering::SeqCst);
            matches!(r, Ingest::Present)
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    assert!(!done.load(Ordering::SeqCst), "the second waits for the first");
    first.write_all(&data[3..]).unwrap();
    first.commit().unwrap();
    assert!(second.join().unwrap(), "the second finds the blob present");
    assert!(files(&store.root().join("ingest")).is_empty());

    // After a first writer's mismatch, the second starts afresh.
    let want = sha256(b"good");
    let mut first = writer(&store, &want, 4);
    first.write_all(b"bad!").unwrap();
    let second = {
        let (store, want) = (store.clone(), want.clone());
        std::thread::spawn(move || {
            let mut w = writer(&store, &want, 4);
            assert_eq!(w.offset(), 0);
            w.write_all(b"good").unwrap();
            w.commit().unwrap();
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    assert!(first.commit().is_err());
    second.join().unwrap();
    assert!(store.has_blob(&want));
}

#[test]
fn names() {
    let (_dir, store) = store();
    let a = image(&store, &[layer("a", b"a")], "linux/amd64");
    let b = image(&store, &[layer("b", b"b")], "linux/amd64");
    let name = "docker.io/library/busybox:1.36";
    assert_eq!(store.resolve(name).unwrap(), None);
    store.set_name(name, &a).unwrap();
    assert_eq!(store.resolve(name).unwrap().unwrap().digest(), a.digest());
    let entry = store.resolve(name).unwrap().unwrap();
    assert_eq!(ref_name(&entry), Some(name));
    store.set_name(name, &b).unwrap();
    assert_eq!(
        store.read_index().unwrap().manifests().len(),
        1,
        "replaced, not added"
    );
    assert_eq!(store.resolve(name).unwrap().unwrap().digest(), b.digest());
    let e = store.set_name("busybox", &a).unwrap_err().to_string();
    assert!(
        e.contains("not a full image name") && e.contains("docker.io/library/busybox:latest"),
        "{e}"
    );
    let missing = Descriptor::new(
        MediaType::ImageManifest,
        1,
        sha256(b"nothing").parse::<oci_spec::image::Digest>().unwrap(),
    );
    let e = store.set_name(name, &missing).unwrap_err().to_string();
    assert!(e.contains("not in the image store"), "{e}");
    assert_eq!(store.remove_name(name).unwrap().unwrap().digest(), b.digest());
    assert_eq!(store.remove_name(name).unwrap(), None);
    let mut left = files(store.root());
    left.retain(|f| !f.starts_with("blobs/"));
    assert_eq!(
        left,
        ["gc.lock", "index.json", "index.lock", "ingest/", "oci-layout"],
        "no temporary file left"
    );
}

#[test]
fn concurrent_names_are_all_kept() {
    let (_dir, store) = store();
    let a = image(&store, &[layer("a", b"a")], "linux/amd64");
    let store = Arc::new(store);
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let (store, a) = (store.clone(), a.clone());
            std::thread::spawn(move || {
                for j in 0..5 {
                    store
                        .set_name(&format!("docker.io/library/t{i}:{j}"), &a)
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(store.list().unwrap().len(), 40);
}

#[test]
fn gc_keeps_what_a_name_reaches() {
    let (_dir, store) = store();
    let shared = layer("bin/sh", b"shell");
    let a = image(&store, &[shared.clone(), layer("a", b"only a")], "linux/amd64");
    let b = image(&store, &[shared.clone(), layer("b", b"only b")], "linux/amd64");
    store.set_name("docker.io/library/a:1", &a).unwrap();
    store.set_name("docker.io/library/b:1", &b).unwrap();
    let orphan = store.put_blob(b"nobody's").unwrap();
    // A stale partial download and a temporary file left by a crash.
    let mut w = writer(&store, &sha256(b"partial!"), 8);
    w.write_all(b"part").unwrap();
    drop(w);
    fs::write(store.root().join("ingest/.put-crashed"), b"x").unwrap();
    fs::write(store.root().join(".index.json.crashed"), b"{").unwrap();

    let stats = store.gc(true).unwrap().unwrap();
    assert_eq!((stats.blobs, stats.partials), (1, 3), "{stats:?}");
    assert!(!store.has_blob(&orphan));
    assert!(files(&store.root().join("ingest")).is_empty());
    assert!(!store.root().join(".index.json.crashed").exists());

    let a_blobs = 4; // manifest, config, two layers
    assert_eq!(files(&store.root().join("blobs/sha256")).len(), 2 * a_blobs - 1);
    store.remove_name("docker.io/library/a:1").unwrap();
    let stats = store.gc(true).unwrap().unwrap();
    assert_eq!(
        stats.blobs, 3,
        "a's manifest, config and own layer; the shared layer stays"
    );
    assert!(store.has_blob(&sha256(&shared)));
    let image = crate::image::oci::import_stored(
        &store,
        &store.resolve("docker.io/library/b:1").unwrap().unwrap(),
        1 << 20,
    )
    .unwrap();
    assert_eq!(image.id, store.list().unwrap()[0].id.clone().unwrap());
}

#[test]
fn gc_waits_for_users() {
    let (_dir, store) = store();
    let orphan = store.put_blob(b"orphan").unwrap();
    let guard = store.in_use().unwrap();
    assert_eq!(store.gc(false).unwrap(), None, "a pull or build holds the store");
    drop(guard);
    let w = writer(&store, &sha256(b"downloading"), 11);
    assert_eq!(store.gc(false).unwrap(), None, "a download holds the store");
    drop(w);
    assert_eq!(store.gc(false).unwrap().unwrap().blobs, 1);
    assert!(!store.has_blob(&orphan));
}

#[test]
fn gc_stops_at_an_unreadable_manifest() {
    let (_dir, store) = store();
    let bogus = store.put_blob(b"not json").unwrap();
    let d = Descriptor::new(
        MediaType::ImageManifest,
        8,
        bogus.parse::<oci_spec::image::Digest>().unwrap(),
    );
    store.set_name("docker.io/library/bogus:1", &d).unwrap();
    let orphan = store.put_blob(b"orphan").unwrap();
    let e = store.gc(true).unwrap_err().to_string();
    assert!(
        e.contains("nothing was deleted") && e.contains("pod1 rmi docker.io/library/bogus:1"),
        "{e}"
    );
    assert!(store.has_blob(&orphan));
}

#[test]
fn list_and_import_an_index() {
    let (_dir, store) = store();
    let amd = image(&store, &[layer("etc/os", b"amd64")], "linux/amd64");
    let arm = image(&store, &[layer("etc/os", b"arm64")], "linux/arm64");
    let entry = |d: &Descriptor, arch: &str| {
        serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d.digest().to_string(),
                           "size": d.size(), "platform": {"os": "linux", "architecture": arch}})
    };
    // The s390x manifest was never pulled: gc and list do without it.
    let absent = Descriptor::new(
        MediaType::ImageManifest,
        3,
        sha256(b"s390x").parse::<oci_spec::image::Digest>().unwrap(),
    );
    let index =
        serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [entry(&arm, "arm64"), entry(&amd, "amd64"), entry(&absent, "s390x")]})
        .to_string();
    let index_digest = store.put_blob(index.as_bytes()).unwrap();
    let idx = Descriptor::new(
        MediaType::ImageIndex,
        index.len() as u64,
        index_digest.parse::<oci_spec::image::Digest>().unwrap(),
    );
    store.set_name("docker.io/library/multi:1", &idx).unwrap();
    let listed = store.list().unwrap();
    assert_eq!(listed.len(), 1);
    let l = &listed[0];
    assert_eq!(l.digest, index_digest);
    assert_eq!(l.created.as_deref(), Some("2024-05-01T12:00:00Z"));
    let amd_manifest = store.read_blob(amd.digest().as_ref(), 1 << 20).unwrap();
    let m: serde_json::Value = serde_json::from_slice(&amd_manifest).unwrap();
    assert_eq!(l.id.as_deref(), m["config"]["digest"].as_str());
    let layers = m["layers"][0]["size"].as_u64().unwrap() + m["config"]["size"].as_u64().unwrap();
    assert_eq!(l.size, Some(amd.size() + layers));
    let image = crate::image::oci::import_stored(&store, &idx, 1 << 20).unwrap();
    assert_eq!(image.config.cmd, ["sh"]);
    assert_eq!(store.gc(true).unwrap().unwrap().blobs, 0, "both platforms stay");

    // No linux/amd64: the error names the platforms there are.
    let only_arm = serde_json::json!({"schemaVersion": 2, "manifests": [entry(&arm, "arm64")]}).to_string();
    let d = store.put_blob(only_arm.as_bytes()).unwrap();
    let idx = Descriptor::new(
        MediaType::ImageIndex,
        only_arm.len() as u64,
        d.parse::<oci_spec::image::Digest>().unwrap(),
    );
    let e = crate::image::oci::import_stored(&store, &idx, 1 << 20)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no linux/amd64") && e.contains("it has linux/arm64"),
        "{e}"
    );
}
