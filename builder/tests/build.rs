//! `pod1 plan`, `pod1 build` and `pod1 inspect` against real images.
//!
//! Fixtures come from `pod1_tests::fixtures` (umoci, skopeo, Debian's
//! busybox-static); python's tarfile writes hostile layers, which
//! `umoci raw add-layer` adds to a copy of the layout.
//! The init packed here is Debian's static busybox: any static executable
//! will do for the builder, and it keeps these tests independent of pod1-init.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use pod1_tests::{fixtures, pod_dir, run, sh};

const POD1: &str = env!("CARGO_BIN_EXE_pod1");
const STATIC_INIT: &str = "/bin/busybox";

fn sha256(data: &[u8]) -> String {
    use sha2::Digest;
    format!("{:x} ({} bytes)", sha2::Sha256::digest(data), data.len())
}

fn pod1(args: &[&str]) -> Output {
    Command::new(POD1).args(args).output().unwrap()
}

fn build(dir: &Path, out: &str) -> Vec<u8> {
    let out = dir.join(out);
    run(Command::new(POD1)
        .arg("build")
        .arg(dir.join("pod.json"))
        .arg("-o")
        .arg(&out)
        .args(["--init", STATIC_INIT]));
    std::fs::read(out).unwrap()
}

const FOUR_TRANSPORTS: &str = r#"{
  "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "four"},
  "spec": {"restartPolicy": "Never",
    "initContainers": [{"name": "setup", "image": "dir:../rootfs", "command": ["true"]}],
    "containers": [
      {"name": "a", "image": "oci:../busybox:latest"},
      {"name": "b", "image": "oci-archive:../busybox-oci.tar", "args": ["-c", "echo $(X)"], "env": [{"name": "X", "value": "x"}]},
      {"name": "c", "image": "docker-archive:../busybox-docker.tar", "command": ["echo"], "workingDir": "/tmp",
       "securityContext": {"runAsUser": 65534}},
      {"name": "d", "image": "oci:../busybox", "securityContext": {"runAsUser": 65534, "runAsGroup": 7}}
    ]}}"#;

#[test]
fn plan_json_for_every_transport() {
    let dir = pod_dir("plan", FOUR_TRANSPORTS);
    let out = run(Command::new(POD1)
        .args(["plan", "--json"])
        .arg(dir.join("pod.json")));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.trim().lines().count(), 1, "exactly one JSON object: {text}");
    let plan: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(plan["pod"], "four");
    assert_eq!(plan["hostname"], "four");
    assert_eq!(plan["restartPolicy"], "Never");
    let c = |list: &str, i: usize| plan[list][i].clone();
    assert_eq!(c("initContainers", 0)["argv"], serde_json::json!(["true"]));
    assert_eq!(
        c("initContainers", 0)["env"][0],
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    );
    // The image's Cmd is ["sh"], no Entrypoint.
    assert_eq!(c("containers", 0)["argv"], serde_json::json!(["sh"]));
    assert_eq!(c("containers", 0)["env"][0], "PATH=/usr/local/bin:/usr/bin:/bin");
    assert_eq!(c("containers", 1)["argv"], serde_json::json!(["-c", "echo x"]));
    assert_eq!(c("containers", 2)["argv"], serde_json::json!(["echo"]));
    assert_eq!(c("containers", 2)["workingDir"], "/tmp");
    assert_eq!(
        c("containers", 2)["user"],
        serde_json::json!({"uid": 65534, "gid": 65534, "additionalGids": [65534]})
    );
    assert_eq!(
        c("containers", 3)["user"],
        serde_json::json!({"uid": 65534, "gid": 7, "additionalGids": [7]})
    );
    for key in ["name", "image", "argv", "env", "workingDir", "user"] {
        assert!(c("containers", 0).get(key).is_some(), "container has {key}");
    }
}

#[test]
fn build_is_reproducible_and_stores_each_image_once() {
    let dir = pod_dir("repro", FOUR_TRANSPORTS);
    // Compared by digest: a byte dump of a mismatch helps nobody.
    let build = |dir: &Path, out: &str| sha256(&build(dir, out));
    let first = build(&dir, "a.img");
    assert_eq!(first, build(&dir, "b.img"), "two builds differ");
    // Every input touched: same bytes. Only this build's inputs: other tests
    // of this binary add and remove files beside them meanwhile.
    sh(&format!(
        "cd {} && find busybox busybox-oci.tar busybox-docker.tar rootfs repro -exec touch -h -d '2031-05-05 05:05' {{}} +",
        fixtures().display()
    ));
    assert_eq!(
        first,
        build(&dir, "c.img"),
        "touching the inputs changed the build"
    );
    // Images copied elsewhere: new inodes, times and order on disk (modes and
    // owners kept, as a dir: image's metadata is part of the image).
    let moved = fixtures().join("moved");
    sh(&format!(
        "mkdir -p {m}/repro && cd {f} && cp -r --preserve=mode,ownership busybox busybox-oci.tar busybox-docker.tar rootfs {m}/ && cp repro/pod.json {m}/repro/",
        m = moved.display(),
        f = fixtures().display()
    ));
    assert_eq!(
        first,
        build(&moved.join("repro"), "d.img"),
        "copying the images changed the build"
    );
    // oci, oci-archive and docker-archive hold one image: stored once; dir: differs (umoci's
    // unpack adds nothing, but the rootfs directory's own mode may differ), at most twice.
    let listing =
        String::from_utf8(run(Command::new(POD1).arg("inspect").arg(dir.join("a.img"))).stdout).unwrap();
    let images: std::collections::BTreeSet<&str> = listing
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3))
        .filter_map(|p| p.strip_prefix("pod1/images/"))
        .map(|p| p.split('/').next().unwrap())
        .collect();
    assert!(images.len() <= 2, "{images:?}");
    assert!(listing.contains("etc/pod1/plan.json:"), "inspect prints the plan");
    assert!(listing.contains(r#""pod": "four""#));
}

/// (kind, mode, uid, gid, contents or link target) of every path under `root`.
fn snapshot(root: &Path) -> BTreeMap<String, (char, u32, u32, u32, Vec<u8>)> {
    let mut all = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let (kind, data) = if m.is_dir() {
                stack.push(p.clone());
                ('d', vec![])
            } else if m.file_type().is_symlink() {
                (
                    'l',
                    std::fs::read_link(&p)
                        .unwrap()
                        .into_os_string()
                        .into_encoded_bytes(),
                )
            } else {
                ('f', std::fs::read(&p).unwrap())
            };
            all.insert(rel, (kind, m.mode() & 0o7777, m.uid(), m.gid(), data));
        }
    }
    all
}

#[test]
fn gnu_cpio_lists_and_extracts_what_went_in() {
    let dir = pod_dir(
        "cpio",
        r#"{"metadata":{"name":"cpio"},"spec":{"containers":[{"name":"a","image":"oci:../busybox:latest"}]}}"#,
    );
    build(&dir, "i.img");
    let list = run(Command::new("bash")
        .arg("-c")
        .arg(format!("zcat {}/i.img | cpio -t --quiet", dir.display())));
    let list = String::from_utf8(list.stdout).unwrap();
    for want in ["init", "sbin/init", "etc/pod1/plan.json", "dev/console"] {
        assert!(list.lines().any(|l| l == want), "cpio -t lists {want}");
    }
    let pos = |p: &str| list.lines().position(|l| l == p).unwrap();
    assert!(
        pos("etc") < pos("etc/pod1") && pos("etc/pod1") < pos("etc/pod1/plan.json"),
        "directories first"
    );
    let out = dir.join("x");
    std::fs::create_dir_all(&out).unwrap();
    sh(&format!(
        "cd {} && zcat ../i.img | cpio -i --quiet --make-directories --no-absolute-filenames",
        out.display()
    ));
    assert_eq!(
        std::fs::read(out.join("sbin/init")).unwrap(),
        std::fs::read(STATIC_INIT).unwrap()
    );
    assert_eq!(
        std::fs::read_link(out.join("init")).unwrap(),
        Path::new("sbin/init")
    );
    let images: Vec<_> = std::fs::read_dir(out.join("pod1/images"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(images.len(), 1);
    let mut want = snapshot(&fixtures().join("rootfs"));
    let got = snapshot(&images[0]);
    // umoci unpack's rootfs directory itself is not part of the image.
    want.retain(|k, _| !k.is_empty());
    assert_eq!(got.len(), want.len(), "same number of paths");
    for (path, w) in &want {
        assert_eq!(got.get(path), Some(w), "{path} differs after cpio -i");
    }
}

/// Runs a failing command: exit 125, one line on stderr containing every `needle`,
/// and the output file (which held "old") untouched.
fn fails(dir: &Path, extra: &[&str], needles: &[&str]) {
    let out = dir.join("out.img");
    std::fs::write(&out, b"old").unwrap();
    let manifest = dir.join("pod.json");
    let mut args = vec!["build", manifest.to_str().unwrap(), "-o", out.to_str().unwrap()];
    if !extra.contains(&"--init") {
        args.extend(["--init", STATIC_INIT]);
    }
    args.extend(extra);
    let o = pod1(&args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(125), "exit code; stderr: {err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    for n in needles {
        assert!(err.contains(n), "{err:?} should mention {n:?}");
    }
    assert_eq!(std::fs::read(&out).unwrap(), b"old", "output untouched");
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".pod1-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

fn pod_with_image(name: &str, image: &str) -> PathBuf {
    pod_dir(
        name,
        &format!(
            r#"{{"metadata":{{"name":"p"}},"spec":{{"containers":[{{"name":"a","image":"{image}","command":["true"]}}]}}}}"#
        ),
    )
}

/// A copy of the busybox layout with one more layer made from a tar that
/// python's tarfile writes with `script` (which has `t`, tarfile and io).
fn layout_with_layer(name: &str, script: &str) -> String {
    let f = fixtures();
    sh(&format!(
        "cd {f} && rm -rf {name} && cp -r busybox {name}
         python3 -c 'import tarfile, io
t = tarfile.open(\"{name}.tar\", \"w\")
def add(path, data=b\"x\", kind=tarfile.REGTYPE, link=\"\"):
    i = tarfile.TarInfo(path); i.type = kind; i.linkname = link; i.size = len(data) if kind == tarfile.REGTYPE else 0
    t.addfile(i, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
{script}
t.close()'
         umoci raw add-layer --image {name}:latest {name}.tar",
        f = f.display()
    ));
    format!("oci:../{name}:latest")
}

#[test]
fn bad_input_fails_cleanly() {
    let d = pod_dir("bad-json", "{\"metadata\": ");
    fails(&d, &[], &["pod.json", "EOF"]);
    let d = pod_dir(
        "bad-field",
        r#"{"metadata":{"name":"p"},"spec":{"containers":[{"name":"a","image":"dir:x","command":"sh"}]}}"#,
    );
    fails(&d, &[], &["spec.containers[0].command", "expected an array"]);
    let d = pod_with_image("missing-image", "oci:../no-such-image");
    fails(
        &d,
        &[],
        &["spec.containers[0].image", "no-such-image", "does not exist"],
    );
    let d = pod_dir(
        "no-command",
        r#"{"metadata":{"name":"p"},"spec":{"containers":[{"name":"web","image":"dir:../rootfs"}]}}"#,
    );
    fails(&d, &[], &["no command specified", "\"web\""]);
    let d = pod_with_image("dynamic-init", "oci:../busybox");
    fails(&d, &["--init", "/bin/ls"], &["/bin/ls", "dynamically linked"]);

    // A corrupt layer blob: one byte flipped.
    let f = fixtures();
    sh(&format!(
        "cd {} && rm -rf corrupt && cp -r busybox corrupt && b=$(ls -S corrupt/blobs/sha256 | head -1) &&
         printf '\\xff' | dd of=corrupt/blobs/sha256/$b bs=1 seek=5000 conv=notrunc status=none",
        f.display()
    ));
    let d = pod_with_image("corrupt-blob", "oci:../corrupt");
    fails(&d, &[], &["oci:../corrupt", "is corrupt"]);
    // A descriptor whose digest names an unsupported algorithm.
    sh(&format!(
        "cd {} && rm -rf baddigest && cp -r busybox baddigest && sed -i 's/sha256:/md5:/' baddigest/index.json",
        f.display()
    ));
    let d = pod_with_image("bad-digest", "oci:../baddigest");
    fails(&d, &[], &["oci:../baddigest"]);

    // Hostile layers, each refused naming the image, the layer and the entry.
    for (name, script, entry) in [
        ("evil-dotdot", "add(\"../../etc/evil\")", "../../etc/evil"),
        ("evil-abs", "add(\"/etc/evil\")", "/etc/evil"),
        (
            "evil-symlink",
            "add(\"escape\", kind=tarfile.SYMTYPE, link=\"/etc\")\nadd(\"escape/evil\")",
            "escape/evil",
        ),
        (
            "evil-hardlink",
            "add(\"h\", kind=tarfile.LNKTYPE, link=\"../../etc/shadow\")",
            "../../etc/shadow",
        ),
    ] {
        let image = layout_with_layer(name, script);
        let d = pod_with_image(&format!("{name}-pod"), &image);
        fails(&d, &[], &[&image, "layer sha256:", entry]);
    }
}

#[test]
fn whiteouts_from_a_real_layer() {
    let image = layout_with_layer(
        "whiteout",
        "add(\"bin/.wh.vi\", b\"\")\nadd(\"etc/.wh..wh..opq\", b\"\")\nadd(\"etc/motd\", b\"hi\")",
    );
    let d = pod_with_image("whiteout-pod", &image);
    build(&d, "w.img");
    let listing =
        String::from_utf8(run(Command::new(POD1).arg("inspect").arg(d.join("w.img"))).stdout).unwrap();
    let has = |suffix: &str| {
        listing
            .lines()
            .any(|l| l.ends_with(suffix) || l.contains(&format!("{suffix} ->")))
    };
    assert!(!has("/bin/vi"), "vi whited out");
    assert!(has("/bin/ls"), "ls kept");
    assert!(!has("/etc/passwd"), "opaque etc hides the lower passwd");
    assert!(has("/etc/motd"), "opaque etc keeps this layer's motd");
}

#[test]
fn a_tree_on_the_host_is_for_its_owner_only() {
    // `--tree` writes the images' setuid files and device nodes onto the
    // host: the directory holding them is 0700, and pod1 says so.
    let dir = fixtures().join("tree-mode");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("pod.json"), FOUR_TRANSPORTS).unwrap();
    let tree = dir.join("tree");
    let out = pod1(&[
        "build",
        dir.join("pod.json").to_str().unwrap(),
        "--init",
        STATIC_INIT,
        "--tree",
        tree.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("mode 0700"));
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&tree).unwrap().permissions());
    assert_eq!(mode & 0o7777, 0o700);
    assert!(tree.join("etc/pod1/plan.json").is_file());
}

#[test]
fn images_over_the_size_limit_are_refused_by_name() {
    fixtures();
    let plan = |image: &str, limit: &str| {
        let d = pod_with_image(&format!("limit-{}", image.replace([':', '/', '.'], "-")), image);
        let o = Command::new(POD1)
            .arg("plan")
            .arg(d.join("pod.json"))
            .env("POD1_MAX_IMAGE_SIZE", limit)
            .output()
            .unwrap();
        (o.status.code(), String::from_utf8_lossy(&o.stderr).into_owned())
    };
    // busybox is about 1 MiB in each form: a 100 KiB limit stops each
    // transport at the first thing too large (a blob, the archive, a file
    // or the unpacked layer), naming it and the setting.
    for image in [
        "oci:../busybox:latest",
        "oci-archive:../busybox-oci.tar:latest",
        "docker-archive:../busybox-docker.tar",
        "dir:../rootfs",
    ] {
        let (code, err) = plan(image, "100Ki");
        assert_eq!(code, Some(125), "{image}: {err}");
        assert!(
            err.contains("102400 bytes") && err.contains("POD1_MAX_IMAGE_SIZE"),
            "{image}: {err}"
        );
        let (code, err) = plan(image, "64Mi");
        assert_eq!(code, Some(0), "{image}: {err}");
    }
    let (code, err) = plan("oci:../busybox:latest", "lots");
    assert_eq!(code, Some(125), "{err}");
    assert!(err.contains("POD1_MAX_IMAGE_SIZE=\"lots\""), "{err}");
}

#[test]
fn yaml_manifests_plan_as_their_json_twin() {
    fixtures();
    let json = pod_with_image("twin-json", "oci:../busybox:latest");
    let yaml = fixtures().join("twin-yaml");
    std::fs::create_dir_all(&yaml).unwrap();
    // The same pod as kubectl users write it: comments, a block scalar in
    // an annotation, an anchor, the document marker.
    std::fs::write(
        yaml.join("pod.yaml"),
        "# the same pod\n---\nmetadata:\n  name: p\n  annotations:\n    note: |\n      multi\n      line\nspec:\n  containers:\n  - name: a\n    image: &img oci:../busybox:latest\n    command: [\"true\"]\n",
    )
    .unwrap();
    let plan = |p: &Path| {
        let o = pod1(&["plan", "--json", p.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    assert_eq!(plan(&json.join("pod.json")), plan(&yaml.join("pod.yaml")));
    // What one file may hold, with the document named.
    let fails = |name: &str, text: &str, needles: &[&str]| {
        std::fs::write(yaml.join(name), text).unwrap();
        let o = pod1(&["plan", yaml.join(name).to_str().unwrap()]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(125), "{err}");
        for n in needles {
            assert!(err.contains(n), "{err:?} should mention {n:?}");
        }
    };
    let pod =
        "kind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a, image: 'oci:../busybox:latest'}]}\n";
    fails(
        "two.yaml",
        &format!("{pod}---\n{pod}"),
        &["document 2 (Pod p)", "a second workload"],
    );
    fails(
        "cm.yaml",
        &format!("{pod}---\nkind: Service\nmetadata: {{name: d}}\n"),
        &["document 2 (Service d)", "not supported"],
    );
    fails(
        "typo.yaml",
        "kind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a, image: x, comand: [sh]}]}\n",
        &["spec.containers[0].comand", "unknown field"],
    );
    fails(
        "broken.yaml",
        "kind: Pod\nmetadata: [\n",
        &["not valid YAML", "line"],
    );
    fails("empty.yaml", "# nothing\n", &["holds no workload"]);
}

#[test]
fn fields_without_meaning_in_a_vm_are_warnings_or_with_strict_errors() {
    fixtures();
    let dir = fixtures().join("ignored");
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = dir.join("pod.yaml");
    // As `kubectl get pod -o yaml` prints a pod, trimmed.
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  resourceVersion: \"4711\"\nspec:\n  nodeSelector: {disk: ssd}\n  serviceAccountName: default\n  containers:\n  - name: web\n    image: oci:../busybox:latest\n    ports: [{containerPort: 80}]\nstatus: {phase: Running}\n",
    )
    .unwrap();
    let o = pod1(&["plan", manifest.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert_eq!(
        err.lines().collect::<Vec<_>>(),
        [
            "pod1: warning: status is ignored: pod1 reports the pod's status itself",
            "pod1: warning: metadata.resourceVersion is ignored: the API server sets it; a pod1 pod has none",
            "pod1: warning: spec.nodeSelector is ignored: a pod1 pod runs on one VM, with nothing to schedule",
            "pod1: warning: spec.serviceAccountName is ignored: a pod1 pod has no API server to talk to (the downward API still reports the name)",
        ]
    );
    let o = pod1(&["plan", "--strict", manifest.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(125), "{err}");
    assert!(
        err.contains("status: pod1 would ignore it") && err.contains("--strict"),
        "{err}"
    );
}

#[test]
fn secrets_from_extra_files_are_used_and_not_printed() {
    fixtures();
    let dir = fixtures().join("secrets");
    std::fs::create_dir_all(&dir).unwrap();
    let pod = dir.join("pod.yaml");
    std::fs::write(
        &pod,
        "kind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: a\n    image: oci:../busybox:latest\n    envFrom: [{secretRef: {name: s}}]\n    env: [{name: TOKEN, valueFrom: {secretKeyRef: {name: s, key: token}}}, {name: PLAIN, value: visible}]\n",
    )
    .unwrap();
    let secret = dir.join("secret.yaml");
    std::fs::write(
        &secret,
        "kind: Secret\nmetadata: {name: s}\nstringData: {token: t0p-s3cret, OTHER: also-s3cret}\n",
    )
    .unwrap();
    let (pod, secret) = (pod.to_str().unwrap(), secret.to_str().unwrap());
    let o = pod1(&["plan", pod, "-f", secret]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("env      TOKEN=<from a Secret>"), "{out}");
    assert!(out.contains("env      OTHER=<from a Secret>"), "{out}");
    assert!(out.contains("env      PLAIN=visible"), "{out}");
    assert!(!out.contains("s3cret"), "{out}");
    // The plan itself holds the values: the init needs them.
    let o = pod1(&["plan", "--json", pod, "--file", secret]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("TOKEN=t0p-s3cret"));
    // An initramfs holding Secrets is its owner's alone.
    let img = dir.join("pod.img");
    let o = pod1(&[
        "build",
        pod,
        "-f",
        secret,
        "-o",
        img.to_str().unwrap(),
        "--init",
        STATIC_INIT,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let mode = |p: &Path| {
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions()) & 0o777
    };
    assert_eq!(mode(&img), 0o600);
    // Without the file: an error naming the reference and what to do.
    let o = pod1(&["plan", pod]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(125), "{err}");
    assert!(
        err.contains("spec.containers[0].envFrom[0].secretRef: Secret \"s\" not found") && err.contains("-f"),
        "{err}"
    );
}

#[test]
fn plan_shows_probes_and_hooks_as_resolved() {
    // The pod's IP for an empty host, a named port's number, the defaults;
    // without --network the pod's IP is loopback.
    fixtures();
    let dir = pod_dir(
        "plan-probes",
        r#"{"metadata":{"name":"p"},"spec":{"containers":[{"name":"web","image":"oci:../busybox",
            "ports":[{"name":"http","containerPort":80}],
            "livenessProbe":{"httpGet":{"path":"healthz","port":"http","httpHeaders":[{"name":"x-a","value":"1"}]}},
            "readinessProbe":{"tcpSocket":{"port":80},"periodSeconds":2,"successThreshold":2},
            "startupProbe":{"exec":{"command":["cat","/ready"]},"failureThreshold":30,"terminationGracePeriodSeconds":5},
            "lifecycle":{"postStart":{"sleep":{"seconds":1}},"preStop":{"exec":{"command":["sh","-c","kill 1"]}}}}]}}"#,
    );
    let manifest = dir.join("pod.json");
    let plan = |args: &[&str]| {
        let o = pod1(&[&["plan", manifest.to_str().unwrap()], args].concat());
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let out = plan(&[]);
    for want in [
        "  startup   exec [\"cat\",\"/ready\"] after 0s, every 10s (timeout 1s, 1 to succeed, 30 to fail, grace 5s)\n",
        "  liveness  httpGet http://10.0.2.15:80/healthz [X-A: 1] after 0s, every 10s (timeout 1s, 1 to succeed, 3 to fail)\n",
        "  readiness tcpSocket 10.0.2.15:80 after 0s, every 2s (timeout 1s, 2 to succeed, 3 to fail)\n",
        "  postStart sleep 1s\n",
        "  preStop   exec [\"sh\",\"-c\",\"kill 1\"]\n",
    ] {
        assert!(out.contains(want), "no {want:?} in {out}");
    }
    assert!(plan(&["--network", "none"]).contains("  readiness tcpSocket 127.0.0.1:80 "));
}

#[test]
fn plan_shows_the_network_and_the_published_ports() {
    fixtures();
    let dir = pod_dir(
        "plan-net",
        r#"{"metadata":{"name":"p"},"spec":{"containers":[{"name":"web","image":"oci:../busybox",
            "ports":[{"name":"http","containerPort":80,"hostPort":8080},{"containerPort":53,"hostPort":5353,"protocol":"UDP","hostIP":"0.0.0.0"},{"containerPort":9090}]}]}}"#,
    );
    let manifest = dir.join("pod.json");
    let text = |args: &[&str]| {
        let o = Command::new(POD1)
            .arg("plan")
            .arg(&manifest)
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let out = text(&[]);
    for want in [
        "network  10.0.2.15/24 via 10.0.2.2\n",
        "publish  127.0.0.1:8080 -> 80/tcp (container web, port http)\n",
        "publish  0.0.0.0:5353 -> 53/udp (container web)\n",
    ] {
        assert!(out.contains(want), "no {want:?} in {out}");
    }
    assert_eq!(out.matches("publish").count(), 2, "{out}");
    assert!(text(&["--network", "none"]).contains("network  none (loopback only)\n"));
    let plan: serde_json::Value = serde_json::from_str(&text(&["--json"])).unwrap();
    assert_eq!(
        plan["network"],
        serde_json::json!({"address": "10.0.2.15", "prefixLen": 24, "gateway": "10.0.2.2", "dns": "10.0.2.3"})
    );
    // A port the API server would refuse is refused, naming it.
    let bad = pod_dir(
        "plan-bad-port",
        r#"{"metadata":{"name":"p"},"spec":{"containers":[{"name":"web","image":"oci:../busybox",
            "ports":[{"containerPort":80,"protocol":"SCTP"}]}]}}"#,
    );
    let o = pod1(&["plan", bad.join("pod.json").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(125));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("spec.containers[0].ports[0].protocol") && err.contains("TCP and UDP only"),
        "{err}"
    );
}
