//! Host tier: the init runs real pods as root in real namespaces, with a
//! real busybox image (see common/mod.rs for the fixture). No timing
//! thresholds: tests wait for events, never for durations.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use pod1_manifest::events::{Event, Phase, Stream};
use pod1_manifest::pod::{RestartPolicy, Sysctl};

fn line_value<'a>(lines: &'a [String], key: &str) -> &'a str {
    lines
        .iter()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= line in {lines:#?}"))
}

#[test]
fn exit_zero_and_logs() {
    let o = run(&pod(vec![sh("a", "echo hello; echo oops >&2; printf partial")]));
    check(&o);
    assert_eq!(o.stdout("a"), ["hello", "partial"]);
    // Two pipes: order across streams is not defined, within one it is.
    assert_eq!(logs(&o.events, "a", Some(Stream::Stderr)), ["oops"]);
    assert_eq!(o.exits("a"), [(0, None)]);
    assert_eq!(o.pod_exit(), (Phase::Succeeded, 0));
}

#[test]
fn pod1_debug_traces_each_step_with_its_time() {
    let plan = pod(vec![sh("a", "true")]);
    let o = spawn_env(&plan, &[("POD1_DEBUG", "1")]).finish();
    check(&o);
    // Each step once, in this order, each line with a time no earlier than
    // the one before: `[12.345 ms] step`.
    let steps = [
        "plan read",
        "container a: cloned",
        "container a: joined the sandbox",
        "container a: root filesystem ready",
        "container a: exec /bin/sh",
    ];
    let lines: Vec<&str> = o.stderr.lines().collect();
    let (mut from, mut last_ms) = (0, 0.0);
    for step in steps {
        let at = lines[from..]
            .iter()
            .position(|l| l.ends_with(&format!("ms] {step}")))
            .unwrap_or_else(|| panic!("no {step:?} after line {from} in:\n{}", o.stderr));
        let line = lines[from + at];
        let ms: f64 = line
            .split('[')
            .nth(1)
            .and_then(|r| r.split(" ms]").next())
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            ms >= last_ms,
            "{line} comes before the time of the step before it"
        );
        (from, last_ms) = (from + at + 1, ms);
    }
    let quiet = run(&plan);
    assert!(
        !quiet.stderr.contains(" ms] "),
        "a trace without POD1_DEBUG:\n{}",
        quiet.stderr
    );
}

#[test]
fn exit_codes_reach_the_pod_result() {
    for code in [1, 42, 255] {
        let o = run(&pod(vec![sh("a", &format!("echo bye; exit {code}"))]));
        check(&o);
        assert_eq!(o.exits("a"), [(code, None)]);
        assert_eq!(o.pod_exit(), (Phase::Failed, code));
        assert_eq!(o.code, code);
    }
}

#[test]
fn death_by_sigkill_is_137() {
    // Not PID 1 of its namespace (PID 1 cannot be killed from inside), so
    // share the pod's PID namespace.
    let mut p = pod(vec![sh("a", "echo dying; kill -9 $$; echo unreachable")]);
    p.share_process_namespace = true;
    let o = run(&p);
    check(&o);
    assert_eq!(o.exits("a"), [(137, Some(9))]);
    assert_eq!(o.logs("a"), ["dying"]);
    assert_eq!(o.pod_exit(), (Phase::Failed, 137));
}

#[test]
fn first_failure_decides_and_success_needs_all() {
    let o = run(&pod(vec![sh("ok", "exit 0"), sh("bad", "exit 7")]));
    check(&o);
    assert_eq!(o.pod_exit(), (Phase::Failed, 7));
}

#[test]
fn every_container_is_created_before_any_starts() {
    let o = run(&pod(vec![sh("a", "true"), sh("b", "true"), sh("c", "true")]));
    check(&o);
    let kinds = o.kinds();
    let last_created = kinds.iter().rposition(|k| k.starts_with("created")).unwrap();
    let first_started = kinds.iter().position(|k| k.starts_with("started")).unwrap();
    assert!(last_created < first_started, "{kinds:#?}");
    let started = o
        .events
        .iter()
        .filter_map(|r| match &r.event {
            Event::ContainerStarted { pid, .. } => Some(*pid),
            _ => None,
        })
        .collect::<Vec<_>>();
    assert_eq!(started.len(), 3);
    assert!(started.iter().all(|p| *p > 1));
}

#[test]
fn orphans_are_reaped_no_zombies() {
    // Shared PID namespace: the double-forked sleeps reparent to the init
    // (the pause, PID 1), which must reap them. The checker waits for them
    // to disappear and counts zombies; an init that does not reap leaves
    // zombie `sleep`s behind and the counts are not 0.
    let spawner = mount(
        sh(
            "spawner",
            "for i in $(seq 100); do (sleep 0.3 &); done; echo spawned; touch /v/spawned",
        ),
        "v",
        "/v",
    );
    let checker = mount(
        sh(
            "checker",
            r#"while [ ! -e /v/spawned ]; do usleep 20000; done
i=0
while [ $i -lt 1500 ]; do
  n=$(cat /proc/[0-9]*/comm 2>/dev/null | grep -c '^sleep$')
  [ "$n" = 0 ] && break
  i=$((i+1)); usleep 20000
done
echo sleepers=$(cat /proc/[0-9]*/comm 2>/dev/null | grep -c '^sleep$')
echo zombies=$(grep -l '^State:.*Z' /proc/[0-9]*/status 2>/dev/null | wc -l)
echo pid1=$(cat /proc/1/comm)"#,
        ),
        "v",
        "/v",
    );
    let mut p = pod(vec![spawner, checker]);
    p.share_process_namespace = true;
    volume(&mut p, "v");
    let o = run(&p);
    check(&o);
    let out = o.stdout("checker");
    assert_eq!(line_value(&out, "sleepers"), "0", "{out:?}");
    assert_eq!(line_value(&out, "zombies"), "0", "{out:?}");
    assert_eq!(line_value(&out, "pid1"), "pod1-init", "{out:?}");
    assert_eq!(o.pod_exit(), (Phase::Succeeded, 0));

    // Own PID namespace: the background processes die with the
    // container's PID 1 and the pod still ends.
    let o = run(&pod(vec![sh(
        "a",
        "for i in $(seq 100); do sleep 1000 & done; echo forked; exit 0",
    )]));
    check(&o);
    assert_eq!(o.stdout("a"), ["forked"]);
    assert_eq!(o.pod_exit(), (Phase::Succeeded, 0));
}

const NS_SCRIPT: &str = "for n in net ipc uts pid mnt; do echo $n=$(readlink /proc/self/ns/$n); done; \
                         echo pid1=$(cat /proc/1/comm)";

fn host_ns(n: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{n}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn containers_share_the_sandbox_namespaces_not_pid() {
    let o = run(&pod(vec![sh("a", NS_SCRIPT), sh("b", NS_SCRIPT)]));
    check(&o);
    let (a, b) = (o.stdout("a"), o.stdout("b"));
    for n in ["net", "ipc", "uts"] {
        assert_eq!(line_value(&a, n), line_value(&b, n), "{n}");
        assert_ne!(line_value(&a, n), host_ns(n), "{n} must not be the host's");
    }
    assert_ne!(line_value(&a, "pid"), line_value(&b, "pid"));
    assert_ne!(line_value(&a, "pid"), host_ns("pid"));
    assert_ne!(line_value(&a, "mnt"), line_value(&b, "mnt"));
    // Each container's command is PID 1 of its own namespace.
    assert_eq!(line_value(&a, "pid1"), "sh");
}

#[test]
fn share_process_namespace_shows_the_pause_as_pid_1() {
    let mut p = pod(vec![sh("a", NS_SCRIPT), sh("b", &format!("{NS_SCRIPT}; ps"))]);
    p.share_process_namespace = true;
    let o = run(&p);
    check(&o);
    let (a, b) = (o.stdout("a"), o.stdout("b"));
    assert_eq!(line_value(&a, "pid"), line_value(&b, "pid"));
    assert_ne!(line_value(&a, "pid"), host_ns("pid"));
    assert_eq!(line_value(&a, "pid1"), "pod1-init");
    assert!(
        b.iter()
            .any(|l| l.split_whitespace().next() == Some("1") && l.contains("pod1-init")),
        "ps shows the pause as PID 1: {b:#?}"
    );
}

#[test]
fn hostname_and_sysctls_inside() {
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let mut p = pod(vec![sh(
        "a",
        "echo hostname=$(hostname); echo port=$(cat /proc/sys/net/ipv4/ip_unprivileged_port_start); \
         echo shmmni=$(cat /proc/sys/kernel/shmmni); echo lo=$(cat /sys/class/net/lo/operstate /sys/class/net/lo/flags)",
    )]);
    p.hostname = "my-pod-host".into();
    p.sysctls = vec![
        Sysctl {
            name: "net.ipv4.ip_unprivileged_port_start".into(),
            value: "42".into(),
        },
        Sysctl {
            name: "kernel.shmmni".into(),
            value: "1234".into(),
        },
    ];
    let o = run(&p);
    check(&o);
    let out = o.stdout("a");
    assert_eq!(line_value(&out, "hostname"), "my-pod-host");
    assert_eq!(line_value(&out, "port"), "42");
    assert_eq!(line_value(&out, "shmmni"), "1234");
    // lo is up: IFF_UP (0x1) set in its flags.
    let flags = line_value(&out, "lo")
        .split_whitespace()
        .last()
        .unwrap()
        .to_string();
    let flags = u32::from_str_radix(flags.trim_start_matches("0x"), 16).unwrap();
    assert_eq!(flags & 1, 1, "{out:?}");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        host_name
    );
}

#[test]
fn init_containers_run_in_order_and_share_an_empty_dir() {
    let mut p = pod(vec![mount(
        sh("app", "cat /data/order; cat /data/msg"),
        "data",
        "/data",
    )]);
    p.init_containers = vec![
        mount(
            sh("init1", "echo 1 >> /data/order; echo from-init > /data/msg"),
            "data",
            "/data",
        ),
        mount(sh("init2", "echo 2 >> /data/order"), "data", "/data"),
    ];
    volume(&mut p, "data");
    let o = run(&p);
    check(&o);
    assert_eq!(o.stdout("app"), ["1", "2", "from-init"]);
    let pos = |k: &str| o.position(k);
    assert!(pos("exited init1 0") < pos("started init2"));
    assert!(pos("exited init2 0") < pos("started app"));
    assert_eq!(o.pod_exit(), (Phase::Succeeded, 0));
}

#[test]
fn a_sidecar_runs_beside_the_app_restarts_and_stops_after_it() {
    // The sidecar serves a file the next init container and the app read;
    // it dies once and is restarted; when the app ends, it gets SIGTERM
    // and the pod succeeds whatever the sidecar's code.
    let side =
        "n=$(cat /data/runs 2>/dev/null || echo 0); echo $((n+1)) > /data/runs; echo up > /data/side; \
                trap 'echo stopping; exit 7' TERM; [ $n -eq 0 ] && exit 3; while true; do sleep 0.05; done";
    let mut sidecar = mount(sh("side", side), "data", "/data");
    sidecar.sidecar = true;
    let mut p = pod(vec![mount(
        sh(
            "app",
            "while [ \"$(cat /data/runs)\" != 2 ]; do sleep 0.05; done; cat /data/side; echo app done",
        ),
        "data",
        "/data",
    )]);
    p.init_containers = vec![
        sidecar,
        // Started once the sidecar has started: its file may still be coming.
        mount(
            sh(
                "init2",
                "while [ ! -s /data/side ]; do sleep 0.05; done; cat /data/side",
            ),
            "data",
            "/data",
        ),
    ];
    volume(&mut p, "data");
    let o = run(&p);
    check(&o);
    assert_eq!(o.stdout("init2"), ["up"]);
    assert_eq!(o.stdout("app"), ["up", "app done"]);
    assert_eq!(o.stdout("side"), ["stopping"]);
    assert_eq!(o.exits("side"), [(3, None), (7, None)]);
    let pos = |k: &str| o.position(k);
    assert!(pos("started side") < pos("started init2"));
    assert!(pos("exited app 0") < pos("exited side 7"));
    assert_eq!(o.pod_exit(), (Phase::Succeeded, 0));
}

#[test]
fn a_failing_init_container_stops_the_pod_under_never() {
    let mut p = pod(vec![sh("app", "echo app ran")]);
    p.init_containers = vec![sh("init1", "echo failing; exit 3"), sh("init2", "echo init2 ran")];
    let o = run(&p);
    check(&o);
    assert_eq!(o.exits("init1"), [(3, None)]);
    let kinds = o.kinds();
    assert!(
        !kinds.iter().any(|k| k == "started init2" || k == "started app"),
        "{kinds:#?}"
    );
    assert!(o.logs("app").is_empty() && o.logs("init2").is_empty());
    assert_eq!(o.pod_exit(), (Phase::Failed, 3));
}

#[test]
fn on_failure_restarts_until_success() {
    let script = "n=$(cat /v/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /v/n; echo run $n; [ $n -ge 3 ]";
    let mut p = pod(vec![mount(sh("flaky", script), "v", "/v")]);
    p.restart_policy = RestartPolicy::OnFailure;
    // A fixed 1 s delay: any wait before the first restart would show.
    p.backoff.initial_ms = 1000;
    p.backoff.max_ms = 1000;
    volume(&mut p, "v");
    let o = run(&p);
    check(&o);
    assert_eq!(o.exits("flaky"), [(1, None), (1, None), (0, None)]);
    assert_eq!(o.stdout("flaky"), ["run 1", "run 2", "run 3"]);
    let restarts: Vec<u32> = o
        .events
        .iter()
        .filter_map(|r| match &r.event {
            Event::ContainerExited { restarts, .. } => Some(*restarts),
            _ => None,
        })
        .collect();
    assert_eq!(restarts, [0, 1, 2]);
    assert_eq!(o.pod_exit(), (Phase::Succeeded, 0));
    // The kubelet's backoff: the first restart at once, the second after
    // the delay counted from the first restart.
    let times = |kind: &str| -> Vec<u64> {
        o.events
            .iter()
            .filter(|r| match &r.event {
                Event::ContainerStarted { .. } => kind == "started",
                Event::ContainerExited { .. } => kind == "exited",
                _ => false,
            })
            .map(|r| r.ms)
            .collect()
    };
    let (started, exited) = (times("started"), times("exited"));
    // (The first restart was decided at the first exit.)
    assert!(started[2] >= exited[0] + p.backoff.initial_ms, "{started:?}");
    assert!(
        2 * (started[1] - exited[0]) < started[2] - exited[1],
        "{started:?} {exited:?}"
    );
}

#[test]
fn never_does_not_restart_and_always_init_restarts_on_failure_only() {
    let script = "n=$(cat /v/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /v/n; [ $n -ge 2 ]";
    let mut p = pod(vec![mount(sh("app", "echo app; exit 5"), "v", "/v")]);
    p.init_containers = vec![mount(sh("init", script), "v", "/v")];
    volume(&mut p, "v");
    p.restart_policy = RestartPolicy::Never;
    let o = run(&p);
    assert_eq!(o.exits("init"), [(1, None)]);
    assert_eq!(o.pod_exit(), (Phase::Failed, 1));

    // Always: the init container is retried until it succeeds, then the
    // app container restarts forever until the pod is stopped.
    p.restart_policy = RestartPolicy::Always;
    let mut r = spawn(&p);
    r.wait_for("two app runs", |ev| {
        ev.iter()
            .filter(|e| matches!(&e.event, Event::ContainerExited { container, .. } if container == "app"))
            .count()
            >= 2
    });
    r.signal(libc::SIGTERM);
    let o = r.finish();
    check(&o);
    assert_eq!(o.exits("init"), [(1, None), (0, None)]);
    assert!(o.exits("app").iter().all(|e| *e == (5, None)));
    assert_eq!(o.pod_exit(), (Phase::Failed, 5));
}

#[test]
fn sigterm_stops_gracefully_then_kills_after_the_grace_period() {
    let polite = sh(
        "polite",
        "trap 'echo got TERM; exit 0' TERM; echo ready; while :; do usleep 50000; done",
    );
    let stubborn = sh(
        "stubborn",
        "trap '' TERM; echo ready; while :; do usleep 50000; done",
    );
    let mut p = pod(vec![polite, stubborn]);
    p.restart_policy = RestartPolicy::Always;
    p.termination_grace_period_seconds = 1;
    let mut r = spawn(&p);
    r.wait_for("both ready", |ev| {
        ["polite", "stubborn"]
            .iter()
            .all(|c| logs(ev, c, None).iter().any(|l| l == "ready"))
    });
    r.signal(libc::SIGTERM);
    let o = r.finish();
    check(&o);
    assert_eq!(o.logs("polite"), ["ready", "got TERM"]);
    assert_eq!(o.exits("polite"), [(0, None)]);
    assert_eq!(o.exits("stubborn"), [(137, Some(9))]);
    assert_eq!(o.pod_exit(), (Phase::Failed, 137));
}

#[test]
fn sigint_with_only_polite_containers_exits_0() {
    let mut p = pod(vec![sh(
        "polite",
        "trap 'exit 0' TERM; echo ready; while :; do usleep 50000; done",
    )]);
    p.restart_policy = RestartPolicy::Always;
    let mut r = spawn(&p);
    r.wait_for("ready", |ev| {
        logs(ev, "polite", None).iter().any(|l| l == "ready")
    });
    r.signal(libc::SIGINT);
    let o = r.finish();
    check(&o);
    assert_eq!(o.exits("polite"), [(0, None)]);
    assert_eq!(o.pod_exit(), (Phase::Failed, 0));
}

#[test]
fn missing_or_unexecutable_commands_give_127_and_126() {
    let mut missing = sh("missing", "");
    missing.argv = vec!["/bin/does-not-exist".into(), "x".into()];
    let mut not_on_path = sh("notonpath", "");
    not_on_path.argv = vec!["no-such-command".into()];
    let mut not_exec = sh("notexec", "");
    not_exec.argv = vec!["/etc/passwd".into()];
    let o = run(&pod(vec![missing, not_on_path, not_exec]));
    check(&o);
    assert_eq!(o.exits("missing"), [(127, None)]);
    assert_eq!(o.exits("notonpath"), [(127, None)]);
    assert_eq!(o.exits("notexec"), [(126, None)]);
    assert!(
        o.logs("missing")[0].contains("/bin/does-not-exist"),
        "{:?}",
        o.logs("missing")
    );
    assert!(
        o.logs("notonpath")[0].contains("not found"),
        "{:?}",
        o.logs("notonpath")
    );
    assert!(
        o.logs("notexec")[0].contains("/etc/passwd"),
        "{:?}",
        o.logs("notexec")
    );
    assert!(o.pod_exit().1 == 127 || o.pod_exit().1 == 126);
}

#[test]
fn read_only_root_filesystem() {
    let script = "if touch /x 2>/dev/null; then echo root=writable; else echo root=readonly; fi; \
                  if touch /v/x; then echo vol=writable; fi";
    let mut c = mount(sh("a", script), "v", "/v");
    c.read_only_root_filesystem = true;
    let mut p = pod(vec![c, sh("b", "touch /x && echo root=writable")]);
    volume(&mut p, "v");
    let o = run(&p);
    check(&o);
    assert_eq!(o.stdout("a"), ["root=readonly", "vol=writable"]);
    assert_eq!(o.stdout("b"), ["root=writable"]);
}

#[test]
fn device_nodes_in_writable_filesystems_cannot_be_opened() {
    // A root container keeps CAP_MKNOD (as with runc), but every writable
    // filesystem it has is nodev: its root, an emptyDir, a sized one and
    // /dev, where the standard nodes still work.
    let script = "for d in / /v /s /dev; do mknod $d/n c 1 3 && { echo x > $d/n && echo \"$d open\" || echo \"$d refused\"; }; done; \
                  echo x > /dev/null && head -c 1 /dev/zero | wc -c && head -c 1 /dev/urandom | wc -c && echo dev open";
    let c = mount(mount(sh("a", script), "v", "/v"), "s", "/s");
    let mut p = pod(vec![c]);
    volume(&mut p, "v");
    p.volumes.push(pod1_manifest::plan::VolumePlan {
        name: "s".into(),
        size_limit_bytes: Some(1 << 20),
        source: None,
        fs_group: None,
        host_path: None,
    });
    let o = run(&p);
    check(&o);
    assert_eq!(
        o.stdout("a"),
        [
            "/ refused",
            "/v refused",
            "/s refused",
            "/dev refused",
            "1",
            "1",
            "dev open"
        ]
    );
}

#[test]
fn directories_made_for_a_container_are_0755_and_devices_0666() {
    // The root's upper layer, a volume's parent directories and the working
    // directory are made by the init: a user other than root must not be
    // able to rename entries of / or of them.
    let script = "stat -c '%a %n' / /data /some /some/wd /dev/null /dev/zero; umask";
    let mut c = mount(sh("a", script), "v", "/data/deep");
    c.working_dir = "/some/wd".into();
    let mut p = pod(vec![c]);
    volume(&mut p, "v");
    let o = run(&p);
    check(&o);
    assert_eq!(
        o.stdout("a"),
        [
            "755 /",
            "755 /data",
            "755 /some",
            "755 /some/wd",
            "666 /dev/null",
            "666 /dev/zero",
            "0022"
        ]
    );
}

#[test]
fn a_container_inherits_no_descriptor_and_no_signal_state() {
    // Started with an extra open descriptor (7) and SIGQUIT ignored, events
    // on stdout (another descriptor). The commands run without a shell (a
    // shell changes both): `ls` sees 0-2 and its own directory (3), `grep`
    // starts with no signal ignored or blocked.
    use std::os::unix::process::CommandExt;
    let mut fds = sh("fds", "");
    fds.argv = vec!["ls".into(), "/proc/self/fd".into()];
    let mut sigs = sh("sigs", "");
    sigs.argv = ["grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"]
        .map(String::from)
        .to_vec();
    let t = tree(&pod(vec![fds, sigs]));
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pod1-init"));
    cmd.arg("--root")
        .arg(t.root())
        .stderr(std::process::Stdio::piped());
    // SAFETY: between fork and exec only async-signal-safe calls: open,
    // dup2, signal.
    unsafe {
        cmd.pre_exec(|| {
            let fd = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
            libc::dup2(fd, 7);
            libc::signal(libc::SIGQUIT, libc::SIG_IGN);
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    let events: Vec<_> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(logs(&events, "fds", Some(Stream::Stdout)), ["0", "1", "2", "3"]);
    assert_eq!(
        logs(&events, "sigs", Some(Stream::Stdout)),
        ["SigBlk:\t0000000000000000", "SigIgn:\t0000000000000000"]
    );
}

#[test]
fn writes_stay_in_each_container() {
    let o = run(&pod(vec![
        sh("a", "echo a > /etc/who; cat /etc/who"),
        sh("b", "echo b > /etc/who; cat /etc/who"),
    ]));
    check(&o);
    assert_eq!(o.stdout("a"), ["a"]);
    assert_eq!(o.stdout("b"), ["b"]);
}

#[test]
fn run_as_user_shows_in_id_and_drops_capabilities() {
    let mut c = sh(
        "a",
        "echo uid=$(id -u); echo gid=$(id -g); echo groups=$(id -G); echo home=$HOME; grep CapEff /proc/self/status",
    );
    c.user = pod1_manifest::plan::User {
        uid: 65534,
        gid: 65534,
        additional_gids: vec![],
    };
    let root = sh(
        "r",
        "echo uid=$(id -u); echo home=$HOME; grep -E 'CapBnd|NoNewPrivs' /proc/self/status",
    );
    let o = run(&pod(vec![c, root]));
    check(&o);
    let out = o.stdout("a");
    assert_eq!(line_value(&out, "uid"), "65534");
    assert_eq!(line_value(&out, "gid"), "65534");
    assert_eq!(line_value(&out, "groups"), "65534");
    assert_eq!(
        line_value(&out, "home"),
        "/",
        "nobody's home in the fixture's /etc/passwd"
    );
    assert!(
        out.iter()
            .any(|l| l.starts_with("CapEff:") && l.ends_with("0000000000000000")),
        "{out:?}"
    );
    let r = o.stdout("r");
    assert_eq!(line_value(&r, "uid"), "0");
    assert_eq!(line_value(&r, "home"), "/root");
    // Docker's default set: 0x00000000a80425fb.
    assert!(
        r.iter()
            .any(|l| l.starts_with("CapBnd:") && l.ends_with("00000000a80425fb")),
        "{r:?}"
    );
    assert!(
        r.iter().any(|l| l.starts_with("NoNewPrivs:") && l.ends_with('1')),
        "{r:?}"
    );
}

#[test]
fn a_container_cannot_see_or_enter_the_init_mount_namespace() {
    // Shared PID namespace: the init is PID 1 and visible, which is the
    // hardest case for isolation.
    let script = "echo mnt=$(readlink /proc/self/ns/mnt); \
                  if ls /proc/1/root/ >/dev/null 2>&1; then echo root1=reachable; else echo root1=denied; fi; \
                  if nsenter -t 1 -m true 2>/dev/null; then echo enter=yes; else echo enter=no; fi; \
                  if [ -e /pod1/images ] || [ -e /etc/pod1/plan.json ]; then echo tree=visible; else echo tree=hidden; fi; \
                  echo ready; sleep 100";
    let mut p = pod(vec![sh("a", script)]);
    p.share_process_namespace = true;
    p.termination_grace_period_seconds = 0;
    let mut r = spawn(&p);
    r.wait_for("ready", |ev| logs(ev, "a", None).iter().any(|l| l == "ready"));
    // The pod's init is the only child of the host-mode process.
    let outer = r.child.id();
    let children = std::fs::read_to_string(format!("/proc/{outer}/task/{outer}/children")).unwrap();
    let init_pid = children.split_whitespace().next().unwrap().to_string();
    let init_mnt = std::fs::read_link(format!("/proc/{init_pid}/ns/mnt")).unwrap();
    r.signal(libc::SIGTERM);
    let o = r.finish();
    check(&o);
    let out = o.stdout("a");
    assert_ne!(line_value(&out, "mnt"), init_mnt.to_string_lossy());
    assert_ne!(line_value(&out, "mnt"), host_ns("mnt"));
    assert_eq!(line_value(&out, "root1"), "denied");
    assert_eq!(line_value(&out, "enter"), "no");
    assert_eq!(line_value(&out, "tree"), "hidden");
}

#[test]
fn a_container_that_fails_preparation_is_reported_with_the_reason() {
    // A volume mount path under a file (/bin/sh links to busybox) cannot
    // be made.
    let mut p = pod(vec![
        mount(sh("a", "echo never"), "v", "/bin/sh/x"),
        sh("b", "echo fine"),
    ]);
    volume(&mut p, "v");
    let o = run(&p);
    check(&o);
    let reason = o
        .events
        .iter()
        .find_map(|r| match &r.event {
            Event::ContainerExited {
                container, reason, ..
            } if container == "a" => reason.clone(),
            _ => None,
        })
        .expect("a reason for a");
    assert!(
        reason.contains("/bin/sh/x") && reason.contains("Not a directory"),
        "{reason}"
    );
    assert_eq!(o.stdout("b"), ["fine"]);
    assert_eq!(o.pod_exit(), (Phase::Failed, 125));
}

#[test]
fn proc_sys_and_dev_that_are_symlinks_in_the_image_are_refused() {
    // The kernel filesystems are mounted on /proc, /sys and /dev: an image
    // whose entry is a symlink (here to a directory outside the container)
    // would have them mounted wherever it points. Refused, as runc does.
    for name in ["proc", "sys", "dev"] {
        let p = pod(vec![sh("a", "echo never")]);
        let t = tree(&p);
        let outside = t.root().join("outside");
        std::fs::create_dir(&outside).unwrap();
        let image = t.root().join(IMAGE.trim_start_matches('/'));
        let _ = std::fs::remove_dir(image.join(name));
        std::os::unix::fs::symlink(&outside, image.join(name)).unwrap();
        let o = spawn_tree(t, &[]).finish();
        check(&o);
        let reason = o
            .events
            .iter()
            .find_map(|r| match &r.event {
                Event::ContainerExited { reason, .. } => reason.clone(),
                _ => None,
            })
            .unwrap_or_default();
        assert!(
            reason.contains("symlink at ") && reason.contains(&format!("/{name}")),
            "{name}: {reason}"
        );
        assert!(o.stdout("a").is_empty(), "{name}");
        assert_eq!(o.pod_exit(), (Phase::Failed, 125), "{name}");
    }
}

#[test]
fn bad_command_line_and_missing_plan_exit_125() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pod1-init"))
        .arg("--bogus")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage"));
    require_root();
    let dir = common::TempDir::new("pod1-init-test");
    let events = dir.path().join("ev");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pod1-init"))
        .arg("--root")
        .arg(dir.path())
        .arg("--events")
        .arg(&events)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    let ev = read_events(&events);
    assert!(
        ev.iter()
            .any(|r| matches!(&r.event, Event::Error { message } if message.contains("plan.json"))),
        "{ev:#?}"
    );
    assert!(matches!(
        ev.last().unwrap().event,
        Event::PodExited { exit_code: 125, .. }
    ));
}

#[test]
fn masked_and_read_only_paths_unless_privileged() {
    let script = "if echo 1 > /proc/sys/kernel/shmmni 2>/dev/null; then echo procsys=rw; else echo procsys=ro; fi; \
                  echo timer=$(wc -c < /proc/timer_list); \
                  if touch /sys/x 2>/dev/null || mkdir /sys/x 2>/dev/null; then echo sys=rw; else echo sys=ro; fi; \
                  echo sysro=$(grep -c ' /sys ro,' /proc/self/mountinfo); \
                  echo dev=$(ls /dev | tr '\\n' ' ')";
    let mut privileged = sh("priv", script);
    privileged.privileged = true;
    privileged.no_new_privileges = false;
    privileged.capabilities = pod1_manifest::plan::CAPABILITIES
        .iter()
        .map(|s| s.to_string())
        .collect();
    let o = run(&pod(vec![sh("plain", script), privileged]));
    check(&o);
    let plain = o.stdout("plain");
    assert_eq!(line_value(&plain, "procsys"), "ro", "{plain:?}");
    assert_eq!(line_value(&plain, "timer"), "0", "{plain:?}");
    assert_eq!(line_value(&plain, "sysro"), "1", "{plain:?}");
    for d in [
        "null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm", "mqueue", "fd", "stdin",
        "stdout", "stderr",
    ] {
        assert!(
            line_value(&plain, "dev").split_whitespace().any(|x| x == d),
            "/dev/{d} in {plain:?}"
        );
    }
    let p = o.stdout("priv");
    assert!(!p.is_empty(), "{:#?}", o.events);
    assert_eq!(line_value(&p, "procsys"), "rw", "{p:?}");
    assert_eq!(line_value(&p, "sysro"), "0", "{p:?}");
    assert_ne!(line_value(&p, "timer"), "0", "{p:?}");
}

#[test]
fn a_sandbox_failure_ends_the_pod_with_125_and_the_reason() {
    let mut p = pod(vec![sh("a", "echo never")]);
    p.sysctls = vec![Sysctl {
        name: "net.ipv4.no_such_sysctl".into(),
        value: "1".into(),
    }];
    let o = run(&p);
    assert_eq!(o.code, 125);
    assert!(
        o.events
            .iter()
            .any(|r| matches!(&r.event, Event::Error { message } if message.contains("no_such_sysctl"))),
        "{:#?}",
        o.events
    );
    assert!(o.logs("a").is_empty());
    assert_eq!(o.pod_exit(), (Phase::Failed, 125));
    // A node-wide sysctl is refused on a host.
    p.sysctls = vec![Sysctl {
        name: "vm.swappiness".into(),
        value: "1".into(),
    }];
    let o = run(&p);
    assert_eq!(o.code, 125);
}

#[test]
fn a_killed_pod_init_is_still_reported() {
    let mut p = pod(vec![sh("a", "echo ready; sleep 1000")]);
    p.restart_policy = RestartPolicy::Always;
    let mut r = spawn(&p);
    r.wait_for("ready", |ev| logs(ev, "a", None).iter().any(|l| l == "ready"));
    let outer = r.child.id();
    let children = std::fs::read_to_string(format!("/proc/{outer}/task/{outer}/children")).unwrap();
    let init_pid: i32 = children.split_whitespace().next().unwrap().parse().unwrap();
    // SAFETY: kill(2) on the pod's init, a descendant of this test.
    assert_eq!(unsafe { libc::kill(init_pid, libc::SIGKILL) }, 0);
    let o = r.finish();
    assert_eq!(o.code, 125);
    assert!(
        o.events
            .iter()
            .any(|r| matches!(&r.event, Event::Error { message } if message.contains("killed"))),
        "{:#?}",
        o.events
    );
    assert_eq!(o.pod_exit(), (Phase::Failed, 125));
}

#[test]
fn the_seccomp_filter_holds_from_the_first_instruction() {
    let program = deny_mkdir_program();
    let script = "grep Seccomp: /proc/self/status; mkdir /made 2>&1 || echo refused";
    let mut filtered = sh("filtered", script);
    filtered.seccomp = Some(deny_mkdir(0));
    let mut broken = sh("broken", "echo ran");
    broken.seccomp = filtered.seccomp.clone().map(|mut s| {
        s.program = Some(1);
        s
    });
    let mut p = pod(vec![filtered, sh("free", script)]);
    p.programs = vec![program, "zz".into()];
    let o = run(&p);
    check(&o);
    assert_eq!(
        o.stdout("filtered")[0].split_whitespace().collect::<Vec<_>>(),
        ["Seccomp:", "2"]
    );
    assert!(
        o.stdout("filtered")[1].contains("Permission denied"),
        "{:?}",
        o.stdout("filtered")
    );
    assert_eq!(
        o.stdout("free")[0].split_whitespace().collect::<Vec<_>>(),
        ["Seccomp:", "0"]
    );
    assert_eq!(o.stdout("free").len(), 1, "{:?}", o.stdout("free"));
    // A plan whose program is not one fails the container before exec.
    let mut p = pod(vec![broken]);
    p.programs = vec![String::new(), "zz".into()];
    let o = run(&p);
    assert!(o.stdout("broken").is_empty());
    let logs = o.logs("broken");
    assert!(logs.iter().any(|l| l.contains("no valid program")), "{logs:?}");
    assert_ne!(o.exits("broken"), [(0, None)]);
}

#[test]
fn oom_score_adj_follows_the_qos_class() {
    // Raising the value needs no capability; lowering it (Guaranteed's
    // -997, the pause's -1000) needs CAP_SYS_RESOURCE, which the VM has and
    // a host may not: the VM test checks those.
    use pod1_manifest::plan::QosClass;
    let mut p = pod(vec![sh("a", "cat /proc/self/oom_score_adj")]);
    let o = run(&p);
    check(&o);
    assert_eq!(o.stdout("a"), ["1000"]);
    p.qos_class = QosClass::Burstable;
    p.containers[0].memory_request_bytes = Some(1 << 20);
    let o = run(&p);
    let adj: i32 = o.stdout("a")[0].parse().unwrap();
    // 1 MiB of the host's memory: just under 1000.
    assert!((990..=999).contains(&adj), "{adj}");
}
