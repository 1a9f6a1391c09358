//! Host tier: a container whose command could not be executed is told from
//! one whose command ran and exited with the same code. A failure between
//! the container's start and execve (a missing or unexecutable command, an
//! execve the seccomp filter refuses) is reported in `container_exited`'s
//! `reason`, as the kubelet's ContainerCannotRun; a command's own exit has
//! none. The exec pipe behind it leaves nothing open behind each run (see
//! common/mod.rs for the fixture).

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use pod1_manifest::events::{Event, Phase, Record};
use pod1_manifest::plan::{Backoff, Seccomp};
use pod1_manifest::pod::{RestartPolicy, SeccompProfileType};

/// (exit_code, reason) of each `container_exited` of `container`.
fn exits(events: &[Record], container: &str) -> Vec<(i32, Option<String>)> {
    events
        .iter()
        .filter_map(|r| match &r.event {
            Event::ContainerExited {
                container: c,
                exit_code,
                reason,
                ..
            } if c == container => Some((*exit_code, reason.clone())),
            _ => None,
        })
        .collect()
}

/// A container running `argv` (no shell) in the busybox image.
fn cmd(name: &str, argv: &[&str]) -> pod1_manifest::plan::ContainerPlan {
    let mut c = sh(name, "");
    c.argv = argv.iter().map(|a| a.to_string()).collect();
    c
}

#[test]
fn a_command_that_cannot_be_executed_is_told_from_one_that_exits_127() {
    let o = run(&pod(vec![
        cmd("nosuch", &["nosuch"]),
        cmd("missing", &["/bin/does-not-exist"]),
        cmd("notexec", &["/etc/passwd"]),
        sh("own127", "echo ran; exit 127"),
        sh("fine", "echo ran"),
    ]));
    check(&o);
    let not_found = r#"exec: "nosuch": executable file not found in $PATH"#;
    assert_eq!(exits(&o.events, "nosuch"), [(127, Some(not_found.into()))]);
    let missing = r#"exec: "/bin/does-not-exist": stat /bin/does-not-exist: no such file or directory"#;
    assert_eq!(exits(&o.events, "missing"), [(127, Some(missing.into()))]);
    let denied = r#"exec: "/etc/passwd": permission denied"#;
    assert_eq!(exits(&o.events, "notexec"), [(126, Some(denied.into()))]);
    // The command ran: its own 127 has no reason; neither has a success.
    assert_eq!(o.stdout("own127"), ["ran"]);
    assert_eq!(exits(&o.events, "own127"), [(127, None)]);
    assert_eq!(exits(&o.events, "fine"), [(0, None)]);
    // The message is in the container's stderr too, as before.
    assert_eq!(o.logs("nosuch"), [format!("pod1: {not_found}")]);
    assert_eq!(o.pod_exit().0, Phase::Failed);
}

#[test]
fn an_execve_the_seccomp_filter_refuses_is_an_exec_failure() {
    // execve and execveat fail with EACCES, everything else is allowed;
    // with no_new_privs the filter is installed right before execve.
    let program = [
        insn(0x20, 0, 0, 0),                                 // ld [nr]
        insn(0x15, 2, 0, libc::SYS_execve as u32),           // jeq execve → deny
        insn(0x15, 1, 0, libc::SYS_execveat as u32),         // jeq execveat → deny
        insn(0x06, 0, 0, 0x7fff_0000),                       // ret ALLOW
        insn(0x06, 0, 0, 0x0005_0000 | libc::EACCES as u32), // ret ERRNO(EACCES)
    ]
    .concat();
    let mut c = cmd("noexec", &["true"]);
    c.seccomp = Some(Seccomp {
        profile: SeccompProfileType::Localhost,
        localhost_profile: Some("deny-exec.json".into()),
        flags: 0,
        program: Some(0),
    });
    assert!(c.no_new_privileges);
    let mut p = pod(vec![c]);
    p.programs = vec![program];
    let o = run(&p);
    check(&o);
    assert_eq!(
        exits(&o.events, "noexec"),
        [(126, Some("exec /bin/true: permission denied".into()))]
    );
    assert_eq!(o.pod_exit(), (Phase::Failed, 126));
}

/// The pid of the pod's init: host mode's only child (the PID 1 of the
/// pod's PID namespace).
fn pod_init(r: &Running) -> u32 {
    let outer = r.child.id();
    let children = std::fs::read_to_string(format!("/proc/{outer}/task/{outer}/children")).unwrap();
    let pids: Vec<u32> = children.split_whitespace().map(|p| p.parse().unwrap()).collect();
    assert_eq!(pids.len(), 1, "{children:?}");
    pids[0]
}

/// The descriptors `pid` has open.
fn open_fds(pid: u32) -> Vec<String> {
    let mut fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let target = std::fs::read_link(e.path()).map(|t| t.display().to_string());
            format!(
                "{} -> {}",
                e.file_name().to_string_lossy(),
                target.unwrap_or_default()
            )
        })
        .collect();
    fds.sort();
    fds
}

#[test]
fn restarted_exec_failures_leave_no_descriptor_behind() {
    // OnFailure restarts the failing container until the Job's limit, each
    // restart after 500 ms: the init's descriptors are counted while it
    // waits, after the first run and after the last.
    let mut p = pod(vec![cmd("nosuch", &["nosuch"])]);
    p.restart_policy = RestartPolicy::OnFailure;
    p.backoff = Backoff {
        initial_ms: 500,
        max_ms: 500,
        reset_ms: 600_000,
    };
    p.backoff_limit = Some(4);
    let mut r = spawn(&p);
    let mut counted = Vec::new();
    for run in [1, 4] {
        r.wait_for(&format!("exit {run}"), |ev| exits(ev, "nosuch").len() >= run);
        // Inside the 500 ms backoff: the run's descriptors are gone, the
        // next run's not made yet.
        std::thread::sleep(Duration::from_millis(150));
        counted.push(open_fds(pod_init(&r)));
    }
    let o = r.finish();
    check(&o);
    let not_found = r#"exec: "nosuch": executable file not found in $PATH"#;
    assert_eq!(exits(&o.events, "nosuch"), vec![(127, Some(not_found.into())); 5]);
    assert_eq!(
        counted[0], counted[1],
        "the init's descriptors after the first and the fourth run"
    );
}
