//! VM tests: real initramfs images booted under QEMU (TCG where KVM cannot
//! work) on both guest kernels, through `pod1 run` as a user runs it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

use std::io::{BufRead, BufReader};
use std::process::Command;

use pod1_manifest::events::Event;
use pod1_tests::{
    bin, fixtures, kernels, pod1_run, pod1_spawn, pod_dir, run, script_pod, script_pod_shared, sh, workspace,
};

#[test]
fn example_pod_prints_its_line_and_exits_0() {
    let example = std::fs::read_to_string(workspace().join("examples/hello/pod.json")).unwrap();
    let manifest = pod_dir(
        "hello",
        &example.replace("oci:../images/busybox", "oci:../busybox"),
    )
    .join("pod.json");
    for (name, kernel) in kernels() {
        let r = pod1_run(&manifest, &kernel, &[]);
        assert_eq!(r.code, 0, "{name}: {}", r.stderr);
        let line = r
            .stdout
            .lines()
            .find(|l| l.starts_with("hello | Hello from hello, kernel "));
        assert!(
            line.is_some_and(|l| l.ends_with(", as uid 0")),
            "{name}: stdout {:?}",
            r.stdout
        );
    }
}

#[test]
fn exit_codes_reach_pod1_run() {
    // A container's command is PID 1 of its PID namespace, where the kernel
    // drops signals it has no handler for, SIGKILL included; in a pod-wide
    // PID namespace the pause is PID 1 and `kill -9 $$` kills the shell
    // (written `$$$$`: Kubernetes expands `$$` in a command to `$`).
    for (script, share, want) in [
        ("exit 0", false, 0),
        ("echo bye; exit 3", false, 3),
        ("kill -9 $$$$", true, 137),
    ] {
        let manifest = script_pod_shared(&format!("exit-{want}"), script, share);
        for (name, kernel) in kernels() {
            let r = pod1_run(&manifest, &kernel, &[]);
            assert_eq!(r.code, want, "{name}, {script:?}: {}", r.stderr);
        }
    }
}

#[test]
fn three_boot_paths() {
    let manifest = script_pod("boot-paths", "echo booted");
    // The kernel runs rdinit= (default /init) from the initramfs; init= only
    // matters when that fails, so with /init present it is not used.
    for (append, argv0) in [
        (None, "/init"),
        (Some("rdinit=/sbin/init"), "/sbin/init"),
        (Some("init=/sbin/init"), "/init"),
    ] {
        for (name, kernel) in kernels() {
            let mut args = vec!["--json"];
            if let Some(a) = append {
                args.extend(["--append", a]);
            }
            let r = pod1_run(&manifest, &kernel, &args);
            assert_eq!(r.code, 0, "{name} {append:?}: {}", r.stderr);
            let events = r.events();
            let started = events.iter().find_map(|e| match e {
                Event::InitStarted { argv0, pid1 } => Some((argv0.clone(), *pid1)),
                _ => None,
            });
            assert_eq!(started, Some((argv0.to_string(), true)), "{name} {append:?}");
            assert!(
                events
                    .iter()
                    .any(|e| matches!(e, Event::Log { line, .. } if line == "booted")),
                "{name} {append:?}: {}",
                r.stdout
            );
        }
    }
}

#[test]
fn every_initramfs_shape_boots() {
    // `pod1 run` inflates a gzip'd initramfs on the host; a plain cpio goes
    // as it is, and so does gzip it cannot inflate whole (here: zero
    // padding after the stream, which the kernel skips). On Debian's kernel
    // the modules archive follows each of them.
    let manifest = script_pod("shapes", "echo shaped");
    let dir = manifest.parent().unwrap();
    let gz = dir.join("pod.img");
    run(Command::new(bin("pod1"))
        .arg("build")
        .arg(&manifest)
        .arg("-o")
        .arg(&gz));
    let plain = dir.join("plain.cpio");
    let padded = dir.join("padded.img");
    sh(&format!(
        "gzip -dc {gz} > {plain} && (cat {gz}; head -c 512 /dev/zero) > {padded}",
        gz = gz.display(),
        plain = plain.display(),
        padded = padded.display()
    ));
    for img in [&gz, &plain, &padded] {
        for (name, kernel) in kernels() {
            let r = pod1_run(img, &kernel, &[]);
            assert_eq!(r.code, 0, "{name} {}: {}", img.display(), r.stderr);
            assert!(
                r.stdout.lines().any(|l| l == "c | shaped"),
                "{name} {}: {}",
                img.display(),
                r.stdout
            );
        }
    }
}

#[test]
fn run_rebuilds_exactly_when_its_inputs_change() {
    // `pod1 run MANIFEST` keeps one build per manifest in $POD1_CACHE and
    // says "built" when it writes one.
    let dir = fixtures().join("rebuild");
    let cache = dir.join("cache");
    sh(&format!(
        "rm -rf {d} && mkdir -p {c} && cp -a {img} {d}/img",
        d = dir.display(),
        c = cache.display(),
        img = fixtures().join("busybox").display()
    ));
    let manifest = dir.join("pod.json");
    let write_manifest = |script: &str| {
        let m = serde_json::json!({
            "metadata": {"name": "rebuild"},
            "spec": {"restartPolicy": "Never",
                     "containers": [{"name": "c", "image": "oci:img:latest", "command": ["sh", "-c", script]}]}
        });
        std::fs::write(&manifest, m.to_string()).unwrap();
    };
    let (_, kernel) = &kernels()[0];
    let boot = |want_built: bool, want_line: &str, step: &str| {
        let out = Command::new(bin("pod1"))
            .arg("run")
            .arg(&manifest)
            .arg("--kernel")
            .arg(kernel)
            .args(["--timeout", "180"])
            .env("POD1_CACHE", &cache)
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert_eq!(out.status.code(), Some(0), "{step}: {stderr}");
        assert_eq!(stderr.contains("pod1: built "), want_built, "{step}: {stderr}");
        assert!(
            stdout.lines().any(|l| l == format!("c | {want_line}")),
            "{step}: {stdout}"
        );
    };
    write_manifest("echo ${GREETING:-one}");
    boot(true, "one", "first run");
    boot(false, "one", "unchanged");
    sh(&format!("find {} -exec touch {{}} +", dir.join("img").display()));
    boot(false, "one", "touched, same content");
    run(Command::new("umoci")
        .args(["config", "--image"])
        .arg(format!("{}:latest", dir.join("img").display()))
        .args(["--config.env", "GREETING=two"]));
    boot(true, "two", "image changed");
    write_manifest("echo three");
    boot(true, "three", "manifest changed");
    // A Localhost seccomp profile is an input too.
    let m = serde_json::json!({
        "metadata": {"name": "rebuild"},
        "spec": {"restartPolicy": "Never", "securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}},
                 "containers": [{"name": "c", "image": "oci:img:latest",
                                 "command": ["sh", "-c", "if mkdir /tmp/x 2>/dev/null; then echo made; else echo refused; fi"]}]}
    });
    std::fs::write(&manifest, m.to_string()).unwrap();
    std::fs::write(dir.join("p.json"), r#"{"defaultAction": "SCMP_ACT_ALLOW"}"#).unwrap();
    boot(true, "made", "with a profile");
    std::fs::write(
        dir.join("p.json"),
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    boot(true, "refused", "profile changed");
}

#[test]
fn resource_limits_reach_the_containers_cgroup() {
    // The guest mounts cgroup2: each container gets its own cgroup with the
    // limits, seen at /sys/fs/cgroup in its cgroup namespace (read-only).
    let manifest = serde_json::json!({
        "metadata": {"name": "limits", "annotations": {"pod1/pids-limit": "64"}},
        "spec": {"restartPolicy": "Never", "containers": [
            {"name": "c", "image": "oci:../busybox:latest",
             "command": ["sh", "-c", "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/cpu.max /sys/fs/cgroup/pids.max; \
                                      grep -c . /proc/self/cgroup; cat /proc/self/cgroup; \
                                      touch /sys/fs/cgroup/x 2>/dev/null || echo read-only"],
             "resources": {"limits": {"memory": "64Mi", "cpu": "500m"}}}]}
    });
    let manifest = pod_dir("limits", &manifest.to_string()).join("pod.json");
    for (name, kernel) in kernels() {
        let r = pod1_run(&manifest, &kernel, &[]);
        assert_eq!(r.code, 0, "{name}: {}", r.stderr);
        let lines: Vec<&str> = r.stdout.lines().filter_map(|l| l.strip_prefix("c | ")).collect();
        assert_eq!(
            lines,
            ["67108864", "50000 100000", "64", "1", "0::/", "read-only"],
            "{name}: {}",
            r.stdout
        );
    }
}

#[test]
fn init_containers_run_before_app_containers() {
    let manifest = serde_json::json!({
        "metadata": {"name": "order"},
        "spec": {"restartPolicy": "Never", "volumes": [{"name": "work", "emptyDir": {}}],
          "initContainers": [
            {"name": "first", "image": "oci:../busybox", "command": ["sh", "-c", "sleep 1; echo first >> /work/log"],
             "volumeMounts": [{"name": "work", "mountPath": "/work"}]},
            {"name": "second", "image": "oci:../busybox", "command": ["sh", "-c", "echo second >> /work/log"],
             "volumeMounts": [{"name": "work", "mountPath": "/work"}]}],
          "containers": [
            {"name": "app", "image": "oci:../busybox", "command": ["sh", "-c", "echo app >> /work/log; cat /work/log"],
             "volumeMounts": [{"name": "work", "mountPath": "/work"}]}]}
    });
    let manifest = pod_dir("order", &manifest.to_string()).join("pod.json");
    for (name, kernel) in kernels() {
        let r = pod1_run(&manifest, &kernel, &["--json"]);
        assert_eq!(r.code, 0, "{name}: {}", r.stderr);
        let logs: Vec<String> = r
            .events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Log { container, line, .. } if container == "app" => Some(line),
                _ => None,
            })
            .collect();
        assert_eq!(logs, ["first", "second", "app"], "{name}");
        let lifecycle: Vec<String> = r
            .events()
            .into_iter()
            .filter_map(|e| match e {
                Event::ContainerStarted { container, .. } => Some(format!("start {container}")),
                Event::ContainerExited { container, .. } => Some(format!("exit {container}")),
                _ => None,
            })
            .collect();
        assert_eq!(
            lifecycle,
            [
                "start first",
                "exit first",
                "start second",
                "exit second",
                "start app",
                "exit app"
            ]
        );
    }
}

#[test]
fn stop_request_lets_a_container_trap_sigterm() {
    let manifest = script_pod(
        "stop",
        "trap 'echo got TERM; exit 0' TERM; echo ready; while true; do sleep 0.1; done",
    );
    for (name, kernel) in kernels() {
        let mut child = pod1_spawn(&manifest, &kernel, &["--timeout", "180"]);
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut seen = Vec::new();
        for line in lines.by_ref() {
            let line = line.unwrap();
            seen.push(line.clone());
            if line == "c | ready" {
                break;
            }
        }
        assert_eq!(
            seen.last().map(String::as_str),
            Some("c | ready"),
            "{name}: {seen:?}"
        );
        // As a user's Ctrl-C: pod1 asks the init to stop the pod.
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        )
        .unwrap();
        seen.extend(lines.map(|l| l.unwrap()));
        let status = child.wait().unwrap();
        assert!(seen.iter().any(|l| l == "c | got TERM"), "{name}: {seen:?}");
        assert_eq!(
            status.code(),
            Some(0),
            "{name}: the container exited 0 from its trap"
        );
    }
}

#[test]
fn ten_thousand_lines_arrive_in_order() {
    let manifest = script_pod("lines", "seq 1 10000");
    for (name, kernel) in kernels() {
        let r = pod1_run(&manifest, &kernel, &[]);
        assert_eq!(r.code, 0, "{name}: {}", r.stderr);
        let got: Vec<&str> = r.stdout.lines().filter_map(|l| l.strip_prefix("c | ")).collect();
        let want: Vec<String> = (1..=10000).map(|i| i.to_string()).collect();
        assert_eq!(got.len(), want.len(), "{name}: line count");
        assert!(
            got.iter().zip(&want).all(|(g, w)| g == w),
            "{name}: lines out of order or changed"
        );
    }
}

#[test]
fn a_plan_failing_inside_the_vm_powers_off_with_125() {
    // A real build whose plan names a root filesystem that is not there,
    // repacked with GNU cpio.
    let manifest = script_pod("broken", "echo unreachable");
    let dir = manifest.parent().unwrap();
    let tree = dir.join("tree");
    run(Command::new(bin("pod1"))
        .arg("build")
        .arg(&manifest)
        .arg("--tree")
        .arg(&tree));
    sh(&format!(
        "cd {t} && sed -i 's#\"rootfs\": \"/pod1/images/[0-9a-f]*\"#\"rootfs\": \"/pod1/images/missing\"#' etc/pod1/plan.json
         grep -q /pod1/images/missing etc/pod1/plan.json
         find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip > ../broken.img",
        t = tree.display()
    ));
    for (name, kernel) in kernels() {
        let r = pod1_run(&dir.join("broken.img"), &kernel, &["--console"]);
        assert_eq!(r.code, 125, "{name}: {}", r.stderr);
        assert!(!r.stderr.contains("Kernel panic"), "{name}: {}", r.stderr);
        assert!(
            r.stderr.contains("reboot: Power down"),
            "{name}: a clean power-off: {}",
            r.stderr
        );
        assert!(!r.stdout.contains("unreachable"));
    }
}

#[test]
fn timeout_gives_124_and_leaves_no_qemu() {
    let manifest = script_pod("forever", "sleep 100000");
    for (name, kernel) in kernels() {
        let marker = format!("pod1.test-marker={}-{name}", std::process::id());
        let r = pod1_run(&manifest, &kernel, &["--timeout", "5", "--append", &marker]);
        assert_eq!(r.code, 124, "{name}: {}", r.stderr);
        assert!(
            r.stderr.contains("did not finish within 5"),
            "{name}: {}",
            r.stderr
        );
        let left = Command::new("pgrep").args(["-f", &marker]).output().unwrap();
        assert!(
            left.stdout.is_empty(),
            "{name}: QEMU left behind: {}",
            String::from_utf8_lossy(&left.stdout)
        );
    }
}

/// The fixtures exist before the tests race to make them.
#[test]
fn fixtures_are_real_images() {
    assert!(fixtures().join("busybox/index.json").is_file());
}

#[test]
fn an_initramfs_pod1_did_not_build_boots_with_json() {
    // The benchmark's floor: a static init that prints a line and powers
    // off. With no plan there is no status to fold, and --json still runs.
    let dir = fixtures().join("floor");
    std::fs::create_dir_all(&dir).unwrap();
    sh(&format!(
        "cd {d} && rm -rf root && mkdir -p root/dev && mknod root/dev/console c 5 1 && cp {f} root/init &&
         cd root && find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip > ../floor.img",
        d = dir.display(),
        f = bin("pod1-floor-init").display()
    ));
    let (name, kernel) = &kernels()[0];
    let r = pod1_run(&dir.join("floor.img"), kernel, &["--json", "--console"]);
    assert!(r.stderr.contains("floor: init reached"), "{name}: {}", r.stderr);
    assert!(!r.stderr.contains("not built by pod1"), "{name}: {}", r.stderr);
    assert!(!r.stdout.contains("pod_status"), "{name}: {}", r.stdout);
}
