//! `env[]` and `envFrom[]`.

use alloc::string::String;
use serde::Deserialize;

use crate::quantity::Quantity;

/// `env[]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnvVar {
    /// Variable name.
    pub name: String,
    /// Value, where `$(VAR)` expands to an earlier variable; `$$` is a literal `$`.
    #[serde(default)]
    pub value: String,
    /// A value from the pod, a resource, a ConfigMap or a Secret (used
    /// when `value` is empty; never expanded).
    pub value_from: Option<EnvVarSource>,
}

impl EnvVar {
    /// A literal variable.
    pub fn literal(name: &str, value: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: value.into(),
            value_from: None,
        }
    }
}

/// `env[].valueFrom`: exactly one source.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnvVarSource {
    /// A field of the pod (the downward API).
    pub field_ref: Option<ObjectFieldSelector>,
    /// A container's limit or request (the downward API).
    pub resource_field_ref: Option<ResourceFieldSelector>,
    /// One key of a ConfigMap.
    pub config_map_key_ref: Option<KeySelector>,
    /// One key of a Secret.
    pub secret_key_ref: Option<KeySelector>,
}

/// `fieldRef`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ObjectFieldSelector {
    /// `v1` when present.
    pub api_version: Option<String>,
    /// e.g. `metadata.name`, `metadata.labels['app']`, `status.podIP`.
    pub field_path: String,
}

/// `resourceFieldRef`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ResourceFieldSelector {
    /// The container whose resources are read; in `env`, default: this one.
    pub container_name: Option<String>,
    /// `limits.cpu`, `requests.memory`, `limits.ephemeral-storage`, ...
    pub resource: String,
    /// The unit of the value (default 1); the value is rounded up.
    pub divisor: Option<Quantity>,
}

/// `configMapKeyRef` and `secretKeyRef`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySelector {
    /// The object's name.
    #[serde(default)]
    pub name: String,
    /// The key.
    pub key: String,
    /// A missing object or key leaves the variable out instead of failing.
    pub optional: Option<bool>,
}

/// `envFrom[]`: exactly one source.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnvFromSource {
    /// Prepended to every key.
    pub prefix: Option<String>,
    /// Every key of a ConfigMap.
    pub config_map_ref: Option<ObjectRef>,
    /// Every key of a Secret.
    pub secret_ref: Option<ObjectRef>,
}

/// `configMapRef` and `secretRef`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectRef {
    /// The object's name.
    #[serde(default)]
    pub name: String,
    /// A missing object is skipped instead of failing.
    pub optional: Option<bool>,
}
