//! Probes and lifecycle hooks with exec handlers, on the host tier: the
//! init runs as root on this machine (no VM), the busybox image as root
//! filesystem. What they show: checks run in the container (its files,
//! user, environment), results follow the thresholds, a failed liveness
//! check restarts the container once, startup gates liveness, readiness
//! flips both ways, postStart precedes the start, preStop precedes the
//! stop signal.

mod common;

use common::*;
use pod1_manifest::events::{Event, Phase};
use pod1_manifest::plan::{Handler, ProbePlan};
use pod1_manifest::pod::RestartPolicy;

fn exec(script: &str) -> Handler {
    Handler::Exec {
        command: vec!["sh".into(), "-c".into(), script.into()],
    }
}

/// A probe checking every second, failing on the first failure.
fn probe(handler: Handler) -> ProbePlan {
    ProbePlan {
        handler,
        initial_delay_seconds: 0,
        period_seconds: 1,
        timeout_seconds: 5,
        success_threshold: 1,
        failure_threshold: 1,
        termination_grace_period_seconds: Some(1),
    }
}

/// The events of `probe` (`Liveness`, ...) for container `c`: each result.
fn results(o: &Outcome, c: &str, probe: &str) -> Vec<bool> {
    o.events
        .iter()
        .filter_map(|r| match &r.event {
            Event::ContainerProbe {
                container,
                probe: p,
                success,
                ..
            } if container == c && p.title() == probe => Some(*success),
            _ => None,
        })
        .collect()
}

#[test]
fn a_failing_liveness_check_restarts_the_container_exactly_once() {
    // The check fails once, after the first run has begun; the first run
    // is killed (SIGKILL after the probe's 1 s: a shell as PID 1 ignores
    // SIGTERM) and the second, healthy, exits 0.
    let script = "if [ -e /data/first ]; then sleep 2; echo second; exit 0; fi; \
                  touch /data/first; echo first; exec sleep 100";
    let mut c = mount(sh("app", script), "data", "/data");
    c.checks.liveness = Some(probe(exec(
        "if [ -e /data/first ] && [ ! -e /data/killed ]; then touch /data/killed; cat /data/healthy; fi",
    )));
    let mut p = pod(vec![c]);
    p.restart_policy = RestartPolicy::OnFailure;
    volume(&mut p, "data");
    let o = run(&p);
    check(&o);
    assert_eq!(o.stdout("app"), ["first", "second"]);
    assert_eq!(results(&o, "app", "Liveness"), [false]);
    assert_eq!(o.exits("app"), [(137, Some(9)), (0, None)]);
    let killing = o.position("killing app");
    assert!(o.kinds()[killing].contains("Container app failed liveness probe, will be restarted"));
    assert!(o.position("probe app Liveness false") < killing);
    assert_eq!(o.pod_exit(), (Phase::Succeeded, 0));
    // The check's output is its message, not the container's log.
    let message = o.events.iter().find_map(|r| match &r.event {
        Event::ContainerProbe { message, .. } => Some(message.clone()),
        _ => None,
    });
    assert!(message.unwrap().contains("/data/healthy"), "{:?}", o.kinds());
}

#[test]
fn a_healthy_liveness_check_never_restarts() {
    // The container ends once three checks have passed.
    let mut c = mount(
        sh(
            "app",
            "while [ \"$(cat /data/count 2>/dev/null | wc -l)\" -lt 3 ]; do sleep 0.1; done; echo done",
        ),
        "data",
        "/data",
    );
    c.checks.liveness = Some(probe(exec("echo ok >> /data/count")));
    let mut p = pod(vec![c]);
    volume(&mut p, "data");
    let o = run(&p);
    check(&o);
    assert_eq!(results(&o, "app", "Liveness"), Vec::<bool>::new());
    assert_eq!(o.exits("app"), [(0, None)]);
    assert_eq!(o.stdout("app"), ["done"]);
}

#[test]
fn checks_run_as_the_container_in_its_files_and_environment() {
    // The check passes only as uid 1000, in the container's working
    // directory, with its environment and its root filesystem.
    let mut c = mount(
        sh(
            "app",
            "echo here > /data/only-here; while [ ! -f /data/seen ]; do sleep 0.1; done",
        ),
        "data",
        "/data",
    );
    c.user.uid = 1000;
    c.user.gid = 1000;
    c.working_dir = "/data".into();
    c.env.push("MARK=m1".into());
    c.checks.readiness = Some(probe(exec(
        "test \"$(id -u)\" = 1000 && test \"$PWD\" = /data && test \"$MARK\" = m1 && test -f only-here && touch seen",
    )));
    let mut p = pod(vec![c]);
    volume(&mut p, "data");
    let o = run(&p);
    check(&o);
    assert_eq!(results(&o, "app", "Readiness"), [true]);
}

#[test]
fn readiness_flips_both_ways_and_never_kills() {
    // The check leaves a mark of what it saw; the container waits for it
    // (and a second for the event to go out before it ends).
    let mut c = mount(
        sh(
            "app",
            "touch /data/ready; while [ ! -f /data/seen-ready ]; do sleep 0.1; done; rm /data/ready; \
             while [ ! -f /data/seen-unready ]; do sleep 0.1; done; sleep 1; echo end",
        ),
        "data",
        "/data",
    );
    c.checks.readiness = Some(probe(exec(
        "if [ -f /data/ready ]; then touch /data/seen-ready; exit 0; fi; \
         [ -f /data/seen-ready ] && touch /data/seen-unready; exit 1",
    )));
    let mut p = pod(vec![c]);
    volume(&mut p, "data");
    let o = run(&p);
    check(&o);
    assert_eq!(results(&o, "app", "Readiness"), [true, false]);
    assert_eq!(o.exits("app"), [(0, None)]);
    assert_eq!(o.stdout("app"), ["end"]);
}

#[test]
fn a_startup_probe_gates_liveness() {
    // Liveness would fail at once; it may only run once startup passed.
    let mut c = sh("app", "sleep 2; touch /tmp/up; sleep 3; echo done");
    c.checks.startup = Some(ProbePlan {
        failure_threshold: 20,
        ..probe(exec("test -f /tmp/up"))
    });
    c.checks.liveness = Some(probe(exec("test -f /tmp/up")));
    let o = run(&pod(vec![c]));
    check(&o);
    assert_eq!(results(&o, "app", "Startup"), [true]);
    assert_eq!(results(&o, "app", "Liveness"), Vec::<bool>::new());
    assert_eq!(o.exits("app"), [(0, None)]);
}

#[test]
fn a_failing_startup_probe_kills_and_never_means_no_restart() {
    let mut c = sh("app", "exec sleep 100");
    c.checks.startup = Some(ProbePlan {
        failure_threshold: 2,
        ..probe(exec("false"))
    });
    let o = run(&pod(vec![c]));
    check(&o);
    assert_eq!(results(&o, "app", "Startup"), [false]);
    let killing = o.position("killing app");
    assert!(o.kinds()[killing].ends_with("Container app failed startup probe"));
    assert_eq!(o.exits("app"), [(137, Some(9))]);
    assert_eq!(o.pod_exit(), (Phase::Failed, 137));
}

#[test]
fn a_check_that_outlives_its_timeout_fails_and_is_killed() {
    let mut c = sh("app", "exec sleep 100");
    c.checks.liveness = Some(ProbePlan {
        timeout_seconds: 1,
        ..probe(exec("sleep 30; exit 0"))
    });
    let o = run(&pod(vec![c]));
    check(&o);
    let message = o.events.iter().find_map(|r| match &r.event {
        Event::ContainerProbe { message, .. } => Some(message.clone()),
        _ => None,
    });
    assert_eq!(message.unwrap(), r#"command "sh -c sleep 30; exit 0" timed out"#);
    assert_eq!(o.exits("app"), [(137, Some(9))]);
}

#[test]
fn post_start_runs_before_the_start_is_reported_and_the_container_sees_it() {
    let mut c = mount(
        sh(
            "app",
            "while [ ! -f /data/hook ]; do sleep 0.05; done; cat /data/hook",
        ),
        "data",
        "/data",
    );
    c.user.uid = 1000;
    c.checks.post_start = Some(exec("sleep 1; id -u > /data/h.tmp && mv /data/h.tmp /data/hook"));
    let mut p = pod(vec![c]);
    volume(&mut p, "data");
    let o = run(&p);
    check(&o);
    assert_eq!(o.stdout("app"), ["1000"]);
    assert!(o.position("started app") < o.position("exited app"));
    assert_eq!(o.pod_exit(), (Phase::Succeeded, 0));
}

#[test]
fn app_containers_wait_for_the_post_start_hook_of_the_one_before() {
    let mut first = sh("first", "sleep 3");
    first.checks.post_start = Some(exec("sleep 1"));
    let second = sh("second", "true");
    let o = run(&pod(vec![first, second]));
    check(&o);
    assert!(o.position("started first") < o.position("started second"));
}

#[test]
fn a_failing_post_start_hook_kills_the_container() {
    let mut c = sh("app", "trap 'exit 3' TERM; while :; do sleep 0.05; done");
    c.checks.post_start = Some(exec("echo no way; exit 1"));
    let o = run(&pod(vec![c]));
    check(&o);
    let failed = o.events.iter().find_map(|r| match &r.event {
        Event::HookFailed { message, .. } => Some(message.clone()),
        _ => None,
    });
    assert_eq!(failed.as_deref(), Some("no way"));
    assert!(o
        .kinds()
        .contains(&"killing app: FailedPostStartHook".to_string()));
    assert!(!o.kinds().contains(&"started app".to_string()));
    assert_eq!(o.exits("app"), [(3, None)]);
    assert_eq!(o.pod_exit(), (Phase::Failed, 3));
}

#[test]
fn pre_stop_runs_before_the_stop_signal_and_reaches_the_log() {
    let mut c = sh(
        "app",
        "trap 'echo got TERM; exit 0' TERM; echo ready; while :; do sleep 0.05; done",
    );
    c.checks.pre_stop = Some(exec("echo pre-stop > /proc/1/fd/1; sleep 1"));
    let mut p = pod(vec![c]);
    p.termination_grace_period_seconds = 10;
    let mut r = spawn(&p);
    r.wait_for("ready", |ev| logs(ev, "app", None).iter().any(|l| l == "ready"));
    r.signal(libc::SIGTERM);
    let o = r.finish();
    check(&o);
    assert_eq!(o.stdout("app"), ["ready", "pre-stop", "got TERM"]);
    assert_eq!(o.exits("app"), [(0, None)]);
}

#[test]
fn a_pre_stop_hook_that_outlives_the_grace_period_leaves_two_seconds() {
    // The hook takes the whole second of grace; the container still gets
    // its stop signal and then the kubelet's minimum two seconds.
    let mut c = sh(
        "app",
        "trap 'echo got TERM; sleep 1; echo after; exit 0' TERM; echo ready; while :; do sleep 0.05; done",
    );
    c.checks.pre_stop = Some(exec("sleep 30"));
    let mut p = pod(vec![c]);
    p.termination_grace_period_seconds = 1;
    let mut r = spawn(&p);
    r.wait_for("ready", |ev| logs(ev, "app", None).iter().any(|l| l == "ready"));
    r.signal(libc::SIGTERM);
    let o = r.finish();
    check(&o);
    assert_eq!(o.stdout("app"), ["ready", "got TERM", "after"]);
    assert!(o.kinds().iter().any(|k| k.starts_with("hook_failed app PreStop")));
}

#[test]
fn a_sidecar_with_a_startup_probe_holds_the_next_init_container_until_it_passes() {
    let mut side = mount(
        sh("side", "sleep 2; touch /data/up; while :; do sleep 0.05; done"),
        "data",
        "/data",
    );
    side.sidecar = true;
    side.checks.startup = Some(ProbePlan {
        failure_threshold: 30,
        ..probe(exec("test -f /data/up"))
    });
    let mut p = pod(vec![mount(sh("app", "echo app"), "data", "/data")]);
    p.init_containers = vec![
        side,
        mount(sh("init2", "test -f /data/up && echo saw it"), "data", "/data"),
    ];
    volume(&mut p, "data");
    let o = run(&p);
    check(&o);
    assert_eq!(o.stdout("init2"), ["saw it"]);
    assert!(o.position("probe side Startup true") < o.position("started init2"));
    assert_eq!(o.pod_exit(), (Phase::Succeeded, 0));
}

#[test]
fn tcp_and_http_checks_reach_the_pod_from_inside_its_network() {
    // The startup probe (TCP) waits for the server; readiness (HTTP 200)
    // then passes; liveness on a missing page fails with its status and
    // kills the server.
    let mut c = sh(
        "web",
        "mkdir /www; echo ok > /www/index.html; exec httpd -f -p 8080 -h /www",
    );
    let http = |path: &str| Handler::Http {
        host: "127.0.0.1".into(),
        port: 8080,
        path: path.into(),
        headers: vec![],
    };
    c.checks.startup = Some(ProbePlan {
        failure_threshold: 30,
        ..probe(Handler::Tcp {
            host: "127.0.0.1".into(),
            port: 8080,
        })
    });
    c.checks.readiness = Some(probe(http("/index.html")));
    c.checks.liveness = Some(ProbePlan {
        failure_threshold: 2,
        ..probe(http("/missing"))
    });
    let o = run(&pod(vec![c]));
    check(&o);
    assert_eq!(results(&o, "web", "Startup"), [true]);
    // Readiness goes on while the container is killed: it may see it go.
    assert!(results(&o, "web", "Readiness")[0]);
    assert_eq!(results(&o, "web", "Liveness"), [false]);
    let message = o.events.iter().find_map(|r| match &r.event {
        Event::ContainerProbe { message, .. } if !message.is_empty() => Some(message.clone()),
        _ => None,
    });
    assert_eq!(message.as_deref(), Some("HTTP probe failed with statuscode: 404"));
    assert_eq!(o.exits("web"), [(137, Some(9))]);
}

#[test]
fn an_http_hook_succeeds_with_any_answer_and_fails_without_one() {
    // The server answers 404: the preStop hook still succeeds (the
    // kubelet's hook handler looks only for an answer); the postStart hook
    // of the second container finds no server and fails.
    let http = |port: u16| Handler::Http {
        host: "127.0.0.1".into(),
        port,
        path: "/nothing-here".into(),
        headers: vec![],
    };
    let mut web = sh(
        "web",
        "mkdir /www; httpd -p 8090 -h /www; trap 'echo got TERM; exit 0' TERM; echo ready; \
         while :; do sleep 0.05; done",
    );
    web.checks.pre_stop = Some(http(8090));
    let mut p = pod(vec![web]);
    p.termination_grace_period_seconds = 10;
    let mut r = spawn(&p);
    r.wait_for("ready", |ev| logs(ev, "web", None).iter().any(|l| l == "ready"));
    r.signal(libc::SIGTERM);
    let o = r.finish();
    check(&o);
    assert_eq!(o.stdout("web"), ["ready", "got TERM"]);
    assert!(
        !o.kinds().iter().any(|k| k.starts_with("hook_failed")),
        "{:?}",
        o.kinds()
    );

    let mut lonely = sh("lonely", "trap 'exit 0' TERM; while :; do sleep 0.05; done");
    lonely.checks.post_start = Some(http(8091));
    let o = run(&pod(vec![lonely]));
    check(&o);
    let failed = o.events.iter().find_map(|r| match &r.event {
        Event::HookFailed { message, .. } => Some(message.clone()),
        _ => None,
    });
    assert_eq!(
        failed.as_deref(),
        Some(
            r#"Get "http://127.0.0.1:8091/nothing-here": dial tcp 127.0.0.1:8091: connect: connection refused"#
        )
    );
}

#[test]
fn checks_leak_no_descriptor_and_no_process() {
    // The pod's init is PID 1 of the shared PID namespace; a privileged
    // container may look at its descriptors and at every process. Between
    // the 3rd and the 12th exec check (and as many refused TCP checks)
    // the init holds no more descriptors and no zombie stays. Each count is
    // the least of five looks, so a check under way at one look is missed.
    let look = "least() { m=999; for i in 1 2 3 4 5; do n=$(eval \"$1\"); [ $n -lt $m ] && m=$n; sleep 0.1; done; echo $m; }; \
                fds='ls /proc/1/fd | wc -l'; \
                zombies='cat /proc/[0-9]*/stat 2>/dev/null | grep -c \"^[0-9]* ([^)]*) Z\"'; \
                upto() { while [ $(cat /data/n 2>/dev/null | wc -l) -lt $1 ]; do sleep 0.1; done; }; \
                upto 3; a=$(least \"$fds\"); upto 12; b=$(least \"$fds\"); z=$(least \"$zombies\"); \
                [ $b -le $a ] && echo no fd leak || echo fds $a then $b; echo zombies $z";
    let mut c = mount(sh("app", look), "data", "/data");
    c.privileged = true;
    c.capabilities = pod1_manifest::plan::CAPABILITIES
        .iter()
        .map(|s| s.to_string())
        .collect();
    c.checks.liveness = Some(probe(exec("echo x >> /data/n")));
    c.checks.readiness = Some(probe(Handler::Tcp {
        host: "127.0.0.1".into(),
        port: 9,
    }));
    let mut p = pod(vec![c]);
    p.share_process_namespace = true;
    volume(&mut p, "data");
    let o = run(&p);
    check(&o);
    assert_eq!(o.stdout("app"), ["no fd leak", "zombies 0"]);
}

#[test]
fn a_working_directory_leading_out_of_the_root_is_refused_to_the_container() {
    // In a shared PID namespace /proc/1 is the pod's init. The first run
    // swaps its working directory (in a volume) for a link to the init's
    // root; the second run must not start there.
    let mut c = mount(
        sh(
            "escaping",
            "pwd; rmdir /data/wd && ln -s /proc/1/root /data/wd; exit 1",
        ),
        "data",
        "/data",
    );
    c.working_dir = "/data/wd".into();
    let mut p = pod(vec![c]);
    p.restart_policy = RestartPolicy::OnFailure;
    p.backoff_limit = Some(1);
    p.share_process_namespace = true;
    volume(&mut p, "data");
    let o = run(&p);
    check(&o);
    assert_eq!(o.stdout("escaping"), ["/data/wd"]);
    let reasons: Vec<Option<String>> = o
        .events
        .iter()
        .filter_map(|r| match &r.event {
            Event::ContainerExited { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons[0].is_none());
    assert!(
        reasons[1]
            .as_deref()
            .unwrap_or("")
            .contains("outside the container's root"),
        "{reasons:?}"
    );
}

#[test]
fn a_working_directory_leading_out_of_the_root_is_refused_to_a_hook() {
    // The container swaps its working directory for a link to the init's
    // root; its preStop hook enters the directory as the container's user,
    // so it cannot follow the link, and fails.
    let mut c = mount(
        sh(
            "swapping",
            "trap 'exit 0' TERM; rmdir /data/wd && ln -s /proc/1/root /data/wd && echo swapped; \
             while :; do sleep 0.05; done",
        ),
        "data",
        "/data",
    );
    c.working_dir = "/data/wd".into();
    c.checks.pre_stop = Some(exec("ls > /proc/1/fd/1"));
    let mut p = pod(vec![c]);
    p.share_process_namespace = true;
    p.termination_grace_period_seconds = 5;
    volume(&mut p, "data");
    let mut r = spawn(&p);
    r.wait_for("swapped", |ev| {
        logs(ev, "swapping", None).iter().any(|l| l == "swapped")
    });
    r.signal(libc::SIGTERM);
    let o = r.finish();
    check(&o);
    let failed = o.events.iter().find_map(|r| match &r.event {
        Event::HookFailed { message, .. } => Some(message.clone()),
        _ => None,
    });
    let failed = failed.unwrap_or_default();
    assert!(
        failed.contains("chdir to /data/wd") || failed.contains("outside the container's root"),
        "{failed}"
    );
    assert_eq!(o.stdout("swapping"), ["swapped"]);
}

#[test]
fn a_command_run_in_a_container_inherits_only_its_standard_descriptors() {
    // Its output is the check's message: the descriptors the shell holds.
    let mut c = sh("app", "exec sleep 100");
    c.checks.startup = Some(probe(exec("ls /proc/self/fd; exit 1")));
    let o = run(&pod(vec![c]));
    check(&o);
    let message = o.events.iter().find_map(|r| match &r.event {
        Event::ContainerProbe { message, .. } => Some(message.clone()),
        _ => None,
    });
    // 0-2 and the directory ls reads.
    assert_eq!(message.as_deref(), Some("0\n1\n2\n3"));
}
