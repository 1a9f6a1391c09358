//! A hostile guest for the tests of `pod1 run`: an init that speaks on the
//! channel's virtio port as a compromised VM could, chosen by
//! `hostile=MODE` on the kernel command line:
//!
//! - `garbage`: a megabyte of bytes that are not frames;
//! - `flood`: one 100 MB line (no newline) in valid output frames, frames
//!   naming 10,000 containers, a bogus event, then two different reports of
//!   the pod's end (exit codes 0, then 9).
//!
//! Then it waits for the host's acknowledgement (at most 60 s) and powers
//! off. It runs on a kernel with virtio-serial built in (the minimal one).

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use pod1_manifest::channel::{encode, Kind, MAX_DATA, PORT_NAME};

/// Mounts `fstype` on `target`, creating it.
fn mount(fstype: &str, target: &str) {
    let _ = std::fs::create_dir_all(target);
    let (src, dst, ty) = (
        std::ffi::CString::new(fstype).unwrap_or_default(),
        std::ffi::CString::new(target).unwrap_or_default(),
        std::ffi::CString::new(fstype).unwrap_or_default(),
    );
    // SAFETY: three NUL-terminated strings that live across the call, no data.
    unsafe { libc::mount(src.as_ptr(), dst.as_ptr(), ty.as_ptr(), 0, std::ptr::null()) };
}

/// The device node of the channel's port, once the driver has named it.
fn port() -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        for entry in std::fs::read_dir("/sys/class/virtio-ports")
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = std::fs::read_to_string(entry.path().join("name")).unwrap_or_default();
            if name.trim_end() == PORT_NAME {
                return Some(format!("/dev/{}", entry.file_name().to_string_lossy()));
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

fn event(out: &mut Vec<u8>, json: &str) {
    encode(out, Kind::Event, b"", 0, json.as_bytes(), 1);
}

fn hostile(mode: &str, port: &mut std::fs::File) -> std::io::Result<()> {
    let mut out = Vec::new();
    match mode {
        "garbage" => {
            let mut x = 0x2545_f491u32;
            for _ in 0..1 << 20 {
                // xorshift: bytes that are not frames.
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                out.push(x as u8);
            }
            port.write_all(&out)?;
        }
        _ => {
            event(
                &mut out,
                r#"{"event":"init_started","argv0":"/init","pid1":true,"ms":1}"#,
            );
            port.write_all(&out)?;
            let chunk = vec![b'x'; MAX_DATA];
            let mut sent = 0;
            while sent < 100_000_000 {
                out.clear();
                encode(&mut out, Kind::Stdout, b"big", 1, &chunk, 2);
                port.write_all(&out)?;
                sent += chunk.len();
            }
            out.clear();
            encode(&mut out, Kind::Stdout, b"big", 1, b"", 3);
            for i in 0..10_000u32 {
                encode(
                    &mut out,
                    Kind::Stderr,
                    format!("c{i:0>60}").as_bytes(),
                    10 + i,
                    b"half a line",
                    4,
                );
            }
            event(&mut out, r#"{"event":"no_such_event","ms":5}"#);
            event(
                &mut out,
                r#"{"event":"pod_exited","phase":"Succeeded","exit_code":0,"ms":6}"#,
            );
            event(
                &mut out,
                r#"{"event":"pod_exited","phase":"Failed","exit_code":9,"ms":7}"#,
            );
            port.write_all(&out)?;
        }
    }
    // Wait for the host's acknowledgement, as the real init does.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while Instant::now() < deadline && !String::from_utf8_lossy(&seen).contains("\"ack\"") {
        match port.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    Ok(())
}

fn main() {
    mount("proc", "/proc");
    mount("sysfs", "/sys");
    mount("devtmpfs", "/dev");
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let mode = cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("hostile="))
        .unwrap_or("garbage")
        .to_string();
    match port().map(|p| std::fs::OpenOptions::new().read(true).write(true).open(p)) {
        Some(Ok(mut f)) => {
            if let Err(e) = hostile(&mode, &mut f) {
                eprintln!("hostile init: {e}");
            }
        }
        _ => eprintln!("hostile init: no channel port"),
    }
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF);
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
