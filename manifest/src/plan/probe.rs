//! Probes and lifecycle hooks as the init runs them: what to do (a
//! [`Handler`]) and, for a probe, when ([`ProbePlan`]). The builder fills
//! in what the kubelet would work out at run time (the pod IP for an empty
//! `host`, a named port's number, the API server's defaults), so the init
//! only acts.

use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// What a probe or a hook does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum Handler {
    /// Run `command` in the container (its namespaces, cgroup, user,
    /// capabilities, seccomp filter, environment and working directory,
    /// as `kubectl exec`); exit code 0 is success.
    Exec {
        /// argv, never through a shell.
        command: Vec<String>,
    },
    /// `GET` over HTTP/1.1 from inside the pod's network namespace;
    /// status 200..=399 is success.
    Http {
        /// An IPv4 address (the pod's IP when the manifest names none).
        host: String,
        /// The port number (a named port already resolved).
        port: u16,
        /// The request target, starting with `/`.
        path: String,
        /// Extra request headers, in order (a `Host` or `User-Agent` here
        /// replaces the default one).
        headers: Vec<(String, String)>,
    },
    /// A TCP connection from inside the pod's network namespace; connecting
    /// is success.
    Tcp {
        /// An IPv4 address (the pod's IP when the manifest names none).
        host: String,
        /// The port number (a named port already resolved).
        port: u16,
    },
    /// Wait (hooks only).
    Sleep {
        /// How long.
        seconds: u64,
    },
}

/// One probe of a container, with the API server's defaults applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProbePlan {
    /// The check.
    pub handler: Handler,
    /// `initialDelaySeconds`: no check before this long after the
    /// container started.
    pub initial_delay_seconds: u32,
    /// `periodSeconds` (default 10).
    pub period_seconds: u32,
    /// `timeoutSeconds` (default 1): a check still going is a failure,
    /// and an exec check's process is killed.
    pub timeout_seconds: u32,
    /// `successThreshold` (default 1; always 1 for liveness and startup).
    pub success_threshold: u32,
    /// `failureThreshold` (default 3).
    pub failure_threshold: u32,
    /// The probe's own `terminationGracePeriodSeconds` (liveness and
    /// startup): the grace period when its failure kills the container.
    pub termination_grace_period_seconds: Option<u64>,
}

/// A container's probes and hooks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Checks {
    /// `livenessProbe`: failing, the container is killed and restarted
    /// per the pod's `restartPolicy`.
    pub liveness: Option<ProbePlan>,
    /// `readinessProbe`: the container's `ready`.
    pub readiness: Option<ProbePlan>,
    /// `startupProbe`: gates the other two; failing, as liveness.
    pub startup: Option<ProbePlan>,
    /// `lifecycle.postStart`: run once the command started; the container
    /// is not started until it succeeds, and is killed if it fails.
    pub post_start: Option<Handler>,
    /// `lifecycle.preStop`: run before the stop signal whenever the init
    /// stops the container, within its grace period.
    pub pre_stop: Option<Handler>,
}

impl Checks {
    /// No probe and no hook.
    pub fn is_empty(&self) -> bool {
        *self == Checks::default()
    }
}
