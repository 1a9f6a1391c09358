//! The `registry` target: what a registry sends pod1, each reader fed the
//! same bytes. The first byte picks the reader (so one corpus covers them
//! all), the rest is its input:
//!
//! - `c`: a `WWW-Authenticate` header: every challenge parsed, and the
//!   token URL built from each bearer realm;
//! - `t`: a token service's JSON answer;
//! - `e`: a distribution error body, as pod1 prints it;
//! - `i`: an image index: the linux/amd64 entry picked;
//! - `m`: an image manifest: checked as a pull checks it before downloading;
//! - `r`: a registries.conf (the host's, but cheap to fuzz): candidates and
//!   endpoints of a few names.
//!
//! Shared by the fuzz target (`fuzz/src/bin/registry.rs`) and the
//! regression test (`builder/tests/fuzz_regressions.rs`).

use pod1::image::pull::{check_image, pick_platform};
use pod1::image::registry::{challenge, config::Registries, errors};
use pod1_manifest::reference::Reference;

/// Runs the reader the first byte names on the rest.
pub fn registry(data: &[u8]) {
    let Some((kind, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match kind {
        b'c' => {
            for c in challenge::parse(&text) {
                if let challenge::Challenge::Bearer {
                    realm,
                    service,
                    scope,
                } = c
                {
                    let scopes: Vec<String> = scope.into_iter().collect();
                    let _ = challenge::token_url(&realm, service.as_deref(), &scopes);
                }
            }
        }
        b't' => {
            let _ = challenge::token_from_response(rest);
        }
        b'e' => {
            let shown = errors::registry_errors(rest);
            assert!(
                !shown.chars().any(char::is_control),
                "a control character would reach the terminal"
            );
        }
        b'i' => {
            if let Ok(index) = oci_spec::image::ImageIndex::from_reader(rest) {
                let _ = pick_platform(&index);
            }
        }
        b'm' => {
            if let Ok(m) = oci_spec::image::ImageManifest::from_reader(rest) {
                let r = Reference::parse_normalized("example.com/fuzz:1").expect("a valid reference");
                let _ = check_image(&r, &m, 1 << 30);
            }
        }
        b'r' => {
            if let Ok(conf) = Registries::parse(&text, std::path::Path::new("fuzz.conf")) {
                for name in ["busybox", "bb:1", "example.com/team/app@sha256:0123456789012345678901234567890123456789012345678901234567890123", "localhost:5000/x"] {
                    if let Ok(list) = conf.candidates(name) {
                        for r in list {
                            let _ = conf.endpoints(&r);
                        }
                    }
                }
            }
        }
        _ => {}
    }
}
