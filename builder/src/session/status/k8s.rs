//! The Kubernetes `v1` types of a pod's status, as `kubectl get pod -o
//! json` prints them under `.status`: the fields the kubelet fills for a
//! terminated pod, named and typed as in the API reference
//! (`k8s.io/api/core/v1`).
//!
//! Written here rather than taken from `k8s-openapi`: that crate generates
//! every type of every API group, and a release build of a program using
//! only its `PodStatus` took 64 s on the machines we build on, for the
//! eight small types below; its unset optional fields are also left out
//! where kubectl prints `null` (`lastProbeTime`, a terminated state's
//! unknown `startedAt`).
//!
//! Fields are declared in alphabetical order because kubectl prints them
//! so (it goes through a map); `None` is left out where the API marks the
//! field `omitempty`, and printed as `null` where kubectl shows `null`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pod1_manifest::events::Phase;
use pod1_manifest::plan::QosClass;
use serde::{Serialize, Serializer};

/// A point in time as Kubernetes prints it: RFC 3339, UTC, whole seconds
/// (`2024-05-01T12:00:03Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Time(pub SystemTime);

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // RFC 3339 has four-digit years; a host clock outside them (or
        // before 1970, which the formatter refuses) is kept at the edge.
        let last = UNIX_EPOCH + Duration::from_secs(253_402_300_799);
        s.collect_str(&humantime::format_rfc3339_seconds(self.0.clamp(UNIX_EPOCH, last)))
    }
}

/// `v1.PodStatus`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStatus {
    /// The pod's conditions, in the order the kubelet reports them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<PodCondition>,
    /// One per app container, in the manifest's order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub container_statuses: Vec<ContainerStatus>,
    /// The node's address.
    #[serde(rename = "hostIP", skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    /// The node's addresses.
    #[serde(rename = "hostIPs", skip_serializing_if = "Vec::is_empty")]
    pub host_ips: Vec<Ip>,
    /// One per init container, in the manifest's order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub init_container_statuses: Vec<ContainerStatus>,
    /// Why the pod is in this phase, for a person.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `Succeeded` or `Failed`: the pod has ended.
    pub phase: Phase,
    /// The pod's address.
    #[serde(rename = "podIP", skip_serializing_if = "Option::is_none")]
    pub pod_ip: Option<String>,
    /// The pod's addresses.
    #[serde(rename = "podIPs", skip_serializing_if = "Vec::is_empty")]
    pub pod_ips: Vec<Ip>,
    /// `Guaranteed`, `Burstable` or `BestEffort`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qos_class: Option<QosClass>,
    /// A CamelCase word saying why the pod is in this phase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the node took the pod on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
}

/// `v1.PodIP` and `v1.HostIP`: one address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ip {
    /// The address.
    pub ip: String,
}

/// `v1.PodCondition`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodCondition {
    /// Never set by the kubelet (no probe reports conditions): always `null`.
    pub last_probe_time: Option<Time>,
    /// When `status` last changed.
    pub last_transition_time: Time,
    /// Details, for a person.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// A CamelCase word saying why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `"True"` or `"False"`.
    pub status: ConditionStatus,
    /// Which condition.
    #[serde(rename = "type")]
    pub kind: ConditionType,
}

impl PodCondition {
    /// Condition `kind`, with `status` since `at`.
    pub fn new(kind: ConditionType, status: bool, at: SystemTime) -> Self {
        PodCondition {
            last_probe_time: None,
            last_transition_time: Time(at),
            message: None,
            reason: None,
            status: status.into(),
            kind,
        }
    }

    /// With a reason.
    pub fn because(mut self, reason: &str) -> Self {
        self.reason = Some(reason.to_string());
        self
    }

    /// With a message.
    pub fn saying(mut self, message: String) -> Self {
        self.message = Some(message);
        self
    }
}

/// `v1.ConditionStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// It does not.
    False,
}

impl From<bool> for ConditionStatus {
    fn from(b: bool) -> Self {
        if b {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        }
    }
}

/// `v1.PodConditionType`: the ones the kubelet reports, in its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ConditionType {
    /// The sandbox exists and its network is configured.
    PodReadyToStartContainers,
    /// Every init container completed.
    Initialized,
    /// The pod can serve.
    Ready,
    /// Every container is ready.
    ContainersReady,
    /// The pod was bound to a node.
    PodScheduled,
}

/// `v1.ContainerStatus`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStatus {
    /// The image, as the manifest names it.
    pub image: String,
    /// The image's digest, `""` when it is not known.
    #[serde(rename = "imageID")]
    pub image_id: String,
    /// The previous termination, if the container ran before this state.
    pub last_state: ContainerState,
    /// Container name.
    pub name: String,
    /// Passing its readiness check (an init container: completed).
    pub ready: bool,
    /// Restarts so far.
    pub restart_count: u32,
    /// Running and past its startup check.
    pub started: bool,
    /// Where it is now.
    pub state: ContainerState,
}

/// `v1.ContainerState`: at most one member set; `{}` when none is. (A
/// finished pod has no running container, so `running` is left out.)
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ContainerState {
    /// It ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terminated: Option<Terminated>,
    /// It has not started (or waits to start again).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting: Option<Waiting>,
}

/// `v1.ContainerStateTerminated`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Terminated {
    /// Its exit code; 128+N when killed by signal N.
    pub exit_code: i32,
    /// When it ended; `null` when not known.
    pub finished_at: Option<Time>,
    /// Details, for a person.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `Completed`, `Error`, `ContainerCannotRun`, `ContainerStatusUnknown`, ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The signal that killed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// When it started; `null` when it never did.
    pub started_at: Option<Time>,
}

/// `v1.ContainerStateWaiting`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Waiting {
    /// Details, for a person.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `ContainerCreating`, `PodInitializing`, `CreateContainerConfigError`, ...
    pub reason: String,
}
