//! The pod's lifecycle, as the kubelet's SyncPod orders it, in one loop:
//! signals (blocked, read from a signalfd), container output, the host's
//! requests and timers (restart backoff, the stop grace period) all come
//! through one poll(2).
//!
//! Exit code (DESIGN's table): the exit code of the first container whose
//! last run failed (128+N for signal N), 0 when all succeeded. A stopped pod
//! (SIGTERM/SIGINT or the host's stop request) is `Failed` (the manifest
//! crate's Phase), and its exit code follows `docker stop`: each container's
//! own code after SIGTERM, so a pod whose containers all exit 0 on SIGTERM
//! exits 0, one that had to be killed gives 137, one that died of the
//! SIGTERM gives 143.
//!
//! Restart backoff, as the kubelet's (`policy::backoff`): the first
//! restart at once, then each waits from the exit a delay of
//! `backoff.initial_ms` doubling to `backoff.max_ms`; an exit
//! `backoff.reset_ms` or more after the previous one starts it over. The plan's
//! `backoff` comes from the annotations `pod1/restart-backoff-ms` and
//! `pod1/restart-backoff-max-ms`.
//!
//! A container the plan refuses is never created: when its turn comes it
//! is reported waiting (CreateContainerConfigError) and counts as failed
//! with exit code 126, never restarted.
//!
//! Sidecars (init containers with `restartPolicy: Always`) start at their
//! turn, restart whenever they exit, and stop (last first, with their stop
//! signal, under the pod's grace period) once every other container is
//! done; their codes never count.
//!
//! The decisions (whose turn, restart or not, backoff, which sidecar
//! stops, the pod's result) are pure functions in `policy`; this module
//! performs them.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use pod1_manifest::events::{Event, Phase};
use pod1_manifest::{ContainerPlan, Plan};
use rustix::event::{PollFd, PollFlags};
use rustix::fd::OwnedFd;

mod checks;
mod execcheck;
mod launch;
mod logs;
mod message;
mod netcheck;
mod policy;
mod prober;
mod reap;
mod stop;

use self::checks::Check;
use self::logs::{LogPipe, CHUNK};
use self::policy::{Action, Slot, Status, REFUSED_EXIT_CODE};
use self::prober::Prober;
use crate::cgroups::Cgroups;
use crate::channel::{self, Requests};
use crate::console::{self, now_ms};
use crate::namespaces::Sandbox;
use crate::process;
use crate::signals::{handled_signals, read_signal, signalfd};
use crate::sys::{self, Errno, Sig};
use crate::volumes;

/// A supervisor step that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The signalfd could not be made.
    #[error("creating the signalfd: {0}")]
    SignalFd(Errno),
    /// poll(2) failed.
    #[error("poll: {0}")]
    Poll(Errno),
    /// A container's process could not be made at all.
    #[error(transparent)]
    Process(#[from] process::Error),
    /// A volume could not be made.
    #[error(transparent)]
    Volume(#[from] volumes::Error),
}

/// Where the pod's files live.
#[derive(Debug)]
pub struct Pod {
    /// The plan.
    pub plan: Plan,
    /// The unpacked initramfs tree ("/" in the VM).
    pub root: String,
    /// Scratch space on a tmpfs (`/run/pod1` in the VM).
    pub state: String,
    /// The pinned namespaces.
    pub sandbox: Sandbox,
    /// cgroup limits.
    pub cgroups: Cgroups,
    /// The host's requests (the event port in the VM), if any.
    pub requests: Option<OwnedFd>,
}

/// Where a container is. The descriptors of a run live in its state, so
/// they go when the run does: none accumulate across restarts.
#[derive(Debug)]
enum State {
    Pending,
    /// Parked: `start` releases it; `exec` is its exec pipe's read end.
    Created {
        pid: i32,
        start: OwnedFd,
        exec: OwnedFd,
    },
    /// Released; `exec` tells, once it ends, whether its command ran (see
    /// [`process::exec_failure`]).
    Running {
        pid: i32,
        exec: OwnedFd,
    },
    Backoff {
        until: u64,
    },
    Done,
}

#[derive(Debug)]
struct Ctr {
    plan: ContainerPlan,
    init: bool,
    state: State,
    restarts: u32,
    /// Its backoff: when it last exited, with the delay its next exit waits.
    backoff: Option<(u64, u64)>,
    attempt: u32,
    /// The exit code of its last run.
    last_code: i32,
    /// Its cgroup's OOM kills when its current run started.
    oom_kills: u64,
    /// Its run's output, kept for a termination message from the log.
    tail: Option<message::Tail>,
    /// It has been started at least once (its command ran, its postStart
    /// hook succeeded, its startup probe passed): a sidecar then lets the
    /// next init container start.
    started: bool,
    /// When its current run was released.
    run_started_ms: u64,
    /// Its postStart hook runs: it is not started yet.
    post_starting: bool,
    /// Its probes over the current run (from its start on).
    probers: Vec<Prober>,
    /// Being stopped by the init: SIGKILL when the grace period ends.
    stopping: Option<Stopping>,
    /// Killed for a failed liveness or startup probe under a restartPolicy
    /// that restarts it: it restarts whatever its exit code.
    restart_after_kill: bool,
}

/// A container the init is stopping.
#[derive(Debug, Clone, Copy)]
struct Stopping {
    /// When SIGKILL follows.
    kill_at: u64,
    /// It was sent.
    killed: bool,
}

impl Ctr {
    /// What the policy needs to know of it.
    fn slot(&self) -> Slot {
        let status = match self.state {
            State::Pending => Status::Pending,
            State::Created { .. } => Status::Created,
            State::Running { .. } => Status::Running,
            State::Backoff { .. } => Status::Backoff,
            State::Done => Status::Done,
        };
        Slot {
            init: self.init,
            status,
            refused: self.plan.refused.is_some(),
            // A sidecar's exit never fails the pod; its refusal does.
            failed: status == Status::Done
                && self.last_code != 0
                && (!self.plan.sidecar || self.plan.refused.is_some()),
            sidecar: self.plan.sidecar,
            started: self.started,
            post_start: self.plan.checks.post_start.is_some(),
            post_starting: self.post_starting,
        }
    }
}

/// Runs the pod to its end; returns its phase and exit code.
#[derive(Debug)]
pub struct Supervisor {
    pod: Pod,
    ctrs: Vec<Ctr>,
    pipes: Vec<LogPipe>,
    /// The buffer pipes are read into ([`CHUNK`] bytes, allocated once).
    buf: Vec<u8>,
    /// Pipes made so far (each gets the next number).
    pipes_made: u32,
    /// Children given up before they ran: reaped quietly.
    aborted: Vec<i32>,
    sigfd: OwnedFd,
    requests: Requests,
    /// The host's side of the channel hung up: stop polling it.
    requests_closed: bool,
    /// Set once stopping (the pod, or its sidecars after the app
    /// containers ended): when the grace period ends.
    stop_deadline: Option<u64>,
    /// Probes and hooks under way.
    checks: Vec<Check>,
    /// Checks begun so far (each gets the next number as its id).
    checks_made: u64,
    /// Exits no one claimed yet, kept for exec checks awaiting their
    /// helper's report: (pid, code, signal).
    unclaimed: Vec<(i32, i32, Option<i32>)>,
    /// The pod was stopped (a signal, the host, its deadline).
    stopped: bool,
    /// The sidecar last sent its stop signal.
    sidecar_stopping: Option<usize>,
    /// An init container failed for good: the app containers never run.
    init_failed: bool,
    /// The code of every container's last run, in the order they ended.
    finals: Vec<i32>,
    /// When `activeDeadlineSeconds` runs out.
    deadline: Option<u64>,
    /// It ran out: the pod was stopped for it.
    deadline_exceeded: bool,
    orphans: u32,
}

impl Supervisor {
    /// Prepares volumes and the signalfd (signals are already blocked).
    pub fn new(pod: Pod) -> Result<Supervisor, Error> {
        let sigfd = signalfd(&handled_signals()).map_err(Error::SignalFd)?;
        volumes::create(&pod.plan.volumes, &pod.state)?;
        // Counted from here, where the init takes the pod on (a node's
        // kubelet counts from the pod's startTime).
        let deadline = pod
            .plan
            .active_deadline_seconds
            .map(|s| now_ms().saturating_add(s.saturating_mul(1000)));
        let ctrs = pod
            .plan
            .init_containers
            .iter()
            .map(|c| (c, true))
            .chain(pod.plan.containers.iter().map(|c| (c, false)))
            .map(|(c, init)| Ctr {
                plan: c.clone(),
                init,
                state: State::Pending,
                restarts: 0,
                backoff: None,
                attempt: 0,
                last_code: 0,
                oom_kills: 0,
                tail: None,
                started: false,
                run_started_ms: 0,
                post_starting: false,
                probers: Vec::new(),
                stopping: None,
                restart_after_kill: false,
            })
            .collect();
        Ok(Supervisor {
            pod,
            ctrs,
            pipes: Vec::new(),
            buf: vec![0; CHUNK],
            pipes_made: 0,
            aborted: Vec::new(),
            sigfd,
            requests: Requests::default(),
            requests_closed: false,
            stop_deadline: None,
            checks: Vec::new(),
            checks_made: 0,
            unclaimed: Vec::new(),
            stopped: false,
            sidecar_stopping: None,
            init_failed: false,
            finals: Vec::new(),
            deadline,
            deadline_exceeded: false,
            orphans: 0,
        })
    }

    /// Creates every container, then runs the lifecycle to the end.
    pub fn run(mut self) -> Result<(Phase, i32), Error> {
        // Create, then start: every container is prepared before any runs
        // (except those the plan refuses: they never are).
        for i in 0..self.ctrs.len() {
            if self.ctrs[i].plan.refused.is_none() {
                self.create(i)?;
            }
        }
        loop {
            self.advance()?;
            if self.ctrs.iter().all(|c| matches!(c.state, State::Done)) {
                break;
            }
            self.wait()?;
        }
        Ok(self.finish())
    }

    /// Does what may be done now: due restarts, then whatever
    /// [`policy::turn`] says (start the next init container, or every app
    /// container once all init containers succeeded; refuse what the plan
    /// refuses when its turn comes); gives up on what still waits once the
    /// pod stops or an init container failed for good.
    fn advance(&mut self) -> Result<(), Error> {
        if self.stop_deadline.is_none() && !self.init_failed {
            let now = now_ms();
            for i in 0..self.ctrs.len() {
                if matches!(self.ctrs[i].state, State::Backoff { until } if until <= now) {
                    self.ctrs[i].restarts += 1;
                    self.create(i)?;
                }
            }
            // Until nothing more is due: a sidecar that starts lets the
            // next init container start at once, with nothing to wake the
            // loop in between. Each action moves a container out of
            // Created or Pending, so this ends.
            while !self.init_failed {
                let actions = policy::turn(&self.slots());
                if actions.is_empty() {
                    break;
                }
                for action in actions {
                    match action {
                        Action::Start(i) => self.start(i),
                        Action::Refuse(i) => self.refuse(i),
                    }
                }
            }
        }
        // Last: any step above may have ended an init container for good
        // (refused, or failed to start), and nothing else would wake the
        // loop to give up on the containers still waiting.
        if self.stop_deadline.is_some() || self.init_failed {
            self.abort_waiting();
        }
        self.stop_sidecars();
        Ok(())
    }

    /// The containers as the policy sees them.
    fn slots(&self) -> Vec<Slot> {
        self.ctrs.iter().map(Ctr::slot).collect()
    }

    /// Container `i`, which the plan refuses, has its turn: it is reported
    /// waiting (the kubelet's CreateContainerConfigError) and counts as
    /// failed with [`REFUSED_EXIT_CODE`]. It is never created and never
    /// restarted, whatever the restartPolicy: its configuration cannot
    /// change, so every retry would be refused again.
    fn refuse(&mut self, i: usize) {
        let c = &mut self.ctrs[i];
        let message = c.plan.refused.clone().unwrap_or_default();
        console::log(&format!("container {}: not started: {message}", c.plan.name));
        channel::event(Event::ContainerWaiting {
            container: c.plan.name.clone(),
            reason: "CreateContainerConfigError".into(),
            message,
        });
        c.last_code = REFUSED_EXIT_CODE;
        c.state = State::Done;
        self.finals.push(REFUSED_EXIT_CODE);
        if c.init {
            self.init_failed = true;
        }
    }

    /// Gives up on containers that have not run yet and on pending restarts.
    fn abort_waiting(&mut self) {
        for c in &mut self.ctrs {
            match core::mem::replace(&mut c.state, State::Done) {
                // Dropping the start pipe makes the parked child exit.
                State::Created { pid, start, .. } => {
                    drop(start);
                    self.aborted.push(pid);
                }
                // A pending restart will not happen: its last run is final.
                State::Backoff { .. } if !c.plan.sidecar => self.finals.push(c.last_code),
                State::Backoff { .. } => {}
                State::Pending => {}
                other => c.state = other,
            }
        }
    }

    /// A container's process ended (or never got to run).
    fn exited(&mut self, i: usize, code: i32, signal: Option<i32>, reason: Option<String>) {
        let policy = self.pod.plan.restart_policy;
        let backoff = self.pod.plan.backoff;
        let stopping = self.stop_deadline.is_some();
        let limit = self.pod.plan.backoff_limit;
        // A Job counts the restarts of the containers it waits for.
        let restarted: u32 = self
            .ctrs
            .iter()
            .filter(|c| !c.plan.sidecar)
            .map(|c| c.restarts)
            .sum();
        let oom_kills = self.pod.cgroups.oom_kills(&self.ctrs[i].plan.name);
        // Its probes and hooks end with the run.
        self.cancel_checks(i);
        let root = &self.pod.root;
        let c = &mut self.ctrs[i];
        // A run that ran has a termination message (a container that
        // never ran its command has the reason instead).
        let message = match reason {
            Some(_) => None,
            None => {
                let file = sys::join(root, c.plan.termination_message_file.trim_start_matches('/'));
                let max = c.plan.termination_message_max as usize;
                message::read(&file, max, c.tail.as_ref(), code)
            }
        };
        c.last_code = code;
        c.probers.clear();
        c.post_starting = false;
        c.stopping = None;
        let killed_to_restart = core::mem::take(&mut c.restart_after_kill);
        // Only a run that ran: a container that never started has no kills.
        let oom_killed = reason.is_none() && oom_kills > c.oom_kills;
        c.oom_kills = oom_kills;
        channel::event(Event::ContainerExited {
            container: c.plan.name.clone(),
            exit_code: code,
            signal,
            restarts: c.restarts,
            reason,
            oom_killed,
            message,
        });
        // A sidecar restarts whenever it exits, whatever the pod's policy,
        // until the pod stops.
        let restarts = match c.plan.sidecar {
            true => !stopping,
            false if killed_to_restart => policy::restarts(policy, c.init, 1, stopping, restarted, limit),
            false => policy::restarts(policy, c.init, code, stopping, restarted, limit),
        };
        if restarts {
            let now = now_ms();
            let (at, delay) = policy::backoff(backoff, c.backoff, now);
            c.state = State::Backoff { until: at };
            c.backoff = Some((now, delay));
        } else {
            c.state = State::Done;
            // A sidecar's code never decides the pod's result.
            if !c.plan.sidecar {
                self.finals.push(code);
                if c.init && code != 0 {
                    self.init_failed = true;
                }
            }
        }
    }

    /// One round of the loop: poll, then handle whatever is ready.
    fn wait(&mut self) -> Result<(), Error> {
        let now = now_ms();
        let mut deadline: Option<u64> = self
            .ctrs
            .iter()
            .filter_map(|c| match c.state {
                State::Backoff { until } => Some(until),
                _ => None,
            })
            .min();
        if let Some(d) = self.checks_due() {
            deadline = Some(deadline.map_or(d, |x| x.min(d)));
        }
        if let (Some(d), false) = (self.deadline, self.stopped) {
            deadline = Some(deadline.map_or(d, |x| x.min(d)));
        }
        let timeout = deadline.map(|d| sys::timespec_ms(d.saturating_sub(now).min(60_000)));
        let requests = match (&self.pod.requests, self.requests_closed) {
            (Some(r), false) => Some(r),
            _ => None,
        };
        let listening = requests.is_some();
        let mut fds = vec![PollFd::new(&self.sigfd, PollFlags::IN)];
        fds.extend(requests.map(|r| PollFd::new(r, PollFlags::IN)));
        // Bytes waiting for the host: wake when the port takes more.
        let waiting = channel::waiting_fd();
        fds.extend(waiting.map(|fd| PollFd::from_borrowed_fd(fd, PollFlags::OUT)));
        let first_pipe = fds.len();
        // Containers' output only while the queue has room: beyond it they
        // wait on their full pipes until the host has read more.
        let reading = channel::has_room();
        if reading {
            fds.extend(self.pipes.iter().map(|p| PollFd::new(&p.fd, PollFlags::IN)));
        }
        // Then the checks with a descriptor, in order.
        let first_check = fds.len();
        let polled: Vec<u64> = self
            .checks
            .iter()
            .filter(|c| c.poll_fd().is_some())
            .map(|c| c.id)
            .collect();
        fds.extend(
            self.checks
                .iter()
                .filter_map(Check::poll_fd)
                .map(|(fd, flags)| PollFd::from_borrowed_fd(fd, flags)),
        );
        if let Err(e) = rustix::event::poll(&mut fds, timeout.as_ref()) {
            if e != rustix::io::Errno::INTR {
                return Err(Error::Poll(e.into()));
            }
        }
        let ready: Vec<bool> = fds.iter().map(|f| !f.revents().is_empty()).collect();
        if waiting.is_some() {
            channel::polled(fds[first_pipe - 1].revents());
        }
        drop(fds);
        // Output first: every line a container wrote precedes its exit.
        if reading {
            for (k, p) in self.pipes.iter_mut().enumerate() {
                if ready[first_pipe + k] {
                    p.read(&mut self.buf);
                }
            }
        }
        self.pipes.retain(|p| !p.eof);
        if listening && ready[1] {
            self.read_requests();
        }
        // Exits before checks: a check whose container ended in the same
        // round is given up with it, not counted against a new run.
        if ready[0] {
            self.read_signals();
        }
        // By id: a check's end may end or begin others.
        for (n, id) in polled.iter().enumerate() {
            if ready[first_check + n] {
                if let Some(k) = self.checks.iter().position(|c| c.id == *id) {
                    self.check_ready(k);
                }
            }
        }
        if self.deadline.is_some_and(|d| now_ms() >= d) && !self.stopped {
            self.deadline_exceeded = true;
            self.stop("activeDeadlineSeconds ran out");
        }
        self.run_checks();
        Ok(())
    }

    /// Reads what the host sent, at most 4 KiB a turn (a host that floods
    /// the port cannot hold the loop).
    fn read_requests(&mut self) {
        let Some(r) = &self.pod.requests else { return };
        let mut buf = [0u8; 1024];
        let mut reqs = Vec::new();
        for _ in 0..4 {
            match rustix::io::read(r, &mut buf).map_err(Errno::from) {
                Ok(0) => {
                    self.requests_closed = true;
                    break;
                }
                Ok(n) => reqs.extend(self.requests.feed(&buf[..n])),
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => break,
                Err(e) => {
                    console::log(&format!("reading the host's requests: {e}; no longer listening"));
                    self.requests_closed = true;
                    break;
                }
            }
        }
        for req in reqs {
            match req {
                pod1_manifest::events::Request::Stop => self.stop("the host asked to stop"),
                // Only the VM's PID 1 waits for it, once the pod has ended.
                pod1_manifest::events::Request::Ack => {}
            }
        }
    }

    fn read_signals(&mut self) {
        while let Some(sig) = read_signal(&self.sigfd) {
            match sig {
                libc::SIGCHLD => self.reap(),
                libc::SIGTERM | libc::SIGINT | libc::SIGHUP | libc::SIGPWR => {
                    self.stop(&format!("received {}", Sig(sig)))
                }
                sig => console::debug(&format!("ignoring {}", Sig(sig))),
            }
        }
        // A SIGCHLD may have been merged with one already consumed.
        self.reap();
    }
}
