//! Shared helpers for the tests that run pod1's binaries: locating them and
//! the guest kernels, making real image fixtures, running commands.
//!
//! Fixtures are made once per test binary with real tools:
//! `scripts/make-busybox-image.sh` (umoci, Debian's busybox-static) makes an
//! OCI layout; skopeo turns it into an oci-archive and a docker-archive;
//! `umoci unpack` gives the same root filesystem as a `dir:` image.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test support: a failed step is a failed test

pub mod registry;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A binary of the workspace, built in the same profile as the running test
/// (`cargo test --workspace` builds them all).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // A test runs from target/<triple>/<profile>/deps/, a binary from the profile directory.
    let mut dir = exe.parent().unwrap();
    if dir.ends_with("deps") {
        dir = dir.parent().unwrap();
    }
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: run the tests with `scripts/test.sh` (pod1-init comes from its own workspace: \
         `cargo build --manifest-path init/Cargo.toml`, same profile)",
        path.display()
    );
    path
}

/// Runs `cmd`, panicking with its output unless it succeeds.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs a bash script with `set -euo pipefail`.
pub fn sh(script: &str) {
    run(Command::new("bash").args(["-euo", "pipefail", "-c", script]));
}

/// The fixture directory of this test binary: `busybox` (OCI layout, tag
/// latest, Cmd ["sh"]), `busybox-oci.tar`, `busybox-docker.tar`, `rootfs`.
pub fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        let name = exe.file_name().unwrap().to_string_lossy().into_owned();
        // The pid and the time: a directory left by an earlier run (a pid
        // reused after a reboot) is never shared.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!(
            "pod1-fixtures-{name}-{}-{nanos}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        sh(&format!(
            "cd {d}
             {script} busybox latest
             skopeo --insecure-policy copy -q oci:busybox:latest oci-archive:busybox-oci.tar:latest
             skopeo --insecure-policy copy -q oci:busybox:latest docker-archive:busybox-docker.tar:busybox:latest
             umoci unpack --image busybox:latest bundle >/dev/null
             mv bundle/rootfs rootfs && rm -rf bundle",
            d = dir.display(),
            script = workspace().join("scripts/make-busybox-image.sh").display()
        ));
        dir
    })
}

/// A directory next to the fixtures holding `pod.json` with `manifest`;
/// image paths like `oci:../busybox` resolve to the fixtures.
pub fn pod_dir(name: &str, manifest: &str) -> PathBuf {
    let dir = fixtures().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("pod.json"), manifest).unwrap();
    dir
}

/// The guest kernels the VM tests boot: the minimal one from
/// `scripts/build-kernel.sh` and Debian's from `scripts/fetch-kernel.sh`.
/// Both scripts cache their result and print its path last, so after the
/// first build (which `scripts/test.sh` does up front) this is instant.
pub fn kernels() -> Vec<(&'static str, PathBuf)> {
    static KERNELS: OnceLock<Vec<(&'static str, PathBuf)>> = OnceLock::new();
    KERNELS
        .get_or_init(|| {
            let path_from = |script: &str| {
                let out = run(Command::new(workspace().join(script)).stderr(std::process::Stdio::inherit()));
                let text = String::from_utf8(out.stdout).unwrap();
                PathBuf::from(text.lines().last().unwrap_or_default().trim())
            };
            vec![
                ("minimal", path_from("scripts/build-kernel.sh")),
                ("debian", path_from("scripts/fetch-kernel.sh")),
            ]
        })
        .clone()
}

/// What one `pod1 run` gave back.
#[derive(Debug)]
pub struct Ran {
    /// Its exit code (-1 if killed by a signal).
    pub code: i32,
    /// Its stdout, lossily decoded.
    pub stdout: String,
    /// Its stderr, lossily decoded.
    pub stderr: String,
}

impl Ran {
    /// The events of a `--json` run.
    pub fn events(&self) -> Vec<pod1_manifest::events::Event> {
        self.stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<pod1_manifest::events::Record>(l).ok())
            .map(|r| r.event)
            .collect()
    }

    /// Whether a VM was started (pod1 says which accelerator it chose
    /// just before it starts QEMU).
    pub fn booted(&self) -> bool {
        self.stderr.contains("pod1: using TCG") || self.stderr.contains("pod1: using KVM")
    }

    /// The lines container `name` printed on stdout (`name | line`, the
    /// name padded to the longest one seen before).
    pub fn lines_of(&self, name: &str) -> Vec<&str> {
        lines_of(&self.stdout, name)
    }

    /// The lines container `name` printed on stderr.
    pub fn err_lines_of(&self, name: &str) -> Vec<&str> {
        lines_of(&self.stderr, name)
    }
}

/// The lines of `name` in `pod1 run`'s `name | line` output.
pub fn lines_of<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    text.lines()
        .filter_map(|l| l.strip_prefix(name)?.trim_start_matches(' ').strip_prefix("| "))
        .collect()
}

/// `pod1 run INPUT --kernel K ARGS...`, with a generous timeout so a broken
/// boot fails the test instead of hanging it.
pub fn pod1_run(input: &Path, kernel: &Path, args: &[&str]) -> Ran {
    let mut cmd = Command::new(bin("pod1"));
    cmd.arg("run").arg(input).arg("--kernel").arg(kernel).args(args);
    if !args.contains(&"--timeout") {
        cmd.args(["--timeout", "180"]);
    }
    let out = cmd.output().unwrap();
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `pod1 run INPUT --kernel K ARGS...` started with its stdout and stderr
/// piped, for tests that read them while it runs.
pub fn pod1_spawn(input: &Path, kernel: &Path, args: &[&str]) -> std::process::Child {
    Command::new(bin("pod1"))
        .arg("run")
        .arg(input)
        .arg("--kernel")
        .arg(kernel)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// A pod of one busybox container `c` running `script` with `restartPolicy: Never`.
pub fn script_pod(name: &str, script: &str) -> PathBuf {
    script_pod_shared(name, script, false)
}

/// As [`script_pod`], optionally with one PID namespace for the pod.
pub fn script_pod_shared(name: &str, script: &str, share_pid: bool) -> PathBuf {
    let manifest = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "t"},
        "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 10, "shareProcessNamespace": share_pid,
                 "containers": [{"name": "c", "image": "oci:../busybox:latest", "command": ["sh", "-c", script]}]}
    });
    pod_dir(name, &manifest.to_string()).join("pod.json")
}

/// A `dir:` image next to the fixtures: the busybox root filesystem with
/// these binaries of the workspace added to /usr/local/bin (they are
/// static, as every binary of this target is).
pub fn image_with(name: &str, bins: &[&str]) -> PathBuf {
    let dir = fixtures().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    run(Command::new("cp")
        .arg("-a")
        .arg(fixtures().join("rootfs"))
        .arg(&dir));
    std::fs::create_dir_all(dir.join("usr/local/bin")).unwrap();
    for b in bins {
        std::fs::copy(bin(b), dir.join("usr/local/bin").join(b)).unwrap();
    }
    dir
}

/// A TCP port of 127.0.0.1 free at the time of the call.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}
