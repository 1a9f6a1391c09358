//! `pod1 load`, `images`, `tag` and `rmi` against the local image store,
//! with `POD1_CACHE` pointed at a temporary directory.
//!
//! Fixtures come from `pod1_tests::fixtures` (umoci, skopeo, Debian's
//! busybox-static): an OCI layout tagged `latest` and the docker-archive
//! skopeo makes of it (RepoTags `busybox:latest`). skopeo reads the store
//! back as the OCI layout it is.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use pod1_tests::{fixtures, run, sh};

const POD1: &str = env!("CARGO_BIN_EXE_pod1");

/// A fresh cache directory for one test.
fn cache(name: &str) -> PathBuf {
    let dir = fixtures().join(format!("cache-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn pod1(cache: &Path, args: &[&str]) -> Output {
    Command::new(POD1)
        .env("POD1_CACHE", cache)
        .args(args)
        .output()
        .unwrap()
}

/// Runs pod1, asserting success; its stdout.
fn ok(cache: &Path, args: &[&str]) -> String {
    let out = run(Command::new(POD1).env("POD1_CACHE", cache).args(args));
    String::from_utf8(out.stdout).unwrap()
}

/// Runs pod1, asserting exit code 125; its stderr.
fn fails(cache: &Path, args: &[&str]) -> String {
    let out = pod1(cache, args);
    assert_eq!(out.status.code(), Some(125), "{args:?}: {out:?}");
    String::from_utf8(out.stderr).unwrap()
}

fn images(cache: &Path) -> Vec<serde_json::Value> {
    serde_json::from_str(&ok(cache, &["images", "--json"])).unwrap()
}

/// The image of `name` in `images --json`.
fn image<'a>(list: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    list.iter()
        .find(|i| i["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {list:#?}"))
}

fn blobs(cache: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(cache.join("images/blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn skopeo_inspect(cache: &Path, name: &str) -> serde_json::Value {
    let out = run(Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("oci:{}:{name}", cache.join("images").display())));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn load_list_tag_rmi() {
    let f = fixtures();
    let c = cache("cycle");
    let layout = f.join("busybox");

    // An OCI layout tagged "latest" has no full name: NAME is asked for.
    let e = fails(&c, &["load", &format!("oci:{}:latest", layout.display())]);
    assert!(e.contains("pod1 load SOURCE NAME"), "{e}");
    let out = ok(
        &c,
        &[
            "load",
            &format!("oci:{}:latest", layout.display()),
            "busybox:1.36",
        ],
    );
    assert_eq!(out, "Loaded image: docker.io/library/busybox:1.36\n");

    // The docker-archive (detected from its content) carries its RepoTags.
    let archive = f.join("busybox-docker.tar");
    let before = blobs(&c);
    let out = ok(&c, &["load", archive.to_str().unwrap()]);
    assert_eq!(out, "Loaded image: docker.io/library/busybox:latest\n");
    let after = blobs(&c);
    assert_eq!(
        after.len(),
        before.len() + 2,
        "a manifest and the uncompressed layer: {after:?}"
    );

    // A second load of either writes nothing.
    let out = ok(&c, &["load", archive.to_str().unwrap()]);
    assert_eq!(
        out,
        "Loaded image: docker.io/library/busybox:latest (unchanged)\n"
    );
    let out = ok(&c, &["load", layout.to_str().unwrap(), "busybox:1.36"]);
    assert_eq!(out, "Loaded image: docker.io/library/busybox:1.36 (unchanged)\n");
    assert_eq!(blobs(&c), after);

    // images --json: full values; both loads have the same config.
    let list = images(&c);
    assert_eq!(list.len(), 2, "{list:#?}");
    let oci = image(&list, "docker.io/library/busybox:1.36");
    let docker = image(&list, "docker.io/library/busybox:latest");
    assert_eq!(oci["repository"], "docker.io/library/busybox");
    assert_eq!(oci["tag"], "1.36");
    assert_eq!(oci["id"], docker["id"]);
    assert_ne!(oci["digest"], docker["digest"]);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(
        oci["digest"], index["manifests"][0]["digest"],
        "digests unchanged"
    );
    assert!(oci["size"].as_u64().unwrap() > 500_000, "{oci}");
    assert!(oci["created"].as_str().unwrap().starts_with("20"), "{oci}");

    // The table.
    let table = ok(&c, &["images"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    for column in ["REPOSITORY", "TAG", "DIGEST", "IMAGE ID", "CREATED", "SIZE"] {
        assert!(lines[0].contains(column), "{table}");
    }
    let id = oci["id"].as_str().unwrap();
    let short_id = &id[7..19];
    assert!(
        lines[1].starts_with("docker.io/library/busybox ") && lines[1].contains(" 1.36 "),
        "{table}"
    );
    assert!(
        lines[1].contains(short_id) && lines[1].contains(" ago"),
        "{table}"
    );
    assert!(
        lines[1].trim_end().ends_with("MB") || lines[1].trim_end().ends_with("kB"),
        "{table}"
    );

    // skopeo reads the store as an OCI layout.
    let manifest = skopeo_inspect(&c, "docker.io/library/busybox:latest");
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(manifest["config"]["digest"], docker["id"]);
    let manifest = skopeo_inspect(&c, "docker.io/library/busybox:1.36");
    assert_eq!(manifest["config"]["digest"], oci["id"]);

    // tag: both names normalised; SRC must exist.
    assert_eq!(ok(&c, &["tag", "busybox:1.36", "localhost:5000/tools/bb:v1"]), "");
    let e = fails(&c, &["tag", "busybox:9", "x:1"]);
    assert!(e.contains("no such image: busybox:9"), "{e}");
    let e = fails(&c, &["tag", "busybox:1.36", "Upper:1"]);
    assert!(e.contains("must be lowercase"), "{e}");
    let list = images(&c);
    assert_eq!(
        image(&list, "localhost:5000/tools/bb:v1")["digest"],
        oci["digest"]
    );

    // rmi: a name another name shares blobs with deletes nothing.
    let out = ok(&c, &["rmi", "localhost:5000/tools/bb:v1"]);
    assert_eq!(out, "Untagged: localhost:5000/tools/bb:v1\n");
    assert_eq!(blobs(&c), after);
    let e = fails(&c, &["rmi", "nothing:here"]);
    assert!(e.contains("no such image: nothing:here"), "{e}");
    // An ID prefix matching two names is refused without --force.
    let e = fails(&c, &["rmi", &id[7..15]]);
    assert!(e.contains("has 2 names") && e.contains("--force"), "{e}");
    // The docker-archive's own manifest and layer go; the shared config stays.
    let out = ok(&c, &["rmi", "busybox"]);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("Untagged: docker.io/library/busybox:latest"));
    let deleted = lines.next().unwrap_or_default();
    assert!(deleted.starts_with("Deleted: 2 blobs, "), "{out}");
    assert_eq!(blobs(&c), before);
    // By full image ID, the last name and every blob.
    let out = ok(&c, &["rmi", id]);
    assert!(
        out.starts_with("Untagged: docker.io/library/busybox:1.36\nDeleted: "),
        "{out}"
    );
    assert!(blobs(&c).is_empty());
    assert!(images(&c).is_empty());
    assert_eq!(ok(&c, &["images"]).lines().count(), 1, "the header alone");
}

#[test]
fn load_archives_and_refusals() {
    let f = fixtures();
    let c = cache("archives");
    // An oci-archive given as a path: its ref.name "latest" is no full name.
    let tar = f.join("busybox-oci.tar");
    let e = fails(&c, &["load", tar.to_str().unwrap()]);
    assert!(e.contains("give one"), "{e}");
    let out = ok(&c, &["load", tar.to_str().unwrap(), "ghcr.io/o/bb:2"]);
    assert_eq!(out, "Loaded image: ghcr.io/o/bb:2\n");
    // A layout whose ref.name is a full name keeps it (skopeo writes one).
    let named = f.join("named-layout");
    let _ = std::fs::remove_dir_all(&named);
    sh(&format!(
        "skopeo --insecure-policy copy -q oci:{}:latest oci:{}:quay.io/team/app:v3",
        f.join("busybox").display(),
        named.display()
    ));
    let out = ok(&c, &["load", &format!("oci:{}", named.display())]);
    assert_eq!(
        out,
        "Loaded image: quay.io/team/app:v3 (its blobs were in the store already)\n"
    );
    // docker-archive:PATH:REPO:TAG picks by RepoTag; a NAME with a digest is refused.
    let d = f.join("busybox-docker.tar");
    let out = ok(
        &c,
        &["load", &format!("docker-archive:{}:busybox:latest", d.display())],
    );
    assert_eq!(out, "Loaded image: docker.io/library/busybox:latest\n");
    let e = fails(
        &c,
        &[
            "load",
            d.to_str().unwrap(),
            &format!("x@sha256:{}", "a".repeat(64)),
        ],
    );
    assert!(e.contains("names a digest"), "{e}");
    let e = fails(&c, &["load", f.join("rootfs").to_str().unwrap()]);
    assert!(e.contains("not an OCI image layout"), "{e}");
    let e = fails(&c, &["load", "/nonexistent.tar"]);
    assert!(e.contains("does not exist"), "{e}");
    // No temporary file is left by any of it.
    let root = c.join("images");
    assert!(std::fs::read_dir(root.join("ingest")).unwrap().next().is_none());
    let stray: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
    // skopeo copies out of the store.
    let out_dir = f.join("copied-out");
    let _ = std::fs::remove_dir_all(&out_dir);
    sh(&format!(
        "skopeo --insecure-policy copy -q oci:{}:quay.io/team/app:v3 dir:{}",
        root.display(),
        out_dir.display()
    ));
    assert!(out_dir.join("manifest.json").exists());
}

#[test]
fn a_store_that_is_not_one_is_refused() {
    let c = cache("foreign");
    std::fs::create_dir_all(c.join("images")).unwrap();
    std::fs::write(c.join("images/notes.txt"), "mine").unwrap();
    let e = fails(&c, &["images"]);
    assert!(
        e.contains("is not an image store") && e.contains("POD1_CACHE"),
        "{e}"
    );
    assert!(!c.join("images/index.json").exists());
}

#[test]
fn rmi_leaves_the_blobs_while_the_store_is_in_use() {
    let f = fixtures();
    let c = cache("busy");
    ok(&c, &["load", f.join("busybox").to_str().unwrap(), "busybox:1"]);
    let before = blobs(&c);
    // Another pod1 (here flock(1)) holds gc.lock shared, as a pull does.
    let mut holder = Command::new("flock")
        .args(["--shared", "--no-fork"])
        .arg(c.join("images/gc.lock"))
        .args(["sleep", "30"])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let out = pod1(&c, &["rmi", "busybox:1"]);
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Untagged: docker.io/library/busybox:1\n"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the blobs stay until the next rmi"),
        "{out:?}"
    );
    assert_eq!(blobs(&c), before);
    // The next rmi (of anything) collects them.
    ok(&c, &["load", f.join("busybox").to_str().unwrap(), "other:1"]);
    let out = ok(&c, &["rmi", "other:1"]);
    assert!(out.contains(&format!("Deleted: {} blobs", before.len())), "{out}");
    assert!(blobs(&c).is_empty());
}
