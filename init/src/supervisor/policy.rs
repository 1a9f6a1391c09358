//! The supervisor's decisions, as pure functions of what it knows: whose
//! turn it is (start a parked container, refuse one the plan refuses),
//! whether an exit restarts and after how long, and how the pod ends. No
//! system calls and no clock: mod.rs performs what these decide, and the
//! tests below drive them without root.

use alloc::vec::Vec;

use pod1_manifest::events::Phase;
use pod1_manifest::plan::Backoff;
use pod1_manifest::pod::RestartPolicy;

/// The exit code a refused container counts with: 126, "cannot be
/// executed", as the events' contract and docker give it.
pub const REFUSED_EXIT_CODE: i32 = 126;

/// The exit code of a pod stopped by its `activeDeadlineSeconds`: 124,
/// "timed out", as `pod1 run --timeout` and timeout(1) give it.
pub const DEADLINE_EXIT_CODE: i32 = 124;

/// Where a container is, as far as the policy cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Not created: refused by the plan, or not prepared yet.
    Pending,
    /// Prepared and parked before exec.
    Created,
    /// Its command runs.
    Running,
    /// Waiting to be restarted.
    Backoff,
    /// Will not run again.
    Done,
}

/// One container, as the policy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// An init container.
    pub init: bool,
    /// Where it is.
    pub status: Status,
    /// The plan refuses it (a CreateContainerConfigError).
    pub refused: bool,
    /// Done, and its last run failed (or it was refused).
    pub failed: bool,
}

/// What to do now with container `usize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Release the parked container.
    Start(usize),
    /// Report it refused and count it as failed: it is never created.
    Refuse(usize),
}

/// Whose turn it is, as the kubelet's SyncPod orders containers: the first
/// init container not done yet, alone; once every init container has
/// succeeded, every app container at once. A parked container starts; a
/// refused one is refused when its turn comes (so a refused app container
/// behind a failing init container is never reported). A failed init
/// container ends every turn: the app containers never start.
pub fn turn(slots: &[Slot]) -> Vec<Action> {
    if slots
        .iter()
        .any(|s| s.init && s.status == Status::Done && s.failed)
    {
        return Vec::new();
    }
    let act = |(i, s): (usize, &Slot)| match (s.status, s.refused) {
        (Status::Created, _) => Some(Action::Start(i)),
        (Status::Pending, true) => Some(Action::Refuse(i)),
        _ => None,
    };
    match slots.iter().position(|s| s.init && s.status != Status::Done) {
        Some(i) => act((i, &slots[i])).into_iter().collect(),
        None => slots
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.init)
            .filter_map(act)
            .collect(),
    }
}

/// Whether a container whose run ended with `code` runs again. Never while
/// the pod stops; init containers under Always restart on failure only
/// (the kubelet's rule). A refused container never gets here: its
/// configuration cannot change, so a retry would be refused again. A Job's
/// pod (`limit`, its backoffLimit) restarts only while the pod's restarts
/// so far (`restarted`) are fewer, as the Job controller counts them.
pub fn restarts(
    policy: RestartPolicy,
    init: bool,
    code: i32,
    stopping: bool,
    restarted: u32,
    limit: Option<u32>,
) -> bool {
    !stopping
        && limit.map_or(true, |l| restarted < l)
        && match policy {
            RestartPolicy::Always => !init || code != 0,
            RestartPolicy::OnFailure => code != 0,
            RestartPolicy::Never => false,
        }
}

/// The kubelet's restart backoff: given the container's current `delay`
/// and how long its run lasted, returns (how long to wait now, the delay
/// after that). A run of `reset_ms` or more starts over from `initial_ms`;
/// each restart doubles the delay, capped at `max_ms` (never below
/// `initial_ms`).
pub fn backoff(b: Backoff, delay: u64, ran_ms: u64) -> (u64, u64) {
    let wait = if ran_ms >= b.reset_ms { b.initial_ms } else { delay };
    (wait, wait.saturating_mul(2).min(b.max_ms.max(b.initial_ms)))
}

/// How the pod ends, from the codes of every container's last run in the
/// order they ended: the first failure's code (0 when none failed), and
/// Failed if anything failed or the pod was stopped.
pub fn result(finals: &[i32], stopped: bool) -> (Phase, i32) {
    let code = finals.iter().copied().find(|c| *c != 0).unwrap_or(0);
    match code == 0 && !stopped {
        true => (Phase::Succeeded, 0),
        false => (Phase::Failed, code),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Status::{Created, Done, Pending, Running};

    fn slot(init: bool, status: Status) -> Slot {
        Slot {
            init,
            status,
            refused: false,
            failed: false,
        }
    }

    fn refused(init: bool) -> Slot {
        Slot {
            refused: true,
            ..slot(init, Pending)
        }
    }

    fn failed(init: bool) -> Slot {
        Slot {
            failed: true,
            ..slot(init, Done)
        }
    }

    #[test]
    fn init_containers_go_one_at_a_time_then_every_app_container() {
        let app = slot(false, Created);
        let mut slots = [slot(true, Created), slot(true, Created), app, app];
        assert_eq!(turn(&slots), [Action::Start(0)]);
        slots[0].status = Running;
        assert_eq!(turn(&slots), []);
        slots[0].status = Status::Backoff;
        assert_eq!(turn(&slots), []);
        slots[0].status = Done;
        assert_eq!(turn(&slots), [Action::Start(1)]);
        slots[1].status = Done;
        assert_eq!(turn(&slots), [Action::Start(2), Action::Start(3)]);
        slots[2].status = Running;
        assert_eq!(turn(&slots), [Action::Start(3)]);
    }

    #[test]
    fn a_refused_container_is_refused_at_its_turn_and_not_before() {
        // Behind an init container: nothing until that one succeeded.
        let mut slots = [slot(true, Created), slot(false, Created), refused(false)];
        assert_eq!(turn(&slots), [Action::Start(0)]);
        slots[0].status = Done;
        assert_eq!(turn(&slots), [Action::Start(1), Action::Refuse(2)]);
        // The supervisor marks it done and failed: nothing more to do.
        slots[1].status = Running;
        slots[2] = failed(false);
        assert_eq!(turn(&slots), []);
    }

    #[test]
    fn a_refused_init_container_means_the_app_containers_never_start() {
        let mut slots = [
            slot(true, Done),
            refused(true),
            slot(true, Created),
            slot(false, Created),
        ];
        assert_eq!(turn(&slots), [Action::Refuse(1)]);
        slots[1] = failed(true);
        assert_eq!(turn(&slots), []);
        // Likewise after any init container failed for good.
        let slots = [failed(true), slot(false, Created), refused(false)];
        assert_eq!(turn(&slots), []);
    }

    #[test]
    fn restart_policies_as_the_kubelet_applies_them() {
        use RestartPolicy::*;
        let table = [
            // (policy, init, code, restarts)
            (Always, false, 0, true),
            (Always, false, 3, true),
            (Always, true, 0, false),
            (Always, true, 3, true),
            (OnFailure, false, 0, false),
            (OnFailure, false, 137, true),
            (OnFailure, true, 1, true),
            (Never, false, 1, false),
            (Never, true, 1, false),
        ];
        for (policy, init, code, want) in table {
            assert_eq!(
                restarts(policy, init, code, false, 0, None),
                want,
                "{policy:?} {init} {code}"
            );
            assert!(
                !restarts(policy, init, code, true, 0, None),
                "stopping: {policy:?} {init} {code}"
            );
        }
    }

    #[test]
    fn a_jobs_backoff_limit_counts_the_pods_restarts() {
        use RestartPolicy::OnFailure;
        assert!(restarts(OnFailure, false, 1, false, 0, Some(2)));
        assert!(restarts(OnFailure, false, 1, false, 1, Some(2)));
        assert!(!restarts(OnFailure, false, 1, false, 2, Some(2)));
        assert!(!restarts(OnFailure, false, 1, false, 0, Some(0)));
        assert!(restarts(OnFailure, false, 1, false, 1000, None));
    }

    #[test]
    fn backoff_doubles_to_its_cap_and_resets_after_a_long_run() {
        let b = Backoff {
            initial_ms: 10,
            max_ms: 35,
            reset_ms: 1000,
        };
        let mut delay = b.initial_ms;
        let mut waits = Vec::new();
        for _ in 0..5 {
            let (wait, next) = backoff(b, delay, 0);
            waits.push(wait);
            delay = next;
        }
        assert_eq!(waits, [10, 20, 35, 35, 35]);
        assert_eq!(backoff(b, delay, 1000), (10, 20));
        // A cap below the first delay keeps the first delay.
        let low = Backoff { max_ms: 1, ..b };
        assert_eq!(backoff(low, 10, 0), (10, 10));
        assert_eq!(backoff(b, u64::MAX, 0), (u64::MAX, 35));
    }

    #[test]
    fn the_first_failure_decides_the_pods_code() {
        assert_eq!(result(&[], false), (Phase::Succeeded, 0));
        assert_eq!(result(&[0, 0], false), (Phase::Succeeded, 0));
        assert_eq!(result(&[0, REFUSED_EXIT_CODE, 1], false), (Phase::Failed, 126));
        assert_eq!(result(&[0, 137, 126], false), (Phase::Failed, 137));
        // A stopped pod is Failed, with its containers' own codes.
        assert_eq!(result(&[0, 0], true), (Phase::Failed, 0));
        assert_eq!(result(&[143], true), (Phase::Failed, 143));
    }
}
