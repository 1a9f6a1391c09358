//! Replays the `oci` and `layer` fuzz targets' inputs: every crash afl
//! found (`fuzz/regressions/<target>/`) and the seeds
//! (`fuzz/seeds/<target>/`), through the very code the targets run
//! (included by path below). Each must return, Ok or Err, without
//! panicking, except the crashes listed in [`KNOWN_UNFIXED`].

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

#[path = "../../fuzz/src/registry.rs"]
mod registry_target;
#[path = "../../fuzz/src/image.rs"]
mod target;

use std::path::{Path, PathBuf};

/// Crashes found by fuzzing whose fix is still to come, as
/// `"<target>/<file>"` under `fuzz/regressions/`: skipped here (so the
/// suite stays green) and named in the test's output. Remove an entry with
/// its fix; the input itself stays in `fuzz/regressions/` for good.
const KNOWN_UNFIXED: &[&str] = &[];

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

fn replay(target: &str, run: fn(&[u8])) {
    let seeds = inputs("seeds", target);
    assert!(!seeds.is_empty(), "fuzz/seeds/{target}/ has no seeds");
    let mut failed = Vec::new();
    for path in inputs("regressions", target) {
        let name = format!("{target}/{}", path.file_name().unwrap().to_string_lossy());
        if KNOWN_UNFIXED.contains(&name.as_str()) {
            eprintln!("skipped, known and not fixed yet: fuzz/regressions/{name}");
            continue;
        }
        let data = std::fs::read(&path).unwrap();
        if std::panic::catch_unwind(|| run(&data)).is_err() {
            failed.push(path.display().to_string());
        }
    }
    for path in &seeds {
        let data = std::fs::read(path).unwrap();
        if std::panic::catch_unwind(|| run(&data)).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(failed.is_empty(), "these inputs panic (see above): {failed:#?}");
}

#[test]
fn oci_inputs_do_not_panic() {
    replay("oci", target::oci);
}

#[test]
fn layer_inputs_do_not_panic() {
    replay("layer", target::layer);
}

#[test]
fn registry_inputs_do_not_panic() {
    replay("registry", registry_target::registry);
}

#[test]
fn known_unfixed_inputs_exist() {
    for name in KNOWN_UNFIXED {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/regressions")
            .join(name);
        assert!(
            path.is_file(),
            "KNOWN_UNFIXED names {name}, which is not in fuzz/regressions/"
        );
    }
}
