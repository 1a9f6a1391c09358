//! Probes and lifecycle hooks in the supervisor's loop. None of them
//! blocks it: an exec check is a child process (reaped like any other)
//! with a non-blocking output pipe, an HTTP or TCP check a non-blocking
//! socket ([`NetCheck`]), a sleep a timer; every one has a deadline, at
//! which an exec check's process is killed.
//!
//! What a result means is decided by [`Prober`] (pure); this module starts
//! checks, collects their ends and acts: the container's start after its
//! postStart hook, its readiness events, the kill after a liveness or
//! startup failure, the stop signal after its preStop hook.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use pod1_manifest::events::{Event, HookKind, ProbeKind};
use pod1_manifest::plan::{Handler, ProbePlan};
use pod1_manifest::pod::RestartPolicy;
use rustix::event::PollFlags;
use rustix::fd::BorrowedFd;

use super::execcheck::ExecCheck;
use super::netcheck::{self, NetCheck};
use super::prober::Prober;
use super::{State, Stopping, Supervisor};
use crate::channel;
use crate::console::{self, now_ms};
use crate::exec;

/// The most exits of unknown children kept for exec checks whose report
/// has not been read ([`Supervisor::unclaimed_exit`]).
const UNCLAIMED_MAX: usize = 64;

/// The least time a container gets between its stop signal and SIGKILL,
/// whatever the grace period or its preStop hook left of it (the
/// kubelet's `minimumGracePeriodInSeconds`).
const MIN_GRACE_MS: u64 = 2_000;

/// What a check is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Purpose {
    Probe(ProbeKind),
    PostStart,
    PreStop,
}

impl Purpose {
    /// A lifecycle hook's (not a probe's).
    fn is_hook(self) -> bool {
        !matches!(self, Purpose::Probe(_))
    }
}

#[derive(Debug)]
enum Work {
    /// A command in the container.
    Exec(ExecCheck),
    /// An HTTP or TCP check.
    Net(NetCheck),
    /// A sleep hook: done at its deadline.
    Sleep,
}

/// A check under way.
#[derive(Debug)]
pub(super) struct Check {
    /// Unique in the pod's life.
    pub(super) id: u64,
    ctr: usize,
    purpose: Purpose,
    /// When it fails for taking too long (a sleep: when it is done).
    deadline: Option<u64>,
    work: Work,
}

impl Check {
    /// What to poll for it.
    pub(super) fn poll_fd(&self) -> Option<(BorrowedFd<'_>, PollFlags)> {
        match &self.work {
            Work::Exec(e) => e.poll_fd(),
            Work::Net(n) => Some(n.poll_fd()),
            _ => None,
        }
    }
}

/// How a check ended.
#[derive(Debug)]
pub(super) enum Outcome {
    Success,
    Failure(String),
    /// It could not run or was cut short by the container's end (its
    /// process killed with the container's PID namespace): a probe drops
    /// it, as the kubelet throws away a prober error; a hook fails.
    Error(String),
}

impl Supervisor {
    /// The earliest time a check or a probe needs the loop: a deadline, a
    /// due probe, a kill after a stop's grace period.
    pub(super) fn checks_due(&self) -> Option<u64> {
        let deadlines = self.checks.iter().filter_map(|c| c.deadline);
        let probes = self
            .ctrs
            .iter()
            .enumerate()
            .flat_map(|(i, c)| c.probers.iter().map(move |p| (i, p)))
            .filter(|(i, p)| self.may_probe(*i, p.kind))
            .filter_map(|(_, p)| p.next_at());
        let kills = self
            .ctrs
            .iter()
            .filter_map(|c| c.stopping.filter(|s| !s.killed).map(|s| s.kill_at));
        deadlines.chain(probes).chain(kills).min()
    }

    /// Whether container `i`'s `kind` probe may run a check now: the
    /// container runs, has no check of that probe under way, and
    /// (liveness, readiness) its startup probe passed. Once the pod or the
    /// container is being stopped only readiness goes on, as the kubelet
    /// stops the other probes of a terminating pod.
    fn may_probe(&self, i: usize, kind: ProbeKind) -> bool {
        let c = &self.ctrs[i];
        let gated = kind != ProbeKind::Startup
            && c.probers
                .iter()
                .any(|p| p.kind == ProbeKind::Startup && p.result() != Some(true));
        let stopping = c.stopping.is_some() || self.stop_deadline.is_some();
        matches!(c.state, State::Running { .. })
            && (kind == ProbeKind::Readiness || !stopping)
            && !gated
            && !self
                .checks
                .iter()
                .any(|k| k.ctr == i && k.purpose == Purpose::Probe(kind))
    }

    /// Starts every probe check that is due, kills what outlived its grace
    /// period, and ends what outlived its deadline.
    pub(super) fn run_checks(&mut self) {
        let now = now_ms();
        // By id: a check's end may end or begin others.
        let expired: Vec<u64> = self
            .checks
            .iter()
            .filter(|c| c.deadline.is_some_and(|d| d <= now))
            .map(|c| c.id)
            .collect();
        for id in expired {
            if let Some(k) = self.checks.iter().position(|c| c.id == id) {
                let check = self.checks.swap_remove(k);
                let outcome = match &check.work {
                    Work::Sleep => Outcome::Success,
                    Work::Net(n) => Outcome::Failure(n.timed_out()),
                    Work::Exec(e) => Outcome::Failure(e.timed_out()),
                };
                self.drop_check(check.work);
                self.finished(check.ctr, check.purpose, outcome);
            }
        }
        for i in 0..self.ctrs.len() {
            if let Some(s) = self.ctrs[i].stopping.filter(|s| !s.killed && s.kill_at <= now) {
                self.ctrs[i].stopping = Some(Stopping { killed: true, ..s });
                self.signal(&self.ctrs[i], Some(rustix::process::Signal::KILL));
            }
            for p in 0..self.ctrs[i].probers.len() {
                let kind = self.ctrs[i].probers[p].kind;
                if self.ctrs[i].probers[p].next_at().is_some_and(|t| t <= now) && self.may_probe(i, kind) {
                    self.ctrs[i].probers[p].began(now);
                    let plan = self.probe_plan(i, kind).cloned();
                    if let Some(plan) = plan {
                        let timeout = u64::from(plan.timeout_seconds.max(1)) * 1000;
                        self.begin(i, Purpose::Probe(kind), &plan.handler, Some(now + timeout));
                    }
                }
            }
        }
    }

    fn probe_plan(&self, i: usize, kind: ProbeKind) -> Option<&ProbePlan> {
        let checks = &self.ctrs[i].plan.checks;
        match kind {
            ProbeKind::Liveness => checks.liveness.as_ref(),
            ProbeKind::Readiness => checks.readiness.as_ref(),
            ProbeKind::Startup => checks.startup.as_ref(),
        }
    }

    /// Begins `handler` for container `i`; one that cannot even begin
    /// ends at once, failed.
    pub(super) fn begin(&mut self, i: usize, purpose: Purpose, handler: &Handler, deadline: Option<u64>) {
        let work = match handler {
            Handler::Exec { command } => {
                let State::Running { pid, .. } = self.ctrs[i].state else {
                    return self.finished(i, purpose, Outcome::Error("the container is not running".into()));
                };
                let c = &self.ctrs[i];
                let target = exec::Target {
                    pid,
                    plan: &c.plan,
                    programs: &self.pod.plan.programs,
                    cgroup_procs: self.pod.cgroups.procs(&c.plan.name),
                    oom_score_adj: self.oom_score_adj(i),
                };
                match exec::spawn(&target, command) {
                    Ok(e) => {
                        self.aborted.push(e.helper);
                        Work::Exec(ExecCheck::new(e, command))
                    }
                    Err(why) => return self.finished(i, purpose, Outcome::Error(why)),
                }
            }
            Handler::Http { .. } | Handler::Tcp { .. } => {
                let client = match purpose.is_hook() {
                    true => netcheck::Client::Hook,
                    false => netcheck::Client::Probe,
                };
                match NetCheck::start(handler, self.pod.sandbox.net.as_deref(), client) {
                    Ok(n) => Work::Net(n),
                    Err(why) => return self.finished(i, purpose, Outcome::Failure(why)),
                }
            }
            Handler::Sleep { seconds } => {
                let until = now_ms().saturating_add(seconds.saturating_mul(1000));
                self.checks_made += 1;
                self.checks.push(Check {
                    id: self.checks_made,
                    ctr: i,
                    purpose,
                    deadline: Some(deadline.map_or(until, |d| d.min(until))),
                    work: Work::Sleep,
                });
                return;
            }
        };
        self.checks_made += 1;
        self.checks.push(Check {
            id: self.checks_made,
            ctr: i,
            purpose,
            deadline,
            work,
        });
    }

    /// Check `k`'s descriptor was ready.
    pub(super) fn check_ready(&mut self, k: usize) {
        let hook = self.checks[k].purpose.is_hook();
        let unclaimed = &mut self.unclaimed;
        let outcome = match &mut self.checks[k].work {
            // A hook's request succeeds once answered, whatever the status
            // (the kubelet's HTTP hook handler does not look at it).
            Work::Net(n) => n.advance().map(|o| match (o, n.status()) {
                (Ok(()), _) => Outcome::Success,
                (Err(_), Some(_)) if hook => Outcome::Success,
                (Err(why), _) => Outcome::Failure(why),
            }),
            Work::Exec(e) => match e.ready() {
                Some(o) => Some(o),
                // The command the report names may have ended already.
                None => e.pid().and_then(|pid| {
                    let at = unclaimed.iter().position(|u| u.0 == pid)?;
                    let (_, code, signal) = unclaimed.swap_remove(at);
                    Some(e.ended(code, signal))
                }),
            },
            Work::Sleep => None,
        };
        if let Some(outcome) = outcome {
            let check = self.checks.swap_remove(k);
            self.drop_check(check.work);
            self.finished(check.ctr, check.purpose, outcome);
        }
    }

    /// A child ended: if it was an exec check's command, that check ends.
    pub(super) fn check_exited(&mut self, pid: i32, code: i32, signal: Option<i32>) -> bool {
        let Some(k) = self
            .checks
            .iter()
            .position(|c| matches!(&c.work, Work::Exec(e) if e.pid() == Some(pid)))
        else {
            return false;
        };
        let mut check = self.checks.swap_remove(k);
        let outcome = match &mut check.work {
            Work::Exec(e) => e.ended(code, signal),
            _ => return true,
        };
        self.finished(check.ctr, check.purpose, outcome);
        true
    }

    /// A child no one claims ended: if an exec check still waits for its
    /// helper's report, it may be that check's command, which ended before
    /// the report was read; its exit is kept for the report (the last
    /// [`UNCLAIMED_MAX`] only: orphans of a shared PID namespace come here
    /// too).
    pub(super) fn unclaimed_exit(&mut self, pid: i32, code: i32, signal: Option<i32>) {
        if self
            .checks
            .iter()
            .any(|c| matches!(&c.work, Work::Exec(e) if e.pid().is_none()))
        {
            if self.unclaimed.len() >= UNCLAIMED_MAX {
                self.unclaimed.remove(0);
            }
            self.unclaimed.push((pid, code, signal));
        }
    }

    /// Ends a check's work: an exec check's process is killed and its
    /// exit left to be reaped quietly; sockets and pipes close.
    fn drop_check(&mut self, work: Work) {
        if let Work::Exec(e) = work {
            // A live check's command is never reaped yet (its exit ends
            // the check), so its pid is still its own.
            if let Some(pid) = e.pid() {
                // SAFETY: kill(2) takes no pointers.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                self.aborted.push(pid);
            }
        }
    }

    /// Gives up every check of container `i` (it ended, or is being
    /// stopped: no probe runs then).
    pub(super) fn cancel_checks(&mut self, i: usize) {
        let mut k = 0;
        while k < self.checks.len() {
            if self.checks[k].ctr == i {
                let check = self.checks.swap_remove(k);
                self.drop_check(check.work);
            } else {
                k += 1;
            }
        }
    }

    /// A check ended: act on it.
    fn finished(&mut self, i: usize, purpose: Purpose, outcome: Outcome) {
        let name = self.ctrs[i].plan.name.clone();
        match purpose {
            Purpose::Probe(kind) => self.probed(i, kind, outcome),
            Purpose::PostStart => {
                self.ctrs[i].post_starting = false;
                match outcome {
                    Outcome::Success => self.running(i),
                    Outcome::Failure(message) | Outcome::Error(message) => {
                        console::debug(&format!("container {name}: postStart hook failed: {message}"));
                        channel::event(Event::HookFailed {
                            container: name.clone(),
                            hook: HookKind::PostStart,
                            message,
                        });
                        channel::event(Event::ContainerKilling {
                            container: name,
                            message: "FailedPostStartHook".into(),
                        });
                        let grace = self.pod.plan.termination_grace_period_seconds;
                        self.stop_container(i, now_ms().saturating_add(grace.saturating_mul(1000)));
                    }
                }
            }
            Purpose::PreStop => {
                if let Outcome::Failure(message) | Outcome::Error(message) = outcome {
                    console::debug(&format!("container {name}: preStop hook failed: {message}"));
                    channel::event(Event::HookFailed {
                        container: name,
                        hook: HookKind::PreStop,
                        message,
                    });
                }
                self.send_stop_signal(i);
            }
        }
    }

    /// A probe's check of container `i` ended.
    fn probed(&mut self, i: usize, kind: ProbeKind, outcome: Outcome) {
        let c = &mut self.ctrs[i];
        let Some(p) = c.probers.iter_mut().find(|p| p.kind == kind) else {
            return;
        };
        let (ok, message) = match outcome {
            Outcome::Success => (true, String::new()),
            Outcome::Failure(why) => (false, why),
            // Dropped, as the kubelet drops a prober error; said once a run.
            Outcome::Error(why) => {
                let line = format!("container {}: {} probe errored: {why}", c.plan.name, kind.title());
                match p.errored() {
                    true => console::log(&line),
                    false => console::debug(&line),
                }
                return;
            }
        };
        if !ok {
            console::debug(&format!(
                "container {}: {} probe failed: {message}",
                c.plan.name,
                kind.title()
            ));
        }
        let Some(success) = p.record(ok) else {
            return;
        };
        channel::event(Event::ContainerProbe {
            container: c.plan.name.clone(),
            probe: kind,
            success,
            message,
        });
        match (kind, success) {
            (ProbeKind::Startup, true) => c.started = true,
            (ProbeKind::Liveness | ProbeKind::Startup, false) => self.kill_unhealthy(i, kind),
            _ => {}
        }
    }

    /// A liveness or startup probe failed: the container is killed (its
    /// preStop hook, its stop signal, SIGKILL after the probe's grace
    /// period or the pod's) and restarts unless the pod's restartPolicy is
    /// Never, whatever its exit code, as the kubelet decides it.
    fn kill_unhealthy(&mut self, i: usize, kind: ProbeKind) {
        let pod = &self.pod.plan;
        let grace = self
            .probe_plan(i, kind)
            .and_then(|p| p.termination_grace_period_seconds)
            .unwrap_or(pod.termination_grace_period_seconds);
        let c = &mut self.ctrs[i];
        let restart = c.plan.sidecar || pod.restart_policy != RestartPolicy::Never;
        c.restart_after_kill = restart;
        let what = match kind {
            ProbeKind::Startup => "startup",
            _ => "liveness",
        };
        let tail = if restart { ", will be restarted" } else { "" };
        let message = format!("Container {} failed {what} probe{tail}", c.plan.name);
        console::debug(&message);
        channel::event(Event::ContainerKilling {
            container: c.plan.name.clone(),
            message,
        });
        self.stop_container(i, now_ms().saturating_add(grace.saturating_mul(1000)));
    }

    /// The container's postStart hook (if any) succeeded: it is started.
    /// Its probes begin, counted from its start.
    pub(super) fn running(&mut self, i: usize) {
        let c = &mut self.ctrs[i];
        let State::Running { pid, .. } = c.state else {
            return;
        };
        let since = c.run_started_ms;
        let checks = &c.plan.checks;
        c.probers = [
            (ProbeKind::Startup, &checks.startup),
            (ProbeKind::Liveness, &checks.liveness),
            (ProbeKind::Readiness, &checks.readiness),
        ]
        .into_iter()
        .filter_map(|(kind, plan)| plan.as_ref().map(|p| Prober::new(kind, p, since)))
        .collect();
        if checks.startup.is_none() {
            c.started = true;
        }
        channel::event(Event::ContainerStarted {
            container: c.plan.name.clone(),
            pid,
        });
    }

    /// Stops container `i` if it runs: its preStop hook (within the grace
    /// period), then its stop signal; SIGKILL at `kill_at`, or at least
    /// [`MIN_GRACE_MS`] after the stop signal. One already being stopped
    /// only gets the earlier of the two deadlines (the pod's stop cuts a
    /// probe's longer grace period short).
    pub(super) fn stop_container(&mut self, i: usize, kill_at: u64) {
        let c = &mut self.ctrs[i];
        if !matches!(c.state, State::Running { .. }) {
            return;
        }
        if let Some(s) = &mut c.stopping {
            s.kill_at = s.kill_at.min(kill_at);
            return;
        }
        c.stopping = Some(Stopping {
            kill_at,
            killed: false,
        });
        c.post_starting = false;
        let hook = c.plan.checks.pre_stop.clone();
        self.cancel_checks(i);
        match hook {
            Some(h) if kill_at > now_ms() => self.begin(i, Purpose::PreStop, &h, Some(kill_at)),
            _ => self.send_stop_signal(i),
        }
    }

    /// The stop signal, after the preStop hook if there was one.
    fn send_stop_signal(&mut self, i: usize) {
        let c = &mut self.ctrs[i];
        if let Some(s) = &mut c.stopping {
            s.kill_at = s.kill_at.max(now_ms().saturating_add(MIN_GRACE_MS));
        }
        self.signal(&self.ctrs[i], None);
    }
}
