//! Host tier: who a container's process is, as the kernel reports it in
//! /proc/self/status: supplementary groups, no_new_privs, and the seccomp
//! filter installed whichever way no_new_privs goes (see common/mod.rs for
//! the fixture).

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use pod1_manifest::events::Phase;
use pod1_manifest::plan::User;

const STATUS: &str = "grep -E '^(Uid|Gid|Groups|NoNewPrivs|Seccomp):' /proc/self/status";

#[test]
fn supplementary_groups_are_exactly_the_plans() {
    let mut listed = sh("listed", &format!("{STATUS}; id -G"));
    listed.user = User {
        uid: 1000,
        gid: 1000,
        additional_gids: vec![30000, 10, 20],
    };
    // The init runs as root with whatever groups the test runner has: an
    // empty list must clear them, not keep them.
    let none = sh("none", STATUS);
    let o = run(&pod(vec![listed, none]));
    check(&o);
    let out = o.stdout("listed");
    assert_eq!(status_value(&out, "Gid"), "1000 1000 1000 1000", "{out:?}");
    // The kernel keeps them sorted.
    assert_eq!(status_value(&out, "Groups"), "10 20 30000", "{out:?}");
    assert_eq!(out.last().unwrap(), "1000 10 20 30000", "{out:?}");
    assert_eq!(status_value(&o.stdout("none"), "Groups"), "");
    assert_eq!(o.pod_exit(), (Phase::Succeeded, 0));
}

#[test]
fn no_new_privs_only_when_the_plan_asks_and_seccomp_either_way() {
    // The same filter (mkdir refused) in four containers: with and without
    // no_new_privs, as root and as a user without capabilities. Without
    // no_new_privs the filter can only be installed while the process still
    // holds CAP_SYS_ADMIN, before the uid changes: the user's container is
    // the one that fails if the order is wrong.
    let script = format!("{STATUS}; mkdir /tmp/made 2>/dev/null && echo mkdir=allowed || echo mkdir=refused");
    let nobody = User {
        uid: 65534,
        gid: 65534,
        additional_gids: vec![],
    };
    let mut containers = Vec::new();
    for (name, nnp, user) in [
        ("nnp-root", true, None),
        ("escalate-root", false, None),
        ("nnp-user", true, Some(&nobody)),
        ("escalate-user", false, Some(&nobody)),
    ] {
        let mut c = sh(name, &script);
        c.no_new_privileges = nnp;
        c.seccomp = Some(deny_mkdir(0));
        if let Some(u) = user {
            c.user = u.clone();
        }
        containers.push(c);
    }
    let mut free = sh("free", &script);
    free.no_new_privileges = false;
    containers.push(free);
    let mut p = pod(containers);
    // /tmp is world-writable in the image, so the user could mkdir there.
    p.programs = vec![deny_mkdir_program()];
    let o = run(&p);
    check(&o);
    for (name, nnp, uid) in [
        ("nnp-root", "1", "0"),
        ("escalate-root", "0", "0"),
        ("nnp-user", "1", "65534"),
        ("escalate-user", "0", "65534"),
    ] {
        let out = o.stdout(name);
        assert_eq!(o.exits(name), [(0, None)], "{name}: {:?}", o.logs(name));
        assert_eq!(
            status_value(&out, "Uid").split(' ').next(),
            Some(uid),
            "{name}: {out:?}"
        );
        assert_eq!(status_value(&out, "NoNewPrivs"), nnp, "{name}: {out:?}");
        assert_eq!(status_value(&out, "Seccomp"), "2", "{name}: {out:?}");
        assert_eq!(out.last().unwrap(), "mkdir=refused", "{name}: {out:?}");
    }
    let free = o.stdout("free");
    assert_eq!(status_value(&free, "NoNewPrivs"), "0", "{free:?}");
    assert_eq!(status_value(&free, "Seccomp"), "0", "{free:?}");
    assert_eq!(free.last().unwrap(), "mkdir=allowed", "{free:?}");
}
