//! The fold fed event sequences as the init sends them; the result
//! compared as JSON, field by field as kubectl would show it.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use pod1_manifest::events::{Event, HookKind, Phase, ProbeKind, Record};
use pod1_manifest::plan::{resolve, Handler, ImageInfo, Plan, ProbePlan};
use pod1_manifest::Pod;
use serde_json::{json, Value};

use super::*;

/// 2023-11-14T22:13:20Z: QEMU was started then.
fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

/// `t0` plus `ms` milliseconds.
fn at(ms: u64) -> SystemTime {
    t0() + Duration::from_millis(ms)
}

/// RFC 3339 of `t0` plus `s` seconds.
fn ts(s: u64) -> String {
    humantime::format_rfc3339_seconds(t0() + Duration::from_secs(s)).to_string()
}

/// The plan of a pod with these init and app containers (busybox-like
/// images, `restartPolicy: Never`).
fn plan(init: &[&str], app: &[&str]) -> Plan {
    let list = |names: &[&str]| -> Value {
        names
            .iter()
            .map(|n| json!({"name": n, "image": "oci:busybox", "command": ["true"]}))
            .collect()
    };
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"restartPolicy": "Never", "initContainers": list(init), "containers": list(app)}
    });
    let pod = Pod::parse(&pod.to_string()).unwrap();
    let image = ImageInfo {
        rootfs: "/pod1/images/0123456789abcdef".into(),
        id: "sha256:0123".into(),
        ..ImageInfo::default()
    };
    resolve(&pod, &BTreeMap::from([("oci:busybox".to_string(), image)])).unwrap()
}

/// A fold of `plan` that saw `events`: each `(ms, event)` read by the host
/// 500 ms of guest time after QEMU's start, so guest ms N is t0 + 500 + N
/// (the host reads nothing after 60 s).
fn fold(plan: &Plan, events: &[(u64, Event)]) -> Fold {
    let mut f = Fold::new(plan, t0());
    for (ms, event) in events {
        let rec = Record {
            event: event.clone(),
            ms: *ms,
        };
        f.record(&rec, at(ms.saturating_add(500).min(60_000)));
    }
    f
}

fn status(f: &Fold, now_ms: u64, cut: Option<Cut>) -> Value {
    serde_json::to_value(f.status(at(now_ms), cut.as_ref())).unwrap()
}

fn init_started() -> Event {
    Event::InitStarted {
        argv0: "/init".into(),
        pid1: true,
    }
}

fn started(c: &str) -> Event {
    Event::ContainerStarted {
        container: c.into(),
        pid: 2,
    }
}

fn exited(c: &str, code: i32, restarts: u32) -> Event {
    Event::ContainerExited {
        container: c.into(),
        exit_code: code,
        signal: None,
        restarts,
        reason: None,
        oom_killed: false,
        message: None,
    }
}

fn pod_exited(phase: Phase, exit_code: i32) -> Event {
    Event::PodExited {
        phase,
        exit_code,
        deadline_exceeded: false,
    }
}

/// The condition of type `kind`.
fn condition<'a>(s: &'a Value, kind: &str) -> &'a Value {
    s["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} condition in {s}"))
}

#[test]
fn a_succeeded_pod_reads_as_the_kubelet_leaves_it() {
    let p = plan(&[], &["c"]);
    let f = fold(
        &p,
        &[
            (500, init_started()),
            (1_000, Event::SandboxReady {}),
            (
                1_200,
                Event::ContainerCreated {
                    container: "c".into(),
                },
            ),
            (2_500, started("c")),
            (5_500, exited("c", 0, 0)),
            (5_600, pod_exited(Phase::Succeeded, 0)),
        ],
    );
    let want = json!({
        "conditions": [
            {"lastProbeTime": null, "lastTransitionTime": ts(6), "status": "False", "type": "PodReadyToStartContainers"},
            {"lastProbeTime": null, "lastTransitionTime": ts(0), "reason": "PodCompleted", "status": "True", "type": "Initialized"},
            {"lastProbeTime": null, "lastTransitionTime": ts(6), "reason": "PodCompleted", "status": "False", "type": "Ready"},
            {"lastProbeTime": null, "lastTransitionTime": ts(6), "reason": "PodCompleted", "status": "False", "type": "ContainersReady"},
            {"lastProbeTime": null, "lastTransitionTime": ts(0), "status": "True", "type": "PodScheduled"},
        ],
        "containerStatuses": [{
            "image": "oci:busybox",
            "imageID": "sha256:0123",
            "lastState": {},
            "name": "c",
            "ready": false,
            "restartCount": 0,
            "started": false,
            "state": {"terminated": {
                "exitCode": 0, "finishedAt": ts(6), "reason": "Completed", "startedAt": ts(3),
            }},
        }],
        "hostIP": "127.0.0.1",
        "hostIPs": [{"ip": "127.0.0.1"}],
        "phase": "Succeeded",
        "podIP": "127.0.0.1",
        "podIPs": [{"ip": "127.0.0.1"}],
        "qosClass": "BestEffort",
        "startTime": ts(0),
    });
    assert_eq!(status(&f, 9_000, None), want);
    // As kubectl prints it: keys in order, four spaces, a final newline.
    let text = String::from_utf8(to_kubectl_json(&f.status(at(9_000), None))).unwrap();
    assert!(text.starts_with("{\n    \"conditions\": [\n        {\n            \"lastProbeTime\": null,"));
    assert!(
        text.ends_with("\n    \"startTime\": \"2023-11-14T22:13:20Z\"\n}\n"),
        "{text}"
    );
}

#[test]
fn one_failed_container_fails_the_pod() {
    let p = plan(&[], &["ok", "bad"]);
    let f = fold(
        &p,
        &[
            (500, init_started()),
            (1_000, Event::SandboxReady {}),
            (2_500, started("ok")),
            (3_500, started("bad")),
            (4_500, exited("bad", 3, 0)),
            (7_500, exited("ok", 0, 0)),
            (7_600, pod_exited(Phase::Failed, 3)),
        ],
    );
    let s = status(&f, 9_000, None);
    assert_eq!(s["phase"], "Failed");
    assert_eq!(s.get("reason"), None);
    assert_eq!(s.get("message"), None);
    let ok = &s["containerStatuses"][0];
    assert_eq!(ok["name"], "ok");
    assert_eq!(
        ok["state"],
        json!({"terminated": {"exitCode": 0, "finishedAt": ts(8), "reason": "Completed", "startedAt": ts(3)}})
    );
    let bad = &s["containerStatuses"][1];
    assert_eq!(bad["name"], "bad");
    assert_eq!(
        bad["state"],
        json!({"terminated": {"exitCode": 3, "finishedAt": ts(5), "reason": "Error", "startedAt": ts(4)}})
    );
    // Both ran together from 4 s (ready) until `bad` exited at 5 s.
    for kind in ["Ready", "ContainersReady"] {
        let c = condition(&s, kind);
        assert_eq!(
            (&c["status"], &c["reason"]),
            (&json!("False"), &json!("PodFailed"))
        );
        assert_eq!(c["lastTransitionTime"], ts(5), "{kind}");
    }
    let init = condition(&s, "Initialized");
    assert_eq!((&init["status"], init.get("reason")), (&json!("True"), None));
}

#[test]
fn a_failed_init_container_leaves_the_app_containers_waiting() {
    let p = plan(&["setup", "later"], &["app"]);
    let f = fold(
        &p,
        &[
            (500, init_started()),
            (1_000, Event::SandboxReady {}),
            (1_500, started("setup")),
            (2_500, exited("setup", 1, 0)),
            (2_600, pod_exited(Phase::Failed, 1)),
        ],
    );
    let s = status(&f, 9_000, None);
    assert_eq!(s["phase"], "Failed");
    let setup = &s["initContainerStatuses"][0];
    assert_eq!(
        (&setup["name"], &setup["ready"]),
        (&json!("setup"), &json!(false))
    );
    assert_eq!(setup["state"]["terminated"]["reason"], "Error");
    assert_eq!(setup["state"]["terminated"]["exitCode"], 1);
    let later = &s["initContainerStatuses"][1];
    assert_eq!(later["state"], json!({"waiting": {"reason": "PodInitializing"}}));
    assert_eq!(
        s["containerStatuses"][0]["state"],
        json!({"waiting": {"reason": "PodInitializing"}})
    );
    let init = condition(&s, "Initialized");
    assert_eq!(
        init,
        &json!({
            "lastProbeTime": null, "lastTransitionTime": ts(0),
            "message": "containers with incomplete status: [setup later]",
            "reason": "ContainersNotInitialized", "status": "False", "type": "Initialized",
        })
    );
}

#[test]
fn completed_init_containers_are_ready_and_initialize_the_pod() {
    let p = plan(&["setup"], &["app"]);
    let f = fold(
        &p,
        &[
            (500, init_started()),
            (1_500, started("setup")),
            (3_500, exited("setup", 0, 0)),
            (4_500, started("app")),
            (6_500, exited("app", 0, 0)),
            (6_600, pod_exited(Phase::Succeeded, 0)),
        ],
    );
    let s = status(&f, 9_000, None);
    let setup = &s["initContainerStatuses"][0];
    assert_eq!(
        (&setup["ready"], &setup["started"]),
        (&json!(true), &json!(false))
    );
    assert_eq!(setup["state"]["terminated"]["reason"], "Completed");
    let init = condition(&s, "Initialized");
    assert_eq!(
        (&init["status"], &init["reason"]),
        (&json!("True"), &json!("PodCompleted"))
    );
    assert_eq!(init["lastTransitionTime"], ts(4));
    // No sandbox_ready came: the sandbox condition never changed.
    assert_eq!(
        condition(&s, "PodReadyToStartContainers")["lastTransitionTime"],
        ts(0)
    );
}

#[test]
fn a_timeout_marks_running_containers_unknown() {
    let p = plan(&[], &["sleeper"]);
    let f = fold(
        &p,
        &[
            (500, init_started()),
            (1_000, Event::SandboxReady {}),
            (2_500, started("sleeper")),
        ],
    );
    let s = status(&f, 12_000, Some(Cut::Timeout(11.5)));
    assert_eq!(s["phase"], "Failed");
    assert_eq!(s["reason"], "DeadlineExceeded");
    let message = "the pod did not finish within --timeout 11.5 s; the VM was killed";
    assert_eq!(s["message"], message);
    assert_eq!(
        s["containerStatuses"][0]["state"],
        json!({"terminated": {
            "exitCode": 137,
            "finishedAt": ts(12),
            "message": format!("the container was still running when the pod ended: {message}"),
            "reason": "ContainerStatusUnknown",
            "startedAt": ts(3),
        }})
    );
    // Ready until the VM was killed; the sandbox went with it.
    for kind in ["Ready", "ContainersReady", "PodReadyToStartContainers"] {
        assert_eq!(condition(&s, kind)["lastTransitionTime"], ts(12), "{kind}");
    }
}

#[test]
fn a_deadline_and_an_oom_kill_as_the_kubelet_words_them() {
    let p = plan(&[], &["hog", "calm"]);
    let f = fold(
        &p,
        &[
            (500, init_started()),
            (1_000, Event::SandboxReady {}),
            (2_000, started("hog")),
            (2_000, started("calm")),
            (
                3_000,
                Event::ContainerExited {
                    container: "hog".into(),
                    exit_code: 137,
                    signal: Some(9),
                    restarts: 0,
                    reason: None,
                    oom_killed: true,
                    message: None,
                },
            ),
            (9_000, exited("calm", 143, 0)),
            (
                9_100,
                Event::PodExited {
                    phase: Phase::Failed,
                    exit_code: 124,
                    deadline_exceeded: true,
                },
            ),
        ],
    );
    let s = status(&f, 10_000, None);
    assert_eq!(
        (&s["phase"], &s["reason"]),
        (&json!("Failed"), &json!("DeadlineExceeded"))
    );
    assert_eq!(
        s["message"],
        "Pod was active on the node longer than the specified deadline"
    );
    let hog = &s["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(
        (&hog["reason"], &hog["exitCode"]),
        (&json!("OOMKilled"), &json!(137))
    );
    assert_eq!(
        s["containerStatuses"][1]["state"]["terminated"]["reason"],
        "Error"
    );
}

#[test]
fn a_refused_container_waits_with_its_reason() {
    let p = plan(&[], &["root"]);
    let refused = Event::ContainerWaiting {
        container: "root".into(),
        reason: "CreateContainerConfigError".into(),
        message: "container has runAsNonRoot and image will run as root".into(),
    };
    let f = fold(
        &p,
        &[
            (500, init_started()),
            (1_500, refused),
            // The refusal counted as exit code 126: it stays refused.
            (1_500, exited("root", REFUSED_EXIT_CODE, 0)),
            (1_600, pod_exited(Phase::Failed, REFUSED_EXIT_CODE)),
        ],
    );
    let s = status(&f, 9_000, None);
    assert_eq!(s["phase"], "Failed");
    assert_eq!(
        s["containerStatuses"][0]["state"],
        json!({"waiting": {
            "message": "container has runAsNonRoot and image will run as root",
            "reason": "CreateContainerConfigError",
        }})
    );
    assert_eq!(s["containerStatuses"][0]["lastState"], json!({}));
}

#[test]
fn the_inits_error_fails_the_pod_whatever_was_reported() {
    let p = plan(&[], &["c"]);
    let f = fold(
        &p,
        &[
            (500, init_started()),
            (1_500, started("c")),
            (2_500, pod_exited(Phase::Succeeded, 0)),
            (
                2_600,
                Event::Error {
                    message: "mounting /proc: EPERM".into(),
                },
            ),
        ],
    );
    let s = status(&f, 9_000, None);
    assert_eq!(s["phase"], "Failed");
    assert_eq!(s["message"], "pod1's init failed: mounting /proc: EPERM");
    let c = &s["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(c["reason"], "ContainerStatusUnknown");
    // The pod ended with the error, at 3 s.
    assert_eq!(c["finishedAt"], ts(3));
}

#[test]
fn a_restarted_container_keeps_its_last_termination() {
    let p = plan(&[], &["flaky"]);
    let f = fold(
        &p,
        &[
            (500, init_started()),
            (1_500, started("flaky")),
            (2_500, exited("flaky", 1, 0)),
            (4_500, started("flaky")),
            (6_500, exited("flaky", 0, 1)),
            (6_600, pod_exited(Phase::Succeeded, 0)),
        ],
    );
    let c = &status(&f, 9_000, None)["containerStatuses"][0];
    assert_eq!(c["restartCount"], 1);
    assert_eq!(
        c["state"],
        json!({"terminated": {"exitCode": 0, "finishedAt": ts(7), "reason": "Completed", "startedAt": ts(5)}})
    );
    assert_eq!(
        c["lastState"],
        json!({"terminated": {"exitCode": 1, "finishedAt": ts(3), "reason": "Error", "startedAt": ts(2)}})
    );
}

#[test]
fn a_container_that_could_not_run_and_one_killed_by_a_signal() {
    let p = plan(&[], &["broken", "killed"]);
    let f = fold(
        &p,
        &[
            (500, init_started()),
            (
                1_500,
                Event::ContainerExited {
                    container: "broken".into(),
                    exit_code: 125,
                    signal: None,
                    restarts: 0,
                    reason: Some("preparing the root filesystem: ENOSPC".into()),
                    oom_killed: false,
                    message: None,
                },
            ),
            (1_500, started("killed")),
            (
                2_500,
                Event::ContainerExited {
                    container: "killed".into(),
                    exit_code: 137,
                    signal: Some(9),
                    restarts: 0,
                    reason: None,
                    oom_killed: false,
                    message: None,
                },
            ),
            (2_600, pod_exited(Phase::Failed, 125)),
        ],
    );
    let s = status(&f, 9_000, None);
    assert_eq!(
        s["containerStatuses"][0]["state"],
        json!({"terminated": {
            "exitCode": 125, "finishedAt": ts(2), "message": "preparing the root filesystem: ENOSPC",
            "reason": "ContainerCannotRun", "startedAt": null,
        }})
    );
    assert_eq!(
        s["containerStatuses"][1]["state"],
        json!({"terminated": {
            "exitCode": 137, "finishedAt": ts(3), "reason": "Error", "signal": 9, "startedAt": ts(2),
        }})
    );
}

#[test]
fn a_vm_that_never_spoke_leaves_every_container_waiting() {
    let p = plan(&[], &["c"]);
    let f = Fold::new(&p, t0());
    let why = "the VM stopped (exit status: 1) before the init started: check the kernel and initramfs";
    let s = status(&f, 4_000, Some(Cut::Vm(why.into())));
    assert_eq!((&s["phase"], &s["message"]), (&json!("Failed"), &json!(why)));
    assert_eq!(s.get("reason"), None);
    assert_eq!(
        s["containerStatuses"][0]["state"],
        json!({"waiting": {"reason": "ContainerCreating"}})
    );
    for c in s["conditions"].as_array().unwrap() {
        assert_eq!(c["lastTransitionTime"], ts(0), "{c}");
    }
    // Without an anchor, guest time 0 is QEMU's start.
    assert_eq!(f.guest_ms(at(4_000)), 4_000);
}

#[test]
fn guest_times_stay_within_the_run() {
    let p = plan(&[], &["c"]);
    let f = fold(
        &p,
        &[
            (500, init_started()),
            // Before the boot and far beyond the end of the run.
            (0, started("c")),
            (u64::MAX, exited("c", 0, 0)),
            (u64::MAX, pod_exited(Phase::Succeeded, 0)),
        ],
    );
    let s = status(&f, 9_000, None);
    let c = &s["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(
        (&c["startedAt"], &c["finishedAt"]),
        (&json!(ts(0)), &json!(ts(9)))
    );
    // The anchor: guest 500 ms was read at t0 + 1 s.
    assert_eq!(f.guest_ms(at(1_000)), 500);
    assert_eq!(f.guest_ms(at(3_000)), 2_500);
}

#[test]
fn names_outside_the_plan_are_ignored() {
    let p = plan(&[], &["c"]);
    let mut events = vec![(500, init_started())];
    for i in 0..1000 {
        events.push((600, started(&format!("ghost-{i}"))));
    }
    events.push((700, exited("ghost-1", 1, 0)));
    let f = fold(&p, &events);
    let s = status(&f, 9_000, Some(Cut::Interrupted));
    assert_eq!(s["containerStatuses"].as_array().unwrap().len(), 1);
    assert_eq!(
        s["containerStatuses"][0]["state"],
        json!({"waiting": {"reason": "ContainerCreating"}})
    );
    assert_eq!(
        s["message"],
        "pod1 run was stopped by a signal; the VM was killed"
    );
}

#[test]
fn a_pod1_failure_before_the_plan_is_known() {
    let s = serde_json::to_value(unread("cannot read manifest pod.yaml", t0())).unwrap();
    assert_eq!(
        s,
        json!({
            "message": "pod1 could not run the pod: cannot read manifest pod.yaml",
            "phase": "Failed",
            "startTime": ts(0),
        })
    );
}

#[test]
fn the_json_line_is_a_pod_status_event() {
    let s = unread("x", t0());
    let line: Value = serde_json::from_str(&event_line(&s, 42)).unwrap();
    assert_eq!(line["event"], "pod_status");
    assert_eq!(line["ms"], 42);
    assert_eq!(line["status"], serde_json::to_value(&s).unwrap());
}

#[test]
fn times_outside_four_digit_years_are_kept_at_the_edge() {
    let text = |t: SystemTime| serde_json::to_value(Time(t)).unwrap();
    assert_eq!(text(t0()), json!("2023-11-14T22:13:20Z"));
    let before = SystemTime::UNIX_EPOCH - Duration::from_secs(1);
    assert_eq!(text(before), json!("1970-01-01T00:00:00Z"));
    let after = SystemTime::UNIX_EPOCH + Duration::from_secs(300_000_000_000);
    assert_eq!(text(after), json!("9999-12-31T23:59:59Z"));
}

#[test]
fn an_exec_failure_is_container_cannot_run_and_a_commands_own_127_an_error() {
    // Both released (container_started); only the init's reason tells the
    // command that was never found from the one that exited 127 itself.
    let p = plan(&[], &["nosuch", "own"]);
    let why = r#"exec: "nosuch": executable file not found in $PATH"#;
    let f = fold(
        &p,
        &[
            (500, init_started()),
            (1_500, started("nosuch")),
            (1_500, started("own")),
            (
                2_500,
                Event::ContainerExited {
                    container: "nosuch".into(),
                    exit_code: 127,
                    signal: None,
                    restarts: 0,
                    reason: Some(why.into()),
                    oom_killed: false,
                    message: None,
                },
            ),
            (3_500, exited("own", 127, 0)),
            (3_600, pod_exited(Phase::Failed, 127)),
        ],
    );
    let s = status(&f, 9_000, None);
    assert_eq!(
        s["containerStatuses"][0]["state"],
        json!({"terminated": {
            "exitCode": 127, "finishedAt": ts(3), "message": why,
            "reason": "ContainerCannotRun", "startedAt": null,
        }})
    );
    assert_eq!(
        s["containerStatuses"][1]["state"],
        json!({"terminated": {
            "exitCode": 127, "finishedAt": ts(4), "reason": "Error", "startedAt": ts(2),
        }})
    );
}

/// A probe as the API server defaults it (the check itself does not matter
/// here: the init runs it and reports the results).
fn probe_plan() -> ProbePlan {
    ProbePlan {
        handler: Handler::Exec {
            command: vec!["true".into()],
        },
        initial_delay_seconds: 0,
        period_seconds: 10,
        timeout_seconds: 1,
        success_threshold: 1,
        failure_threshold: 3,
        termination_grace_period_seconds: None,
    }
}

/// `plan` with these probes on container `name`.
fn with_probes(mut plan: Plan, name: &str, probes: &[ProbeKind]) -> Plan {
    let c = plan
        .init_containers
        .iter_mut()
        .chain(&mut plan.containers)
        .find(|c| c.name == name)
        .unwrap();
    for probe in probes {
        let slot = match probe {
            ProbeKind::Liveness => &mut c.checks.liveness,
            ProbeKind::Readiness => &mut c.checks.readiness,
            ProbeKind::Startup => &mut c.checks.startup,
        };
        *slot = Some(probe_plan());
    }
    plan
}

fn probe(c: &str, probe: ProbeKind, success: bool, message: &str) -> Event {
    Event::ContainerProbe {
        container: c.into(),
        probe,
        success,
        message: message.into(),
    }
}

fn hook_failed(c: &str, hook: HookKind, message: &str) -> Event {
    Event::HookFailed {
        container: c.into(),
        hook,
        message: message.into(),
    }
}

fn killing(c: &str, message: &str) -> Event {
    Event::ContainerKilling {
        container: c.into(),
        message: message.into(),
    }
}

/// `(started, ready)` of container `name` as the fold has it now.
fn live(f: &Fold, name: &str) -> (bool, bool) {
    let t = f.init.iter().chain(&f.app).find(|t| t.name == name).unwrap();
    (t.started(), t.ready())
}

/// The `Ready` condition's time once the run is cut at `now_ms` after the
/// first `n` events; `ContainersReady` must say the same.
fn ready_since(p: &Plan, events: &[(u64, Event)], n: usize, now_ms: u64) -> Value {
    let s = status(&fold(p, &events[..n]), now_ms, Some(Cut::Interrupted));
    let ready = condition(&s, "Ready");
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "PodFailed");
    let containers = condition(&s, "ContainersReady");
    assert_eq!(
        ready["lastTransitionTime"], containers["lastTransitionTime"],
        "{s}"
    );
    ready["lastTransitionTime"].clone()
}

#[test]
fn without_probes_a_container_is_started_and_ready_while_it_runs() {
    let p = plan(&[], &["web"]);
    let events = [
        (500, init_started()),
        (1_000, Event::SandboxReady {}),
        (2_500, started("web")),
        (5_500, exited("web", 0, 0)),
        (5_600, pod_exited(Phase::Succeeded, 0)),
    ];
    assert_eq!(live(&fold(&p, &events[..2]), "web"), (false, false));
    assert_eq!(live(&fold(&p, &events[..3]), "web"), (true, true));
    assert_eq!(live(&fold(&p, &events), "web"), (false, false));
    // Cut short while it ran: terminated, so neither started nor ready
    // (the prober's rule for a container not running), and the pod was
    // ready until the end.
    let s = status(&fold(&p, &events[..3]), 9_000, Some(Cut::Interrupted));
    let c = &s["containerStatuses"][0];
    assert_eq!((&c["started"], &c["ready"]), (&json!(false), &json!(false)));
    assert_eq!(c["state"]["terminated"]["reason"], "ContainerStatusUnknown");
    assert_eq!(ready_since(&p, &events, 3, 9_000), json!(ts(9)));
    // Ended: neither, and the pod stopped being ready when it exited.
    let s = status(&fold(&p, &events), 9_000, None);
    let c = &s["containerStatuses"][0];
    assert_eq!((&c["started"], &c["ready"]), (&json!(false), &json!(false)));
    let ready = condition(&s, "Ready");
    assert_eq!(ready["reason"], "PodCompleted");
    assert_eq!(ready["lastTransitionTime"], ts(6));
}

#[test]
fn a_readiness_probe_makes_a_container_ready_and_unready() {
    let p = with_probes(plan(&[], &["web"]), "web", &[ProbeKind::Readiness]);
    let events = [
        (500, init_started()),
        (1_500, started("web")),
        (3_500, probe("web", ProbeKind::Readiness, true, "")),
        (
            5_500,
            probe(
                "web",
                ProbeKind::Readiness,
                false,
                "HTTP probe failed with statuscode: 503",
            ),
        ),
        (7_500, probe("web", ProbeKind::Readiness, true, "")),
        (10_500, exited("web", 0, 0)),
        (10_600, pod_exited(Phase::Succeeded, 0)),
    ];
    // Started, but not ready before its readiness probe passed.
    assert_eq!(live(&fold(&p, &events[..2]), "web"), (true, false));
    assert_eq!(live(&fold(&p, &events[..3]), "web"), (true, true));
    assert_eq!(live(&fold(&p, &events[..4]), "web"), (true, false));
    assert_eq!(live(&fold(&p, &events[..5]), "web"), (true, true));
    // The Ready condition's time, the run cut at 9 s after each event:
    // never ready (the pod's start), ready until the cut, unready since
    // the failure at 6 s, ready again until the cut.
    assert_eq!(ready_since(&p, &events, 2, 9_000), json!(ts(0)));
    assert_eq!(ready_since(&p, &events, 3, 9_000), json!(ts(9)));
    assert_eq!(ready_since(&p, &events, 4, 9_000), json!(ts(6)));
    assert_eq!(ready_since(&p, &events, 5, 9_000), json!(ts(9)));
    let s = status(&fold(&p, &events[..4]), 9_000, Some(Cut::Interrupted));
    let c = &s["containerStatuses"][0];
    assert_eq!((&c["started"], &c["ready"]), (&json!(false), &json!(false)));
    // To the end: ready until it exited at 11 s.
    let s = status(&fold(&p, &events), 14_000, None);
    assert_eq!(condition(&s, "Ready")["lastTransitionTime"], ts(11));
    assert_eq!(condition(&s, "ContainersReady")["lastTransitionTime"], ts(11));
}

#[test]
fn a_startup_probe_gates_started_and_ready() {
    let p = with_probes(
        plan(&[], &["slow"]),
        "slow",
        &[ProbeKind::Startup, ProbeKind::Readiness],
    );
    let events = [
        (500, init_started()),
        (1_500, started("slow")),
        (
            2_500,
            probe("slow", ProbeKind::Startup, false, "dial tcp: connection refused"),
        ),
        (4_500, probe("slow", ProbeKind::Startup, true, "")),
        (5_500, probe("slow", ProbeKind::Readiness, true, "")),
    ];
    assert_eq!(live(&fold(&p, &events[..2]), "slow"), (false, false));
    assert_eq!(live(&fold(&p, &events[..3]), "slow"), (false, false));
    assert_eq!(live(&fold(&p, &events[..4]), "slow"), (true, false));
    assert_eq!(live(&fold(&p, &events), "slow"), (true, true));
    let s = status(&fold(&p, &events[..2]), 9_000, Some(Cut::Interrupted));
    let c = &s["containerStatuses"][0];
    assert_eq!((&c["started"], &c["ready"]), (&json!(false), &json!(false)));
    assert_eq!(ready_since(&p, &events, 4, 9_000), json!(ts(0)));
    assert_eq!(ready_since(&p, &events, 5, 9_000), json!(ts(9)));

    // Only a startup probe: ready as soon as it passed.
    let p = with_probes(plan(&[], &["slow"]), "slow", &[ProbeKind::Startup]);
    assert_eq!(live(&fold(&p, &events[..3]), "slow"), (false, false));
    assert_eq!(live(&fold(&p, &events[..4]), "slow"), (true, true));
}

#[test]
fn a_sidecar_initializes_the_pod_once_started_and_counts_for_readiness() {
    let mut p = plan(&["setup", "proxy"], &["app"]);
    p.init_containers[1].sidecar = true;
    let p = with_probes(p, "proxy", &[ProbeKind::Startup, ProbeKind::Readiness]);
    let events = [
        (500, init_started()),
        (1_000, started("setup")),
        (1_500, exited("setup", 0, 0)),
        (2_500, started("proxy")),
        (3_500, probe("proxy", ProbeKind::Startup, true, "")),
        (4_500, started("app")),
        (5_500, probe("proxy", ProbeKind::Readiness, true, "")),
        (7_500, probe("proxy", ProbeKind::Readiness, false, "not yet")),
    ];
    // The init sequence went on once the proxy's startup probe passed.
    let s = status(&fold(&p, &events[..3]), 9_000, Some(Cut::Interrupted));
    assert_eq!(condition(&s, "Initialized")["status"], "False");
    let s = status(&fold(&p, &events[..4]), 9_000, Some(Cut::Interrupted));
    assert_eq!(condition(&s, "Initialized")["status"], "False");
    let s = status(&fold(&p, &events[..5]), 9_000, Some(Cut::Interrupted));
    let init = condition(&s, "Initialized");
    assert_eq!(
        (&init["status"], &init["lastTransitionTime"]),
        (&json!("True"), &json!(ts(4)))
    );
    // The app is ready from 5 s, the proxy from 6 s: the pod from 6 s
    // until its readiness failed at 8 s. The completed `setup` does not
    // count (it does not run, so it would never be ready).
    assert_eq!(ready_since(&p, &events, 6, 9_000), json!(ts(0)));
    assert_eq!(ready_since(&p, &events, 7, 9_000), json!(ts(9)));
    assert_eq!(ready_since(&p, &events, 8, 9_000), json!(ts(8)));
    let s = status(&fold(&p, &events), 9_000, Some(Cut::Interrupted));
    let setup = &s["initContainerStatuses"][0];
    assert_eq!(
        (&setup["ready"], &setup["started"]),
        (&json!(true), &json!(false))
    );
    let proxy = &s["initContainerStatuses"][1];
    assert_eq!(
        (&proxy["ready"], &proxy["started"]),
        (&json!(false), &json!(false))
    );
}

#[test]
fn a_liveness_failure_then_the_restart_starts_unready() {
    let p = with_probes(
        plan(&[], &["web"]),
        "web",
        &[ProbeKind::Liveness, ProbeKind::Readiness],
    );
    let events = [
        (500, init_started()),
        (1_500, started("web")),
        (2_500, probe("web", ProbeKind::Readiness, true, "")),
        (
            5_500,
            probe(
                "web",
                ProbeKind::Liveness,
                false,
                "HTTP probe failed with statuscode: 500",
            ),
        ),
        (
            5_500,
            killing("web", "Container web failed liveness probe, will be restarted"),
        ),
        (
            6_500,
            Event::ContainerExited {
                container: "web".into(),
                exit_code: 143,
                signal: Some(15),
                restarts: 0,
                reason: None,
                oom_killed: false,
                message: None,
            },
        ),
        // A result of the ended run, late: it counts for nothing.
        (7_000, probe("web", ProbeKind::Readiness, true, "")),
        (8_500, started("web")),
        (9_500, probe("web", ProbeKind::Readiness, true, "")),
        (11_500, exited("web", 0, 1)),
        (11_600, pod_exited(Phase::Succeeded, 0)),
    ];
    // The failure itself changes nothing; the exit does.
    assert_eq!(live(&fold(&p, &events[..5]), "web"), (true, true));
    assert_eq!(live(&fold(&p, &events[..6]), "web"), (false, false));
    assert_eq!(live(&fold(&p, &events[..7]), "web"), (false, false));
    // The new run starts unready: its readiness result starts over.
    assert_eq!(live(&fold(&p, &events[..8]), "web"), (true, false));
    assert_eq!(live(&fold(&p, &events[..9]), "web"), (true, true));
    assert_eq!(ready_since(&p, &events, 5, 9_000), json!(ts(9)));
    assert_eq!(ready_since(&p, &events, 8, 9_000), json!(ts(7)));
    let s = status(&fold(&p, &events[..8]), 9_000, Some(Cut::Interrupted));
    let c = &s["containerStatuses"][0];
    assert_eq!((&c["restartCount"], &c["ready"]), (&json!(1), &json!(false)));
    let s = status(&fold(&p, &events), 14_000, None);
    let c = &s["containerStatuses"][0];
    assert_eq!(c["restartCount"], 1);
    assert_eq!(
        c["lastState"],
        json!({"terminated": {
            "exitCode": 143, "finishedAt": ts(7), "reason": "Error", "signal": 15, "startedAt": ts(2),
        }})
    );
    assert_eq!(
        c["state"],
        json!({"terminated": {"exitCode": 0, "finishedAt": ts(12), "reason": "Completed", "startedAt": ts(9)}})
    );
    assert_eq!(condition(&s, "Ready")["lastTransitionTime"], ts(12));
}

#[test]
fn a_failed_post_start_hook_ends_the_run_and_says_why() {
    let p = plan(&[], &["web"]);
    let why = r#"Exec lifecycle hook ([/bin/false]) for Container "web" in Pod "p" failed - error: exit status 1, message: """#;
    let killed = |restarts| Event::ContainerExited {
        container: "web".into(),
        exit_code: 143,
        signal: Some(15),
        restarts,
        reason: None,
        oom_killed: false,
        message: None,
    };
    let events = [
        (500, init_started()),
        (
            1_000,
            Event::ContainerCreated {
                container: "web".into(),
            },
        ),
        (2_500, hook_failed("web", HookKind::PostStart, why)),
        (2_500, killing("web", "FailedPostStartHook")),
        (3_500, killed(0)),
        // Restarted: the hook passed this time, so the run started.
        (5_500, started("web")),
        (7_500, exited("web", 0, 1)),
        (7_600, pod_exited(Phase::Succeeded, 0)),
    ];
    // Never started, so never ready.
    assert_eq!(live(&fold(&p, &events[..4]), "web"), (false, false));
    let killed_run = json!({"terminated": {
        "exitCode": 143, "finishedAt": ts(4), "message": format!("PostStartHookError: {why}"),
        "reason": "Error", "signal": 15, "startedAt": null,
    }});
    // The pod ended there (restartPolicy: Never).
    let s = status(&fold(&p, &events[..5]), 9_000, None);
    let c = &s["containerStatuses"][0];
    assert_eq!(c["state"], killed_run);
    assert_eq!((&c["started"], &c["ready"]), (&json!(false), &json!(false)));
    assert_eq!(condition(&s, "Ready")["lastTransitionTime"], ts(0));
    // Or it went on: the killed run is the last state, and the next run's
    // end says nothing of the hook.
    let s = status(&fold(&p, &events), 9_000, None);
    let c = &s["containerStatuses"][0];
    assert_eq!(c["restartCount"], 1);
    assert_eq!(c["lastState"], killed_run);
    assert_eq!(
        c["state"],
        json!({"terminated": {"exitCode": 0, "finishedAt": ts(8), "reason": "Completed", "startedAt": ts(6)}})
    );
    // A termination message of its own comes first.
    let mut with_message = events[..5].to_vec();
    if let Event::ContainerExited { message, .. } = &mut with_message[4].1 {
        *message = Some("shutting down".into());
    }
    let s = status(&fold(&p, &with_message), 9_000, None);
    assert_eq!(
        s["containerStatuses"][0]["state"]["terminated"]["message"],
        "shutting down"
    );
    // A running container's hook already passed: a postStart failure
    // reported for it, or a preStop failure, leave its end alone.
    let s = status(
        &fold(
            &p,
            &[
                (500, init_started()),
                (1_500, started("web")),
                (2_500, hook_failed("web", HookKind::PostStart, "late")),
                (3_000, hook_failed("web", HookKind::PreStop, "preStop failed")),
                (3_500, exited("web", 0, 0)),
            ],
        ),
        9_000,
        Some(Cut::Interrupted),
    );
    assert_eq!(
        s["containerStatuses"][0]["state"],
        json!({"terminated": {"exitCode": 0, "finishedAt": ts(4), "reason": "Completed", "startedAt": ts(2)}})
    );
}

#[test]
fn probes_and_hooks_for_containers_outside_the_plan_are_ignored() {
    let p = plan(&[], &["c"]);
    let mut events = vec![(500, init_started()), (1_500, started("c"))];
    for i in 0..1000 {
        let ghost = format!("ghost-{i}");
        events.push((1_600, probe(&ghost, ProbeKind::Readiness, false, "x")));
        events.push((1_600, hook_failed(&ghost, HookKind::PostStart, "x")));
        events.push((1_600, killing(&ghost, "x")));
    }
    // A result for a probe `c` does not have changes nothing either.
    events.push((1_700, probe("c", ProbeKind::Readiness, false, "x")));
    events.push((1_700, probe("c", ProbeKind::Startup, false, "x")));
    let f = fold(&p, &events);
    assert_eq!((f.index.len(), f.init.len(), f.app.len()), (1, 0, 1));
    assert_eq!(live(&f, "c"), (true, true));
    let s = status(&f, 9_000, Some(Cut::Interrupted));
    assert_eq!(s["containerStatuses"].as_array().unwrap().len(), 1);
    assert_eq!(condition(&s, "Ready")["lastTransitionTime"], ts(9));
}

#[test]
fn a_hooks_message_is_bounded() {
    let p = plan(&[], &["web"]);
    let f = fold(
        &p,
        &[
            (500, init_started()),
            (1_500, hook_failed("web", HookKind::PostStart, &"é".repeat(5_000))),
            (2_500, exited("web", 137, 0)),
        ],
    );
    let s = status(&f, 9_000, Some(Cut::Interrupted));
    let message = s["containerStatuses"][0]["state"]["terminated"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    // Cut to 4 KiB at a character boundary, as a termination message.
    assert_eq!(message, format!("PostStartHookError: {}", "é".repeat(2_048)));
}
