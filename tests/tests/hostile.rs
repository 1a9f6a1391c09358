//! VM tests of `pod1 run` against a hostile guest: an init that breaks the
//! channel's format, floods it or forges reports (`pod1-hostile-init`). The
//! host's side must stay bounded and give a clear outcome.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pod1_manifest::channel::{MAX_DATA, MAX_LINE};
use pod1_tests::{bin, fixtures, kernels, pod1_run, pod1_spawn, sh};

/// An initramfs whose init is `pod1-hostile-init` (made with GNU cpio, once).
fn hostile_image() -> PathBuf {
    static IMG: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    IMG.get_or_init(make_image).clone()
}

fn make_image() -> PathBuf {
    let dir = fixtures().join("hostile");
    sh(&format!(
        "rm -rf {d} && mkdir -p {d}/root/dev && mknod {d}/root/dev/console c 5 1 && cp {i} {d}/root/init &&
         cd {d}/root && find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip > ../hostile.img",
        d = dir.display(),
        i = bin("pod1-hostile-init").display()
    ));
    dir.join("hostile.img")
}

/// Resident memory of `pid` in KiB (0 once it is gone).
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn garbage_on_the_channel_ends_in_125_with_a_sentence() {
    let img = hostile_image();
    // The hostile init needs virtio-serial built in: the minimal kernel.
    let (_, kernel) = &kernels()[0];
    let r = pod1_run(&img, kernel, &["--append", "hostile=garbage"]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("ignoring the rest of the guest's channel: a frame starts with byte"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("the guest broke the channel"), "{}", r.stderr);
    assert!(r.stdout.is_empty());
}

#[test]
fn a_flood_from_the_guest_keeps_the_host_bounded() {
    let img = hostile_image();
    let (_, kernel) = &kernels()[0];
    let mut child = pod1_spawn(&img, kernel, &["--append", "hostile=flood", "--timeout", "300"]);
    let pid = child.id();
    let (peak, done) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
    let sampler = {
        let (peak, done) = (Arc::clone(&peak), Arc::clone(&done));
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let mut stderr = child.stderr.take().unwrap();
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        stderr.read_to_string(&mut s).unwrap();
        s
    });
    // A slow reader first: what the guest sends meanwhile must wait in the
    // guest, not in pod1 run.
    let mut stdout = child.stdout.take().unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let (mut lines, mut longest, mut bytes) = (0u64, 0usize, 0u64);
    let mut current = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = stdout.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        bytes += n as u64;
        for &b in &buf[..n] {
            if b == b'\n' {
                lines += 1;
                longest = longest.max(current);
                current = 0;
            } else {
                current += 1;
            }
        }
    }
    let code = child.wait().unwrap().code();
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let stderr = err.join().unwrap();
    // The first report of the pod's end stands; the later one is ignored.
    assert_eq!(code, Some(0), "{stderr}");
    // The 100 MB line (whole frames of MAX_DATA) arrives whole, in pieces
    // of MAX_LINE (plus the prefix).
    let sent = 100_000_000usize.div_ceil(MAX_DATA) * MAX_DATA;
    assert!(bytes > sent as u64, "{bytes} bytes");
    assert_eq!(lines, sent.div_ceil(MAX_LINE) as u64);
    assert_eq!(longest, "big | ".len() + MAX_LINE);
    // Unknown events are skipped with a note; partial lines are kept for a
    // bounded number of pipes.
    assert!(
        stderr.contains("skipped an event it cannot read"),
        "{stderr:.2000}"
    );
    let halves = stderr.lines().filter(|l| l.ends_with("| half a line")).count();
    assert!((1..=2048).contains(&halves), "{halves} partial lines kept");
    let peak = peak.load(Ordering::Relaxed);
    assert!(peak < 48 << 10, "pod1 run's RSS reached {peak} KiB");
}
