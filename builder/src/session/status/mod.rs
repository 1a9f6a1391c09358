//! The pod's final status as a Kubernetes `v1` `PodStatus`, folded from the
//! init's events: what `pod1 run --status FILE` writes and `--json` ends
//! with.
//!
//! Pure code: [`Fold::record`] takes each event with the host's wall time
//! when it was read, [`Fold::status`] the time the run ended and, when the
//! pod did not report its end, why ([`Cut`]). The clock readings and the
//! file belong to the caller. Only the plan's containers are tracked, so a
//! guest naming others costs nothing.
//!
//! The status is the one the kubelet would leave for the same pod on a node:
//! its condition rules (`pkg/kubelet/status/generate.go`), its reasons, and
//! its `TerminatePod` rule that a container still running when the pod ends
//! is `terminated` with reason `ContainerStatusUnknown` and exit code 137.
//! Like every container that is not running, it is neither `started` nor
//! `ready` (the prober's rule for any container whose state is not
//! `running`). Where pod1 knows more than the
//! kubelet would, it says so: the container keeps its `startedAt`, ends
//! when the VM did, and its message says why; a container that never
//! started stays `waiting` with the kubelet's reason for it
//! (`TerminatePod` would call it unknown as well once the pod had
//! initialized).
//!
//! **Probes and hooks.** Each container's `started` and `ready` follow its
//! run and its probes' results as the kubelet's prober sets them (see
//! `track.rs`); the `Ready` and `ContainersReady` conditions follow the
//! readiness of the containers `generate.go` counts (the app containers
//! and the sidecars), and a sidecar completes its step of the init
//! sequence once it is started, so only once its startup probe passed. A
//! failed postStart hook: the kubelet kills the container and, until it
//! starts it again, shows it `waiting` with reason `PostStartHookError`
//! and the hook's message, the killed run in `lastState` (then
//! `CrashLoopBackOff` while the backoff holds the restart). A pod1 status
//! is made once the pod has ended, when no restart is pending any more
//! (the init gives them up when the pod ends, as the kubelet does for a
//! deleted pod), so the killed run is the container's `terminated` state,
//! as for any container that ended. Two things pod1 cannot give as the
//! kubelet would: that run has no `startedAt` (the init reports a run as
//! started only once its postStart hook succeeded), and, with no
//! termination message of its own, its `message` is the hook's, after
//! `PostStartHookError: `, so that the status still says why it ended
//! (the kubelet shows the hook's message only in that `waiting` state).
//!
//! **Time.** Events carry the guest's CLOCK_BOOTTIME in milliseconds; the
//! status needs wall-clock time. One anchor links the two clocks: the first
//! event read (`init_started`, about a second into the boot), paired with
//! the host's wall time at that moment. From then on, an event's time is
//! the anchor's plus the guest time elapsed since it, so events keep their
//! exact guest-side spacing however late the host reads them (a backlog
//! behind a slow terminal stretches nothing), and the whole error is the
//! first event's delivery latency, milliseconds with nothing queued before
//! it. QEMU's start would be a worse anchor: the firmware and the kernel's
//! early boot run before CLOCK_BOOTTIME counts, up to a second under TCG.
//! Until an event arrives (and for a VM that never sends one), QEMU's start
//! stands for guest time 0. Every time is kept between the pod's
//! `startTime` and the end of the run, so a guest sending absurd times
//! cannot place anything outside the run.

mod k8s;
#[cfg(test)]
mod tests;
mod track;

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use pod1_manifest::events::{Event, HookKind, Phase, Record};
use pod1_manifest::plan::{Plan, QosClass};
use serde::Serialize;
use track::{Exit, Run, Track};

pub use k8s::{
    ConditionStatus, ConditionType, ContainerState, ContainerStatus, Ip, PodCondition, PodStatus, Terminated,
    Time, Waiting,
};

/// The pod's address, and the node's (the VM is both), without a
/// network: loopback. With one it is the address the init gives the NIC.
pub const POD_IP: &str = pod1_manifest::downward::POD_IP;

/// The exit code a container refused with `container_waiting` counts as
/// (manifest/src/events.rs).
pub const REFUSED_EXIT_CODE: i32 = 126;

/// Why the run ended without the pod reporting its end.
#[derive(Debug, Clone, PartialEq)]
pub enum Cut {
    /// `--timeout` (in seconds) expired and the VM was killed.
    Timeout(f64),
    /// A signal killed the VM (a second Ctrl-C or SIGTERM, or a SIGHUP).
    Interrupted,
    /// The VM stopped, or could no longer be heard, before the pod
    /// finished: the sentence `pod1 run` printed.
    Vm(String),
    /// pod1 itself failed before the pod could run: its error.
    Pod1(String),
}

impl Cut {
    /// The pod's `reason`: Kubernetes' word for a pod that outlived
    /// `activeDeadlineSeconds`, for `--timeout`; none for the others, which
    /// have no Kubernetes counterpart.
    fn reason(&self) -> Option<String> {
        match self {
            Cut::Timeout(_) => Some("DeadlineExceeded".into()),
            _ => None,
        }
    }

    /// The pod's `message`.
    fn message(&self) -> String {
        match self {
            Cut::Timeout(s) => format!("the pod did not finish within --timeout {s} s; the VM was killed"),
            Cut::Interrupted => "pod1 run was stopped by a signal; the VM was killed".into(),
            Cut::Vm(why) => why.clone(),
            Cut::Pod1(why) => format!("pod1 could not run the pod: {why}"),
        }
    }
}

/// The kubelet's bound on a container's termination message (4 KiB): a
/// guest may send more, which is cut at a character boundary.
pub fn bounded_message(m: &str) -> String {
    let mut end = m.len().min(4096);
    while !m.is_char_boundary(end) {
        end -= 1;
    }
    m[..end].to_string()
}

/// The guest's clock against the host's (see the module's notes on time).
#[derive(Debug, Clone, Copy)]
struct Clock {
    /// The pod's `startTime`: when QEMU was started.
    started: SystemTime,
    /// A guest time and the host's wall time when it was read.
    anchor: Option<(u64, SystemTime)>,
}

impl Clock {
    /// The wall time of guest time `ms`, kept within `started..=now`.
    fn wall(&self, ms: u64, now: SystemTime) -> SystemTime {
        let (at_ms, at) = self.anchor.unwrap_or((0, self.started));
        let t = match ms.checked_sub(at_ms) {
            Some(later) => at.checked_add(Duration::from_millis(later)),
            None => at.checked_sub(Duration::from_millis(at_ms - ms)),
        };
        t.unwrap_or(now).clamp(self.started, now.max(self.started))
    }

    /// The guest time of wall time `t` (0 before the anchor's guest time 0).
    fn guest_ms(&self, t: SystemTime) -> u64 {
        let (at_ms, at) = self.anchor.unwrap_or((0, self.started));
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        match t.duration_since(at) {
            Ok(later) => at_ms.saturating_add(ms(later)),
            Err(e) => at_ms.saturating_sub(ms(e.duration())),
        }
    }
}

/// The status folded so far.
#[derive(Debug, Clone)]
pub struct Fold {
    clock: Clock,
    qos: QosClass,
    /// `status.podIP` and `status.hostIP`.
    pod_ip: String,
    init: Vec<Track>,
    app: Vec<Track>,
    /// Container name to (is an init container, index).
    index: HashMap<String, (bool, usize)>,
    sandbox_ready: Option<u64>,
    /// When the last init container completed.
    initialized: Option<u64>,
    /// Every container that counts for the pod's readiness is ready
    /// ([`Fold::containers_ready`]).
    all_ready: bool,
    /// When `all_ready` last changed.
    readiness_changed: Option<u64>,
    /// The first `pod_exited`: its phase, time, and whether the pod's
    /// deadline ended it.
    exited: Option<(Phase, u64, bool)>,
    /// The first `error`.
    error: Option<(String, u64)>,
}

impl Fold {
    /// Nothing seen yet of `plan`'s pod, whose VM was started at `started`.
    pub fn new(plan: &Plan, started: SystemTime) -> Self {
        let mut index = HashMap::new();
        for (init, list) in [(true, &plan.init_containers), (false, &plan.containers)] {
            for (i, c) in list.iter().enumerate() {
                index.entry(c.name.clone()).or_insert((init, i));
            }
        }
        Fold {
            clock: Clock {
                started,
                anchor: None,
            },
            qos: plan.qos_class,
            pod_ip: plan
                .network
                .as_ref()
                .map_or(POD_IP, |n| n.address.as_str())
                .to_string(),
            init: plan.init_containers.iter().map(Track::new).collect(),
            app: plan.containers.iter().map(Track::new).collect(),
            index,
            sandbox_ready: None,
            initialized: None,
            all_ready: false,
            readiness_changed: None,
            exited: None,
            error: None,
        }
    }

    fn track(&mut self, name: &str) -> Option<&mut Track> {
        match *self.index.get(name)? {
            (true, i) => self.init.get_mut(i),
            (false, i) => self.app.get_mut(i),
        }
    }

    /// One event from the init, read at wall time `received`.
    pub fn record(&mut self, rec: &Record, received: SystemTime) {
        let ms = rec.ms;
        self.clock.anchor.get_or_insert((ms, received));
        match &rec.event {
            Event::SandboxReady {} => {
                self.sandbox_ready.get_or_insert(ms);
            }
            Event::ContainerStarted { container, .. } => {
                if let Some(t) = self.track(container) {
                    t.start(ms);
                }
            }
            Event::ContainerWaiting {
                container,
                reason,
                message,
            } => {
                if let Some(t) = self.track(container) {
                    let refused = Run::Refused {
                        reason: reason.clone(),
                        message: message.clone(),
                    };
                    if let Run::Exited(e) = std::mem::replace(&mut t.run, refused) {
                        t.last = Some(e);
                    }
                }
            }
            Event::ContainerExited {
                container,
                exit_code,
                signal,
                restarts,
                reason,
                oom_killed,
                message,
            } => {
                let Some(t) = self.track(container) else {
                    return;
                };
                t.restarts = *restarts;
                let started = match t.run {
                    // The refusal's own accounting: it stays refused.
                    Run::Refused { .. } => return,
                    // A reason says its command never ran (its exec
                    // failed): released, yet never started, so no
                    // startedAt, as for a container that failed before.
                    Run::Running { .. } if reason.is_some() => None,
                    Run::Running { since } => Some(since),
                    // Never reported started: it failed before, or its
                    // postStart hook failed (the init reports a start
                    // only once that hook succeeded).
                    Run::NotStarted | Run::Exited(_) => None,
                };
                t.exit(Exit {
                    code: *exit_code,
                    signal: *signal,
                    why: reason.clone(),
                    oom_killed: *oom_killed,
                    message: message.as_deref().map(bounded_message),
                    post_start: None,
                    started,
                    finished: ms,
                });
            }
            Event::ContainerProbe {
                container,
                probe,
                success,
                ..
            } => {
                if let Some(t) = self.track(container) {
                    t.probe(*probe, *success);
                }
            }
            Event::HookFailed {
                container,
                hook: HookKind::PostStart,
                message,
            } => {
                if let Some(t) = self.track(container) {
                    t.post_start_failed(bounded_message(message));
                }
            }
            Event::PodExited {
                phase,
                deadline_exceeded,
                ..
            } => {
                self.exited.get_or_insert((*phase, ms, *deadline_exceeded));
            }
            Event::Error { message } => {
                self.error.get_or_insert_with(|| (message.clone(), ms));
            }
            // A preStop hook's failure changes nothing (the container is
            // stopped all the same), nor does the kill's announcement
            // (its exit follows).
            Event::InitStarted { .. }
            | Event::ContainerCreated { .. }
            | Event::Log { .. }
            | Event::HookFailed {
                hook: HookKind::PreStop,
                ..
            }
            | Event::ContainerKilling { .. } => {}
        }
        // A sidecar's start (or its startup probe's success) may be the
        // last step of the init sequence.
        if !self.init.is_empty() && self.init.iter().all(Track::completed) {
            self.initialized.get_or_insert(ms);
        }
        let all_ready = self.containers_ready();
        if all_ready != self.all_ready {
            self.all_ready = all_ready;
            self.readiness_changed = Some(ms);
        }
    }

    /// Whether the pod's containers are ready, as `generate.go`'s
    /// `GenerateContainersReadyCondition` counts them: every app container
    /// and every sidecar (a restartable init container); the other init
    /// containers do not count.
    fn containers_ready(&self) -> bool {
        let sidecars = self.init.iter().filter(|t| t.sidecar);
        !self.app.is_empty() && sidecars.chain(&self.app).all(Track::ready)
    }

    /// The guest time of wall time `t`, by the same anchor.
    pub fn guest_ms(&self, t: SystemTime) -> u64 {
        self.clock.guest_ms(t)
    }

    /// The pod's status once the run has ended at wall time `now`; `cut`
    /// says why when the pod did not report its end.
    pub fn status(&self, now: SystemTime, cut: Option<&Cut>) -> PodStatus {
        let wall = |ms: u64| self.clock.wall(ms, now);
        let start = self.clock.started.min(now);
        let end_ms = self.error.as_ref().map(|e| e.1).or(self.exited.map(|e| e.1));
        // The kubelet's words for a pod past its activeDeadlineSeconds.
        let deadline = (
            Some("DeadlineExceeded".to_string()),
            Some("Pod was active on the node longer than the specified deadline".to_string()),
        );
        let end = end_ms.map_or(now.max(start), wall);
        // The init's error decides even after a reported end, as it
        // decides `pod1 run`'s exit code.
        let (phase, reason, message) = match (&self.error, self.exited, cut) {
            (Some((msg, _)), _, _) => (Phase::Failed, None, Some(format!("pod1's init failed: {msg}"))),
            (None, Some((phase, _, true)), _) => (phase, deadline.0, deadline.1),
            (None, Some((phase, _, false)), _) => (phase, None, None),
            (None, None, Some(cut)) => (Phase::Failed, cut.reason(), Some(cut.message())),
            (None, None, None) => {
                let never = "the pod's end was never reported".to_string();
                (Phase::Failed, None, Some(never))
            }
        };
        let unknown = match &message {
            Some(m) => format!("the container was still running when the pod ended: {m}"),
            None => "the container was still running when the pod ended".into(),
        };
        // The kubelet's default waiting reason.
        let not_started = if self.init.is_empty() {
            "ContainerCreating"
        } else {
            "PodInitializing"
        };
        let statuses = |list: &[Track], init: bool| -> Vec<ContainerStatus> {
            list.iter()
                .map(|t| container_status(t, init, &wall, end, &unknown, not_started))
                .collect()
        };
        PodStatus {
            conditions: self.conditions(phase, start, end, &wall),
            container_statuses: statuses(&self.app, false),
            host_ip: Some(self.pod_ip.clone()),
            host_ips: vec![Ip {
                ip: self.pod_ip.clone(),
            }],
            init_container_statuses: statuses(&self.init, true),
            message,
            phase,
            pod_ip: Some(self.pod_ip.clone()),
            pod_ips: vec![Ip {
                ip: self.pod_ip.clone(),
            }],
            qos_class: Some(self.qos),
            reason,
            start_time: Some(Time(start)),
        }
    }

    /// The kubelet's five conditions for a pod that ended in `phase`.
    fn conditions(
        &self,
        phase: Phase,
        start: SystemTime,
        end: SystemTime,
        wall: &impl Fn(u64) -> SystemTime,
    ) -> Vec<PodCondition> {
        use ConditionType::*;
        let terminal = match phase {
            Phase::Succeeded => "PodCompleted",
            Phase::Failed => "PodFailed",
        };
        // The sandbox is torn down with the pod: true from sandbox_ready
        // until the end.
        let sandbox_changed = if self.sandbox_ready.is_some() { end } else { start };
        let incomplete: Vec<&str> = self
            .init
            .iter()
            .filter(|t| !t.completed())
            .map(|t| t.name.as_str())
            .collect();
        let initialized_at = self.initialized.map_or(start, wall);
        let initialized = if phase == Phase::Succeeded {
            PodCondition::new(Initialized, true, initialized_at).because("PodCompleted")
        } else if incomplete.is_empty() || self.app.iter().any(Track::ran) {
            PodCondition::new(Initialized, true, initialized_at)
        } else {
            // Go's %s of a []string.
            let message = format!("containers with incomplete status: [{}]", incomplete.join(" "));
            PodCondition::new(Initialized, false, start)
                .because("ContainersNotInitialized")
                .saying(message)
        };
        // Ready and ContainersReady: a finished pod's are false whatever
        // its containers' readiness (`generate.go`: reason PodCompleted or
        // PodFailed, never ContainersNotReady, which is a running pod's).
        // Their time is when that status last changed, as the status
        // manager keeps it: when the containers stopped being all ready
        // (a readiness probe failed, a container exited), or the end if
        // they were all ready until then.
        let readiness_changed = match (self.all_ready, self.readiness_changed) {
            (true, _) => end,
            (false, Some(ms)) => wall(ms),
            (false, None) => start,
        };
        vec![
            PodCondition::new(PodReadyToStartContainers, false, sandbox_changed),
            initialized,
            PodCondition::new(Ready, false, readiness_changed).because(terminal),
            PodCondition::new(ContainersReady, false, readiness_changed).because(terminal),
            PodCondition::new(PodScheduled, true, start),
        ]
    }
}

/// One container's status at the end of the pod.
fn container_status(
    t: &Track,
    init: bool,
    wall: &impl Fn(u64) -> SystemTime,
    end: SystemTime,
    unknown: &str,
    not_started: &str,
) -> ContainerStatus {
    let terminated = |e: &Exit| ContainerState {
        terminated: Some(Terminated {
            exit_code: e.code,
            finished_at: Some(Time(wall(e.finished))),
            message: e.message(),
            reason: Some(e.reason().into()),
            signal: e.signal,
            started_at: e.started.map(|ms| Time(wall(ms))),
        }),
        waiting: None,
    };
    let waiting = |reason: &str, message: Option<&str>| ContainerState {
        terminated: None,
        waiting: Some(Waiting {
            message: message.map(str::to_string),
            reason: reason.to_string(),
        }),
    };
    let state = match &t.run {
        Run::NotStarted => waiting(not_started, None),
        Run::Refused { reason, message } => waiting(reason, Some(message)),
        Run::Running { since } => ContainerState {
            terminated: Some(Terminated {
                exit_code: 137,
                finished_at: Some(Time(end)),
                message: Some(unknown.to_string()),
                reason: Some("ContainerStatusUnknown".into()),
                signal: None,
                started_at: Some(Time(wall(*since))),
            }),
            waiting: None,
        },
        Run::Exited(e) => terminated(e),
    };
    ContainerStatus {
        image: t.image.clone(),
        // The config's digest, as containerd's image ID; "" for a `dir:`
        // image, as the kubelet reports an unknown one.
        image_id: t.image_id.clone(),
        last_state: t.last.as_ref().map(terminated).unwrap_or_default(),
        name: t.name.clone(),
        // An init container (not a sidecar) is ready once it completed;
        // the others are ready and started only while they run, and none
        // runs in a final status (those the pod's end cut short are
        // terminated above): the prober sets both false for any container
        // whose state is not `running`.
        ready: init && !t.sidecar && t.completed(),
        restart_count: t.restarts,
        started: false,
        state,
    }
}

/// The `--json` line carrying `status`, after the init's events:
/// `{"event":"pod_status","status":{...},"ms":N}`, `ms` being the end of
/// the run on the guest's clock (every event has one).
pub fn event_line(status: &PodStatus, ms: u64) -> String {
    #[derive(Serialize)]
    struct Line<'a> {
        event: &'static str,
        status: &'a PodStatus,
        ms: u64,
    }
    let line = Line {
        event: "pod_status",
        status,
        ms,
    };
    serde_json::to_string(&line).unwrap_or_default()
}

/// `status` as `kubectl get pod -o json` prints an object: indented by
/// four spaces, with a final newline.
pub fn to_kubectl_json(status: &PodStatus) -> Vec<u8> {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(
        &mut out,
        serde_json::ser::PrettyFormatter::with_indent(b"    "),
    );
    // Plain data (strings, numbers, enums): serializing cannot fail.
    let _ = status.serialize(&mut ser);
    out.push(b'\n');
    out
}

/// The status of a pod pod1 could not even read: it failed (`message`)
/// before the pod's plan was known. Written so that a `--status` file
/// never shows an earlier run's outcome.
pub fn unread(message: &str, started: SystemTime) -> PodStatus {
    PodStatus {
        conditions: Vec::new(),
        container_statuses: Vec::new(),
        host_ip: None,
        host_ips: Vec::new(),
        init_container_statuses: Vec::new(),
        message: Some(Cut::Pod1(message.to_string()).message()),
        phase: Phase::Failed,
        pod_ip: None,
        pod_ips: Vec::new(),
        qos_class: None,
        reason: None,
        start_time: Some(Time(started)),
    }
}
