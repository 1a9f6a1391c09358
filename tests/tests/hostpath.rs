//! VM tests of hostPath volumes: host directories and files shared live
//! with the pod through virtio-fs (a real virtiofsd on the host, the
//! guest's virtiofs driver), on both guest kernels.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use pod1_tests::{bin, fixtures, kernels, pod1_run, pod1_spawn, pod_dir, workspace};

/// A pod of one busybox container `c` running `script`, with `volumes`
/// and `mounts`, in a fresh directory `name` next to the fixtures.
fn pod(name: &str, script: &str, volumes: serde_json::Value, mounts: serde_json::Value) -> PathBuf {
    pod_with(name, script, volumes, mounts, serde_json::json!({}))
}

fn pod_with(
    name: &str,
    script: &str,
    volumes: serde_json::Value,
    mounts: serde_json::Value,
    security: serde_json::Value,
) -> PathBuf {
    let _ = std::fs::remove_dir_all(fixtures().join(name));
    let manifest = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hp"},
        "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 2, "volumes": volumes,
                 "containers": [{"name": "c", "image": "oci:../busybox:latest", "command": ["sh", "-c", script],
                                 "securityContext": security, "volumeMounts": mounts}]}
    });
    pod_dir(name, &manifest.to_string()).join("pod.json")
}

/// Waits up to `secs` for `cond`.
fn wait_for(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn a_host_directory_is_shared_both_ways_while_the_pod_runs_with_the_writers_owner() {
    for (kname, kernel) in kernels() {
        let manifest = pod_with(
            &format!("hp-rw-{kname}"),
            // Reads what the host wrote, writes as uid 1234, and waits for
            // the host to answer through the same directory.
            "cat /data/from-host; echo during > /data/during; \
             i=0; until [ -f /data/ack ]; do sleep 0.1; i=$((i+1)); [ $i -lt 600 ] || exit 9; done; \
             cat /data/ack; mkdir /data/sub; echo after > /data/sub/after",
            serde_json::json!([{"name": "data", "hostPath": {"path": "shared", "type": "Directory"}}]),
            serde_json::json!([{"name": "data", "mountPath": "/data"}]),
            serde_json::json!({"runAsUser": 1234, "runAsGroup": 2345}),
        );
        let shared = manifest.parent().unwrap().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::write(shared.join("from-host"), "hello from the host\n").unwrap();
        let child = pod1_spawn(&manifest, &kernel, &["--timeout", "180"]);
        // While the pod runs: its file is on the host, with its owner.
        assert!(
            wait_for(120, || shared.join("during").exists()),
            "{kname}: the pod's file never reached the host"
        );
        let md = std::fs::metadata(shared.join("during")).unwrap();
        assert_eq!((md.uid(), md.gid()), (1234, 2345), "{kname}");
        std::fs::write(shared.join("ack"), "ack from the host\n").unwrap();
        let out = child.wait_with_output().unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert_eq!(out.status.code(), Some(0), "{kname}: {stdout}\n{stderr}");
        assert!(stdout.contains("c | hello from the host"), "{kname}: {stdout}");
        assert!(stdout.contains("c | ack from the host"), "{kname}: {stdout}");
        // The note names the daemon: $POD1_VIRTIOFSD when set (run these
        // tests with it to cover the Rust virtiofsd).
        let daemon = std::env::var("POD1_VIRTIOFSD").unwrap_or_default();
        assert!(
            stderr.contains(&format!("pod1: hostPath volumes shared by {daemon}")),
            "{kname}: {stderr}"
        );
        // After it: what it made stays, owned by its writer.
        assert_eq!(
            std::fs::read_to_string(shared.join("during")).unwrap(),
            "during\n"
        );
        let sub = std::fs::metadata(shared.join("sub")).unwrap();
        assert_eq!(
            (sub.uid(), sub.gid(), sub.is_dir()),
            (1234, 2345, true),
            "{kname}"
        );
        assert_eq!(
            std::fs::read_to_string(shared.join("sub/after")).unwrap(),
            "after\n"
        );
    }
}

#[test]
fn directory_or_create_makes_the_directory_on_the_host() {
    for (kname, kernel) in kernels() {
        let manifest = pod(
            &format!("hp-create-{kname}"),
            "echo made-by-root > /made/f; ls -ld /made",
            serde_json::json!([{"name": "m", "hostPath": {"path": "new/dir", "type": "DirectoryOrCreate"}}]),
            serde_json::json!([{"name": "m", "mountPath": "/made"}]),
        );
        let made = manifest.parent().unwrap().join("new/dir");
        assert!(!made.exists());
        let r = pod1_run(&manifest, &kernel, &[]);
        assert_eq!(r.code, 0, "{kname}: {}", r.stderr);
        let md = std::fs::metadata(&made).unwrap();
        assert!(md.is_dir(), "{kname}");
        // The kubelet's 0755, under this process's umask.
        assert_eq!(
            md.permissions().mode() & 0o777,
            umasked(0o755, manifest.parent().unwrap()),
            "{kname}"
        );
        assert_eq!(std::fs::read_to_string(made.join("f")).unwrap(), "made-by-root\n");
        assert_eq!(std::fs::metadata(made.join("f")).unwrap().uid(), 0);
    }
}

/// What this process's umask leaves of `mode` for a new directory.
fn umasked(mode: u32, scratch: &Path) -> u32 {
    use std::os::unix::fs::DirBuilderExt;
    let probe = scratch.join(format!("umask-probe-{mode:o}"));
    let _ = std::fs::remove_dir(&probe);
    std::fs::DirBuilder::new().mode(mode).create(&probe).unwrap();
    std::fs::metadata(&probe).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_read_only_mount_refuses_writes_and_a_sub_path_works() {
    for (kname, kernel) in kernels() {
        let manifest = pod(
            &format!("hp-ro-{kname}"),
            "cat /ro/keep; cat /sub/inner; \
             if echo x > /ro/keep; then echo wrote; fi; if touch /ro/new; then echo made; fi; \
             if touch /sub/new; then echo made-sub; fi; grep ' /ro ' /proc/mounts",
            serde_json::json!([{"name": "v", "hostPath": {"path": "tree", "type": "Directory"}}]),
            serde_json::json!([{"name": "v", "mountPath": "/ro", "readOnly": true},
                               {"name": "v", "mountPath": "/sub", "subPath": "deep", "readOnly": true}]),
        );
        let tree = manifest.parent().unwrap().join("tree");
        std::fs::create_dir_all(tree.join("deep")).unwrap();
        std::fs::write(tree.join("keep"), "kept\n").unwrap();
        std::fs::write(tree.join("deep/inner"), "inner\n").unwrap();
        let r = pod1_run(&manifest, &kernel, &[]);
        assert_eq!(r.code, 0, "{kname}: {}", r.stderr);
        assert_eq!(r.lines_of("c")[..2], ["kept", "inner"], "{kname}: {}", r.stdout);
        assert!(
            !r.stdout.contains("wrote") && !r.stdout.contains("made"),
            "{kname}: {}",
            r.stdout
        );
        assert!(
            r.stderr.contains("Read-only file system"),
            "{kname}: {}",
            r.stderr
        );
        assert!(
            r.lines_of("c")
                .iter()
                .any(|l| l.contains(" virtiofs ro,nosuid,nodev")),
            "{kname}: {}",
            r.stdout
        );
        assert_eq!(std::fs::read_to_string(tree.join("keep")).unwrap(), "kept\n");
        assert!(!tree.join("new").exists() && !tree.join("deep/new").exists());
    }
}

#[test]
fn a_single_file_is_shared_without_its_siblings() {
    for (kname, kernel) in kernels() {
        // A privileged container mounts the share itself: it holds the
        // file and nothing else of the host's directory.
        let manifest = pod_with(
            &format!("hp-file-{kname}"),
            "cat /etc/app.conf; echo appended >> /etc/app.conf; \
             mkdir -p /mnt/share && mount -t virtiofs pod1-vol0 /mnt/share && ls -a /mnt/share; \
             if touch /mnt/share/extra; then echo added; fi",
            serde_json::json!([{"name": "conf", "hostPath": {"path": "dir/app.conf", "type": "File"}}]),
            serde_json::json!([{"name": "conf", "mountPath": "/etc/app.conf"}]),
            serde_json::json!({"privileged": true}),
        );
        let dir = manifest.parent().unwrap().join("dir");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("app.conf"), "setting=1\n").unwrap();
        std::fs::write(dir.join("secret.key"), "do not share\n").unwrap();
        let r = pod1_run(&manifest, &kernel, &[]);
        assert_eq!(r.code, 0, "{kname}: {}", r.stderr);
        assert_eq!(
            r.lines_of("c"),
            ["setting=1", ".", "..", "file"],
            "{kname}: {}",
            r.stderr
        );
        assert!(
            !r.stdout.contains("secret") && !r.stdout.contains("added"),
            "{kname}"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("app.conf")).unwrap(),
            "setting=1\nappended\n"
        );
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["app.conf", "secret.key"], "{kname}");
    }
}

#[test]
fn a_missing_directory_is_refused_before_boot() {
    let manifest = pod(
        "hp-missing",
        "echo never",
        serde_json::json!([{"name": "gone", "hostPath": {"path": "/nonexistent/pod1-dir", "type": "Directory"}}]),
        serde_json::json!([{"name": "gone", "mountPath": "/gone"}]),
    );
    for (kname, kernel) in kernels() {
        let r = pod1_run(&manifest, &kernel, &[]);
        assert_eq!(r.code, 125, "{kname}: {}", r.stderr);
        assert!(
            r.stderr.contains("hostPath volume \"gone\"")
                && r.stderr.contains("/nonexistent/pod1-dir is not a directory"),
            "{kname}: {}",
            r.stderr
        );
        // Refused before QEMU was started.
        assert!(!r.booted(), "{kname}: {}", r.stderr);
        assert!(!Path::new("/nonexistent/pod1-dir").exists());
    }
}

/// Processes whose command line mentions `needle`, with theirs.
fn processes_mentioning(needle: &str) -> Vec<(i32, String)> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            cmd.contains(needle).then_some((pid, cmd))
        })
        .collect()
}

/// The run directory of the daemon `pod1 run` (pid `pod1`) started: the
/// directory of its socket, which QEMU's command line names too.
fn run_dir_of(pod1: i32) -> Option<String> {
    processes_mentioning("--socket-path=")
        .into_iter()
        .find_map(|(pid, cmd)| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let ppid = status
                .lines()
                .find_map(|l| l.strip_prefix("PPid:"))?
                .trim()
                .parse::<i32>()
                .ok()?;
            let socket = cmd
                .split_whitespace()
                .find_map(|a| a.strip_prefix("--socket-path="))?;
            (ppid == pod1).then(|| Path::new(socket).parent().unwrap().display().to_string())
        })
}

/// Starts a pod that writes to its hostPath forever, waits until it has,
/// ends the run with `end`, and checks that neither a virtiofsd nor QEMU
/// of that run is left. Returns the exit code and stderr.
fn end_a_run(name: &str, kernel: &Path, args: &[&str], end: impl FnOnce(Pid)) -> (i32, String) {
    let manifest = pod(
        name,
        "echo started; while true; do date > /d/now; sleep 0.2; done",
        serde_json::json!([{"name": "d", "hostPath": {"path": "d", "type": "DirectoryOrCreate"}}]),
        serde_json::json!([{"name": "d", "mountPath": "/d"}]),
    );
    let mut child = pod1_spawn(&manifest, kernel, args);
    let pid = Pid::from_raw(child.id() as i32);
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while out.read_line(&mut line).unwrap() > 0 && !line.contains("c | started") {
        line.clear();
    }
    assert!(line.contains("started"), "{name}: the pod never started");
    let run_dir = run_dir_of(pid.as_raw()).expect("a virtiofsd of this run");
    let found = processes_mentioning(&run_dir);
    assert!(found.iter().any(|(_, c)| c.contains("virtiofsd")), "{found:?}");
    assert!(found.iter().any(|(_, c)| c.contains("qemu-system")), "{found:?}");
    end(pid);
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    // Killed processes are reaped by whoever inherits them: give that a moment.
    let left = || {
        processes_mentioning(&run_dir)
            .into_iter()
            .filter(|(pid, _)| {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                !stat.contains(") Z ")
            })
            .collect::<Vec<_>>()
    };
    assert!(
        wait_for(10, || left().is_empty()),
        "{name}: left running: {:?}",
        left()
    );
    (status.code().unwrap_or(-1), stderr)
}

#[test]
fn no_daemon_or_vm_outlives_the_run() {
    for (kname, kernel) in kernels() {
        // Ctrl-C twice: the second kills the VM.
        let (code, err) = end_a_run(
            &format!("hp-int-{kname}"),
            &kernel,
            &["--timeout", "180"],
            |pid| {
                kill(pid, Signal::SIGINT).unwrap();
                std::thread::sleep(Duration::from_millis(300));
                kill(pid, Signal::SIGINT).unwrap();
            },
        );
        assert_eq!(code, 130, "{kname}: {err}");
        // --timeout.
        let (code, err) = end_a_run(
            &format!("hp-timeout-{kname}"),
            &kernel,
            &["--timeout", "25"],
            |_| {},
        );
        assert_eq!(code, 124, "{kname}: {err}");
        // pod1 itself SIGKILLed: the parent-death signal ends the rest.
        let (code, _) = end_a_run(
            &format!("hp-kill-{kname}"),
            &kernel,
            &["--timeout", "180"],
            |pid| kill(pid, Signal::SIGKILL).unwrap(),
        );
        assert_eq!(code, -1, "{kname}");
    }
}

#[test]
fn a_daemon_that_dies_mid_run_ends_it_with_125() {
    for (kname, kernel) in kernels() {
        let (code, err) = end_a_run(
            &format!("hp-dies-{kname}"),
            &kernel,
            &["--timeout", "180"],
            |pid| {
                let run_dir = run_dir_of(pid.as_raw()).unwrap();
                for (p, cmd) in processes_mentioning(&run_dir) {
                    if cmd.contains("virtiofsd") {
                        let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
                    }
                }
            },
        );
        assert_eq!(code, 125, "{kname}: {err}");
        assert!(
            err.contains("the virtiofsd serving hostPath volume \"d\"") && err.contains("the VM was killed"),
            "{kname}: {err}"
        );
    }
}

#[test]
fn the_image_one_liner_mounts_a_host_directory_with_dash_v() {
    let cwd = fixtures().join("hp-quick");
    let _ = std::fs::remove_dir_all(&cwd);
    std::fs::create_dir_all(cwd.join("work")).unwrap();
    std::fs::write(cwd.join("work/in.txt"), "input\n").unwrap();
    std::fs::write(cwd.join("ro.txt"), "read-only\n").unwrap();
    let image = format!("oci:{}:latest", fixtures().join("busybox").display());
    let quick = |kernel: Option<&Path>, extra: &[&str]| {
        let mut cmd = Command::new(bin("pod1"));
        cmd.current_dir(&cwd).args([
            "run",
            "--image",
            &image,
            "-v",
            "work:/work",
            "-v",
            "ro.txt:/etc/ro.txt:ro",
        ]);
        if let Some(k) = kernel {
            cmd.arg("--kernel").arg(k).args(["--timeout", "180"]);
        }
        cmd.args(extra).args([
            "--",
            "sh",
            "-c",
            "cat /work/in.txt /etc/ro.txt; echo out > /work/out.txt; echo x >> /etc/ro.txt",
        ]);
        cmd.output().unwrap()
    };
    // --dry-run shows the volumes, the relative paths made absolute.
    let out = quick(None, &["--dry-run"]);
    let yaml = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let work = cwd.join("work").display().to_string();
    assert!(yaml.contains(&format!("path: {work}")), "{yaml}");
    assert!(
        yaml.contains("readOnly: true") && yaml.contains("mountPath: /etc/ro.txt"),
        "{yaml}"
    );
    for (kname, kernel) in kernels() {
        let _ = std::fs::remove_file(cwd.join("work/out.txt"));
        let out = quick(Some(&kernel), &[]);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        // The last command fails on the read-only file: its exit code is the run's.
        assert_eq!(out.status.code(), Some(1), "{kname}: {stdout}\n{stderr}");
        assert!(
            stdout.contains("| input") && stdout.contains("| read-only"),
            "{kname}: {stdout}"
        );
        assert!(stderr.contains("Read-only file system"), "{kname}: {stderr}");
        assert_eq!(
            std::fs::read_to_string(cwd.join("work/out.txt")).unwrap(),
            "out\n"
        );
        assert_eq!(
            std::fs::read_to_string(cwd.join("ro.txt")).unwrap(),
            "read-only\n"
        );
    }
}

#[test]
fn the_ci_example_reports_into_the_repository_and_fails_as_its_tests_do() {
    // examples/ci/job.yaml as it is, but with the test image and the
    // repository's absolute path (the copy lives next to the fixtures).
    let example = std::fs::read_to_string(workspace().join("examples/ci/job.yaml")).unwrap();
    let image = format!("oci:{}:latest", fixtures().join("busybox").display());
    let job = |report: &str, required: &str| {
        let text = example
            .replace("image: busybox:1.36", &format!("image: {image:?}"))
            .replace(
                "path: ../..",
                &format!("path: {:?}", workspace().display().to_string()),
            )
            .replace("value: target/pod1-ci/junit.xml", &format!("value: {report}"))
            .replace(
                "value: \"Cargo.toml README.md SECURITY.md\"",
                &format!("value: {required:?}"),
            );
        assert!(
            text.contains(&image) && text.contains(report) && text.contains(required),
            "{text}"
        );
        pod_dir("ci", &text).join("pod.json")
    };
    for (i, (kname, kernel)) in kernels().into_iter().enumerate() {
        let report = format!("target/pod1-ci/junit-test-{kname}.xml");
        let on_host = workspace().join(&report);
        let _ = std::fs::remove_file(&on_host);
        let r = pod1_run(&job(&report, "Cargo.toml README.md"), &kernel, &[]);
        assert_eq!(r.code, 0, "{kname}: {}\n{}", r.stdout, r.stderr);
        let xml = std::fs::read_to_string(&on_host).unwrap();
        assert!(
            xml.contains(r#"<testsuite name="smoke" tests="5" failures="0""#),
            "{kname}: {xml}"
        );
        // A failing check fails the job, and the report says which.
        if i == 0 {
            let r = pod1_run(&job(&report, "Cargo.toml no-such-file"), &kernel, &[]);
            assert_eq!(r.code, 1, "{kname}: {}\n{}", r.stdout, r.stderr);
            let xml = std::fs::read_to_string(&on_host).unwrap();
            assert!(xml.contains(r#"failures="1""#), "{kname}: {xml}");
            assert!(
                xml.contains(r#"name="required file no-such-file""#),
                "{kname}: {xml}"
            );
            assert_eq!(xml.matches("<failure").count(), 1, "{kname}: {xml}");
        }
        let _ = std::fs::remove_file(&on_host);
    }
}

#[test]
fn a_daemon_whose_qemu_never_connects_is_killed() {
    // QEMU's C virtiofsd waits forever for a QEMU that never connects: a
    // "QEMU" that notes its arguments and fails must leave no daemon.
    let manifest = pod(
        "hp-no-qemu",
        "echo never",
        serde_json::json!([{"name": "d", "hostPath": {"path": "d", "type": "DirectoryOrCreate"}}]),
        serde_json::json!([{"name": "d", "mountPath": "/d"}]),
    );
    let dir = manifest.parent().unwrap();
    let fake = dir.join("fake-qemu");
    std::fs::write(
        &fake,
        format!("#!/bin/sh\necho \"$@\" > {}/args\nexit 1\n", dir.display()),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (_, kernel) = &kernels()[0];
    // Bounded: a pod1 that waited on its daemon would wait forever.
    let mut child = pod1_spawn(&manifest, kernel, &["--qemu", fake.to_str().unwrap()]);
    let mut status = None;
    let ended = wait_for(60, || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    if !ended {
        let _ = child.kill();
        panic!("pod1 run did not end after QEMU failed");
    }
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.and_then(|s| s.code()), Some(125), "{stderr}");
    assert!(stderr.contains("QEMU exited"), "{stderr}");
    let args = std::fs::read_to_string(dir.join("args")).unwrap();
    let socket = args
        .split_whitespace()
        .find_map(|a| a.strip_prefix("socket,id=vfs0,path="))
        .expect("a virtio-fs socket in QEMU's arguments");
    let run_dir = Path::new(socket).parent().unwrap().display().to_string();
    let left = processes_mentioning(&run_dir);
    assert!(left.is_empty(), "left running: {left:?}");
}
