//! Host tier: volumes and files as the kubelet hands them to containers:
//! prepared volumes (a configMap's layout, written into the tree as the
//! builder writes it into the initramfs), fsGroup on emptyDirs, subPath
//! (made, followed through the configMap's symlinks, refused when it leads
//! out), and the files bound after /dev (see common/mod.rs for the
//! fixture).

#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use common::*;
use pod1_manifest::events::{Event, Phase, Record, Stream};
use pod1_manifest::plan::{ContainerPlan, FileMount, MountPlan, User, VolumePlan};
use pod1_manifest::pod::RestartPolicy;
use pod1_manifest::Plan;

/// Where the prepared volume `cfg` sits in the tree.
const CFG: &str = "pod1/volumes/cfg";

/// Adds a prepared volume whose files are at `/source` in the tree.
fn prepared(plan: &mut Plan, name: &str, source: &str) {
    plan.volumes.push(VolumePlan {
        name: name.into(),
        size_limit_bytes: None,
        source: Some(format!("/{source}")),
        fs_group: None,
        host_path: None,
    });
}

/// Mounts `sub_path` of volume `name` at `path` in `c`.
fn mount_sub(mut c: ContainerPlan, name: &str, path: &str, sub_path: &str, read_only: bool) -> ContainerPlan {
    c.volume_mounts.push(MountPlan {
        name: name.into(),
        mount_path: path.into(),
        read_only,
        sub_path: Some(sub_path.into()),
    });
    c
}

/// Writes `files` into `dir` as the kubelet's AtomicWriter lays out a
/// configMap volume: the files in a timestamped directory, `..data`
/// pointing at it, and each key a symlink `key -> ..data/key`.
fn config_map(dir: &Path, files: &[(&str, &str, u32)]) {
    let data = dir.join("..2026_01_01_00_00_00.000000001");
    fs::create_dir_all(&data).unwrap();
    for (key, content, mode) in files {
        fs::write(data.join(key), content).unwrap();
        fs::set_permissions(data.join(key), fs::Permissions::from_mode(*mode)).unwrap();
        symlink(format!("..data/{key}"), dir.join(key)).unwrap();
    }
    symlink(data.file_name().unwrap(), dir.join("..data")).unwrap();
}

/// The usual configMap of these tests: a script and a config file.
fn cfg_tree(plan: &Plan) -> Tree {
    let t = tree(plan);
    config_map(
        &t.root().join(CFG),
        &[
            ("run.sh", "#!/bin/sh\necho ran from the configMap\n", 0o755),
            ("app.conf", "answer=42\n", 0o644),
        ],
    );
    t
}

/// What `container` wrote to stderr.
fn stderr(o: &Outcome, container: &str) -> Vec<String> {
    logs(&o.events, container, Some(Stream::Stderr))
}

/// The reason of the first exit of `container`.
fn reason(events: &[Record], container: &str) -> String {
    events
        .iter()
        .find_map(|r| match &r.event {
            Event::ContainerExited {
                container: c, reason, ..
            } if c == container => reason.clone(),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no exit with a reason for {container}: {events:#?}"))
}

/// The per-mount options of the mount at `path`, from a container's
/// `cat /proc/self/mountinfo` (field 6).
fn mount_options<'a>(mountinfo: &'a [String], path: &str) -> Vec<&'a str> {
    mountinfo
        .iter()
        .map(|l| l.split(' ').collect::<Vec<_>>())
        .rfind(|f| f.get(4) == Some(&path))
        .unwrap_or_else(|| panic!("{path} is not a mount point: {mountinfo:#?}"))[5]
        .split(',')
        .collect()
}

#[test]
fn a_prepared_volume_is_read_only_nosuid_nodev_and_executable() {
    // The mount says readOnly: false; the volume is read-only anyway.
    let script = "/cfg/run.sh; cat /cfg/app.conf; \
                  touch /cfg/new; echo changed >> /cfg/app.conf; \
                  echo mountinfo; cat /proc/self/mountinfo";
    let mut p = pod(vec![mount(sh("a", script), "cfg", "/cfg")]);
    prepared(&mut p, "cfg", CFG);
    let o = spawn_tree(cfg_tree(&p), &[]).finish();
    check(&o);
    let out = o.stdout("a");
    assert_eq!(
        out[..3],
        ["ran from the configMap", "answer=42", "mountinfo"],
        "{out:#?}"
    );
    let err = stderr(&o, "a");
    assert!(
        err[0].contains("/cfg/new") && err[0].contains("Read-only file system"),
        "{err:#?}"
    );
    assert!(err[1].contains("Read-only file system"), "{err:#?}");
    let opts = mount_options(&out[3..], "/cfg");
    for want in ["ro", "nosuid", "nodev"] {
        assert!(opts.contains(&want), "{want} in {opts:?}");
    }
    assert!(!opts.contains(&"noexec"), "{opts:?}");
    assert_eq!(o.pod_exit(), (Phase::Succeeded, 0));
}

#[test]
fn fs_group_owns_a_fresh_empty_dir_and_is_inherited_by_what_is_made_in_it() {
    let script =
        "stat -c '%a %g' /v /s; touch /v/f; mkdir /v/d; stat -c '%g' /v/f; stat -c '%a %g' /v/d; id -G";
    let mut c = mount(mount(sh("a", script), "v", "/v"), "s", "/s");
    c.user = User {
        uid: 1000,
        gid: 1000,
        additional_gids: vec![4321],
    };
    let mut p = pod(vec![c]);
    for (name, size) in [("v", None), ("s", Some(1 << 20))] {
        p.volumes.push(VolumePlan {
            name: name.into(),
            size_limit_bytes: size,
            source: None,
            fs_group: Some(4321),
            host_path: None,
        });
    }
    let o = run(&p);
    check(&o);
    // A user that is neither owner nor in the group could still write
    // (0777, as the kubelet leaves it); files and directories made in it
    // belong to the group, directories stay setgid.
    assert_eq!(
        o.logs("a"),
        ["2777 4321", "2777 4321", "4321", "2755 4321", "1000 4321"]
    );
}

#[test]
fn a_sub_path_is_made_in_an_empty_dir_with_the_volumes_mode_and_shared() {
    let mut p = pod(vec![
        mount(
            sh("reader", "cat /v/deep/sub/f; stat -c '%a' /v/deep /v/deep/sub"),
            "v",
            "/v",
        ),
        mount_sub(
            sh("ro", "cat /ro/f; touch /ro/x; ls /ro"),
            "v",
            "/ro",
            "deep/sub",
            true,
        ),
    ]);
    let mut writer = mount_sub(
        sh("writer", "echo written > /s/f; echo id=$(id -u)"),
        "v",
        "/s",
        "./deep//sub/",
        false,
    );
    // Not root: the directories made for it must let it write.
    writer.user = User {
        uid: 1000,
        gid: 1000,
        additional_gids: vec![],
    };
    p.init_containers = vec![writer];
    volume(&mut p, "v");
    let o = run(&p);
    check(&o);
    assert_eq!(o.logs("writer"), ["id=1000"]);
    assert_eq!(o.logs("reader"), ["written", "777", "777"]);
    assert_eq!(o.stdout("ro"), ["written", "f"]);
    let err = stderr(&o, "ro");
    assert!(err[0].contains("Read-only file system"), "{err:?}");
    assert_eq!(o.pod_exit(), (Phase::Succeeded, 0));
}

#[test]
fn a_sub_path_through_the_config_maps_symlinks_binds_one_file() {
    let script = "cat /etc/app.conf; [ -f /etc/app.conf ] && echo is-a-file; \
                  /usr/local/bin/run.sh; echo x >> /etc/app.conf; ls /etc";
    let c = mount_sub(
        mount_sub(sh("a", script), "cfg", "/etc/app.conf", "app.conf", false),
        "cfg",
        "/usr/local/bin/run.sh",
        "run.sh",
        false,
    );
    let missing = mount_sub(sh("missing", "echo never"), "cfg", "/x", "no-such-key", false);
    let mut p = pod(vec![c, missing]);
    prepared(&mut p, "cfg", CFG);
    let o = spawn_tree(cfg_tree(&p), &[]).finish();
    check(&o);
    // Only the file is there, not the volume's other entries.
    assert_eq!(
        o.stdout("a"),
        [
            "answer=42",
            "is-a-file",
            "ran from the configMap",
            "app.conf",
            "group",
            "passwd"
        ]
    );
    let err = stderr(&o, "a");
    assert!(err[0].contains("Read-only file system"), "{err:#?}");
    let why = reason(&o.events, "missing");
    assert!(
        why.contains("no-such-key") && why.contains("does not exist"),
        "{why}"
    );
    assert!(o.logs("missing").is_empty());
    assert_eq!(o.pod_exit(), (Phase::Failed, 125));
}

#[test]
fn a_sub_path_leading_out_of_a_prepared_volume_is_refused() {
    let mut containers = Vec::new();
    for (name, sub) in [("up", "up/etc"), ("abs", "abs"), ("dotdot", "../../etc")] {
        containers.push(mount_sub(sh(name, "cat /x/passwd"), "cfg", "/x", sub, false));
    }
    containers.push(mount_sub(sh("fine", "cat /x"), "cfg", "/x", "app.conf", false));
    let mut p = pod(containers);
    prepared(&mut p, "cfg", CFG);
    let t = cfg_tree(&p);
    symlink("../../../../../..", t.root().join(CFG).join("up")).unwrap();
    symlink("/etc", t.root().join(CFG).join("abs")).unwrap();
    let o = spawn_tree(t, &[]).finish();
    check(&o);
    for name in ["up", "abs", "dotdot"] {
        let why = reason(&o.events, name);
        assert!(why.contains("leads outside the volume"), "{name}: {why}");
        assert!(o.logs(name).is_empty(), "{name}: {:?}", o.logs(name));
        assert_eq!(o.exits(name), [(125, None)], "{name}");
    }
    assert_eq!(o.logs("fine"), ["answer=42"]);
}

#[test]
fn a_symlink_planted_in_an_empty_dir_is_not_followed_by_a_sub_path() {
    // The subPath attack on a node (CVE-2017-1002101): a container swaps
    // the subPath directory for a symlink to `/` and waits for the
    // container mounting it to restart. The victim's first run is fine;
    // its restart is refused, for good.
    let victim = mount_sub(
        sh(
            "victim",
            "touch /s/ready; while [ -e /s/ready ]; do usleep 10000; done; exit 1",
        ),
        "v",
        "/s",
        "esc",
        false,
    );
    let planter = mount(
        sh(
            "planter",
            "while [ ! -e /v/esc/ready ]; do usleep 10000; done; \
             mv /v/esc /v/old; ln -s / /v/esc; rm /v/old/ready; echo planted",
        ),
        "v",
        "/v",
    );
    let mut p = pod(vec![victim, planter]);
    p.restart_policy = RestartPolicy::OnFailure;
    volume(&mut p, "v");
    let mut r = spawn(&p);
    r.wait_for("the victim's restart refused", |ev| {
        ev.iter().any(|e| {
            matches!(&e.event, Event::ContainerExited { container, reason: Some(_), .. } if container == "victim")
        })
    });
    r.signal(libc::SIGTERM);
    let o = r.finish();
    check(&o);
    assert_eq!(o.logs("planter"), ["planted"]);
    let exits = o.exits("victim");
    assert_eq!(exits[0], (1, None), "{exits:?}");
    assert!(exits[1..].iter().all(|e| *e == (125, None)), "{exits:?}");
    let why = reason(&o.events, "victim");
    assert!(why.contains("\"esc\"") && why.contains("leads outside"), "{why}");
}

#[test]
fn files_are_bound_read_only_or_shared_writable() {
    let first = sh(
        "first",
        "cat /etc/hosts; echo x >> /etc/hosts; cat /new/dir/hostname; \
         echo from-first > /dev/termination-log",
    );
    let second = sh(
        "second",
        "cat /dev/termination-log; echo from-second >> /dev/termination-log; \
         cat /dev/termination-log; ls -l /dev/termination-log",
    );
    let mut p = pod(vec![second]);
    p.init_containers = vec![first];
    let file = |source: &str, target: &str, read_only| FileMount {
        source: format!("/pod1/files/{source}"),
        target: target.into(),
        read_only,
    };
    p.init_containers[0].files = vec![
        file("hosts", "/etc/hosts", true),
        file("hostname", "/new/dir/hostname", true),
        file("termination-log", "/dev/termination-log", false),
    ];
    p.containers[0].files = vec![file("termination-log", "/dev/termination-log", false)];
    let t = tree(&p);
    let files = t.root().join("pod1/files");
    fs::create_dir_all(&files).unwrap();
    fs::write(files.join("hosts"), "127.0.0.1\tlocalhost\n10.0.2.15\ttestpod\n").unwrap();
    fs::write(files.join("hostname"), "testpod\n").unwrap();
    fs::write(files.join("termination-log"), "").unwrap();
    fs::set_permissions(files.join("termination-log"), fs::Permissions::from_mode(0o666)).unwrap();
    let o = spawn_tree(t, &[]).finish();
    check(&o);
    assert_eq!(
        o.stdout("first"),
        ["127.0.0.1\tlocalhost", "10.0.2.15\ttestpod", "testpod"]
    );
    let err = stderr(&o, "first");
    assert!(err[0].contains("Read-only file system"), "{err:#?}");
    // Both wrote the one file.
    let second = o.stdout("second");
    assert_eq!(
        second[..3],
        ["from-first", "from-first", "from-second"],
        "{second:#?}"
    );
    assert!(second[3].starts_with("-rw-rw-rw-"), "{second:#?}");
    assert_eq!(o.pod_exit(), (Phase::Succeeded, 0));
}

#[test]
fn a_volume_under_dev_is_the_volume_not_hidden_by_the_dev_tmpfs() {
    // The usual emptyDir at /dev/shm, and one at a path /dev does not have:
    // mounted after /dev, as runc mounts a pod's volumes after its own.
    let writer = mount(
        mount(
            sh(
                "writer",
                "echo shm > /dev/shm/f; echo other > /dev/other/f; ls /dev/null",
            ),
            "shm",
            "/dev/shm",
        ),
        "other",
        "/dev/other",
    );
    let reader = mount(mount(sh("reader", "cat /s/f /o/f"), "shm", "/s"), "other", "/o");
    let mut p = pod(vec![reader]);
    p.init_containers = vec![writer];
    volume(&mut p, "shm");
    volume(&mut p, "other");
    let o = run(&p);
    check(&o);
    assert_eq!(o.logs("writer"), ["/dev/null"]);
    assert_eq!(o.logs("reader"), ["shm", "other"]);
    assert_eq!(o.pod_exit(), (Phase::Succeeded, 0));
}

/// Adds hostPath volume `name` of `path` on this host.
fn host_path(plan: &mut Plan, name: &str, path: &Path, file: bool, read_only: bool) {
    use pod1_manifest::hostpath::{HostPathPlan, HostPathType};
    plan.volumes.push(VolumePlan {
        name: name.into(),
        size_limit_bytes: None,
        source: None,
        fs_group: None,
        host_path: Some(HostPathPlan {
            path: path.to_str().unwrap().into(),
            kind: HostPathType::Unset,
            tag: format!("pod1-{name}"),
            file,
            read_only,
        }),
    });
}

#[test]
fn host_mode_binds_host_paths_as_the_vm_shares_them() {
    // Host mode binds the host's directory and file themselves (the VM
    // gets them through virtio-fs): written through, nosuid and nodev,
    // read-only when the plan says so (even where a container's mount does
    // not), a file without its siblings.
    let host = TempDir::new("pod1-hostpath");
    let dir = host.path().join("dir");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("in"), "from the host\n").unwrap();
    fs::write(host.path().join("app.conf"), "answer=42\n").unwrap();
    let script = "cat /d/in /etc/app.conf; echo out > /d/out; touch /etc/app.conf; \
                  ls /etc/ | grep -c app.conf; echo mountinfo; cat /proc/self/mountinfo";
    let c = mount(mount(sh("a", script), "d", "/d"), "f", "/etc/app.conf");
    let mut p = pod(vec![c]);
    host_path(&mut p, "d", &dir, false, false);
    host_path(&mut p, "f", &host.path().join("app.conf"), true, true);
    let o = run(&p);
    check(&o);
    let out = o.stdout("a");
    assert_eq!(
        out[..4],
        ["from the host", "answer=42", "1", "mountinfo"],
        "{out:#?}"
    );
    assert!(
        stderr(&o, "a")[0].contains("Read-only file system"),
        "{:#?}",
        stderr(&o, "a")
    );
    assert_eq!(fs::read_to_string(dir.join("out")).unwrap(), "out\n");
    let opts = mount_options(&out[4..], "/d");
    assert!(
        opts.contains(&"rw") && opts.contains(&"nosuid") && opts.contains(&"nodev"),
        "{opts:?}"
    );
    assert!(mount_options(&out[4..], "/etc/app.conf").contains(&"ro"));
    // A missing path is an error naming it: host mode makes nothing.
    let mut p = pod(vec![mount(sh("a", "true"), "d", "/d")]);
    host_path(&mut p, "d", &host.path().join("missing"), false, false);
    let o = run(&p);
    assert_eq!(o.pod_exit(), (Phase::Failed, 125));
    assert!(!host.path().join("missing").exists());
}
