//! VM tests of the pod's lifecycle as the kubelet runs it, on both guest
//! kernels: `activeDeadlineSeconds`, and OOM kills reported as such.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

use pod1_tests::{kernels, pod1_run, pod_dir};
use serde_json::{json, Value};

fn status(path: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
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
        let file = dir.join(format!("status-{name}.json"));
        let r = pod1_run(
            &dir.join("pod.json"),
            &kernel,
            &["--status", file.to_str().unwrap()],
        );
        assert_eq!(r.code, 124, "{name}: {}", r.stderr);
        assert_eq!(r.lines_of("c"), ["up", "got TERM"], "{name}: {}", r.stderr);
        assert!(r.stderr.contains("activeDeadlineSeconds"), "{name}: {}", r.stderr);
        let s = status(&file);
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
        let file = dir.join(format!("status-{name}.json"));
        let r = pod1_run(
            &dir.join("pod.json"),
            &kernel,
            &["--status", file.to_str().unwrap()],
        );
        assert_eq!(r.code, 137, "{name}: {}", r.stderr);
        assert_eq!(r.lines_of("c"), ["start"], "{name}: {}", r.stderr);
        assert!(
            r.stderr.contains("c | exited with code 137: OOMKilled"),
            "{name}: {}",
            r.stderr
        );
        let c = &status(&file)["containerStatuses"][0]["state"]["terminated"];
        assert_eq!(
            (&c["exitCode"], &c["reason"]),
            (&json!(137), &json!("OOMKilled")),
            "{name}"
        );
    }
}
