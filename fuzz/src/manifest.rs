//! The `manifest` target: a manifest's text through `workload::read`
//! (documents, Jobs, Deployments, ConfigMaps, Secrets, validation) and,
//! when valid, `plan::resolve_all` (env sources, the downward API, volume
//! files, managed files) against a fake image for every image it names; a
//! resolved plan must survive the JSON round trip the builder and the
//! init make of it.
//!
//! Shared by the fuzz target (`fuzz/src/bin/manifest.rs`) and the
//! regression test (`manifest/tests/fuzz_regressions.rs`), which includes
//! this file by path so both run exactly the same code.

use std::collections::BTreeMap;

use pod1_manifest::downward::Node;
use pod1_manifest::plan::{resolve_all, ImageInfo, Inputs, Plan};
use pod1_manifest::ImageConfig;

/// The one image every container gets: an entrypoint and cmd, an
/// environment, a working directory, a named user and its databases.
fn fake_image() -> ImageInfo {
    ImageInfo {
        config: ImageConfig {
            entrypoint: vec!["/bin/sh".into()],
            cmd: vec!["-c".into(), "true".into()],
            env: vec!["PATH=/usr/bin:/bin".into(), "GREETING=hi".into()],
            working_dir: "/srv".into(),
            user: "app".into(),
            stop_signal: String::new(),
        },
        rootfs: "/pod1/images/0123456789abcdef".into(),
        passwd: Some("root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n".into()),
        group: Some("root:x:0:\napp:x:1000:\nwheel:x:10:app\n".into()),
        id: "sha256:0123".into(),
    }
}

/// Runs one input. Errors are expected; a panic is the bug.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(workload) = pod1_manifest::workload::read(text) else {
        return;
    };
    let pod = &workload.pod;
    let images: BTreeMap<String, ImageInfo> = pod
        .spec
        .init_containers
        .iter()
        .chain(&pod.spec.containers)
        .map(|c| (c.image.clone(), fake_image()))
        .collect();
    let inputs = Inputs {
        pod,
        sources: &workload.sources,
        node: Node::new(512, 1),
        images: &images,
        backoff_limit: None,
    };
    let Ok(plan) = resolve_all(&inputs).map(|r| r.plan) else {
        return;
    };
    // The builder writes the plan as JSON and the init reads it back.
    let json = match serde_json::to_string(&plan) {
        Ok(json) => json,
        Err(e) => panic!("a resolved plan does not serialize: {e}"),
    };
    match serde_json::from_str::<Plan>(&json) {
        Ok(back) => assert_eq!(back, plan, "the plan changed in the JSON round trip"),
        Err(e) => panic!("the init could not read the plan back: {e}\n{json}"),
    }
}
