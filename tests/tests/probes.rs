//! VM tests of probes and lifecycle hooks, on both guest kernels: each
//! handler's liveness failure restarts its container exactly once, a
//! healthy probe never does, a startup probe gates liveness, readiness
//! flips in the events, postStart is visible to the container, preStop
//! runs on Ctrl-C before the stop signal. Markers in an emptyDir make each
//! failure happen once, whatever the timing.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

use std::io::{BufRead, BufReader};

use pod1_manifest::events::{Event, ProbeKind};
use pod1_tests::{kernels, pod1_run, pod1_spawn, pod_dir};
use serde_json::{json, Value};

/// The results of container `c`'s `kind` probe in a `--json` run's events.
fn results(events: &[Event], c: &str, kind: ProbeKind) -> Vec<bool> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::ContainerProbe {
                container,
                probe,
                success,
                ..
            } if container == c && *probe == kind => Some(*success),
            _ => None,
        })
        .collect()
}

/// The status of container `c` in a pod status.
fn status_of<'a>(s: &'a Value, c: &str) -> &'a Value {
    s["containerStatuses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == c)
        .unwrap_or_else(|| panic!("{c} in {s}"))
}

#[test]
fn each_handler_s_liveness_failure_restarts_its_container_once() {
    // ex (exec), tc (tcpSocket) and ht (httpGet on a named port) each fail
    // their liveness probe in their first run only; ok's probes pass.
    let sh = |script: &str| json!(["sh", "-c", script]);
    let live = |handler: Value, delay: u32| {
        let mut p = json!({"periodSeconds": 1, "failureThreshold": 1, "terminationGracePeriodSeconds": 1,
                            "initialDelaySeconds": delay});
        p.as_object_mut()
            .unwrap()
            .extend(handler.as_object().unwrap().clone());
        p
    };
    let data = json!([{"name": "data", "mountPath": "/data"}]);
    let manifest = json!({
        "metadata": {"name": "liveness"},
        "spec": {"restartPolicy": "OnFailure", "terminationGracePeriodSeconds": 2,
            "volumes": [{"name": "data", "emptyDir": {}}],
            "containers": [
            {"name": "ex", "image": "oci:../busybox:latest", "volumeMounts": data,
             "command": sh("if [ -e /data/ex-first ]; then sleep 2; echo healthy; exit 0; fi; \
                            touch /data/ex-first; echo first; exec sleep 100"),
             "livenessProbe": live(json!({"exec": {"command":
                 sh("if [ -e /data/ex-first ] && [ ! -e /data/ex-killed ]; then touch /data/ex-killed; echo sick; exit 1; fi")}}), 0)},
            {"name": "tc", "image": "oci:../busybox:latest", "volumeMounts": data,
             "command": sh("if [ -e /data/tc-first ]; then httpd -p 8082 -h /; sleep 3; echo healthy; exit 0; fi; \
                            touch /data/tc-first; echo first; exec sleep 100"),
             "livenessProbe": live(json!({"tcpSocket": {"port": 8082}}), 2)},
            {"name": "ht", "image": "oci:../busybox:latest", "volumeMounts": data,
             "ports": [{"name": "probe", "containerPort": 8083}],
             "command": sh("mkdir -p /www; [ -e /data/ht-first ] && echo ok > /www/healthz; touch /data/ht-first; \
                            httpd -p 8083 -h /www; if [ -e /www/healthz ]; then sleep 3; echo healthy; exit 0; fi; \
                            echo first; exec sleep 100"),
             "livenessProbe": live(json!({"httpGet": {"path": "/healthz", "port": "probe",
                                                      "httpHeaders": [{"name": "X-Probe", "value": "1"}]}}), 2)},
            {"name": "ok", "image": "oci:../busybox:latest",
             "command": sh("sleep 4; echo healthy"),
             "livenessProbe": live(json!({"exec": {"command": ["cat", "/etc/hostname"]}}), 0),
             "readinessProbe": {"periodSeconds": 1, "tcpSocket": {"port": 8083}}}]}
    });
    let dir = pod_dir("liveness", &manifest.to_string());
    for (name, kernel) in kernels() {
        let file = dir.join(format!("status-{name}.json"));
        let r = pod1_run(
            &dir.join("pod.json"),
            &kernel,
            &["--json", "--status", file.to_str().unwrap()],
        );
        assert_eq!(r.code, 0, "{name}: {}", r.stderr);
        let events = r.events();
        for c in ["ex", "tc", "ht"] {
            assert_eq!(
                results(&events, c, ProbeKind::Liveness),
                [false],
                "{name} {c}: {}",
                r.stderr
            );
        }
        assert_eq!(
            results(&events, "ok", ProbeKind::Liveness),
            Vec::<bool>::new(),
            "{name}"
        );
        // ht's server answers: ok's TCP readiness check reached it.
        assert_eq!(results(&events, "ok", ProbeKind::Readiness), [true], "{name}");
        let message = |c: &str| {
            events.iter().find_map(|e| match e {
                Event::ContainerProbe {
                    container, message, ..
                } if container == c => Some(message.clone()),
                _ => None,
            })
        };
        assert_eq!(message("ex").as_deref(), Some("sick"), "{name}");
        assert_eq!(
            message("tc").as_deref(),
            Some("dial tcp 10.0.2.15:8082: connect: connection refused"),
            "{name}"
        );
        assert_eq!(
            message("ht").as_deref(),
            Some("HTTP probe failed with statuscode: 404"),
            "{name}"
        );
        let s: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        for (c, restarts) in [("ex", 1), ("tc", 1), ("ht", 1), ("ok", 0)] {
            assert_eq!(status_of(&s, c)["restartCount"], restarts, "{name} {c}: {s}");
        }
        assert_eq!(
            status_of(&s, "ex")["lastState"]["terminated"]["exitCode"],
            137,
            "{name}: {s}"
        );
    }
}

#[test]
fn startup_gates_liveness_readiness_flips_post_start_comes_first() {
    // The hook writes as the container's user what the container prints;
    // liveness would fail before /data/up, but waits for startup; the
    // readiness check leaves marks the container waits for.
    let manifest = json!({
        "metadata": {"name": "gates"},
        "spec": {"restartPolicy": "Never", "volumes": [{"name": "data", "emptyDir": {}}],
            "securityContext": {"runAsUser": 1000},
            "containers": [{"name": "app", "image": "oci:../busybox:latest",
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                "command": ["sh", "-c", "while [ ! -f /data/hook ]; do sleep 0.1; done; cat /data/hook; \
                    sleep 1; touch /data/up /data/ready; while [ ! -f /data/seen-ready ]; do sleep 0.1; done; \
                    rm /data/ready; while [ ! -f /data/seen-unready ]; do sleep 0.1; done; sleep 1; echo done"],
                "lifecycle": {"postStart": {"exec": {"command": ["sh", "-c", "id -u > /data/h.tmp && mv /data/h.tmp /data/hook"]}}},
                "startupProbe": {"periodSeconds": 1, "failureThreshold": 60,
                                 "exec": {"command": ["test", "-f", "/data/up"]}},
                "livenessProbe": {"periodSeconds": 1, "failureThreshold": 1,
                                  "exec": {"command": ["test", "-f", "/data/up"]}},
                "readinessProbe": {"periodSeconds": 1, "failureThreshold": 1, "exec": {"command": ["sh", "-c",
                    "if [ -f /data/ready ]; then touch /data/seen-ready; exit 0; fi; \
                     [ -f /data/seen-ready ] && touch /data/seen-unready; exit 1"]}}}]}
    });
    let dir = pod_dir("gates", &manifest.to_string());
    for (name, kernel) in kernels() {
        let r = pod1_run(&dir.join("pod.json"), &kernel, &["--json"]);
        assert_eq!(r.code, 0, "{name}: {}", r.stderr);
        let events = r.events();
        let logs: Vec<&str> = events
            .iter()
            .filter_map(|e| match e {
                Event::Log { line, .. } => Some(line.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(logs, ["1000", "done"], "{name}: {}", r.stderr);
        assert_eq!(results(&events, "app", ProbeKind::Startup), [true], "{name}");
        assert_eq!(
            results(&events, "app", ProbeKind::Liveness),
            Vec::<bool>::new(),
            "{name}"
        );
        assert_eq!(
            results(&events, "app", ProbeKind::Readiness),
            [true, false],
            "{name}"
        );
    }
}

#[test]
fn pre_stop_runs_on_ctrl_c_before_the_stop_signal() {
    let manifest = json!({
        "metadata": {"name": "prestop"},
        "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 20,
            "containers": [{"name": "app", "image": "oci:../busybox:latest",
                "command": ["sh", "-c", "trap 'echo got TERM; exit 0' TERM; echo ready; while true; do sleep 0.1; done"],
                "lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", "echo pre-stop > /proc/1/fd/1; sleep 1"]}}}}]}
    });
    let pod = pod_dir("prestop", &manifest.to_string()).join("pod.json");
    for (name, kernel) in kernels() {
        let mut child = pod1_spawn(&pod, &kernel, &["--timeout", "180"]);
        let mut lines = Vec::new();
        for line in BufReader::new(child.stdout.take().unwrap()).lines() {
            let line = line.unwrap();
            if line == "app | ready" {
                nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(child.id() as i32),
                    nix::sys::signal::Signal::SIGINT,
                )
                .unwrap();
            }
            lines.push(line);
        }
        let status = child.wait().unwrap();
        assert_eq!(
            lines,
            ["app | ready", "app | pre-stop", "app | got TERM"],
            "{name}: {status}"
        );
        assert_eq!(status.code(), Some(0), "{name}");
    }
}
