//! `securityContext` (pod and container) and the types the plan shares.

use alloc::string::String;
#[cfg(feature = "std")]
use alloc::vec::Vec;
use serde::Deserialize;

/// `spec.securityContext`.
#[cfg(feature = "std")]
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PodSecurityContext {
    /// Default uid of every container.
    pub run_as_user: Option<i64>,
    /// Default gid of every container.
    pub run_as_group: Option<i64>,
    /// Default of every container: refuse to run one whose user is root.
    pub run_as_non_root: Option<bool>,
    /// Groups every container's process joins, after the image's ones.
    #[serde(default)]
    pub supplemental_groups: Vec<i64>,
    /// `Merge` (the default: the image's /etc/group groups too) or `Strict`.
    pub supplemental_groups_policy: Option<String>,
    /// Group owning the writable volumes; joined by every container.
    pub fs_group: Option<i64>,
    /// `Always` or `OnRootMismatch`: the same for volumes made fresh.
    pub fs_group_change_policy: Option<String>,
    /// Namespaced sysctls set in the pod's namespaces.
    #[serde(default)]
    pub sysctls: Vec<Sysctl>,
    /// The seccomp profile of every container that sets none.
    pub seccomp_profile: Option<SeccompProfile>,
}

/// One sysctl.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Sysctl {
    /// Dotted name, e.g. `net.ipv4.ip_forward`.
    pub name: String,
    /// Value written to `/proc/sys/...`.
    pub value: String,
}

/// A container's `securityContext`.
#[cfg(feature = "std")]
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecurityContext {
    /// Overrides the image's user.
    pub run_as_user: Option<i64>,
    /// Overrides the image's group.
    pub run_as_group: Option<i64>,
    /// Refuse to run the container if its user is root.
    pub run_as_non_root: Option<bool>,
    /// `false` sets no_new_privs (pod1 sets it unless this is `true`).
    pub allow_privilege_escalation: Option<bool>,
    /// Only `Default` (`Unmasked` needs user namespaces).
    pub proc_mount: Option<String>,
    /// Mount the root filesystem read-only.
    pub read_only_root_filesystem: Option<bool>,
    /// All capabilities, no masked paths.
    pub privileged: Option<bool>,
    /// Added to or dropped from the default capability set.
    pub capabilities: Option<Capabilities>,
    /// Overrides the pod's seccomp profile.
    pub seccomp_profile: Option<SeccompProfile>,
}

/// `securityContext.seccompProfile`.
#[cfg(feature = "std")]
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SeccompProfile {
    /// `RuntimeDefault`, `Unconfined` or `Localhost`.
    #[serde(rename = "type")]
    pub kind: SeccompProfileType,
    /// With `Localhost`: an OCI or Docker seccomp profile (JSON), relative
    /// to the manifest's directory.
    pub localhost_profile: Option<String>,
}

/// `seccompProfile.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
pub enum SeccompProfileType {
    /// The container runtimes' default profile.
    RuntimeDefault,
    /// No seccomp filter.
    Unconfined,
    /// A profile from a file.
    Localhost,
}

/// `capabilities`.
#[cfg(feature = "std")]
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// Capabilities to add, e.g. `NET_ADMIN` (or `ALL`).
    #[serde(default)]
    pub add: Vec<String>,
    /// Capabilities to drop (or `ALL`).
    #[serde(default)]
    pub drop: Vec<String>,
}
