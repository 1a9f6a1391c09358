//! VM tests of the sandbox: what a container can reach, and what a hostile
//! container cannot do to the pod (both guest kernels).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

use pod1_tests::{kernels, pod1_run, pod_dir};

/// `grep Seccomp:` and an attempt at a user namespace, then a mkdir.
const PROBE: &str = "grep Seccomp: /proc/self/status; \
    if unshare -U true 2>/dev/null; then echo userns=made; else echo userns=refused; fi; \
    mkdir /tmp/d 2>&1 | sed 's/.*: //'; if [ -d /tmp/d ]; then echo mkdir=ok; fi";

#[test]
fn seccomp_profiles_as_the_runtimes_apply_them() {
    let container = |name: &str, profile: serde_json::Value| {
        serde_json::json!({"name": name, "image": "oci:../busybox:latest", "command": ["sh", "-c", PROBE],
                           "securityContext": {"seccompProfile": profile}})
    };
    let manifest = serde_json::json!({
        "metadata": {"name": "seccomp"},
        "spec": {"restartPolicy": "Never", "containers": [
            // No profile anywhere: RuntimeDefault.
            {"name": "default", "image": "oci:../busybox:latest", "command": ["sh", "-c", PROBE]},
            container("unconfined", serde_json::json!({"type": "Unconfined"})),
            container("local", serde_json::json!({"type": "Localhost", "localhostProfile": "profiles/no-mkdir.json"})),
            // Privileged: no filter whatever the profile, as containerd does.
            {"name": "privileged", "image": "oci:../busybox:latest", "command": ["sh", "-c", "grep Seccomp: /proc/self/status"],
             "securityContext": {"privileged": true, "seccompProfile": {"type": "RuntimeDefault"}}}]}
    });
    let dir = pod_dir("seccomp", &manifest.to_string());
    std::fs::create_dir_all(dir.join("profiles")).unwrap();
    std::fs::write(
        dir.join("profiles/no-mkdir.json"),
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}"#,
    )
    .unwrap();
    for (name, kernel) in kernels() {
        let r = pod1_run(&dir.join("pod.json"), &kernel, &[]);
        assert_eq!(r.code, 0, "{name}: {}\n{}", r.stdout, r.stderr);
        let lines = |c: &str| -> Vec<String> {
            r.lines_of(c)
                .iter()
                .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect()
        };
        assert_eq!(
            lines("default"),
            ["Seccomp: 2", "userns=refused", "mkdir=ok"],
            "{name}"
        );
        assert_eq!(
            lines("unconfined"),
            ["Seccomp: 0", "userns=made", "mkdir=ok"],
            "{name}"
        );
        assert_eq!(
            lines("local"),
            ["Seccomp: 2", "userns=made", "Permission denied"],
            "{name}"
        );
        assert_eq!(lines("privileged"), ["Seccomp: 0"], "{name}");
    }
}

#[test]
fn a_missing_or_broken_localhost_profile_is_a_build_error() {
    let manifest = serde_json::json!({
        "metadata": {"name": "bad-profile"},
        "spec": {"securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}},
                 "containers": [{"name": "c", "image": "oci:../busybox:latest"}]}
    });
    let dir = pod_dir("bad-profile", &manifest.to_string());
    let plan = || {
        let out = std::process::Command::new(pod1_tests::bin("pod1"))
            .arg("plan")
            .arg(dir.join("pod.json"))
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let _ = std::fs::remove_file(dir.join("p.json"));
    let (code, err) = plan();
    assert_eq!(code, Some(125), "{err}");
    assert!(
        err.contains("cannot read the seccomp profile") && err.contains("p.json"),
        "{err}"
    );
    std::fs::write(dir.join("p.json"), r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_NOPE"}]}"#).unwrap();
    let (code, err) = plan();
    assert_eq!(code, Some(125), "{err}");
    assert!(
        err.contains("syscalls[0].action") && err.contains("SCMP_ACT_NOPE"),
        "{err}"
    );
}

#[test]
fn devices_open_only_as_runc_allows_them() {
    // With CAP_SYS_ADMIN (not privileged) a container can mount a tmpfs
    // that is not nodev: there only the cgroup's device program stands
    // between a node and its device. A privileged container has none.
    let script = "mkdir /tmp/d && mount -t tmpfs t /tmp/d && cd /tmp/d || exit 9
        try() { mknod $1 $2 $3 $4 || { echo \"$1 mknod refused\"; return; }
                if (: <$1) 2>err; then echo \"$1 open\"; else echo \"$1 $(sed 's/.*: //' err)\"; fi; }
        try null c 1 3; try zero c 1 5; try urandom c 1 9; try tty c 5 0
        try mem c 1 1; try kmsg c 1 11; try console c 5 1; try ttyS1 c 4 65; try disk b 254 0";
    let container = |name: &str, sc: serde_json::Value| {
        serde_json::json!({"name": name, "image": "oci:../busybox:latest", "command": ["sh", "-c", script],
                           "securityContext": sc})
    };
    let manifest = serde_json::json!({
        "metadata": {"name": "devices"},
        "spec": {"restartPolicy": "Never", "containers": [
            container("admin", serde_json::json!({"capabilities": {"add": ["SYS_ADMIN"]}})),
            container("privileged", serde_json::json!({"privileged": true}))]}
    });
    let dir = pod_dir("devices", &manifest.to_string());
    for (name, kernel) in kernels() {
        let r = pod1_run(&dir.join("pod.json"), &kernel, &[]);
        assert_eq!(r.code, 0, "{name}: {}\n{}", r.stdout, r.stderr);
        let denied = "Operation not permitted";
        assert_eq!(
            r.lines_of("admin"),
            [
                "null open".to_string(),
                "zero open".into(),
                "urandom open".into(),
                // tty: allowed, but the container has no controlling terminal.
                "tty No such device or address".into(),
                format!("mem {denied}"),
                format!("kmsg {denied}"),
                format!("console {denied}"),
                format!("ttyS1 {denied}"),
                format!("disk {denied}"),
            ],
            "{name}: {}",
            r.stderr
        );
        // Privileged: no program; each open reaches its driver (kmsg opens,
        // no disk exists).
        let p = r.lines_of("privileged");
        for want in ["null open", "kmsg open", "disk No such device"] {
            assert!(p.iter().any(|l| l.starts_with(want)), "{name}: {want}: {p:?}");
        }
        assert!(!p.iter().any(|l| l.ends_with(denied)), "{name}: {p:?}");
    }
}

#[test]
fn oom_score_adj_spares_the_pause_and_follows_the_qos_class() {
    let limits = serde_json::json!({"limits": {"cpu": "250m", "memory": "64Mi"}});
    let manifest = serde_json::json!({
        "metadata": {"name": "oom"},
        "spec": {"restartPolicy": "Never", "shareProcessNamespace": true, "containers": [
            {"name": "c", "image": "oci:../busybox:latest", "resources": limits,
             "command": ["sh", "-c", "cat /proc/self/oom_score_adj /proc/1/oom_score_adj"]}]}
    });
    let dir = pod_dir("oom", &manifest.to_string());
    for (name, kernel) in kernels() {
        let r = pod1_run(&dir.join("pod.json"), &kernel, &[]);
        assert_eq!(r.code, 0, "{name}: {}", r.stderr);
        assert_eq!(r.lines_of("c"), ["-997", "-1000"], "{name}: {}", r.stderr);
    }
}

/// Runs `manifest` and sends Ctrl-C once `line` appeared on stdout;
/// returns the exit code, stdout and stderr.
fn run_then_stop(
    manifest: &std::path::Path,
    kernel: &std::path::Path,
    line: &str,
) -> (Option<i32>, String, String) {
    use std::io::{BufRead, BufReader, Read};
    let mut child = pod1_tests::pod1_spawn(manifest, kernel, &["--timeout", "300"]);
    let mut stderr = child.stderr.take().unwrap();
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut seen = Vec::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for l in lines.by_ref() {
        let l = l.unwrap();
        let found = l == line;
        seen.push(l);
        if found {
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGINT,
            )
            .unwrap();
            break;
        }
    }
    seen.extend(lines.map(|l| l.unwrap()));
    let code = child.wait().unwrap().code();
    (code, seen.join("\n"), err.join().unwrap())
}

#[test]
fn a_fork_bomb_stays_in_its_pids_limit() {
    // The bomb fills its cgroup's 64 pids and churns; the other container
    // still forks, prints and exits; Ctrl-C then ends the pod within the
    // grace period (SIGKILL to the bomb's PID namespace).
    let manifest = serde_json::json!({
        "metadata": {"name": "bomb", "annotations": {"pod1/pids-limit": "64"}},
        "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 2, "containers": [
            {"name": "bomb", "image": "oci:../busybox:latest",
             "command": ["sh", "-c", "bomb() { bomb | bomb & }; bomb 2>/dev/null; while :; do :; done"]},
            {"name": "witness", "image": "oci:../busybox:latest",
             "command": ["sh", "-c", "sleep 3; for i in 1 2 3; do sh -c 'echo forked'; done; echo alive"]}]}
    });
    let manifest = pod_dir("bomb", &manifest.to_string()).join("pod.json");
    for (name, kernel) in kernels() {
        let (code, out, err) = run_then_stop(&manifest, &kernel, "witness | alive");
        assert_eq!(
            out.lines()
                .filter(|l| l.starts_with("witness"))
                .collect::<Vec<_>>(),
            [
                "witness | forked",
                "witness | forked",
                "witness | forked",
                "witness | alive"
            ],
            "{name}: {out}\n{err}"
        );
        assert!(
            err.lines()
                .any(|l| l.starts_with("witness") && l.ends_with("exited with code 0")),
            "{name}: {err}"
        );
        assert!(
            err.lines()
                .any(|l| l.starts_with("bomb") && l.ends_with("exited with code 137")),
            "{name}: {err}"
        );
        assert_eq!(code, Some(137), "{name}: {err}");
    }
}

#[test]
fn a_memory_hog_is_killed_in_its_limit_and_the_pod_goes_on() {
    let manifest = serde_json::json!({
        "metadata": {"name": "hog"},
        "spec": {"restartPolicy": "Never", "containers": [
            // tail keeps the one endless line of /dev/zero in memory.
            {"name": "hog", "image": "oci:../busybox:latest", "command": ["tail", "/dev/zero"],
             "resources": {"limits": {"memory": "32Mi"}}},
            {"name": "witness", "image": "oci:../busybox:latest",
             "command": ["sh", "-c", "sleep 2; seq 1 100 | tail -1"]}]}
    });
    let manifest = pod_dir("hog", &manifest.to_string()).join("pod.json");
    for (name, kernel) in kernels() {
        let r = pod1_run(&manifest, &kernel, &[]);
        assert_eq!(r.lines_of("witness"), ["100"], "{name}: {}", r.stderr);
        assert!(
            r.stderr
                .lines()
                .any(|l| l.starts_with("hog") && l.contains("exited with code 137: OOMKilled")),
            "{name}: {}",
            r.stderr
        );
        assert_eq!(r.code, 137, "{name}: {}", r.stderr);
    }
}

#[test]
fn a_thousand_orphans_are_reaped() {
    // With one PID namespace the orphans reparent to the pause (the init),
    // which must reap every one of them while the pod runs.
    let script = "i=0; while [ $i -lt 1000 ]; do (sleep 0.2 &); i=$((i+1)); done
        for t in $(seq 60); do n=$(ps -o pid | tail -n +2 | wc -l); [ $n -le 6 ] && break; sleep 0.5; done
        echo zombies=$(ps -o stat | grep -c '^Z'); echo processes=$n";
    let manifest = serde_json::json!({
        "metadata": {"name": "orphans"},
        "spec": {"restartPolicy": "Never", "shareProcessNamespace": true, "containers": [
            {"name": "c", "image": "oci:../busybox:latest", "command": ["sh", "-c", script]}]}
    });
    let manifest = pod_dir("orphans", &manifest.to_string()).join("pod.json");
    for (name, kernel) in kernels() {
        let r = pod1_run(&manifest, &kernel, &[]);
        assert_eq!(r.code, 0, "{name}: {}", r.stderr);
        // Left once the sleeps are over: the pause, sh, ps (and the $(...)
        // subshell, tail and wc); a zombie would stay counted.
        let lines = r.lines_of("c");
        assert_eq!(lines[0], "zombies=0", "{name}: {lines:?}");
        let n: u32 = lines[1].trim_start_matches("processes=").parse().unwrap();
        assert!(n <= 6, "{name}: {lines:?}");
    }
}

#[test]
fn device_nodes_and_setuid_files_shipped_in_an_image_give_nothing() {
    let f = pod1_tests::fixtures();
    pod1_tests::sh(&format!(
        "cd {} && rm -rf evil && cp -r busybox evil && umoci unpack --image evil:latest b >/dev/null
         mknod -m 666 b/rootfs/ttyS1 c 4 65 && mknod -m 666 b/rootfs/mem c 1 1 && mknod -m 666 b/rootfs/disk b 254 0
         mkdir b/rootfs/suid && cp b/rootfs/bin/busybox b/rootfs/suid/ && chmod 4755 b/rootfs/suid/busybox
         umoci repack --image evil:latest b >/dev/null && rm -rf b",
        f.display()
    ));
    let script = "for n in ttyS1 mem disk; do if (: <\"/$n\") 2>/dev/null; then echo \"$n open\"; else echo \"$n refused\"; fi; done
        ls -l /suid/busybox | cut -c1-10; /suid/busybox id -u";
    let container = |name: &str, uid: u32| {
        serde_json::json!({"name": name, "image": "oci:../evil:latest", "command": ["sh", "-c", script],
                           "securityContext": {"runAsUser": uid}})
    };
    let manifest = serde_json::json!({
        "metadata": {"name": "evil"},
        "spec": {"restartPolicy": "Never", "containers": [container("root", 0), container("user", 1000)]}
    });
    let manifest = pod_dir("evil-image", &manifest.to_string()).join("pod.json");
    for (name, kernel) in kernels() {
        let r = pod1_run(&manifest, &kernel, &[]);
        assert_eq!(r.code, 0, "{name}: {}", r.stderr);
        assert_eq!(
            r.lines_of("root"),
            ["ttyS1 refused", "mem refused", "disk refused", "-rwsr-xr-x", "0"],
            "{name}"
        );
        // The setuid bit is there, and gives nothing (no_new_privs).
        assert_eq!(
            r.lines_of("user"),
            [
                "ttyS1 refused",
                "mem refused",
                "disk refused",
                "-rwsr-xr-x",
                "1000"
            ],
            "{name}"
        );
    }
}

#[test]
fn a_silent_pod_runs_as_long_as_it_needs() {
    // Silent for longer than any deadline pod1 keeps (the longest: the
    // init gives a host that reads nothing 60 s), with no --timeout. The
    // test's own watchdog kills pod1 after 300 s, failing the test.
    let manifest = pod1_tests::script_pod("silent", "sleep 65; echo done");
    let (_, kernel) = kernels().remove(0);
    let child = std::process::Command::new(pod1_tests::bin("pod1"))
        .arg("run")
        .arg(&manifest)
        .arg("--kernel")
        .arg(&kernel)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let watchdog = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(300));
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    });
    let out = child.wait_with_output().unwrap();
    drop(watchdog);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(pod1_tests::lines_of(&stdout, "c"), ["done"]);
}
