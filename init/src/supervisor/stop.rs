//! Stopping: the pod (a signal, the host, its deadline), its sidecars
//! once the app containers are done, and the signals themselves.

use alloc::format;

use rustix::process::Signal;

use super::{policy, Ctr, State, Status, Supervisor};
use crate::console::{self, now_ms};
use crate::sys::{Errno, Sig};

impl Supervisor {
    /// Once every other container is done, the sidecars stop, last first,
    /// each with its stop signal once the one after it is done; the pod's
    /// grace period bounds them all (SIGKILL after it).
    pub(super) fn stop_sidecars(&mut self) {
        let slots = self.slots();
        let mains_done = slots.iter().all(|s| s.sidecar || s.status == Status::Done);
        if !mains_done || slots.iter().all(|s| !s.sidecar || s.status == Status::Done) {
            return;
        }
        if self.stop_deadline.is_none() {
            let grace = self.pod.plan.termination_grace_period_seconds;
            console::log(&format!(
                "the app containers have ended: stopping the sidecars (grace period {grace} s)"
            ));
            self.stop_deadline = Some(now_ms().saturating_add(grace.saturating_mul(1000)));
            // Sidecars waiting to restart never run again.
            self.abort_waiting();
        }
        if let (Some(i), Some(kill_at)) = (policy::sidecar_to_stop(&self.slots()), self.stop_deadline) {
            if self.sidecar_stopping != Some(i) {
                self.sidecar_stopping = Some(i);
                self.stop_container(i, kill_at);
            }
        }
    }

    /// Stops the pod: SIGTERM now, SIGKILL after the grace period.
    /// The sidecars follow once the other containers are done.
    pub(super) fn stop(&mut self, why: &str) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let grace = self.pod.plan.termination_grace_period_seconds;
        console::log(&format!("{why}: stopping the pod (grace period {grace} s)"));
        // The sidecars' own shutdown may have begun: its deadline stands.
        self.stop_deadline
            .get_or_insert(now_ms().saturating_add(grace.saturating_mul(1000)));
        self.abort_waiting();
        let kill_at = self.stop_deadline.unwrap_or_default();
        for i in 0..self.ctrs.len() {
            if !self.ctrs[i].plan.sidecar {
                self.stop_container(i, kill_at);
            }
        }
    }

    /// Sends container `c`, if it runs, `sig`, or with `None` its own stop
    /// signal (`lifecycle.stopSignal`, the image's, or SIGTERM).
    pub(super) fn signal(&self, c: &Ctr, sig: Option<Signal>) {
        let State::Running { pid, .. } = c.state else {
            return;
        };
        // A number outside Linux's signals (a plan pod1 did not write)
        // stops with SIGTERM.
        let raw = match sig {
            Some(s) => s.as_raw(),
            None if (1..=64).contains(&c.plan.stop_signal) => c.plan.stop_signal,
            None => libc::SIGTERM,
        };
        // A container's command is PID 1 of its PID namespace: it gets a
        // signal only if it handles it (as under Docker), and SIGKILL ends
        // its whole namespace. kill(2) through libc: rustix takes only the
        // signals it names, not the real-time ones a stop signal may be.
        // SAFETY: kill(2) takes no pointers.
        if pid > 0 && unsafe { libc::kill(pid, raw) } != 0 {
            let e = Errno::last();
            console::debug(&format!("kill({pid}, {}): {e}", Sig(raw)));
        }
    }
}
