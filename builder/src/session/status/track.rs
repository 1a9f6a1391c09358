//! What the fold knows of one container of the plan: where its run is,
//! how its runs ended, and what its probes said of the current run.
//!
//! `started` and `ready` are the kubelet's (`pkg/kubelet/prober`'s
//! `UpdatePodStatus`): a container is started while it runs and, with a
//! startup probe, once that probe passed; it is ready while it is started
//! and, with a readiness probe, while that probe's last result is a
//! success (without one, as soon as it is started). Probe results belong to
//! one run: they start over when the container starts again, as the
//! kubelet's are keyed by container ID (a readiness probe starts as a
//! failure, a startup probe as unknown), and count only while it runs.
//! Which probes a container has comes from the plan, not from the guest: a
//! result for a probe the container does not have counts for nothing, as
//! the kubelet has no worker for it.

use pod1_manifest::events::ProbeKind;
use pod1_manifest::plan::ContainerPlan;

/// Where one container is.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Run {
    /// Never started (perhaps created).
    NotStarted,
    /// Refused by the init (`container_waiting`).
    Refused { reason: String, message: String },
    /// Running since this guest time.
    Running { since: u64 },
    /// Ended.
    Exited(Exit),
}

/// One end of a container's run.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Exit {
    pub code: i32,
    pub signal: Option<i32>,
    /// Why it never got to run its command (the init's words).
    pub why: Option<String>,
    /// The OOM killer killed in its cgroup during the run.
    pub oom_killed: bool,
    /// Its termination message.
    pub message: Option<String>,
    /// Why its postStart hook failed, when that is why the run ended.
    pub post_start: Option<String>,
    /// Guest times; no start when it never started (the init reports a
    /// run as started only once its postStart hook succeeded).
    pub started: Option<u64>,
    pub finished: u64,
}

impl Exit {
    pub fn reason(&self) -> &'static str {
        match (self.code, &self.why) {
            (_, Some(_)) => "ContainerCannotRun",
            _ if self.oom_killed => "OOMKilled",
            (0, None) => "Completed",
            _ => "Error",
        }
    }

    /// The terminated state's `message`: why it could not run, else its
    /// termination message, else why its postStart hook failed.
    ///
    /// The last is pod1's: the kubelet shows a failed hook's message only
    /// in the `waiting` state it gives the container until its restart
    /// (reason `PostStartHookError`), which a finished pod no longer has
    /// (see [`super::Fold::status`]); the terminated state would otherwise
    /// not say why the container was killed.
    pub fn message(&self) -> Option<String> {
        let hook = || {
            self.post_start
                .as_ref()
                .map(|m| format!("PostStartHookError: {m}"))
        };
        self.why.clone().or_else(|| self.message.clone()).or_else(hook)
    }
}

/// What is known of one container of the plan.
#[derive(Debug, Clone)]
pub(super) struct Track {
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub run: Run,
    /// The end before the current run.
    pub last: Option<Exit>,
    pub restarts: u32,
    /// An init container with `restartPolicy: Always`.
    pub sidecar: bool,
    /// It has a startup probe (the plan's `checks`).
    startup_probe: bool,
    /// It has a readiness probe.
    readiness_probe: bool,
    /// This run's startup probe passed.
    startup_passed: bool,
    /// This run's readiness probe's last result is a success.
    readiness_passed: bool,
    /// It has been started (as [`Track::started`] says) at least once: a
    /// sidecar has then let the init sequence go on.
    ever_started: bool,
    /// Why the postStart hook of the run being started failed, until that
    /// run's exit takes it (or a later run starts).
    post_start_error: Option<String>,
}

impl Track {
    pub fn new(c: &ContainerPlan) -> Self {
        Track {
            name: c.name.clone(),
            image: c.image.clone(),
            image_id: c.image_id.clone(),
            run: Run::NotStarted,
            last: None,
            restarts: 0,
            sidecar: c.sidecar,
            startup_probe: c.checks.startup.is_some(),
            readiness_probe: c.checks.readiness.is_some(),
            startup_passed: false,
            readiness_passed: false,
            ever_started: false,
            post_start_error: None,
        }
    }

    /// Running, and past its startup probe if it has one.
    pub fn started(&self) -> bool {
        matches!(self.run, Run::Running { .. }) && (!self.startup_probe || self.startup_passed)
    }

    /// Started, and its readiness probe's last result a success if it has
    /// one.
    pub fn ready(&self) -> bool {
        self.started() && (!self.readiness_probe || self.readiness_passed)
    }

    /// Ended with exit code 0 (a sidecar: started once): an init container
    /// has then done its part of the initialisation (`generate.go`'s
    /// `isInitContainerInitialized`).
    pub fn completed(&self) -> bool {
        match self.sidecar {
            true => self.ever_started,
            false => matches!(&self.run, Run::Exited(e) if e.code == 0),
        }
    }

    /// It has a `running` or `terminated` state (the kubelet's
    /// `HasAnyRegularContainerStarted`).
    pub fn ran(&self) -> bool {
        matches!(self.run, Run::Running { .. } | Run::Exited(_))
    }

    /// A new run started at guest time `ms` (its postStart hook, if any,
    /// succeeded): its probes start over.
    pub fn start(&mut self, ms: u64) {
        self.post_start_error = None;
        self.startup_passed = false;
        self.readiness_passed = false;
        if let Run::Exited(e) = std::mem::replace(&mut self.run, Run::Running { since: ms }) {
            self.last = Some(e);
            self.restarts = self.restarts.saturating_add(1);
        }
        self.ever_started |= self.started();
    }

    /// The current run ended (`exit`, its postStart failure added here).
    pub fn exit(&mut self, mut exit: Exit) {
        exit.post_start = self.post_start_error.take();
        if let Run::Exited(e) = std::mem::replace(&mut self.run, Run::Exited(exit)) {
            self.last = Some(e);
        }
    }

    /// A probe's new result. A liveness result changes neither `started`
    /// nor `ready` (a failure is followed by the kill and the exit, which
    /// do).
    pub fn probe(&mut self, probe: ProbeKind, success: bool) {
        match probe {
            ProbeKind::Startup => self.startup_passed = success,
            ProbeKind::Readiness => self.readiness_passed = success,
            ProbeKind::Liveness => {}
        }
        self.ever_started |= self.started();
    }

    /// Its postStart hook failed (`message`, already bounded): the run
    /// being started is killed, and its exit says why. Ignored for a
    /// running container, whose hook already succeeded.
    pub fn post_start_failed(&mut self, message: String) {
        if !matches!(self.run, Run::Running { .. }) {
            self.post_start_error = Some(message);
        }
    }
}
