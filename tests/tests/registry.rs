//! Pulls from a real registry (Debian's docker-registry, CNCF distribution
//! 2.8, on a loopback port) into pod1's store, and pods that name their
//! images as a node reads them. Each test has its own registry, store
//! (`POD1_CACHE`) and configuration files, so nothing of the machine's own
//! registries.conf or auth files is read.
//!
//! The pulled image runs the same on both kernels; these boot the minimal
//! one only (vm.rs boots both).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

use std::process::Command;

use pod1_tests::registry::{busybox, certificates, failed, ok, text, Options, Registry, World};
use pod1_tests::{fixtures, kernels, sh};
use serde_json::{json, Value};

#[test]
fn pull_then_run_by_name_with_the_kubelets_policies() {
    let w = World::new("policies");
    let reg = Registry::start(&w.dir.join("registry"), Options::default());
    reg.push(&busybox(), "library/busybox:1.36", &[]);
    reg.push(&busybox(), "team/tool:latest", &[]);
    let image = format!("{}/library/busybox:1.36", reg.addr);

    let out = ok(&w.pod1(&["pull", &image], &[]));
    assert!(
        out.contains(&format!("Status: Downloaded newer image for {image}")),
        "{out}"
    );
    let blobs = w.store_blobs();
    assert!(blobs.len() >= 3, "manifest, config and a layer: {blobs:?}");
    // Again: the manifest is fetched, no blob is.
    let out = ok(&w.pod1(&["pull", &image], &[]));
    assert!(
        out.contains(&format!("Status: Image is up to date for {image}")),
        "{out}"
    );
    assert_eq!(w.store_blobs(), blobs);

    let listed: Value = serde_json::from_slice(&w.pod1(&["images", "--json"], &[]).stdout).unwrap();
    assert!(
        listed
            .to_string()
            .contains(&format!("{}/library/busybox", reg.addr)),
        "{listed}"
    );

    // A pod naming it (IfNotPresent: a tag other than latest) runs it.
    let pod = w.pod("hello", &image, None, "echo hello from $(cat /etc/hostname)");
    let plan = ok(&w.pod1(&["plan", pod.to_str().unwrap()], &[]));
    assert!(plan.contains(&format!("  pulled   {image} sha256:")), "{plan}");
    let out = ok(&w.run(&pod, &[]));
    assert!(out.contains("hello from hello"), "{out}");

    // An Always image (":latest") is pulled by the run itself.
    let latest = format!("{}/team/tool", reg.addr);
    let pod_latest = w.pod("latest", &latest, None, "echo tool");
    let out = ok(&w.run(&pod_latest, &[]));
    assert!(out.contains(&format!("pod1: pulled {latest}:latest")), "{out}");

    // Never, absent: refused before anything boots, naming the image.
    let never = w.pod(
        "never",
        &format!("{}/library/busybox:1.35", reg.addr),
        Some("Never"),
        "true",
    );
    let err = failed(&w.run(&never, &[]));
    assert!(
        err.contains("spec.containers[0].image") && err.contains("pull policy is Never"),
        "{err}"
    );

    // Pinned by digest (with a tag beside it, which the digest overrides).
    let out = ok(&w.pod1(&["pull", &image], &[]));
    let digest = out
        .lines()
        .find_map(|l| l.strip_prefix("Digest: "))
        .unwrap()
        .to_string();
    let pinned = format!("{}/library/busybox:latest@{digest}", reg.addr);
    ok(&w.pod1(&["pull", &pinned], &[]));

    // The registry goes away.
    drop(reg);
    // IfNotPresent and present: no network needed.
    let out = ok(&w.run(&pod, &[]));
    assert!(out.contains("hello from hello"), "{out}");
    // Always (":latest") but pinned by a digest the store has: no network either.
    let pod_pinned = w.pod("pinned", &pinned, None, "echo pinned");
    assert!(ok(&w.run(&pod_pinned, &[])).contains("pinned"));
    // Always: the pull fails, naming the host and port.
    let err = failed(&w.run(&pod_latest, &[]));
    let addr = latest.split('/').next().unwrap();
    assert!(err.contains(&format!("connection refused at {addr}")), "{err}");
    // --pull=never over Always: the stored image is used.
    let out = ok(&w.run(&pod_latest, &["--pull", "never"]));
    assert!(out.contains("tool"), "{out}");
    // And a tag never pulled under --pull=missing: the error names the reference.
    let err = failed(&w.pod1(&["pull", &format!("{addr}/library/busybox:9")], &[]));
    assert!(err.contains(&format!("{addr}/library/busybox:9")), "{err}");
}

#[test]
fn unknown_tags_and_corrupt_blobs() {
    let w = World::new("errors");
    let reg = Registry::start(&w.dir.join("registry"), Options::default());
    reg.push(&busybox(), "library/busybox:1", &[]);
    let err = failed(&w.pod1(&["pull", &format!("{}/library/busybox:2", reg.addr)], &[]));
    assert!(
        err.contains("does not exist (404)") && err.contains("MANIFEST_UNKNOWN"),
        "{err}"
    );

    // A host that does not exist (.invalid never resolves).
    let err = failed(&w.pod1(&["pull", "pod1-test.invalid/app:1"], &[]));
    assert!(err.contains("unknown host pod1-test.invalid"), "{err}");

    // The registry serves a layer whose bytes are not its digest.
    let manifest = reg.manifest("library/busybox:1");
    let layer = manifest["layers"][0]["digest"].as_str().unwrap().to_string();
    let file = reg.blob_file(&layer);
    let mut data = std::fs::read(&file).unwrap();
    let last = data.len() - 1;
    data[last] ^= 0xff;
    std::fs::write(&file, data).unwrap();
    let err = failed(&w.pod1(&["pull", &format!("{}/library/busybox:1", reg.addr)], &[]));
    assert!(err.contains("digest mismatch") && err.contains(&layer), "{err}");
    let hex = layer.trim_start_matches("sha256:");
    assert!(
        !w.store_blobs().iter().any(|b| b == hex),
        "the corrupt layer was stored"
    );
    let listed = text(&w.pod1(&["images"], &[]));
    assert!(!listed.contains("library/busybox"), "a name was set: {listed}");
}

#[test]
fn tls_needs_a_trusted_certificate() {
    let w = World::new("tls");
    let (ca, cert, key) = certificates(&w.dir);
    let reg = Registry::start(
        &w.dir.join("registry"),
        Options {
            tls: Some((&cert, &key)),
            ..Options::default()
        },
    );
    reg.push(&busybox(), "library/busybox:1", &[]);
    let image = format!("{}/library/busybox:1", reg.addr);
    let err = failed(&w.pod1(&["pull", &image], &[]));
    assert!(err.contains("is not trusted"), "{err}");
    // Trusted through SSL_CERT_FILE (or /etc/containers/certs.d/HOST/ca.crt).
    let out = ok(&w.pod1(&["pull", &image], &[("SSL_CERT_FILE", ca.to_str().unwrap())]));
    assert!(out.contains("Downloaded newer image"), "{out}");
}

#[test]
fn zstd_layers_and_platform_indexes() {
    let w = World::new("formats");
    let reg = Registry::start(&w.dir.join("registry"), Options::default());
    reg.push(
        &busybox(),
        "library/busybox:zstd",
        &["--dest-compress-format", "zstd"],
    );
    let pod = w.pod(
        "zstd",
        &format!("{}/library/busybox:zstd", reg.addr),
        None,
        "echo unpacked",
    );
    let out = ok(&w.run(&pod, &[]));
    assert!(out.contains("unpacked"), "{out}");

    // An index with the amd64 image and an arm64 entry; another with arm64 only.
    let layout = w.dir.join("multi");
    sh(&format!(
        "cp -r {src} {dst} && python3 - {dst} <<'EOF'
import hashlib, json, os, sys
d = sys.argv[1]
index = json.load(open(os.path.join(d, 'index.json')))
m = index['manifests'][0]
def put(obj):
    data = json.dumps(obj).encode()
    h = hashlib.sha256(data).hexdigest()
    open(os.path.join(d, 'blobs/sha256', h), 'wb').write(data)
    return {{'mediaType': obj['mediaType'], 'digest': 'sha256:' + h, 'size': len(data)}}
amd64 = dict(m, platform={{'os': 'linux', 'architecture': 'amd64'}}); amd64.pop('annotations', None)
arm64 = dict(amd64, platform={{'os': 'linux', 'architecture': 'arm64', 'variant': 'v8'}})
both = put({{'schemaVersion': 2, 'mediaType': 'application/vnd.oci.image.index.v1+json', 'manifests': [arm64, amd64]}})
arm = put({{'schemaVersion': 2, 'mediaType': 'application/vnd.oci.image.index.v1+json', 'manifests': [arm64]}})
index['manifests'] = [dict(both, annotations={{'org.opencontainers.image.ref.name': 'both'}}),
                      dict(arm, annotations={{'org.opencontainers.image.ref.name': 'arm'}})]
json.dump(index, open(os.path.join(d, 'index.json'), 'w'))
EOF",
        src = fixtures().join("busybox").display(),
        dst = layout.display()
    ));
    reg.push(
        &format!("oci:{}:both", layout.display()),
        "library/multi:both",
        &["--all"],
    );
    reg.push(
        &format!("oci:{}:arm", layout.display()),
        "library/multi:arm",
        &["--all"],
    );
    let out = ok(&w.pod1(&["pull", &format!("{}/library/multi:both", reg.addr)], &[]));
    assert!(out.contains("Downloaded newer image"), "{out}");
    let pod = w.pod(
        "multi",
        &format!("{}/library/multi:both", reg.addr),
        None,
        "echo amd64 it is",
    );
    assert!(ok(&w.run(&pod, &[])).contains("amd64 it is"));
    let err = failed(&w.pod1(&["pull", &format!("{}/library/multi:arm", reg.addr)], &[]));
    assert!(
        err.contains("no linux/amd64") && err.contains("linux/arm64/v8"),
        "{err}"
    );
}

/// `auth.json` as `podman login` writes it.
fn auth_json(w: &World, host: &str, user: &str, password: &str) {
    std::fs::write(w.dir.join("creds"), format!("{user}:{password}")).unwrap();
    let auth =
        String::from_utf8(pod1_tests::run(Command::new("base64").arg("-w0").arg(w.dir.join("creds"))).stdout)
            .unwrap();
    std::fs::write(
        w.dir.join("auth.json"),
        json!({"auths": {host: {"auth": auth}}}).to_string(),
    )
    .unwrap();
}

#[test]
fn basic_authentication_with_an_auth_file() {
    let w = World::new("basic");
    let (ca, cert, key) = certificates(&w.dir);
    let file = pod1_tests::registry::htpasswd(&w.dir, "alice", "s3cret");
    let reg = Registry::start(
        &w.dir.join("registry"),
        Options {
            tls: Some((&cert, &key)),
            htpasswd: Some(&file),
            ..Options::default()
        },
    );
    reg.push(&busybox(), "library/busybox:1", &["--dest-creds", "alice:s3cret"]);
    let image = format!("{}/library/busybox:1", reg.addr);
    let tls = [("SSL_CERT_FILE", ca.to_str().unwrap())];
    let err = failed(&w.pod1(&["pull", &image], &tls));
    assert!(
        err.contains("asks for a user name and password") && err.contains("login"),
        "{err}"
    );
    auth_json(&w, &reg.addr, "alice", "wrong");
    let err = failed(&w.pod1(&["pull", &image], &tls));
    assert!(err.contains("refused the credentials"), "{err}");
    // A pod's imagePullSecrets, as kubectl create secret docker-registry makes them.
    let secret = |password: &str| {
        let auth = format!("alice:{password}");
        let auth = String::from_utf8(
            pod1_tests::run(Command::new("sh").args(["-c", "printf %s \"$0\" | base64 -w0", &auth])).stdout,
        )
        .unwrap();
        let config = json!({"auths": {reg.addr.clone(): {"auth": auth}}}).to_string();
        let b64 = String::from_utf8(
            pod1_tests::run(Command::new("sh").args(["-c", "printf %s \"$0\" | base64 -w0", &config])).stdout,
        )
        .unwrap();
        format!("---\napiVersion: v1\nkind: Secret\nmetadata: {{name: regcred}}\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: {b64}\n")
    };
    let manifest = w.dir.join("pull-secret.yaml");
    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: private}}\nspec:\n  restartPolicy: Never\n  imagePullSecrets: [{{name: regcred}}]\n  containers:\n  - {{name: c, image: '{image}', command: [echo, from a private registry]}}\n"
    );
    let (_, kernel) = &kernels()[0];
    let run = |text: &str| {
        std::fs::write(&manifest, text).unwrap();
        w.pod1(
            &[
                "run",
                manifest.to_str().unwrap(),
                "--kernel",
                kernel.to_str().unwrap(),
                "--timeout",
                "180",
            ],
            &tls,
        )
    };
    let err = failed(&run(&format!("{pod}{}", secret("wrong"))));
    assert!(err.contains("refused the credentials"), "{err}");
    let err = failed(&run(&pod));
    assert!(
        err.contains("spec.imagePullSecrets[0]: no Secret \"regcred\""),
        "{err}"
    );
    let out = ok(&run(&format!("{pod}{}", secret("s3cret"))));
    assert!(out.contains("from a private registry"), "{out}");

    auth_json(&w, &reg.addr, "alice", "s3cret");
    let out = ok(&w.pod1(&["pull", &image], &tls));
    assert!(out.contains("Image is up to date"), "{out}");
}

#[test]
fn bearer_tokens_from_the_registrys_token_service() {
    let w = World::new("bearer");
    let (_, cert, key) = certificates(&w.dir);
    let tokens = pod1_tests::registry::TokenService::start(&cert, &key, "pod1-registry", "bob", "pw");
    let reg = Registry::start(
        &w.dir.join("registry"),
        Options {
            token: Some((&tokens.realm, "pod1-registry", &cert)),
            ..Options::default()
        },
    );
    reg.push(&busybox(), "team/app:1", &["--dest-creds", "bob:pw"]);
    let image = format!("{}/team/app:1", reg.addr);
    let err = failed(&w.pod1(&["pull", &image], &[]));
    assert!(
        err.contains("refused access to team/app (401)") && err.contains("podman login"),
        "{err}"
    );
    auth_json(&w, &reg.addr, "bob", "pw");
    let out = ok(&w.pod1(&["pull", &image], &[]));
    assert!(out.contains("Downloaded newer image"), "{out}");
    let log = tokens.log.lock().unwrap().clone();
    assert!(
        log.contains(&"user repository:team/app:pull".to_string()),
        "{log:?}"
    );
}

#[test]
fn registries_conf_search_aliases_and_mirrors() {
    let w = World::new("conf");
    let reg = Registry::start(&w.dir.join("registry"), Options::default());
    let mirror = Registry::start(&w.dir.join("mirror"), Options::default());
    // (A name no drop-in in /etc/containers/registries.conf.d aliases.)
    reg.push(&busybox(), "pod1-smoke:1", &[]);
    reg.push(&busybox(), "tools/busybox:1", &[]);
    mirror.push(&busybox(), "mirrored/busybox:1", &[]);
    // A dead mirror first: tried, then the next one.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    w.config(&format!(
        r#"unqualified-search-registries = ["{reg}"]
[aliases]
"bb" = "{reg}/tools/busybox"

[[registry]]
prefix = "example.invalid/team"
location = "{reg}/nowhere"
[[registry.mirror]]
location = "{dead}/mirrored"
[[registry.mirror]]
location = "{mirror}/mirrored"

[[registry]]
prefix = "blocked.invalid"
blocked = true
"#,
        reg = reg.addr,
        mirror = mirror.addr
    ));
    // A short name through the search list; an alias.
    let out = ok(&w.pod1(&["pull", "pod1-smoke:1"], &[]));
    assert!(out.contains(&format!("for {}/pod1-smoke:1", reg.addr)), "{out}");
    let out = ok(&w.pod1(&["pull", "bb:1"], &[]));
    assert!(out.contains(&format!("{}/tools/busybox:1", reg.addr)), "{out}");
    // A prefix whose mirrors hold it (the registry itself does not).
    let out = ok(&w.pod1(&["pull", "example.invalid/team/busybox:1"], &[]));
    assert!(
        out.contains("Status: Downloaded newer image for example.invalid/team/busybox:1"),
        "{out}"
    );
    // A pod naming the short name finds it in the store with the registry gone.
    let reg_addr = reg.addr.clone();
    drop((reg, mirror));
    let pod = w.pod("short", "pod1-smoke:1", None, "echo found");
    assert!(ok(&w.run(&pod, &[])).contains("found"));
    let err = failed(&w.pod1(&["pull", "blocked.invalid/x:1"], &[]));
    assert!(err.contains("blocked"), "{err}");

    // A short name loaded under Docker's reading is found by a pod naming it,
    // though registries.conf would search elsewhere; tag and rmi find names
    // as pods do.
    ok(&w.pod1(&["load", &busybox(), "pod1-loaded:1"], &[]));
    let pod = w.pod("loaded", "pod1-loaded:1", Some("Never"), "echo loaded");
    assert!(ok(&w.run(&pod, &[])).contains("loaded"));
    ok(&w.pod1(&["tag", "pod1-smoke:1", "pod1-smoke:2"], &[]));
    let out = ok(&w.pod1(&["rmi", "pod1-smoke:1"], &[]));
    assert!(
        out.contains(&format!("Untagged: {reg_addr}/pod1-smoke:1")),
        "{out}"
    );
}

#[test]
fn an_interrupted_download_resumes_and_concurrent_pulls_agree() {
    let w = World::new("resume");
    let reg = Registry::start(&w.dir.join("registry"), Options::default());
    reg.push(&busybox(), "library/busybox:1", &[]);
    let image = format!("{}/library/busybox:1", reg.addr);
    let manifest = reg.manifest("library/busybox:1");
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    let size = manifest["layers"][0]["size"].as_u64().unwrap();
    // What an interrupted pull leaves: the first half of the layer in ingest/.
    ok(&w.pod1(&["images"], &[]));
    let data = std::fs::read(reg.blob_file(layer)).unwrap();
    let half = data.len() / 2;
    let partial = w.dir.join(format!(
        "cache/images/ingest/sha256-{}",
        layer.trim_start_matches("sha256:")
    ));
    std::fs::write(&partial, &data[..half]).unwrap();
    ok(&w.pod1(&["pull", &image], &[]));
    // The registry sent the rest only, as a partial response.
    let log = std::fs::read_to_string(reg.dir.join("registry.log")).unwrap();
    let want = format!("/blobs/{layer} HTTP/1.1\" 206 {}", size as usize - half);
    assert!(log.contains(&want), "no {want:?} in the registry's log:\n{log}");
    assert!(!partial.exists());
    assert!(w
        .store_blobs()
        .contains(&layer.trim_start_matches("sha256:").to_string()));

    // A partial download that is not the blob's beginning (another
    // registry's bytes): the resumed blob fails its digest, and the pull
    // starts it again from zero instead of blaming the registry.
    let _ = std::fs::remove_dir_all(w.dir.join("cache"));
    ok(&w.pod1(&["images"], &[]));
    std::fs::write(&partial, vec![0x5a; half]).unwrap();
    ok(&w.pod1(&["pull", &image], &[]));
    let log = std::fs::read_to_string(reg.dir.join("registry.log")).unwrap();
    let whole = format!("/blobs/{layer} HTTP/1.1\" 200 {size}");
    assert!(log.matches(&want).count() == 2 && log.contains(&whole), "{log}");

    // Two pulls of one image at once, into an empty store: both succeed,
    // the blobs are stored once and whole.
    let _ = std::fs::remove_dir_all(w.dir.join("cache"));
    reg.push(
        &busybox(),
        "library/busybox:2",
        &["--dest-compress-format", "zstd"],
    );
    let two = format!("{}/library/busybox:2", reg.addr);
    let pulls: Vec<_> = (0..2)
        .map(|_| {
            let w = World { dir: w.dir.clone() };
            let two = two.clone();
            std::thread::spawn(move || w.pod1(&["pull", &two], &[]))
        })
        .collect();
    for p in pulls {
        ok(&p.join().unwrap());
    }
    let pod = w.pod("concurrent", &two, Some("Never"), "echo whole");
    assert!(ok(&w.run(&pod, &[])).contains("whole"));
    let ingest = std::fs::read_dir(w.dir.join("cache/images/ingest"))
        .unwrap()
        .count();
    assert_eq!(ingest, 0, "leftovers in ingest/");
}

#[test]
fn plain_http_only_for_loopback_and_insecure_registries() {
    let w = World::new("insecure");
    let ip = pod1_tests::registry::own_address();
    let reg = Registry::start(
        &w.dir.join("registry"),
        Options {
            ip: Some(&ip),
            ..Options::default()
        },
    );
    reg.push(&busybox(), "library/busybox:1", &[]);
    let image = format!("{}/library/busybox:1", reg.addr);
    let err = failed(&w.pod1(&["pull", &image], &[]));
    assert!(
        err.contains("plain HTTP is used only for loopback addresses and registries marked insecure"),
        "{err}"
    );
    w.config(&format!(
        "[[registry]]\nlocation = \"{}\"\ninsecure = true\n",
        reg.addr
    ));
    let out = ok(&w.pod1(&["pull", &image], &[]));
    assert!(out.contains("Downloaded newer image"), "{out}");
}

#[test]
fn a_moved_tag_rebuilds_the_pod_and_a_full_disk_is_said() {
    let w = World::new("moved");
    let reg = Registry::start(&w.dir.join("registry"), Options::default());
    let layout = w.dir.join("layout");
    sh(&format!(
        "cp -r {src} {dst} && umoci config --image {dst}:latest --config.env WHICH=second --tag second",
        src = fixtures().join("busybox").display(),
        dst = layout.display()
    ));
    reg.push(&busybox(), "library/app:latest", &[]);
    let pod = w.pod(
        "moved",
        &format!("{}/library/app", reg.addr),
        None,
        "echo which=${WHICH:-first}",
    );
    assert!(ok(&w.run(&pod, &[])).contains("which=first"));
    reg.push(
        &format!("oci:{}:second", layout.display()),
        "library/app:latest",
        &[],
    );
    let out = ok(&w.run(&pod, &[]));
    assert!(
        out.contains("which=second") && out.contains("pod1: built"),
        "{out}"
    );

    // A store on a full file system: the error says so and what to do.
    let small = w.dir.join("small");
    std::fs::create_dir_all(&small).unwrap();
    sh(&format!(
        "mount -t tmpfs -o size=256k pod1-full {}",
        small.display()
    ));
    let out = w.pod1(
        &["pull", &format!("{}/library/app", reg.addr)],
        &[("POD1_CACHE", small.to_str().unwrap())],
    );
    sh(&format!("umount {}", small.display()));
    let err = failed(&out);
    assert!(
        err.contains("No space left on device") && err.contains("POD1_CACHE"),
        "{err}"
    );
}

#[test]
fn progress_lines_on_a_terminal_only() {
    let w = World::new("progress");
    let reg = Registry::start(&w.dir.join("registry"), Options::default());
    reg.push(&busybox(), "library/busybox:1", &[]);
    let image = format!("{}/library/busybox:1", reg.addr);
    // util-linux's script(1) gives pod1 a terminal.
    let env = format!(
        "POD1_CACHE={} CONTAINERS_REGISTRIES_CONF={} REGISTRY_AUTH_FILE={}",
        w.dir.join("cache").display(),
        w.dir.join("registries.conf").display(),
        w.dir.join("auth.json").display()
    );
    let typescript = w.dir.join("typescript");
    pod1_tests::run(Command::new("script").args([
        "-qec",
        &format!("env {env} {} pull {image}", pod1_tests::bin("pod1").display()),
        typescript.to_str().unwrap(),
    ]));
    let shown = std::fs::read_to_string(&typescript).unwrap();
    assert!(
        shown.contains(": Pull complete") && shown.contains("\x1b[2K"),
        "{shown:?}"
    );
    // Not a terminal: no progress lines, no escape sequences.
    let _ = std::fs::remove_dir_all(w.dir.join("cache"));
    let out = ok(&w.pod1(&["pull", &image], &[]));
    assert!(!out.contains("Pull complete") && !out.contains('\x1b'), "{out:?}");
}

#[test]
fn one_container_from_the_command_line() {
    let w = World::new("quick");
    let reg = Registry::start(&w.dir.join("registry"), Options::default());
    reg.push(&busybox(), "library/busybox:1", &[]);
    let image = format!("{}/library/busybox:1", reg.addr);
    let (_, kernel) = &kernels()[0];
    let run = |extra: &[&str]| {
        let mut args = vec![
            "run",
            "--kernel",
            kernel.to_str().unwrap(),
            "--timeout",
            "180",
            "--image",
            &image,
        ];
        args.extend(extra);
        w.pod1(&args, &[("FROM_HERE", "host value")])
    };
    let out = run(&[
        "-e",
        "X=1",
        "-e",
        "FROM_HERE",
        "-w",
        "/tmp",
        "--user",
        "1000:100",
        "--",
        "sh",
        "-c",
        "echo $X \"$FROM_HERE\" $(pwd) $(id -u):$(id -g) $(hostname); exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("1 host value /tmp 1000:100 busybox"),
        "{}",
        text(&out)
    );

    // --dry-run prints the Pod, which runs the same as a manifest.
    let yaml = ok(&run(&["--name", "smoke", "--dry-run", "--", "echo", "from yaml"]));
    assert!(
        yaml.contains("  name: smoke\n") && yaml.contains("restartPolicy: Never"),
        "{yaml}"
    );
    let manifest = w.dir.join("smoke.yaml");
    std::fs::write(&manifest, &yaml).unwrap();
    assert!(ok(&w.run(&manifest, &[])).contains("from yaml"));
    let err = failed(&run(&["--user", "nobody", "--", "true"]));
    assert!(
        err.contains("--user nobody") && err.contains("not a number"),
        "{err}"
    );
}

#[test]
fn ctrl_c_during_a_pull_ends_the_run_at_once() {
    let w = World::new("interrupt");
    // A "registry" that accepts connections and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let pod = w.pod("stuck", &format!("{addr}/library/busybox:1"), None, "true");
    let (_, kernel) = &kernels()[0];
    let status = w.dir.join("status.json");
    let child = Command::new(pod1_tests::bin("pod1"))
        .args([
            "run",
            pod.to_str().unwrap(),
            "--kernel",
            kernel.to_str().unwrap(),
            "--status",
        ])
        .arg(&status)
        .env("POD1_CACHE", w.dir.join("cache"))
        .env("CONTAINERS_REGISTRIES_CONF", w.dir.join("registries.conf"))
        .env("REGISTRY_AUTH_FILE", w.dir.join("auth.json"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until pod1 is connected (and stuck in the pull).
    let (_conn, _) = silent.accept().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("stopped by SIGINT while it built the pod"), "{err}");
    let written: Value = serde_json::from_slice(&std::fs::read(&status).unwrap()).unwrap();
    assert_eq!(written["phase"], "Failed", "{written}");
}
