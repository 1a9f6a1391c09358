//! Shared helpers for the tests that run pod1's binaries: locating them and
//! the guest kernels, making real image fixtures, running commands.
//!
//! Fixtures are made once per test binary with real tools:
//! `scripts/make-busybox-image.sh` (umoci, Debian's busybox-static) makes an
//! OCI layout; skopeo turns it into an oci-archive and a docker-archive;
//! `umoci unpack` gives the same root filesystem as a `dir:` image.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test support: a failed step is a failed test

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
        let dir = std::env::temp_dir().join(format!("pod1-fixtures-{name}-{}", std::process::id()));
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
