//! VM tests of the pod's status (`pod1 run --status FILE`, and the
//! `pod_status` event that ends `--json`): real boots of busybox pods,
//! ended every way a run ends, the status read back field by field as
//! `kubectl get pod -o json` would show it under `.status`.
//!
//! The status does not depend on the guest kernel, so these boot only the
//! first one (the minimal kernel); vm.rs boots both.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use pod1_tests::{bin, kernels, pod1_run, pod1_spawn, pod_dir, run, Ran};
use serde_json::{json, Value};

/// The host's wall clock as Kubernetes prints a time. Strings of this form
/// order as the times they name, so a status's times can be checked
/// against the run's bounds as strings.
fn now() -> String {
    let out = run(Command::new("date").args(["-u", "+%Y-%m-%dT%H:%M:%SZ"]));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A pod of busybox containers, each `(name, script)`, `restartPolicy: Never`.
fn pod(name: &str, grace: u32, containers: &[(&str, &str)]) -> PathBuf {
    let containers: Vec<Value> = containers
        .iter()
        .map(|(n, script)| json!({"name": n, "image": "oci:../busybox:latest", "command": ["sh", "-c", script]}))
        .collect();
    let manifest = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": grace, "containers": containers}
    });
    pod_dir(name, &manifest.to_string()).join("pod.json")
}

/// The status file, parsed.
fn read_status(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// The `status` of the `pod_status` event, which must be `--json`'s last line.
fn status_event(stdout: &str) -> Value {
    let last: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["event"], "pod_status", "{stdout}");
    last["status"].clone()
}

/// The condition of type `kind`: `(status, reason)`.
fn condition(s: &Value, kind: &str) -> (String, Option<String>) {
    let c = s["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} condition in {s}"));
    assert_eq!(c["lastProbeTime"], Value::Null);
    let reason = c.get("reason").map(|r| r.as_str().unwrap().to_string());
    (c["status"].as_str().unwrap().to_string(), reason)
}

/// What every status has, whatever the run: the addresses, the QoS class,
/// the conditions in the kubelet's order, and times within the run.
fn check_common(s: &Value, before: &str, after: &str) {
    // The VM is the pod's node: both have the NIC's address.
    assert_eq!(s["hostIP"], "10.0.2.15");
    assert_eq!(s["hostIPs"], json!([{"ip": "10.0.2.15"}]));
    assert_eq!(s["podIP"], "10.0.2.15");
    assert_eq!(s["podIPs"], json!([{"ip": "10.0.2.15"}]));
    assert_eq!(s["qosClass"], "BestEffort");
    let start = s["startTime"].as_str().unwrap();
    assert!(
        before <= start && start <= after,
        "{before} <= {start} <= {after}"
    );
    let kinds: Vec<&str> = s["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "PodReadyToStartContainers",
            "Initialized",
            "Ready",
            "ContainersReady",
            "PodScheduled"
        ]
    );
    for c in s["conditions"].as_array().unwrap() {
        let t = c["lastTransitionTime"].as_str().unwrap();
        assert!(start <= t && t <= after, "{c}: {start} <= {t} <= {after}");
    }
    assert_eq!(condition(s, "PodScheduled"), ("True".into(), None));
    assert_eq!(condition(s, "PodReadyToStartContainers"), ("False".into(), None));
}

/// A terminated state's `startedAt` and `finishedAt`, checked to lie in
/// order within `start..=after`.
fn run_times<'a>(t: &'a Value, start: &str, after: &str) -> (&'a str, &'a str) {
    let (began, ended) = (
        t["startedAt"].as_str().unwrap(),
        t["finishedAt"].as_str().unwrap(),
    );
    assert!(start <= began && began <= ended && ended <= after, "{t}");
    (began, ended)
}

#[test]
fn a_pod_with_a_succeeding_and_a_failing_container() {
    let manifest = pod(
        "two",
        10,
        &[("ok", "echo fine"), ("bad", "echo oops >&2; exit 3")],
    );
    let file = manifest.with_file_name("status.json");
    let (_, kernel) = &kernels()[0];
    let before = now();
    let r = pod1_run(&manifest, kernel, &["--json", "--status", file.to_str().unwrap()]);
    let after = now();
    assert_eq!(r.code, 3, "{}", r.stderr);
    let s = read_status(&file);
    assert_eq!(
        status_event(&r.stdout),
        s,
        "the file and the event carry the same status"
    );
    check_common(&s, &before, &after);
    assert_eq!(s["phase"], "Failed");
    assert_eq!((s.get("reason"), s.get("message")), (None, None));
    assert_eq!(s.get("initContainerStatuses"), None);
    assert_eq!(condition(&s, "Initialized"), ("True".into(), None));
    for kind in ["Ready", "ContainersReady"] {
        assert_eq!(
            condition(&s, kind),
            ("False".into(), Some("PodFailed".into())),
            "{kind}"
        );
    }
    let start = s["startTime"].as_str().unwrap();
    let statuses = s["containerStatuses"].as_array().unwrap();
    assert_eq!(statuses.len(), 2);
    for (c, name, code, reason) in [
        (&statuses[0], "ok", 0, "Completed"),
        (&statuses[1], "bad", 3, "Error"),
    ] {
        assert_eq!(c["name"], name);
        assert_eq!(c["image"], "oci:../busybox:latest");
        assert_eq!(c["imageID"], busybox_config_digest(), "{name}");
        assert_eq!(c.get("containerID"), None);
        assert_eq!(
            (&c["ready"], &c["started"]),
            (&json!(false), &json!(false)),
            "{name}"
        );
        assert_eq!(c["restartCount"], 0);
        assert_eq!(c["lastState"], json!({}));
        let t = &c["state"]["terminated"];
        assert_eq!(c["state"].as_object().unwrap().len(), 1, "{c}");
        assert_eq!(
            (&t["exitCode"], &t["reason"]),
            (&json!(code), &json!(reason)),
            "{name}"
        );
        assert_eq!((t.get("signal"), t.get("message")), (None, None), "{name}");
        run_times(t, start, &after);
    }
    // The file is what kubectl prints: indented by four spaces, keys in order.
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with("{\n    \"conditions\": ["), "{text}");
    assert!(text.ends_with("\n}\n"));
    // Nothing else was left in the directory (the temporary file was renamed).
    let left: Vec<_> = std::fs::read_dir(manifest.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_timeout_still_writes_the_status() {
    let manifest = pod("timeout", 10, &[("sleeper", "echo up; exec sleep 600")]);
    let file = manifest.with_file_name("status.json");
    let (_, kernel) = &kernels()[0];
    let before = now();
    let r = pod1_run(
        &manifest,
        kernel,
        &["--timeout", "20", "--json", "--status", file.to_str().unwrap()],
    );
    let after = now();
    assert_eq!(r.code, 124, "{}", r.stderr);
    let s = read_status(&file);
    assert_eq!(status_event(&r.stdout), s);
    check_common(&s, &before, &after);
    assert_eq!(s["phase"], "Failed");
    assert_eq!(s["reason"], "DeadlineExceeded");
    let message = "the pod did not finish within --timeout 20 s; the VM was killed";
    assert_eq!(s["message"], message);
    for kind in ["Ready", "ContainersReady"] {
        assert_eq!(
            condition(&s, kind),
            ("False".into(), Some("PodFailed".into())),
            "{kind}"
        );
    }
    let c = &s["containerStatuses"][0];
    assert_eq!(
        (&c["name"], &c["ready"], &c["restartCount"]),
        (&json!("sleeper"), &json!(false), &json!(0))
    );
    // What the status says of the container follows what the init
    // reported before the VM was killed: 20 s is ample for a TCG boot, so
    // it has started.
    assert!(
        started(&r, "sleeper"),
        "the container did not start within 20 s: {}",
        r.stderr
    );
    let t = &c["state"]["terminated"];
    assert_eq!(t["reason"], "ContainerStatusUnknown");
    assert_eq!(t["exitCode"], 137);
    assert_eq!(
        t["message"],
        format!("the container was still running when the pod ended: {message}")
    );
    run_times(t, s["startTime"].as_str().unwrap(), &after);
}

/// Whether `--json`'s output has `container_started` for `name`.
fn started(r: &Ran, name: &str) -> bool {
    r.stdout.lines().any(|l| {
        serde_json::from_str::<Value>(l)
            .is_ok_and(|v| v["event"] == "container_started" && v["container"] == name)
    })
}

/// Starts `pod1 run --json --status FILE` on `manifest` and returns once
/// the init reported `container` started, with the lines read so far.
fn spawn_until_started(
    manifest: &Path,
    file: &Path,
    container: &str,
) -> (
    std::process::Child,
    Vec<String>,
    std::io::Lines<BufReader<std::process::ChildStdout>>,
) {
    let (_, kernel) = &kernels()[0];
    let args = ["--timeout", "180", "--json", "--status", file.to_str().unwrap()];
    let mut child = pod1_spawn(manifest, kernel, &args);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        seen.push(line);
        if v["event"] == "container_started" && v["container"] == container {
            return (child, seen, lines);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the pod ended before {container} started: {seen:?}");
}

#[test]
fn a_second_ctrl_c_still_writes_the_status() {
    // The container ignores SIGTERM, so it still runs when the second
    // signal kills the VM.
    let manifest = pod(
        "interrupted",
        120,
        &[("stubborn", "trap '' TERM; while :; do sleep 1; done")],
    );
    let file = manifest.with_file_name("status.json");
    let (mut child, mut seen, lines) = spawn_until_started(&manifest, &file, "stubborn");
    let pid = Pid::from_raw(child.id() as i32);
    // Signals do not queue: the second goes once pod1 has taken the first.
    kill(pid, Signal::SIGINT).unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut stderr = stderr.lines().map(|l| l.unwrap());
    assert!(stderr.any(|l| l.starts_with("pod1: stopping the pod")));
    kill(pid, Signal::SIGINT).unwrap();
    seen.extend(lines.map(|l| l.unwrap()));
    let code = child.wait().unwrap().code();
    assert_eq!(code, Some(130));
    let s = read_status(&file);
    assert_eq!(status_event(&seen.join("\n")), s);
    assert_eq!(s["phase"], "Failed");
    assert_eq!(s.get("reason"), None);
    assert_eq!(
        s["message"],
        "pod1 run was stopped by a signal; the VM was killed"
    );
    let t = &s["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(
        (&t["reason"], &t["exitCode"]),
        (&json!("ContainerStatusUnknown"), &json!(137))
    );
}

#[test]
fn a_vm_that_dies_mid_run_still_writes_the_status() {
    let manifest = pod("vm-dies", 10, &[("c", "while :; do sleep 1; done")]);
    let file = manifest.with_file_name("status.json");
    let (mut child, mut seen, lines) = spawn_until_started(&manifest, &file, "c");
    // pod1 starts QEMU from its main thread: its only child.
    let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", child.id())).unwrap();
    let qemu: Vec<i32> = children.split_whitespace().map(|p| p.parse().unwrap()).collect();
    assert_eq!(qemu.len(), 1, "{children:?}");
    kill(Pid::from_raw(qemu[0]), Signal::SIGKILL).unwrap();
    seen.extend(lines.map(|l| l.unwrap()));
    assert_eq!(child.wait().unwrap().code(), Some(125));
    let s = read_status(&file);
    assert_eq!(status_event(&seen.join("\n")), s);
    assert_eq!(s["phase"], "Failed");
    let message = s["message"].as_str().unwrap();
    assert!(
        message.starts_with("the VM stopped (signal: 9 (SIGKILL)) before the pod finished"),
        "{message}"
    );
    let t = &s["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(
        (&t["reason"], &t["exitCode"]),
        (&json!("ContainerStatusUnknown"), &json!(137))
    );
}

#[test]
fn a_refused_container_waits_with_the_kubelets_reason() {
    // runAsNonRoot with busybox's root user: the kubelet's
    // CreateContainerConfigError; the other container runs.
    let manifest = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "refused"},
        "spec": {"restartPolicy": "Never", "containers": [
            {"name": "root", "image": "oci:../busybox:latest", "command": ["true"],
             "securityContext": {"runAsNonRoot": true}},
            {"name": "fine", "image": "oci:../busybox:latest", "command": ["true"]},
        ]}
    });
    let manifest = pod_dir("refused", &manifest.to_string()).join("pod.json");
    let file = manifest.with_file_name("status.json");
    let (_, kernel) = &kernels()[0];
    let r = pod1_run(&manifest, kernel, &["--status", file.to_str().unwrap()]);
    assert_eq!(r.code, 126, "{}", r.stderr);
    let line = r.err_lines_of("root");
    assert_eq!(line.len(), 1, "{}", r.stderr);
    assert!(
        line[0].starts_with(
            "not started: CreateContainerConfigError: container has runAsNonRoot and image will run as root"
        ) && line[0].ends_with("; counts as exit code 126"),
        "{}",
        line[0]
    );
    let s = read_status(&file);
    assert_eq!(s["phase"], "Failed");
    let root = &s["containerStatuses"][0];
    assert_eq!(root["name"], "root");
    let waiting = &root["state"]["waiting"];
    assert_eq!(waiting["reason"], "CreateContainerConfigError");
    let message = waiting["message"].as_str().unwrap();
    assert_eq!(
        format!("not started: CreateContainerConfigError: {message}; counts as exit code 126"),
        line[0]
    );
    assert_eq!(
        (&root["ready"], &root["restartCount"]),
        (&json!(false), &json!(0))
    );
    let fine = &s["containerStatuses"][1]["state"]["terminated"];
    assert_eq!(
        (&fine["exitCode"], &fine["reason"]),
        (&json!(0), &json!("Completed"))
    );
}

#[test]
fn a_status_path_pod1_cannot_write_fails_before_the_vm_boots() {
    let manifest = pod("bad-path", 10, &[("c", "true")]);
    let r = Command::new(bin("pod1"))
        .arg("run")
        .arg(&manifest)
        .args(["--status", "/nonexistent-dir/status.json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(125), "{stderr}");
    // One line, before anything was built or booted.
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(
            "pod1: error: --status /nonexistent-dir/status.json: cannot create a file in /nonexistent-dir; \
             name a file in an existing, writable directory: No such file or directory"
        ),
        "{stderr}"
    );
}

/// The test image's ID as containerd gives it: its config's digest, read
/// from the OCI layout (index, then manifest).
fn busybox_config_digest() -> String {
    let layout = pod1_tests::fixtures().join("busybox");
    let blob = |digest: &str| {
        let hex = digest.strip_prefix("sha256:").unwrap();
        let data = std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap();
        serde_json::from_slice::<serde_json::Value>(&data).unwrap()
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let manifest = blob(index["manifests"][0]["digest"].as_str().unwrap());
    manifest["config"]["digest"].as_str().unwrap().to_string()
}

#[test]
fn a_command_that_does_not_exist_cannot_run() {
    // The kubelet's ContainerCannotRun with the runtime's message, for the
    // command that was never found; a command that exits 127 itself is an
    // Error like any other.
    let manifest = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "cannot-run"},
        "spec": {"restartPolicy": "Never", "containers": [
            {"name": "nosuch", "image": "oci:../busybox:latest", "command": ["nosuch"]},
            {"name": "own", "image": "oci:../busybox:latest", "command": ["sh", "-c", "exit 127"]},
        ]}
    });
    let manifest = pod_dir("cannot-run", &manifest.to_string()).join("pod.json");
    let file = manifest.with_file_name("status.json");
    let (_, kernel) = &kernels()[0];
    let before = now();
    let r = pod1_run(&manifest, kernel, &["--status", file.to_str().unwrap()]);
    let after = now();
    assert_eq!(r.code, 127, "{}", r.stderr);
    let why = r#"exec: "nosuch": executable file not found in $PATH"#;
    assert!(
        r.err_lines_of("nosuch")
            .contains(&format!("exited with code 127: {why}").as_str()),
        "{}",
        r.stderr
    );
    assert!(
        r.err_lines_of("own").contains(&"exited with code 127"),
        "{}",
        r.stderr
    );
    let s = read_status(&file);
    check_common(&s, &before, &after);
    assert_eq!(s["phase"], "Failed");
    let nosuch = &s["containerStatuses"][0];
    assert_eq!(nosuch["name"], "nosuch");
    let t = &nosuch["state"]["terminated"];
    assert_eq!(t["reason"], "ContainerCannotRun", "{t}");
    assert_eq!((&t["exitCode"], &t["message"]), (&json!(127), &json!(why)));
    // Its command never started.
    assert_eq!(t["startedAt"], Value::Null);
    let finished = t["finishedAt"].as_str().unwrap();
    assert!(s["startTime"].as_str().unwrap() <= finished && finished <= after.as_str());
    let own = &s["containerStatuses"][1]["state"]["terminated"];
    assert_eq!(
        (&own["reason"], &own["exitCode"], own.get("message")),
        (&json!("Error"), &json!(127), None),
        "{own}"
    );
    run_times(own, s["startTime"].as_str().unwrap(), &after);
}
