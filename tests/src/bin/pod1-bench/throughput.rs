//! Output throughput: bytes a container writes, through the channel and
//! `pod1 run`, to a reader of its stdout; side by side over the
//! virtio-serial port, over ttyS1 (`--channel serial`), and through a pipe
//! on the host (`base64 < file | cat > /dev/null`, the physical limit here).
//!
//! Two shapes of producer, because under TCG the container's own work is
//! slow: `head -c N /dev/urandom | base64` in the container (as a user
//! would print; bound by the guest's urandom and base64), and `cat` of the
//! same kind of bytes prepared by an init container (bound by the channel).
//! The time runs from the first byte on pod1's stdout to its exit: the
//! container's start is a few milliseconds earlier.

use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use pod1_tests::{pod_dir, sh};

const MB: f64 = 1e6;

/// One pod: an init container running `prep` (may be empty) with an
/// emptyDir at /d, then container `c` running `script`.
fn pod(name: &str, prep: &str, script: &str) -> PathBuf {
    let mount = serde_json::json!([{"name": "d", "mountPath": "/d"}]);
    let mut spec = serde_json::json!({
        "restartPolicy": "Never", "volumes": [{"name": "d", "emptyDir": {"medium": "Memory"}}],
        "containers": [{"name": "c", "image": "oci:../busybox", "command": ["sh", "-c", script], "volumeMounts": mount}]
    });
    if !prep.is_empty() {
        spec["initContainers"] = serde_json::json!([
            {"name": "p", "image": "oci:../busybox", "command": ["sh", "-c", prep], "volumeMounts": mount}
        ]);
    }
    let m = serde_json::json!({"metadata": {"name": name}, "spec": spec});
    pod_dir(name, &m.to_string()).join("pod.json")
}

/// Runs `manifest`; returns the seconds from the first byte on pod1's
/// stdout to its exit, and the bytes of container output (without the
/// `c | ` prefixes).
fn stream(pod1: &Path, manifest: &Path, kernel: &Path, channel: &str) -> (f64, u64) {
    let mut child = Command::new(pod1)
        .arg("run")
        .arg(manifest)
        .arg("--kernel")
        .arg(kernel)
        .args(["--channel", channel, "--memory", "1G", "--timeout", "1200"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut buf = vec![0u8; 1 << 16];
    let (mut first, mut bytes, mut lines) = (None, 0u64, 0u64);
    loop {
        let n = out.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        first.get_or_insert_with(Instant::now);
        bytes += n as u64;
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
    }
    assert!(child.wait().unwrap().success(), "{} failed", manifest.display());
    let secs = first.map_or(f64::NAN, |t| t.elapsed().as_secs_f64());
    (secs, bytes - 4 * lines)
}

/// `base64 < file | cat > /dev/null` on the host for `n` random bytes.
fn host_pipe(dir: &Path, n: u64) -> f64 {
    let file = dir.join("random");
    sh(&format!("head -c {n} /dev/urandom > {}", file.display()));
    let t = Instant::now();
    sh(&format!("base64 < {} | cat > /dev/null", file.display()));
    t.elapsed().as_secs_f64()
}

fn cell(t: f64, bytes: u64) -> String {
    format!("{t:.2} s ({:.1} MB/s)", bytes as f64 / MB / t)
}

/// The throughput table for one kernel (markdown).
pub fn table(pod1: &Path, kname: &str, kernel: &Path) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "| output ({kname} kernel) | virtio-serial (default) | ttyS1 (`--channel serial`) | host pipe |\n|---|---|---|---|"
    );
    // Input sizes whose base64 (76 columns) is 1, 10 and 100 MB.
    for (label, n) in [("1 MB", 740_000u64), ("10 MB", 7_400_000), ("100 MB", 74_000_000)] {
        eprintln!("bench: throughput, {label}");
        let direct = pod(
            &format!("tp-direct-{n}"),
            "",
            &format!("head -c {n} /dev/urandom | base64"),
        );
        // The same shape of bytes ready in memory: a random megabyte's
        // base64, repeated (urandom itself is slow under TCG).
        let copies = n.div_ceil(740_000);
        let prepared = pod(
            &format!("tp-cat-{n}"),
            &format!(
                "head -c 740000 /dev/urandom | base64 > /d/chunk; for i in $(seq 1 {copies}); do cat /d/chunk; done > /d/out"
            ),
            "cat /d/out",
        );
        let dir = direct.parent().unwrap().to_path_buf();
        let host = host_pipe(&dir, n);
        let host_bytes = n.div_ceil(3) * 4 + n.div_ceil(57);
        let serial_too = n < 50_000_000;
        for (what, manifest) in [
            ("`head -c N /dev/urandom \\| base64`", &direct),
            ("`cat` of prepared base64", &prepared),
        ] {
            let (tv, bv) = stream(pod1, manifest, kernel, "virtio");
            let serial = if serial_too {
                let (ts, bs) = stream(pod1, manifest, kernel, "serial");
                cell(ts, bs)
            } else {
                "not run (about 100× the virtio time at the rates above)".into()
            };
            let _ = writeln!(
                md,
                "| {label}, {what} | {} | {serial} | {} |",
                cell(tv, bv),
                cell(host, host_bytes)
            );
        }
    }
    eprintln!("bench: throughput, short lines");
    let seq = pod("tp-seq", "", "seq 1 3000000");
    let seq_cat = pod("tp-seq-cat", "seq 1 3000000 > /d/out", "cat /d/out");
    let dir = seq.parent().unwrap().to_path_buf();
    let t = Instant::now();
    sh(&format!(
        "cd {} && seq 1 3000000 | cat > /dev/null",
        dir.display()
    ));
    let host = t.elapsed().as_secs_f64();
    let seq_bytes = 20_888_897; // `seq 1 3000000 | wc -c`
    for (what, manifest) in [
        ("`seq 1 3000000` (20.9 MB)", &seq),
        ("`cat` of the same lines, prepared", &seq_cat),
    ] {
        let (tv, bv) = stream(pod1, manifest, kernel, "virtio");
        let _ = writeln!(
            md,
            "| 3,000,000 lines, {what} | {} | not run | {} |",
            cell(tv, bv),
            cell(host, seq_bytes)
        );
    }
    md
}
