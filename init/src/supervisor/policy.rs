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
    /// An init container with `restartPolicy: Always`.
    pub sidecar: bool,
    /// It has been started at least once: its command ran, its postStart
    /// hook succeeded and its startup probe passed.
    pub started: bool,
    /// It has a postStart hook.
    pub post_start: bool,
    /// Its postStart hook runs now.
    pub post_starting: bool,
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
/// init container not done yet, alone (a sidecar counts as done once it
/// has started: it keeps running beside what follows); once every init
/// container has succeeded (or, a sidecar, started), every app container
/// in order, each as soon as the one before it is past its postStart hook
/// (the kubelet runs a postStart hook before it starts the next
/// container). A parked container starts; a refused one is refused when its
/// turn comes (so a refused app container behind a failing init container
/// is never reported). A restarted sidecar starts again whenever it is
/// parked. A failed init container ends every turn: the app containers
/// never start.
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
    let restarted = slots
        .iter()
        .enumerate()
        .filter(|(_, s)| s.sidecar && s.started && s.status == Status::Created)
        .map(|(i, _)| Action::Start(i));
    let waiting = |s: &&Slot| s.init && s.status != Status::Done && !(s.sidecar && s.started);
    let turn: Vec<Action> = match slots.iter().position(|s| waiting(&s)) {
        Some(i) => act((i, &slots[i])).into_iter().collect(),
        None => {
            let mut actions = Vec::new();
            for (i, s) in slots.iter().enumerate().filter(|(_, s)| !s.init) {
                if s.post_starting {
                    break;
                }
                let action = act((i, s));
                actions.extend(action);
                if s.post_start && matches!(action, Some(Action::Start(_))) {
                    break;
                }
            }
            actions
        }
    };
    restarted.chain(turn).collect()
}

/// Once every container but the sidecars is done (the app containers
/// ended, or will never run), the sidecars stop, last first, each once
/// the one after it is done, as the kubelet stops them: the running
/// sidecar to stop now, if any.
pub fn sidecar_to_stop(slots: &[Slot]) -> Option<usize> {
    if slots.iter().any(|s| !s.sidecar && s.status != Status::Done) {
        return None;
    }
    let last = slots
        .iter()
        .rposition(|s| s.sidecar && s.status != Status::Done)?;
    (slots[last].status == Status::Running).then_some(last)
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

/// The kubelet's restart backoff (its `flowcontrol.Backoff` per
/// container, keyed on the container's exit time): a container that exits
/// at `now` restarts at the returned time, and its next exit waits the
/// returned delay. `last` is its previous exit with the delay set then.
/// The first exit, and the first `reset_ms` or more after the previous
/// one, restart at once and set the delay to `initial_ms`; any other waits
/// its delay from the exit and doubles it, capped at `max_ms` (never below
/// `initial_ms`). So a container that keeps failing restarts after 0, 10,
/// 20, 40 ... 300 s.
pub fn backoff(b: Backoff, last: Option<(u64, u64)>, now: u64) -> (u64, u64) {
    match last {
        Some((exit, delay)) if now.saturating_sub(exit) <= b.reset_ms => (
            now.saturating_add(delay),
            delay.saturating_mul(2).min(b.max_ms.max(b.initial_ms)),
        ),
        _ => (now, b.initial_ms),
    }
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
            sidecar: false,
            started: false,
            post_start: false,
            post_starting: false,
        }
    }

    fn sidecar(status: Status, started: bool) -> Slot {
        Slot {
            sidecar: true,
            started,
            ..slot(true, status)
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
    fn a_sidecar_lets_the_next_start_once_it_has_started_and_restarts_any_time() {
        let app = slot(false, Created);
        let mut slots = [sidecar(Created, false), slot(true, Created), app];
        assert_eq!(turn(&slots), [Action::Start(0)]);
        slots[0] = sidecar(Running, true);
        assert_eq!(turn(&slots), [Action::Start(1)]);
        slots[1].status = Done;
        assert_eq!(turn(&slots), [Action::Start(2)]);
        slots[2].status = Running;
        // It exited and was made again: it starts at once.
        slots[0] = sidecar(Created, true);
        assert_eq!(turn(&slots), [Action::Start(0)]);
        // Waiting to restart, it does not hold the next one up.
        let slots = [sidecar(Status::Backoff, true), slot(true, Created)];
        assert_eq!(turn(&slots), [Action::Start(1)]);
    }

    #[test]
    fn app_containers_start_in_order_each_after_the_post_start_hook_before_it() {
        let hooked = Slot {
            post_start: true,
            ..slot(false, Created)
        };
        let mut slots = [slot(false, Created), hooked, slot(false, Created)];
        // The first two at once; the third waits for the second's hook.
        assert_eq!(turn(&slots), [Action::Start(0), Action::Start(1)]);
        slots[0].status = Running;
        slots[1].status = Running;
        slots[1].post_starting = true;
        assert_eq!(turn(&slots), []);
        slots[1].post_starting = false;
        assert_eq!(turn(&slots), [Action::Start(2)]);
        // A hook that failed killed its container: the next starts anyway.
        slots[1].status = Done;
        assert_eq!(turn(&slots), [Action::Start(2)]);
    }

    #[test]
    fn a_sidecar_not_started_yet_holds_the_next_init_container() {
        // Running, but its postStart hook or startup probe has not passed.
        let slots = [sidecar(Running, false), slot(true, Created), slot(false, Created)];
        assert_eq!(turn(&slots), []);
        // Restarted before it ever started (its startup probe failed): it
        // starts again, and still holds the next one.
        let slots = [sidecar(Created, false), slot(true, Created)];
        assert_eq!(turn(&slots), [Action::Start(0)]);
    }

    #[test]
    fn a_refused_sidecar_holds_everything_after_it() {
        let refused_sidecar = Slot {
            refused: true,
            failed: true,
            ..sidecar(Done, false)
        };
        assert_eq!(
            turn(&[refused_sidecar, slot(true, Created), slot(false, Created)]),
            []
        );
    }

    #[test]
    fn sidecars_stop_last_first_once_the_rest_is_done() {
        let mut slots = [
            sidecar(Running, true),
            sidecar(Running, true),
            slot(false, Running),
        ];
        assert_eq!(sidecar_to_stop(&slots), None);
        slots[2].status = Done;
        assert_eq!(sidecar_to_stop(&slots), Some(1));
        slots[1].status = Done;
        assert_eq!(sidecar_to_stop(&slots), Some(0));
        slots[0].status = Done;
        assert_eq!(sidecar_to_stop(&slots), None);
        // One that is not running (waiting to restart) is given up by the
        // supervisor, not signalled.
        let slots = [
            sidecar(Running, true),
            sidecar(Status::Backoff, true),
            slot(false, Done),
        ];
        assert_eq!(sidecar_to_stop(&slots), None);
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
        // A container that fails 1 ms after each start, from t=100.
        let (mut last, mut now, mut waits) = (None, 100, Vec::new());
        for _ in 0..6 {
            let (at, delay) = backoff(b, last, now);
            waits.push(at - now);
            last = Some((now, delay));
            now = at + 1;
        }
        assert_eq!(waits, [0, 10, 20, 35, 35, 35]);
        // The wait counts from the exit, however long the run was.
        assert_eq!(backoff(b, Some((100, 20)), 150), (170, 35));
        // Past reset_ms since the previous exit: as new.
        assert_eq!(backoff(b, Some((100, 35)), 1101), (1101, 10));
        assert_eq!(backoff(b, Some((100, 35)), 1100), (1135, 35));
        // A cap below the first delay keeps the first delay.
        let low = Backoff { max_ms: 1, ..b };
        assert_eq!(backoff(low, Some((0, 10)), 0), (10, 10));
        assert_eq!(backoff(b, Some((0, u64::MAX)), 5), (u64::MAX, 35));
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
