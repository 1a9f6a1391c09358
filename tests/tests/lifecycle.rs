//! VM tests of the pod's lifecycle as the kubelet runs it, on both guest
//! kernels: `activeDeadlineSeconds`, and OOM kills reported as such.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

use std::path::Path;

use pod1_tests::{kernels, pod1_run, pod_dir, Ran};
use serde_json::{json, Value};

/// `pod1 run` of the pod in `dir` on `kernel` (named `name`), and the
/// status it wrote.
fn run_with_status(dir: &Path, name: &str, kernel: &Path) -> (Ran, Value) {
    let file = dir.join(format!("status-{name}.json"));
    let r = pod1_run(
        &dir.join("pod.json"),
        kernel,
        &["--status", file.to_str().unwrap()],
    );
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{name}: {e}: {}", r.stderr));
    (r, serde_json::from_str(&text).unwrap())
}

#[test]
fn a_deadline_stops_the_pod_gracefully() {
    // The container would run for ever; it hears SIGTERM when the deadline
    // runs out and ends well, yet the pod failed: 124, DeadlineExceeded.
    let manifest = json!({
        "metadata": {"name": "deadline"},
        "spec": {"restartPolicy": "Never", "activeDeadlineSeconds": 3, "terminationGracePeriodSeconds": 20,
                 "containers": [{"name": "c", "image": "oci:../busybox:latest", "command": ["sh", "-c",
                    "trap 'echo got TERM; exit 0' TERM; echo up; while true; do sleep 0.2; done"]}]}
    });
    let dir = pod_dir("deadline", &manifest.to_string());
    for (name, kernel) in kernels() {
        let (r, s) = run_with_status(&dir, name, &kernel);
        assert_eq!(r.code, 124, "{name}: {}", r.stderr);
        assert_eq!(r.lines_of("c"), ["up", "got TERM"], "{name}: {}", r.stderr);
        assert!(r.stderr.contains("activeDeadlineSeconds"), "{name}: {}", r.stderr);
        assert_eq!(
            (&s["phase"], &s["reason"]),
            (&json!("Failed"), &json!("DeadlineExceeded")),
            "{name}"
        );
        let c = &s["containerStatuses"][0]["state"]["terminated"];
        assert_eq!(
            (&c["exitCode"], &c["reason"]),
            (&json!(0), &json!("Completed")),
            "{name}"
        );
    }
}

#[test]
fn an_oom_kill_of_a_child_takes_the_whole_container() {
    // tail keeps /dev/zero's endless line in memory: the OOM killer picks
    // it, a child of the shell. With memory.oom.group the shell goes too
    // and never prints "survived".
    let manifest = json!({
        "metadata": {"name": "oom"},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "oci:../busybox:latest",
            "resources": {"limits": {"memory": "32Mi"}},
            "command": ["sh", "-c", "echo start; tail /dev/zero; echo survived; sleep 1"]}]}
    });
    let dir = pod_dir("oom", &manifest.to_string());
    for (name, kernel) in kernels() {
        let (r, s) = run_with_status(&dir, name, &kernel);
        assert_eq!(r.code, 137, "{name}: {}", r.stderr);
        assert_eq!(r.lines_of("c"), ["start"], "{name}: {}", r.stderr);
        assert!(
            r.stderr.contains("c | exited with code 137: OOMKilled"),
            "{name}: {}",
            r.stderr
        );
        let c = &s["containerStatuses"][0]["state"]["terminated"];
        assert_eq!(
            (&c["exitCode"], &c["reason"]),
            (&json!(137), &json!("OOMKilled")),
            "{name}"
        );
    }
}

#[test]
fn termination_messages_as_the_kubelet_reads_them() {
    let manifest = json!({
        "metadata": {"name": "messages"},
        "spec": {"restartPolicy": "Never", "containers": [
            // The default file, written by root.
            {"name": "file", "image": "oci:../busybox:latest", "command": ["sh", "-c",
                "echo 'ran 42 tests' > /dev/termination-log"]},
            // A path of its own, written by a user that is not root.
            {"name": "custom", "image": "oci:../busybox:latest", "terminationMessagePath": "/tmp/why",
             "securityContext": {"runAsUser": 1000},
             "command": ["sh", "-c", "printf 'disk full' > /tmp/why; exit 3"]},
            // A failure with nothing in the file: the log's last lines.
            {"name": "logs", "image": "oci:../busybox:latest", "terminationMessagePolicy": "FallbackToLogsOnError",
             "command": ["sh", "-c", "seq 1 100; echo failing >&2; exit 4"]},
            // The fallback is for failures only.
            {"name": "fine", "image": "oci:../busybox:latest", "terminationMessagePolicy": "FallbackToLogsOnError",
             "command": ["sh", "-c", "echo all good"]}]}
    });
    let dir = pod_dir("messages", &manifest.to_string());
    for (name, kernel) in kernels() {
        let (r, s) = run_with_status(&dir, name, &kernel);
        assert_eq!(r.code, 3, "{name}: {}", r.stderr);
        let message = |i: usize| s["containerStatuses"][i]["state"]["terminated"]["message"].clone();
        assert_eq!(message(0), json!("ran 42 tests\n"), "{name}");
        assert_eq!(message(1), json!("disk full"), "{name}");
        let tail: String = (22..=100).map(|i| format!("{i}\n")).collect::<String>() + "failing\n";
        assert_eq!(message(2), json!(tail), "{name}");
        assert_eq!(message(3), Value::Null, "{name}");
        // The last line of each on stderr (`name | ...`, padded as the output is).
        let exit_line = |c: &str| pod1_tests::lines_of(&r.stderr, c).last().map(|l| l.to_string());
        assert_eq!(
            exit_line("custom").as_deref(),
            Some("exited with code 3; message: disk full"),
            "{name}"
        );
        assert_eq!(
            exit_line("file").as_deref(),
            Some("exited with code 0; message: ran 42 tests"),
            "{name}"
        );
        assert!(
            exit_line("logs").is_some_and(|l| l.ends_with("99\\n100\\nfailing")),
            "{name}: {}",
            r.stderr
        );
    }
}

#[test]
fn stop_signals_from_the_manifest_and_the_image() {
    // An image whose config says StopSignal SIGQUIT (umoci writes it).
    pod1_tests::sh(&format!(
        "cd {f} && rm -rf quitter && cp -r busybox quitter && \
         umoci config --image quitter:latest --config.stopsignal SIGQUIT",
        f = pod1_tests::fixtures().display()
    ));
    let trap = "for s in TERM QUIT USR1; do trap \"echo got $s; exit 0\" $s; done; echo up; while true; do sleep 0.2; done";
    let manifest = json!({
        "metadata": {"name": "signals"},
        "spec": {"restartPolicy": "Never", "activeDeadlineSeconds": 3, "os": {"name": "linux"}, "containers": [
            {"name": "manifest", "image": "oci:../busybox:latest", "lifecycle": {"stopSignal": "SIGUSR1"},
             "command": ["sh", "-c", trap]},
            {"name": "image", "image": "oci:../quitter:latest", "command": ["sh", "-c", trap]},
            {"name": "default", "image": "oci:../busybox:latest", "command": ["sh", "-c", trap]}]}
    });
    let dir = pod_dir("signals", &manifest.to_string());
    for (name, kernel) in kernels() {
        let r = pod1_run(&dir.join("pod.json"), &kernel, &[]);
        assert_eq!(r.code, 124, "{name}: {}", r.stderr);
        assert_eq!(r.lines_of("manifest"), ["up", "got USR1"], "{name}: {}", r.stderr);
        assert_eq!(r.lines_of("image"), ["up", "got QUIT"], "{name}: {}", r.stderr);
        assert_eq!(r.lines_of("default"), ["up", "got TERM"], "{name}: {}", r.stderr);
    }
}

#[test]
fn a_sidecar_ends_when_the_main_container_ends() {
    // A CI job's shape: a server beside the tests, the pod's result the
    // tests' alone.
    let manifest = json!({
        "metadata": {"name": "sidecar"},
        "spec": {"restartPolicy": "Never", "initContainers": [
            {"name": "db", "image": "oci:../busybox:latest", "restartPolicy": "Always", "command": ["sh", "-c",
                "mkdir -p /www && echo ready > /www/up && trap 'echo db stopping; exit 0' TERM; \
                 httpd -p 8081 -h /www; while true; do sleep 0.2; done"]}],
            "containers": [{"name": "tests", "image": "oci:../busybox:latest", "command": ["sh", "-c",
                "until wget -q -O- http://127.0.0.1:8081/up; do sleep 0.2; done; echo tests passed; exit 5"]}]}
    });
    let dir = pod_dir("sidecar", &manifest.to_string());
    for (name, kernel) in kernels() {
        let (r, s) = run_with_status(&dir, name, &kernel);
        // The main container's code decides; the sidecar stopped well.
        assert_eq!(r.code, 5, "{name}: {}", r.stderr);
        assert_eq!(
            r.lines_of("tests"),
            ["ready", "tests passed"],
            "{name}: {}",
            r.stderr
        );
        assert_eq!(r.lines_of("db"), ["db stopping"], "{name}: {}", r.stderr);
        let db = &s["initContainerStatuses"][0];
        assert_eq!(db["state"]["terminated"]["exitCode"], 0, "{name}: {s}");
        assert_eq!(db["ready"], false, "{name}");
        let initialized = s["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Initialized")
            .unwrap();
        assert_eq!(initialized["status"], "True", "{name}: {s}");
    }
}
