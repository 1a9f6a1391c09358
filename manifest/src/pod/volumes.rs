//! `spec.volumes[]` and `volumeMounts[]`.

use alloc::string::String;
use alloc::vec::Vec;
use serde::Deserialize;

use super::{ObjectFieldSelector, ResourceFieldSelector};
use crate::quantity::Quantity;

/// `spec.volumes[]`: exactly one source.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Volume {
    /// Name the containers' volumeMounts refer to.
    pub name: String,
    /// A fresh directory shared by the containers that mount it.
    pub empty_dir: Option<EmptyDir>,
    /// A ConfigMap's keys as files.
    pub config_map: Option<ConfigMapVolume>,
    /// A Secret's keys as files.
    pub secret: Option<SecretVolume>,
    /// Pod fields and resources as files.
    #[serde(rename = "downwardAPI")]
    pub downward_api: Option<DownwardApiVolume>,
    /// Several of those in one directory.
    pub projected: Option<ProjectedVolume>,
    /// A host file or directory, shared live (virtio-fs).
    pub host_path: Option<HostPathVolumeSource>,
}

/// `hostPath`: a file or directory of the host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostPathVolumeSource {
    /// The host path; pod1 also takes one relative to the manifest's directory.
    pub path: String,
    /// `""`, `DirectoryOrCreate`, `Directory`, `FileOrCreate` or `File`
    /// (see [`crate::hostpath::HostPathType`]).
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

/// `emptyDir`: a directory shared by the containers that mount it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EmptyDir {
    /// `""` or `Memory`; in a VM both live in memory.
    pub medium: Option<String>,
    /// Size of the tmpfs backing the volume.
    pub size_limit: Option<Quantity>,
}

/// `configMap` (a volume).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConfigMapVolume {
    /// The ConfigMap.
    #[serde(default)]
    pub name: String,
    /// Only these keys, at these paths; default: every key at its name.
    #[serde(default)]
    pub items: Vec<KeyToPath>,
    /// Mode of the files (default 0644).
    pub default_mode: Option<i32>,
    /// A missing ConfigMap (or key) gives an empty volume instead of failing.
    pub optional: Option<bool>,
}

/// `secret` (a volume).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecretVolume {
    /// The Secret.
    #[serde(default)]
    pub secret_name: String,
    /// Only these keys, at these paths.
    #[serde(default)]
    pub items: Vec<KeyToPath>,
    /// Mode of the files (default 0644).
    pub default_mode: Option<i32>,
    /// A missing Secret (or key) gives an empty volume instead of failing.
    pub optional: Option<bool>,
}

/// `sources[].configMap` and `sources[].secret` of a projected volume.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyProjection {
    /// The ConfigMap or Secret.
    #[serde(default)]
    pub name: String,
    /// Only these keys, at these paths.
    #[serde(default)]
    pub items: Vec<KeyToPath>,
    /// A missing object (or key) adds nothing instead of failing.
    pub optional: Option<bool>,
}

/// `items[]` of a configMap or secret source.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyToPath {
    /// The key.
    pub key: String,
    /// Relative path of its file.
    pub path: String,
    /// Mode of this file.
    pub mode: Option<i32>,
}

/// `downwardAPI` (a volume).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DownwardApiVolume {
    /// The files.
    #[serde(default)]
    pub items: Vec<DownwardApiFile>,
    /// Mode of the files (default 0644).
    pub default_mode: Option<i32>,
}

/// `downwardAPI.items[]`: exactly one of `fieldRef`, `resourceFieldRef`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DownwardApiFile {
    /// Relative path of the file.
    pub path: String,
    /// `metadata.name`, `metadata.labels`, `metadata.annotations['k']`, ...
    pub field_ref: Option<ObjectFieldSelector>,
    /// A container's limit or request (`containerName` required).
    pub resource_field_ref: Option<ResourceFieldSelector>,
    /// Mode of this file.
    pub mode: Option<i32>,
}

/// `sources[].downwardAPI` of a projected volume.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DownwardApiProjection {
    /// The files.
    #[serde(default)]
    pub items: Vec<DownwardApiFile>,
}

/// `projected`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProjectedVolume {
    /// The sources, merged into one directory.
    #[serde(default)]
    pub sources: Vec<Projection>,
    /// Mode of the files (default 0644).
    pub default_mode: Option<i32>,
}

/// `projected.sources[]`: exactly one source.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Projection {
    /// A ConfigMap's keys.
    pub config_map: Option<KeyProjection>,
    /// A Secret's keys.
    pub secret: Option<KeyProjection>,
    /// Pod fields and resources.
    #[serde(rename = "downwardAPI")]
    pub downward_api: Option<DownwardApiProjection>,
    /// Refused: a pod1 pod has no API server to issue tokens.
    pub service_account_token: Option<serde_json::Value>,
    /// Refused: a pod1 pod has no API server to read bundles from.
    pub cluster_trust_bundle: Option<serde_json::Value>,
}

/// `volumeMounts[]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VolumeMount {
    /// A volume in `spec.volumes`.
    pub name: String,
    /// Absolute path inside the container.
    pub mount_path: String,
    /// Mount read-only.
    #[serde(default)]
    pub read_only: bool,
    /// Mount this relative path of the volume instead of its root.
    pub sub_path: Option<String>,
    /// As `subPath`, with `$(VAR)` expanded from the container's env.
    pub sub_path_expr: Option<String>,
    /// Only `None` (a VM has no host mounts to propagate).
    pub mount_propagation: Option<String>,
}
