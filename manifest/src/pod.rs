//! The manifest: the subset of a Kubernetes `v1` `Pod` that pod1 honours.
//!
//! Every struct denies unknown fields, so a typo is an error rather than a
//! silently ignored setting. A field that Kubernetes has but pod1 does not
//! honour gets its own message (see [`KUBERNETES_FIELDS`]).

#[cfg(feature = "std")]
use std::collections::BTreeMap;

use alloc::string::String;
use serde::Deserialize;

#[cfg(feature = "std")]
use crate::error::Error;
#[cfg(feature = "std")]
use crate::ignored::Ignored;
#[cfg(feature = "std")]
use crate::quantity::Quantity;

/// A pod manifest.
#[cfg(feature = "std")]
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Pod {
    /// Must be `v1` when present.
    pub api_version: Option<String>,
    /// Must be `Pod` when present.
    pub kind: Option<String>,
    /// The pod's name and annotations.
    pub metadata: ObjectMeta,
    /// What the pod runs.
    pub spec: PodSpec,
}

/// `metadata`.
#[cfg(feature = "std")]
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ObjectMeta {
    /// The pod's name: a DNS-1123 subdomain; the default hostname.
    pub name: String,
    /// Accepted for compatibility; has no effect.
    pub namespace: Option<String>,
    /// Accepted for compatibility; has no effect.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations; the `pod1/` ones tune pod1 (see [`crate::plan::Backoff`]).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// `spec`.
#[cfg(feature = "std")]
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PodSpec {
    /// The app containers, started together once every init container succeeded.
    pub containers: Vec<Container>,
    /// Run one at a time, in order, before the app containers; each must exit 0.
    #[serde(default)]
    pub init_containers: Vec<Container>,
    /// Always (the default), OnFailure or Never.
    pub restart_policy: Option<RestartPolicy>,
    /// Seconds between SIGTERM and SIGKILL when the pod stops; default 30.
    pub termination_grace_period_seconds: Option<i64>,
    /// One PID namespace for all containers, with the pause (the init) as its PID 1.
    #[serde(default)]
    pub share_process_namespace: bool,
    /// The pod's hostname; default `metadata.name`.
    pub hostname: Option<String>,
    /// Stay in the VM's network namespace.
    #[serde(default)]
    pub host_network: bool,
    /// Stay in the VM's IPC namespace (Kubernetes spells it `hostIPC`).
    #[serde(default, rename = "hostIPC")]
    pub host_ipc: bool,
    /// Pod-wide security settings.
    pub security_context: Option<PodSecurityContext>,
    /// Volumes the containers may mount.
    #[serde(default)]
    pub volumes: Vec<Volume>,
}

/// `spec.restartPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
pub enum RestartPolicy {
    /// Restart every exited container; the pod runs until stopped.
    #[default]
    Always,
    /// Restart containers that exited with a non-zero code or a signal.
    OnFailure,
    /// Never restart.
    Never,
}

/// `spec.securityContext`.
#[cfg(feature = "std")]
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PodSecurityContext {
    /// Default uid of every container.
    pub run_as_user: Option<i64>,
    /// Default gid of every container.
    pub run_as_group: Option<i64>,
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

/// `spec.volumes[]`: only `emptyDir` is honoured.
#[cfg(feature = "std")]
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Volume {
    /// Name the containers' volumeMounts refer to.
    pub name: String,
    /// The volume's source; required.
    pub empty_dir: Option<EmptyDir>,
}

/// `emptyDir`: a directory shared by the containers that mount it.
#[cfg(feature = "std")]
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EmptyDir {
    /// `""` or `Memory`; in a VM both live in memory.
    pub medium: Option<String>,
    /// Size of the tmpfs backing the volume.
    pub size_limit: Option<Quantity>,
}

/// `spec.containers[]` and `spec.initContainers[]`.
#[cfg(feature = "std")]
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Container {
    /// DNS-1123 label, unique across init and app containers.
    pub name: String,
    /// `oci:PATH[:TAG]`, `oci-archive:PATH[:TAG]`, `docker-archive:PATH` or `dir:PATH`.
    pub image: String,
    /// Accepted for compatibility; images are local, so it has no effect.
    pub image_pull_policy: Option<String>,
    /// Replaces the image's Entrypoint.
    pub command: Option<Vec<String>>,
    /// Replaces the image's Cmd.
    pub args: Option<Vec<String>>,
    /// Added to (and overriding) the image's Env, with `$(VAR)` expansion.
    #[serde(default)]
    pub env: Vec<EnvVar>,
    /// Replaces the image's WorkingDir.
    pub working_dir: Option<String>,
    /// User, capabilities, read-only root.
    pub security_context: Option<SecurityContext>,
    /// Volumes mounted into the container.
    #[serde(default)]
    pub volume_mounts: Vec<VolumeMount>,
    /// `limits` are enforced with cgroups; `requests` are accepted and ignored.
    pub resources: Option<Resources>,
}

/// `env[]`: only literal values.
#[cfg(feature = "std")]
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvVar {
    /// Variable name.
    pub name: String,
    /// Value, where `$(VAR)` expands to an earlier variable; `$$` is a literal `$`.
    #[serde(default)]
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

/// `volumeMounts[]`.
#[cfg(feature = "std")]
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
}

/// `resources`.
#[cfg(feature = "std")]
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// `memory`, `cpu` and `pids`.
    #[serde(default)]
    pub limits: BTreeMap<String, Quantity>,
    /// Accepted for compatibility; a VM runs one pod, so there is nothing to schedule.
    #[serde(default)]
    pub requests: BTreeMap<String, Quantity>,
}

/// Field names Kubernetes' Pod API has that pod1 does not honour (yet).
///
/// An unknown field in this list gets "not supported by pod1" instead of
/// "unknown field", so a user knows the manifest is valid Kubernetes but asks
/// for something pod1 cannot do.
#[cfg(feature = "std")]
#[rustfmt::skip]
pub const KUBERNETES_FIELDS: &[&str] = &[
    // PodSpec
    "activeDeadlineSeconds", "dnsConfig", "ephemeralContainers", "hostAliases", "hostPID",
    "hostUsers", "os", "overhead", "resourceClaims", "runtimeClassName", "setHostnameAsFQDN",
    "subdomain",
    // Container
    "envFrom", "lifecycle", "livenessProbe", "readinessProbe", "resizePolicy", "restartPolicy",
    "startupProbe", "stdin", "stdinOnce", "terminationMessagePath", "terminationMessagePolicy",
    "tty", "volumeDevices",
    // EnvVar
    "valueFrom",
    // SecurityContext, PodSecurityContext
    "allowPrivilegeEscalation", "appArmorProfile", "procMount", "runAsNonRoot",
    "seLinuxOptions", "windowsOptions", "fsGroup", "fsGroupChangePolicy",
    "supplementalGroups", "supplementalGroupsPolicy", "seLinuxChangePolicy",
    // Volume sources, VolumeMount
    "hostPath", "configMap", "secret", "persistentVolumeClaim", "projected", "downwardAPI",
    "nfs", "csi", "ephemeral", "image", "iscsi", "gitRepo", "mountPropagation", "subPath",
    "subPathExpr", "recursiveReadOnly",
    // resources
    "claims",
];

#[cfg(feature = "std")]
impl Pod {
    /// Parses a manifest file (YAML or JSON, see [`crate::document`]) that
    /// holds one Pod, naming the document and the JSON path of any error.
    pub fn parse(text: &str) -> Result<Pod, Error> {
        Pod::parse_warned(text).map(|(pod, _)| pod)
    }

    /// As [`Pod::parse`], also returning the fields it took out because
    /// they have no meaning in a pod1 VM ([`crate::ignored`]).
    pub fn parse_warned(text: &str) -> Result<(Pod, Vec<Ignored>), Error> {
        let objects = crate::document::objects(text)?;
        if let Some(other) = objects.iter().find(|o| !matches!(o.kind.as_str(), "Pod" | "")) {
            return Err(Error::new(
                other.label(),
                format!("pod1 runs a Pod; {} objects are not supported", other.kind),
            ));
        }
        match &objects[..] {
            [] => Err(Error::new("", "the file holds no object: write a Pod")),
            [one] => {
                let mut value = one.value.clone();
                let ignored = crate::ignored::strip(&mut value);
                Ok((Pod::from_value(value)?, ignored))
            }
            [_, second, ..] => Err(Error::new(second.label(), "a second Pod: a file holds one pod")),
        }
    }

    /// Reads a Pod from its JSON value, naming the JSON path of any error.
    fn from_value(value: serde_json::Value) -> Result<Pod, Error> {
        serde_path_to_error::deserialize(value).map_err(|err| {
            let path = err.path().to_string();
            let inner = err.into_inner();
            let msg = inner.to_string();
            // serde_json appends " at line L column C"; keep it, it helps.
            match unknown_field_name(&msg) {
                Some(field) => {
                    // The path already ends with the unknown field's name.
                    let at = path;
                    if KUBERNETES_FIELDS.contains(&field) {
                        Error::new(at, "this Kubernetes field is not supported by pod1; remove it")
                    } else {
                        Error::new(at, format!("unknown field; {}", expected_list(&msg)))
                    }
                }
                None => Error::new(path, plain_message(&msg)),
            }
        })
    }
}

/// The field name of a serde "unknown field `x`, expected ..." message.
#[cfg(feature = "std")]
fn unknown_field_name(msg: &str) -> Option<&str> {
    let rest = msg.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

/// The "expected one of ..." part of an unknown-field message.
#[cfg(feature = "std")]
fn expected_list(msg: &str) -> String {
    match msg.find("expected") {
        Some(i) => msg[i..].split(" at line").next().unwrap_or("").to_string(),
        None => "check its spelling".to_string(),
    }
}

/// Rewords serde's type names into JSON's.
#[cfg(feature = "std")]
fn plain_message(msg: &str) -> String {
    msg.replace("expected a sequence", "expected an array")
        .replace("expected a map", "expected an object")
        .replace("invalid type: map", "invalid type: object")
        .replace("invalid type: sequence", "invalid type: array")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(json: &str) -> Error {
        match Pod::parse(json) {
            Ok(pod) => panic!("expected an error, parsed {pod:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn minimal_pod_parses() {
        let pod = Pod::parse(
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},
                "spec":{"containers":[{"name":"c","image":"oci:img"}]}}"#,
        )
        .unwrap();
        assert_eq!(pod.metadata.name, "p");
        assert_eq!(pod.spec.containers[0].image, "oci:img");
        assert_eq!(pod.spec.containers[0].command, None);
        assert_eq!(pod.spec.restart_policy, None);
    }

    #[test]
    fn wrong_type_names_the_path() {
        let e = err(r#"{"metadata":{"name":"p"},"spec":{"containers":[
            {"name":"a","image":"dir:x"},{"name":"b","image":"dir:x","command":"sh"}]}}"#);
        assert_eq!(e.path, "spec.containers[1].command");
        assert!(e.message.contains("expected an array"), "{e}");
    }

    #[test]
    fn typo_is_an_unknown_field_with_its_path() {
        let e = err(r#"{"metadata":{"name":"p"},"spec":{"containers":[
            {"name":"a","image":"dir:x","comand":["x"]}]}}"#);
        assert_eq!(e.path, "spec.containers[0].comand");
        assert!(e.message.starts_with("unknown field"), "{e}");
        assert!(e.message.contains("command"), "{e}");
    }

    #[test]
    fn kubernetes_field_not_honoured_says_so() {
        let e = err(r#"{"metadata":{"name":"p"},"spec":{"hostAliases":[],"containers":[]}}"#);
        assert_eq!(e.path, "spec.hostAliases");
        assert!(e.message.contains("not supported by pod1"), "{e}");
        // A field with no meaning in one VM is taken out and reported.
        let (pod, ignored) = Pod::parse_warned(
            r#"{"metadata":{"name":"p"},"spec":{"nodeSelector":{"a":"b"},"containers":[]}}"#,
        )
        .expect("parses");
        assert_eq!(pod.metadata.name, "p");
        assert_eq!(
            ignored.iter().map(|i| i.path.as_str()).collect::<Vec<_>>(),
            ["spec.nodeSelector"]
        );
        let e = err(r#"{"metadata":{"name":"p"},"spec":{"containers":[
            {"name":"a","image":"dir:x","livenessProbe":{}}]}}"#);
        assert_eq!(e.path, "spec.containers[0].livenessProbe");
    }

    #[test]
    fn missing_required_field() {
        let e = err(r#"{"metadata":{"name":"p"},"spec":{"containers":[{"name":"a"}]}}"#);
        assert_eq!(e.path, "spec.containers[0]");
        assert!(e.message.contains("missing field `image`"), "{e}");
    }

    #[test]
    fn kubernetes_spellings() {
        let pod = Pod::parse(
            r#"{"metadata":{"name":"p"},"spec":{"hostIPC":true,"hostNetwork":true,"shareProcessNamespace":true,
                "terminationGracePeriodSeconds":5,"containers":[]}}"#,
        )
        .unwrap();
        assert!(pod.spec.host_ipc && pod.spec.host_network && pod.spec.share_process_namespace);
        assert!(Pod::parse(r#"{"metadata":{"name":"p"},"spec":{"hostIpc":true,"containers":[]}}"#).is_err());
    }

    #[test]
    fn bad_restart_policy() {
        let e = err(r#"{"metadata":{"name":"p"},"spec":{"restartPolicy":"Sometimes","containers":[]}}"#);
        assert_eq!(e.path, "spec.restartPolicy");
        assert!(e.message.contains("Always"), "{e}");
    }

    #[test]
    fn not_json() {
        let e = err("{");
        assert!(e.message.contains("EOF"), "{e}");
    }
}
