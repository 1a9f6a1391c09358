//! VM tests of the channel between the init and `pod1 run`: volume, order,
//! stream separation, backpressure and the serial fallback, on both guest
//! kernels, through `pod1 run` as a user runs it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use pod1_tests::{kernels, pod1_run, pod1_spawn, pod_dir, script_pod};

/// A pod whose init container `prep` runs `prep` with an emptyDir at /d,
/// then app containers (name, script) with /d too.
fn prepared_pod(name: &str, prep: &str, apps: &[(&str, &str)]) -> PathBuf {
    let mount = serde_json::json!([{"name": "d", "mountPath": "/d"}]);
    let apps: Vec<_> = apps
        .iter()
        .map(|(n, s)| serde_json::json!({"name": n, "image": "oci:../busybox", "command": ["sh", "-c", s], "volumeMounts": mount}))
        .collect();
    let manifest = serde_json::json!({
        "metadata": {"name": name},
        "spec": {"restartPolicy": "Never", "volumes": [{"name": "d", "emptyDir": {"medium": "Memory"}}],
                 "initContainers": [{"name": "prep", "image": "oci:../busybox", "command": ["sh", "-c", prep], "volumeMounts": mount}],
                 "containers": apps}
    });
    pod_dir(name, &manifest.to_string()).join("pod.json")
}

/// The MD5 of `data`, by the host's md5sum (the guest's busybox computes
/// the other side).
fn md5(data: &[u8]) -> String {
    let mut child = Command::new("md5sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    String::from_utf8(out.stdout).unwrap()[..32].to_string()
}

#[test]
fn a_hundred_megabytes_arrive_byte_exact() {
    // 101 MB of base64 in 76-column lines, made in the guest (a random
    // megabyte, repeated with a numbered line before each copy, so a lost,
    // doubled or reordered frame changes the checksum).
    let manifest = prepared_pod(
        "bulk",
        "head -c 1000000 /dev/urandom | base64 > /d/chunk
         for i in $(seq 1 75); do echo \"copy $i\"; cat /d/chunk; done > /d/out
         md5sum /d/out",
        &[("cat", "cat /d/out")],
    );
    for (name, kernel) in kernels() {
        let r = pod1_run(&manifest, &kernel, &["--memory", "1G"]);
        assert_eq!(r.code, 0, "{name}: {}", r.stderr);
        let guest_sum = r.lines_of("prep");
        let mut got = Vec::with_capacity(110 << 20);
        for line in r.lines_of("cat") {
            got.extend_from_slice(line.as_bytes());
            got.push(b'\n');
        }
        assert!(got.len() > 100_000_000, "{name}: only {} bytes", got.len());
        assert_eq!(
            guest_sum.first().map(|l| &l[..32]),
            Some(md5(&got).as_str()),
            "{name}: the bytes differ from the guest's"
        );
    }
}

#[test]
fn three_million_short_lines_arrive_in_order() {
    let manifest = script_pod("seq3m", "seq 1 3000000");
    for (name, kernel) in kernels() {
        let r = pod1_run(&manifest, &kernel, &["--timeout", "600"]);
        assert_eq!(r.code, 0, "{name}: {}", r.stderr);
        let got = r.lines_of("c");
        assert_eq!(got.len(), 3_000_000, "{name}: line count");
        let bad = got.iter().zip(1..).find(|(l, i)| l.parse::<u32>() != Ok(*i));
        assert_eq!(bad, None, "{name}: first line out of order or changed");
    }
}

#[test]
fn stdout_and_stderr_stay_apart() {
    let manifest = script_pod(
        "streams",
        "for i in $(seq 1 3000); do echo out$i; echo err$i >&2; done; printf 'no newline'",
    );
    for (name, kernel) in kernels() {
        let r = pod1_run(&manifest, &kernel, &[]);
        assert_eq!(r.code, 0, "{name}: {}", r.stderr);
        let mut want: Vec<String> = (1..=3000).map(|i| format!("out{i}")).collect();
        want.push("no newline".into());
        assert!(r.lines_of("c") == want, "{name}: stdout: {}", r.stdout);
        // pod1's own line about the exit follows the container's stderr.
        let mut want: Vec<String> = (1..=3000).map(|i| format!("err{i}")).collect();
        want.push("exited with code 0".into());
        assert!(r.err_lines_of("c") == want, "{name}: stderr: {}", r.stderr);
    }
}

#[test]
fn two_containers_at_full_speed_both_complete() {
    // Each waits for the other before printing, so both write at once.
    let both = |me: &str, other: &str| {
        format!("touch /d/{me}; while [ ! -e /d/{other} ]; do sleep 0.01; done; seq 1 200000")
    };
    let manifest = prepared_pod("pair", "true", &[("a", &both("a", "b")), ("b", &both("b", "a"))]);
    for (name, kernel) in kernels() {
        let r = pod1_run(&manifest, &kernel, &[]);
        assert_eq!(r.code, 0, "{name}: {}", r.stderr);
        let want: Vec<String> = (1..=200000).map(|i| i.to_string()).collect();
        assert_eq!(r.lines_of("a"), want, "{name}: a");
        assert_eq!(r.lines_of("b"), want, "{name}: b");
        // They ran together: each one's output began before the other's ended.
        let order: Vec<char> = r.stdout.lines().filter_map(|l| l.chars().next()).collect();
        let (first_a, last_a) = (
            order.iter().position(|&c| c == 'a'),
            order.iter().rposition(|&c| c == 'a'),
        );
        let (first_b, last_b) = (
            order.iter().position(|&c| c == 'b'),
            order.iter().rposition(|&c| c == 'b'),
        );
        assert!(
            first_a < last_b && first_b < last_a,
            "{name}: the outputs never interleaved"
        );
    }
}

/// Resident memory of `pid` in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

#[test]
fn a_host_that_pauses_reading_loses_nothing() {
    // 100 MB of numbered lines, ready in the guest before the app starts;
    // the test reads nothing for 5 s while the app writes at full speed.
    let manifest = prepared_pod(
        "pause",
        "seq 1 100000 > /d/chunk",
        &[("c", "for i in $(seq 1 170); do cat /d/chunk; done")],
    );
    for (name, kernel) in kernels() {
        let mut child = pod1_spawn(&manifest, &kernel, &["--memory", "1G", "--timeout", "300"]);
        let mut stdout = child.stdout.take().unwrap();
        // Wait for the first byte (the app is writing), then stop reading.
        let mut first = [0u8; 1];
        stdout.read_exact(&mut first).unwrap();
        std::thread::sleep(Duration::from_secs(5));
        // While the host does not read, pod1 holds a bounded amount (the
        // guest had written far more than this by now).
        let rss = rss_kib(child.id());
        assert!(
            rss < 64 << 10,
            "{name}: pod1 run holds {rss} KiB while its reader pauses"
        );
        let mut rest = Vec::new();
        stdout.read_to_end(&mut rest).unwrap();
        let mut stderr = String::new();
        child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
        assert_eq!(child.wait().unwrap().code(), Some(0), "{name}: {stderr}");
        let mut all = first.to_vec();
        all.extend(rest);
        let text = String::from_utf8(all).unwrap();
        let got = pod1_tests::lines_of(&text, "c");
        assert_eq!(got.len(), 170 * 100_000, "{name}: line count");
        let bad = got
            .iter()
            .enumerate()
            .find(|(k, l)| l.parse::<usize>() != Ok(k % 100_000 + 1));
        assert_eq!(bad, None, "{name}: first line out of order or changed");
    }
}

#[test]
fn the_serial_fallback_runs_the_basic_pod() {
    let manifest = script_pod(
        "serial",
        "echo over $(cat /proc/cmdline | grep -o 'pod1.channel=[a-z]*')",
    );
    for (name, kernel) in kernels() {
        // Asked for by the host.
        let r = pod1_run(&manifest, &kernel, &["--channel", "serial"]);
        assert_eq!(r.code, 0, "{name}: {}", r.stderr);
        assert_eq!(r.lines_of("c"), ["over pod1.channel=serial"], "{name}");
        // Asked for virtio, but the VM has no virtio-serial port: the init
        // says so on the console and uses ttyS1.
        let r = pod1_run(
            &manifest,
            &kernel,
            &[
                "--channel",
                "serial",
                "--append",
                "pod1.channel=virtio",
                "--console",
            ],
        );
        assert_eq!(r.code, 0, "{name}: {}", r.stderr);
        assert_eq!(r.lines_of("c"), ["over pod1.channel=virtio"], "{name}");
        assert!(
            r.stderr.contains(
                "no virtio-serial port named org.pod1.channel: the channel falls back to /dev/ttyS1"
            ),
            "{name}: {}",
            r.stderr
        );
    }
}

#[test]
fn a_flooding_container_holds_nothing_up() {
    // `flood` writes as fast as it can and never stops; `quiet` prints its
    // lines and exits 3 meanwhile; then a Ctrl-C: `yes` (PID 1 of its PID
    // namespace, no handler) ignores the SIGTERM, so the grace period ends
    // in SIGKILL.
    let manifest = serde_json::json!({
        "metadata": {"name": "flood"},
        "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 2, "containers": [
            {"name": "flood", "image": "oci:../busybox", "command": ["yes"]},
            {"name": "quiet", "image": "oci:../busybox", "command": ["sh", "-c", "sleep 1; seq 1 1000; exit 3"]}]}
    });
    let manifest = pod_dir("flood", &manifest.to_string()).join("pod.json");
    for (name, kernel) in kernels() {
        let mut child = pod1_spawn(&manifest, &kernel, &["--timeout", "300"]);
        let stdout = child.stdout.take().unwrap();
        let counter = std::thread::spawn(move || {
            let (mut floods, mut quiet) = (0u64, Vec::new());
            for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
                let line = line.unwrap();
                match line.strip_prefix("quiet | ") {
                    Some(l) => quiet.push(l.to_string()),
                    None => floods += u64::from(line == "flood | y"),
                }
            }
            (floods, quiet)
        });
        let mut stderr = Vec::new();
        for line in std::io::BufRead::lines(std::io::BufReader::new(child.stderr.take().unwrap())) {
            let line = line.unwrap();
            if line == "quiet | exited with code 3" {
                // Reaped and reported while the flood goes on: now stop.
                nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(child.id() as i32),
                    nix::sys::signal::Signal::SIGINT,
                )
                .unwrap();
            }
            stderr.push(line);
        }
        let code = child.wait().unwrap().code();
        let (floods, quiet) = counter.join().unwrap();
        assert_eq!(
            code,
            Some(3),
            "{name}: the first failure is the pod's code: {stderr:?}"
        );
        let want: Vec<String> = (1..=1000).map(|i| i.to_string()).collect();
        assert!(quiet == want, "{name}: quiet's lines: {} of 1000", quiet.len());
        assert!(floods > 1000, "{name}: only {floods} lines of the flood");
        assert!(
            stderr.iter().any(|l| l == "flood | exited with code 137"),
            "{name}: the grace period's SIGKILL: {stderr:?}"
        );
    }
}

#[test]
fn no_container_reaches_the_channel_or_the_console() {
    // Root containers (CAP_MKNOD, as runc gives) make nodes for ttyS1,
    // ttyS0, the console and every virtio port, and write a forged end of
    // the pod to each. An unprivileged one can open no node it makes (its
    // writable filesystems are nodev: even its own null node is refused);
    // a privileged one can, but not the virtio port, which takes one
    // opener: the init. The pod's exit code stays its own.
    let try_all = "try() { if echo '{\"event\":\"pod_exited\",\"phase\":\"Succeeded\",\"exit_code\":0,\"ms\":1}' 2>/dev/null > $1; \
           then echo \"$2 open\"; else echo \"$2 refused\"; fi; }
         mknod /tmp/n c 1 3 && try /tmp/n null
         [ -n \"$TTYS\" ] && mknod /tmp/s1 c 4 65 && try /tmp/s1 ttyS1
         [ -n \"$TTYS\" ] && mknod /tmp/s0 c 4 64 && try /tmp/s0 ttyS0
         [ -n \"$TTYS\" ] && mknod /tmp/con c 5 1 && try /tmp/con console
         for p in /sys/class/virtio-ports/*; do
           [ -e $p/dev ] || continue
           d=$(cat $p/dev); mknod /tmp/v c ${d%:*} ${d#*:} && try /tmp/v virtio; rm /tmp/v
         done
         exit 7";
    let container = |name: &str, privileged: bool, ttys: &str| {
        serde_json::json!({"name": name, "image": "oci:../busybox", "command": ["sh", "-c", try_all],
                           "env": [{"name": "TTYS", "value": ttys}], "securityContext": {"privileged": privileged}})
    };
    let manifest = serde_json::json!({
        "metadata": {"name": "reach"},
        "spec": {"restartPolicy": "Never", "containers": [container("c", false, "yes"), container("p", true, "")]}
    });
    let manifest = pod_dir("reach", &manifest.to_string()).join("pod.json");
    for (name, kernel) in kernels() {
        for (channel, virtio) in [("virtio", true), ("serial", false)] {
            let r = pod1_run(&manifest, &kernel, &["--channel", channel]);
            assert_eq!(r.code, 7, "{name} {channel}: {}", r.stderr);
            let mut want_c = vec![
                "null refused",
                "ttyS1 refused",
                "ttyS0 refused",
                "console refused",
            ];
            let mut want_p = vec!["null open"];
            if virtio {
                want_c.push("virtio refused");
                want_p.push("virtio refused");
            }
            assert_eq!(r.lines_of("c"), want_c, "{name} {channel}: {}", r.stderr);
            assert_eq!(r.lines_of("p"), want_p, "{name} {channel}: {}", r.stderr);
        }
    }
}
