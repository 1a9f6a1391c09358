//! One probe of one run of a container, as the kubelet's prober worker
//! keeps it (`pkg/kubelet/prober/worker.go`): pure bookkeeping, no I/O.
//!
//! - Its result starts as the kubelet's initial value: a readiness probe
//!   fails (not ready), a liveness probe succeeds, a startup probe is
//!   unknown.
//! - A check's outcome extends the current run of equal outcomes or starts
//!   a new one; the result changes only once a run of failures reaches
//!   `failureThreshold` or a run of successes `successThreshold`.
//! - A liveness or startup probe whose result became a failure stops (the
//!   container is being killed; the next run gets a new prober); a startup
//!   probe that succeeded stops too (it gates the other two only once).
//! - The first check is due `initialDelaySeconds` after the run started,
//!   each next one `periodSeconds` after the previous one began (the
//!   kubelet's ticker: a check slower than the period delays the next).

use pod1_manifest::events::ProbeKind;
use pod1_manifest::plan::ProbePlan;

/// A probe's state over one run of its container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prober {
    /// Which probe.
    pub kind: ProbeKind,
    period_ms: u64,
    success_threshold: u32,
    failure_threshold: u32,
    /// What others see; `None`: not known yet (a startup probe's start).
    result: Option<bool>,
    /// The current run of equal outcomes and its length.
    last: Option<bool>,
    run: u32,
    next_at: u64,
    /// No more checks this run.
    stopped: bool,
    /// A check could not run (said once a run).
    errored: bool,
}

impl Prober {
    /// The probe of a run that started at `started_ms`.
    pub fn new(kind: ProbeKind, plan: &ProbePlan, started_ms: u64) -> Prober {
        Prober {
            kind,
            period_ms: u64::from(plan.period_seconds.max(1)) * 1000,
            success_threshold: plan.success_threshold.max(1),
            failure_threshold: plan.failure_threshold.max(1),
            result: match kind {
                ProbeKind::Readiness => Some(false),
                ProbeKind::Liveness => Some(true),
                ProbeKind::Startup => None,
            },
            last: None,
            run: 0,
            next_at: started_ms.saturating_add(u64::from(plan.initial_delay_seconds) * 1000),
            stopped: false,
            errored: false,
        }
    }

    /// When the next check is due, unless the probe has stopped.
    pub fn next_at(&self) -> Option<u64> {
        (!self.stopped).then_some(self.next_at)
    }

    /// A check begins at `now`.
    pub fn began(&mut self, now: u64) {
        self.next_at = now.saturating_add(self.period_ms);
    }

    /// The probe's current result.
    pub fn result(&self) -> Option<bool> {
        self.result
    }

    /// A check could not run at all: true the first time in the run (to
    /// say so once; the kubelet drops such a result).
    pub fn errored(&mut self) -> bool {
        !core::mem::replace(&mut self.errored, true)
    }

    /// A check ended with `ok`; returns the new result when it changed.
    pub fn record(&mut self, ok: bool) -> Option<bool> {
        if self.stopped {
            return None;
        }
        if self.last == Some(ok) {
            self.run = self.run.saturating_add(1);
        } else {
            self.last = Some(ok);
            self.run = 1;
        }
        let threshold = if ok {
            self.success_threshold
        } else {
            self.failure_threshold
        };
        if self.run < threshold {
            return None;
        }
        let changed = self.result != Some(ok);
        self.result = Some(ok);
        self.stopped = match self.kind {
            ProbeKind::Readiness => false,
            ProbeKind::Liveness => !ok,
            ProbeKind::Startup => true,
        };
        changed.then_some(ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pod1_manifest::plan::Handler;

    fn plan(delay: u32, period: u32, success: u32, failure: u32) -> ProbePlan {
        ProbePlan {
            handler: Handler::Tcp {
                host: "127.0.0.1".into(),
                port: 80,
            },
            initial_delay_seconds: delay,
            period_seconds: period,
            timeout_seconds: 1,
            success_threshold: success,
            failure_threshold: failure,
            termination_grace_period_seconds: None,
        }
    }

    #[test]
    fn initial_results_are_the_kubelets() {
        let p = plan(0, 10, 1, 3);
        assert_eq!(Prober::new(ProbeKind::Readiness, &p, 0).result(), Some(false));
        assert_eq!(Prober::new(ProbeKind::Liveness, &p, 0).result(), Some(true));
        assert_eq!(Prober::new(ProbeKind::Startup, &p, 0).result(), None);
    }

    #[test]
    fn the_first_check_waits_the_initial_delay_then_each_a_period() {
        let mut p = Prober::new(ProbeKind::Liveness, &plan(5, 2, 1, 3), 1_000);
        assert_eq!(p.next_at(), Some(6_000));
        p.began(6_000);
        assert_eq!(p.next_at(), Some(8_000));
        // A check that began late pushes the next one back.
        p.began(9_500);
        assert_eq!(p.next_at(), Some(11_500));
    }

    #[test]
    fn liveness_fails_after_failure_threshold_consecutive_failures_and_stops() {
        let mut p = Prober::new(ProbeKind::Liveness, &plan(0, 1, 1, 3), 0);
        assert_eq!(p.record(false), None);
        assert_eq!(p.record(false), None);
        // A success in between starts the count over.
        assert_eq!(p.record(true), None);
        assert_eq!(p.record(false), None);
        assert_eq!(p.record(false), None);
        assert_eq!(p.record(false), Some(false));
        assert_eq!(p.next_at(), None);
        assert_eq!(p.record(true), None, "a stopped probe records nothing");
    }

    #[test]
    fn a_healthy_liveness_probe_never_changes() {
        let mut p = Prober::new(ProbeKind::Liveness, &plan(0, 1, 1, 1), 0);
        for _ in 0..100 {
            assert_eq!(p.record(true), None);
        }
        assert!(p.next_at().is_some());
    }

    #[test]
    fn readiness_flips_both_ways_with_its_thresholds() {
        let mut p = Prober::new(ProbeKind::Readiness, &plan(0, 1, 2, 2), 0);
        assert_eq!(p.record(true), None);
        assert_eq!(p.record(true), Some(true));
        assert_eq!(p.record(true), None, "no change, no event");
        assert_eq!(p.record(false), None);
        assert_eq!(p.record(false), Some(false));
        assert_eq!(p.record(false), None);
        assert_eq!(p.record(true), None);
        assert_eq!(p.record(true), Some(true));
        assert!(p.next_at().is_some(), "readiness keeps probing");
    }

    #[test]
    fn a_failing_readiness_probe_stays_unready_without_an_event() {
        let mut p = Prober::new(ProbeKind::Readiness, &plan(0, 1, 1, 1), 0);
        assert_eq!(p.record(false), None);
        assert_eq!(p.result(), Some(false));
    }

    #[test]
    fn an_error_is_told_once_and_counts_for_nothing() {
        let mut p = Prober::new(ProbeKind::Liveness, &plan(0, 1, 1, 1), 0);
        assert!(p.errored());
        assert!(!p.errored());
        assert_eq!(p.result(), Some(true));
        assert_eq!(p.record(false), Some(false));
    }

    #[test]
    fn startup_stops_once_decided() {
        let mut ok = Prober::new(ProbeKind::Startup, &plan(0, 1, 1, 3), 0);
        assert_eq!(ok.record(false), None);
        assert_eq!(ok.record(true), Some(true));
        assert_eq!(ok.next_at(), None);
        let mut bad = Prober::new(ProbeKind::Startup, &plan(0, 1, 1, 2), 0);
        assert_eq!(bad.record(false), None);
        assert_eq!(bad.record(false), Some(false));
        assert_eq!(bad.next_at(), None);
    }
}
