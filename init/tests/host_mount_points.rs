//! Host tier: mount points resolved in the container's root as runc
//! resolves them: through the image's symlinks (Debian's `/var/run -> /run`,
//! systemd-resolved's `/etc/resolv.conf`), making what is missing where
//! they lead, and never out of the root whatever they point at; /proc
//! that is a symlink stays refused (host.rs has /sys and /dev). The
//! images are the busybox fixture of common/mod.rs with the symlinks added
//! by each test.

#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use common::*;
use pod1_manifest::events::{Event, Phase};
use pod1_manifest::plan::{ContainerPlan, FileMount};
use pod1_manifest::Plan;

/// The busybox image in the tree.
fn image(t: &Tree) -> PathBuf {
    t.root().join(IMAGE.trim_start_matches('/'))
}

/// Binds the tree's `/pod1/files/{name}` ([`write_file`]) at `target` in `c`.
fn bind(mut c: ContainerPlan, name: &str, target: &str) -> ContainerPlan {
    c.files.push(FileMount {
        source: format!("/pod1/files/{name}"),
        target: target.into(),
        read_only: true,
    });
    c
}

/// Writes the tree's `/pod1/files/{name}`.
fn write_file(t: &Tree, name: &str, content: &str) {
    fs::create_dir_all(t.root().join("pod1/files")).unwrap();
    fs::write(t.root().join("pod1/files").join(name), content).unwrap();
}

/// Whether `path` is a mount point in a container's
/// `cat /proc/self/mountinfo` (field 5).
fn mounted_at(mountinfo: &[String], path: &str) -> bool {
    mountinfo.iter().any(|l| l.split(' ').nth(4) == Some(path))
}

/// The lines after `marker` in `out`.
fn after<'a>(out: &'a [String], marker: &str) -> &'a [String] {
    let at = out
        .iter()
        .position(|l| l == marker)
        .unwrap_or_else(|| panic!("{marker} in {out:#?}"));
    &out[at + 1..]
}

/// The reason of the first exit of `container`.
fn reason(o: &Outcome, container: &str) -> String {
    o.events
        .iter()
        .find_map(|r| match &r.event {
            Event::ContainerExited {
                container: c, reason, ..
            } if c == container => reason.clone(),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no exit with a reason for {container}: {:#?}", o.kinds()))
}

/// Runs `p` on a tree changed by `prepare` (before the run).
fn run_with(p: &Plan, prepare: impl FnOnce(&Tree)) -> Outcome {
    let t = tree(p);
    prepare(&t);
    spawn_tree(t, &[]).finish()
}

#[test]
fn a_volume_under_var_run_lands_in_run_where_var_run_links_there() {
    let writer = mount(
        sh(
            "writer",
            "echo hello > /var/run/app/f; cat /run/app/f; readlink /var/run; \
             echo mountinfo; cat /proc/self/mountinfo",
        ),
        "v",
        "/var/run/app",
    );
    let reader = mount(sh("reader", "cat /v/f"), "v", "/v");
    let mut p = pod(vec![reader]);
    p.init_containers = vec![writer];
    volume(&mut p, "v");
    let o = run_with(&p, |t| {
        // As in every Debian and Ubuntu image.
        fs::create_dir(image(t).join("run")).unwrap();
        fs::create_dir(image(t).join("var")).unwrap();
        symlink("/run", image(t).join("var/run")).unwrap();
    });
    check(&o);
    let out = o.stdout("writer");
    assert_eq!(out[..3], ["hello", "/run", "mountinfo"], "{out:#?}");
    assert!(mounted_at(&out[3..], "/run/app"), "{out:#?}");
    // The volume itself, as the other container sees it.
    assert_eq!(o.stdout("reader"), ["hello"]);
    assert_eq!(o.pod_exit(), (Phase::Succeeded, 0));
}

#[test]
fn a_file_bound_at_a_dangling_resolv_conf_link_is_made_where_it_points() {
    let c = sh(
        "a",
        "cat /etc/resolv.conf; cat /run/systemd/resolve/stub-resolv.conf; \
         readlink /etc/resolv.conf; echo mountinfo; cat /proc/self/mountinfo",
    );
    let p = pod(vec![bind(c, "resolv.conf", "/etc/resolv.conf")]);
    let o = run_with(&p, |t| {
        // systemd-resolved's link, with no /run at all in the image.
        let stub = "/run/systemd/resolve/stub-resolv.conf";
        symlink(stub, image(t).join("etc/resolv.conf")).unwrap();
        write_file(t, "resolv.conf", "nameserver 10.0.2.3\n");
    });
    check(&o);
    let out = o.stdout("a");
    assert_eq!(
        out[..4],
        [
            "nameserver 10.0.2.3",
            "nameserver 10.0.2.3",
            "/run/systemd/resolve/stub-resolv.conf",
            "mountinfo"
        ],
        "{out:#?}"
    );
    let mountinfo = after(&out, "mountinfo");
    assert!(
        mounted_at(mountinfo, "/run/systemd/resolve/stub-resolv.conf"),
        "{out:#?}"
    );
    assert_eq!(o.pod_exit(), (Phase::Succeeded, 0));
}

/// Paths under /tmp on the host that nothing has made; removed when
/// dropped, should a failing test have made them.
struct Nowhere(Vec<PathBuf>);

impl Nowhere {
    fn new(tags: &[&str]) -> Nowhere {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let pid = std::process::id();
        let paths: Vec<_> = tags
            .iter()
            .map(|tag| Path::new("/tmp").join(format!("pod1-escape-{tag}-{pid}-{nanos}")))
            .collect();
        assert!(paths.iter().all(|p| !p.exists()));
        Nowhere(paths)
    }
}

impl Drop for Nowhere {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = fs::remove_dir_all(p);
            let _ = fs::remove_file(p);
        }
    }
}

#[test]
fn symlinks_leading_out_of_the_root_land_inside_it() {
    // Followed from the host's `/`, each link would make (and mount on) a
    // path of the host's /tmp: a volume under an absolute link climbing
    // above `/`, a file at one, a file at a relative link climbing above
    // the root, and a file at a link to an existing file of the host.
    let nowhere = Nowhere::new(&["dir", "abs", "rel"]);
    let [dir, abs, rel] = [&nowhere.0[0], &nowhere.0[1], &nowhere.0[2]];
    let host_file = TempDir::new("pod1-host-file");
    let hosts = host_file.path().join("hosts");
    fs::write(&hosts, "the host's own\n").unwrap();
    let name = |p: &Path| p.file_name().unwrap().to_str().unwrap().to_string();
    let script = format!(
        "echo kept > /data/{d}/f; cat {dir}/f; cat /etc/hostname {abs}; \
         cat /etc/resolv.conf {rel}; cat /etc/hosts {hosts}",
        d = name(dir),
        dir = dir.display(),
        abs = abs.display(),
        rel = rel.display(),
        hosts = hosts.display()
    );
    let mut c = mount(sh("a", &script), "v", &format!("/data/{}", name(dir)));
    for (file, target) in [
        ("hostname", "/etc/hostname"),
        ("resolv.conf", "/etc/resolv.conf"),
        ("hosts", "/etc/hosts"),
    ] {
        c = bind(c, file, target);
    }
    let mut p = pod(vec![c]);
    volume(&mut p, "v");
    let o = run_with(&p, |t| {
        let img = image(t);
        symlink("/../../../../tmp", img.join("data")).unwrap();
        symlink(format!("/../../../..{}", abs.display()), img.join("etc/hostname")).unwrap();
        let up = "../".repeat(30);
        symlink(format!("{up}{}", rel.display()), img.join("etc/resolv.conf")).unwrap();
        symlink(&hosts, img.join("etc/hosts")).unwrap();
        write_file(t, "hostname", "testpod\n");
        write_file(t, "resolv.conf", "nameserver 10.0.2.3\n");
        write_file(t, "hosts", "127.0.0.1 localhost\n");
    });
    // Nothing made, nothing changed outside the root.
    for p in [dir, abs, rel] {
        assert!(!p.exists(), "{} made on the host", p.display());
    }
    assert_eq!(fs::read_to_string(&hosts).unwrap(), "the host's own\n");
    check(&o);
    assert_eq!(
        o.stdout("a"),
        [
            "kept",
            "testpod",
            "testpod",
            "nameserver 10.0.2.3",
            "nameserver 10.0.2.3",
            "127.0.0.1 localhost",
            "127.0.0.1 localhost"
        ]
    );
    assert_eq!(o.pod_exit(), (Phase::Succeeded, 0));
}

#[test]
fn proc_that_links_inside_the_image_is_still_refused() {
    // Mount points are resolved through symlinks, but not the kernel's
    // filesystems': /proc must be /proc, even where the link stays inside
    // the root (host.rs has it leading out, and /sys and /dev).
    let p = pod(vec![sh("a", "echo never")]);
    let o = run_with(&p, |t| symlink("tmp", image(t).join("proc")).unwrap());
    check(&o);
    let why = reason(&o, "a");
    assert!(
        why.contains("symlink at ") && why.ends_with("/proc: invalid input parameter"),
        "{why}"
    );
    assert!(o.logs("a").is_empty());
    assert_eq!(o.pod_exit(), (Phase::Failed, 125));
}
