//! Replays the `manifest` fuzz target's inputs: every crash afl found
//! (`fuzz/regressions/manifest/`) and the seeds (`fuzz/seeds/manifest/`),
//! through the very code the target runs (included by path below). Each
//! must return, Ok or Err, without panicking.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

#[path = "../../fuzz/src/manifest.rs"]
mod target;

use std::path::{Path, PathBuf};

/// The files of `fuzz/<kind>/<target>/`, sorted; none if it does not exist.
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz")
        .join(kind)
        .join(target);
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file() && !p.file_name().unwrap().to_string_lossy().starts_with('.'))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("reading {}: {e}", dir.display()),
    };
    files.sort();
    files
}

#[test]
fn manifest_inputs_do_not_panic() {
    let seeds = inputs("seeds", "manifest");
    assert!(!seeds.is_empty(), "fuzz/seeds/manifest/ has no seeds");
    let mut failed = Vec::new();
    for path in inputs("regressions", "manifest").iter().chain(&seeds) {
        let data = std::fs::read(path).unwrap();
        if std::panic::catch_unwind(|| target::run(&data)).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(failed.is_empty(), "these inputs panic (see above): {failed:#?}");
}
