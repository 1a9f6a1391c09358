//! Host tier: containers the plan refuses (the kubelet's
//! CreateContainerConfigError, e.g. runAsNonRoot with a root user) are
//! reported waiting when their turn comes, never created or run, never
//! restarted, and count as failed with exit code 126 (see common/mod.rs
//! for the fixture).

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use pod1_manifest::events::{Event, Phase};
use pod1_manifest::pod::RestartPolicy;

const WHY: &str = "container has runAsNonRoot and image will run as root";

fn refused(name: &str) -> pod1_manifest::plan::ContainerPlan {
    let mut c = sh(name, "echo ran anyway");
    c.refused = Some(WHY.into());
    c
}

/// The `container_waiting` events, as (container, reason, message).
fn waiting(o: &Outcome) -> Vec<(String, String, String)> {
    o.events
        .iter()
        .filter_map(|r| match &r.event {
            Event::ContainerWaiting {
                container,
                reason,
                message,
            } => Some((container.clone(), reason.clone(), message.clone())),
            _ => None,
        })
        .collect()
}

/// Whether any event but `container_waiting` names `container`.
fn ever_created(o: &Outcome, container: &str) -> bool {
    o.kinds().iter().any(|k| {
        !k.starts_with("waiting")
            && k.split_whitespace()
                .any(|w| w == container || w == format!("{container}:"))
    })
}

#[test]
fn a_refused_app_container_is_reported_waiting_and_never_runs() {
    // OnFailure restarts failed containers: not this one.
    let mut p = pod(vec![sh("ok", "echo ran"), refused("bad")]);
    p.restart_policy = RestartPolicy::OnFailure;
    let o = run(&p);
    check(&o);
    assert_eq!(
        waiting(&o),
        [(
            "bad".to_string(),
            "CreateContainerConfigError".to_string(),
            WHY.to_string()
        )]
    );
    assert!(!ever_created(&o, "bad"), "{:#?}", o.kinds());
    assert!(o.logs("bad").is_empty());
    assert_eq!(o.stdout("ok"), ["ran"]);
    assert_eq!(o.pod_exit(), (Phase::Failed, 126));
    assert_eq!(o.code, 126);
}

#[test]
fn a_refused_init_container_keeps_the_app_containers_from_starting() {
    // Under Always a failed init container is retried: a refused one is not.
    let mut p = pod(vec![sh("app", "echo app ran")]);
    p.init_containers = vec![sh("first", "echo first ran"), refused("second")];
    p.restart_policy = RestartPolicy::Always;
    let o = run(&p);
    check(&o);
    let kinds = o.kinds();
    let pos = |k: &str| o.position(k);
    // Its turn comes once the first init container has succeeded.
    assert!(pos("exited first 0") < pos("waiting second"), "{kinds:#?}");
    assert_eq!(waiting(&o).len(), 1);
    assert!(!ever_created(&o, "second"), "{kinds:#?}");
    assert!(!kinds.iter().any(|k| k == "started app"), "{kinds:#?}");
    assert!(o.logs("app").is_empty());
    assert_eq!(o.stdout("first"), ["first ran"]);
    assert_eq!(o.pod_exit(), (Phase::Failed, 126));
}

#[test]
fn a_refused_container_behind_a_failed_init_container_is_never_reported() {
    let mut p = pod(vec![refused("app")]);
    p.init_containers = vec![sh("init", "exit 3")];
    let o = run(&p);
    check(&o);
    assert!(waiting(&o).is_empty(), "{:#?}", o.kinds());
    assert_eq!(o.pod_exit(), (Phase::Failed, 3));
}

#[test]
fn a_refused_sidecar_keeps_everything_after_it_from_starting() {
    let mut side = refused("side");
    side.sidecar = true;
    let mut p = pod(vec![sh("app", "echo app ran")]);
    p.init_containers = vec![side, sh("next", "echo next ran")];
    let o = run(&p);
    check(&o);
    assert_eq!(waiting(&o).len(), 1);
    assert!(!ever_created(&o, "side"), "{:#?}", o.kinds());
    for c in ["next", "app"] {
        assert!(
            !o.kinds().iter().any(|k| k == &format!("started {c}")),
            "{c}: {:#?}",
            o.kinds()
        );
    }
    assert_eq!(o.pod_exit(), (Phase::Failed, 126));
}
