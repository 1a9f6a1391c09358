//! The manifest: the subset of a Kubernetes `v1` `Pod` that pod1 honours.
//!
//! Every struct denies unknown fields, so a typo is an error rather than a
//! silently ignored setting. A field that Kubernetes has but pod1 does not
//! honour gets its own message (see [`KUBERNETES_FIELDS`]).

#[cfg(feature = "std")]
use std::collections::BTreeMap;

#[cfg(feature = "std")]
use alloc::string::String;
use serde::Deserialize;

#[cfg(feature = "std")]
use crate::error::Error;
#[cfg(feature = "std")]
use crate::quantity::Quantity;

#[cfg(feature = "std")]
mod env;
mod security;
#[cfg(feature = "std")]
mod volumes;
#[cfg(feature = "std")]
pub use env::*;
pub use security::*;
#[cfg(feature = "std")]
pub use volumes::*;

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
    /// The namespace (default `default`): the downward API and the pod's
    /// DNS names (`subdomain`) use it.
    pub namespace: Option<String>,
    /// The pod's uid; generated from the manifest's content when absent.
    pub uid: Option<String>,
    /// Labels, for the downward API.
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
    /// With it the pod's FQDN is `hostname.subdomain.namespace.svc.cluster.local`.
    pub subdomain: Option<String>,
    /// The kernel hostname is the FQDN (at most 64 characters).
    #[serde(default, rename = "setHostnameAsFQDN")]
    pub set_hostname_as_fqdn: bool,
    /// Entries added to every container's /etc/hosts.
    #[serde(default)]
    pub host_aliases: Vec<HostAlias>,
    /// `ClusterFirst` (the default), `ClusterFirstWithHostNet`, `Default`
    /// or `None`: with no cluster DNS the first two fall back to `Default`
    /// (the node's resolver: the VM's), as the kubelet does.
    pub dns_policy: Option<String>,
    /// Nameservers, search domains and options of /etc/resolv.conf.
    pub dns_config: Option<DnsConfig>,
    /// Seconds the pod may run before it is stopped (DeadlineExceeded).
    pub active_deadline_seconds: Option<i64>,
    /// `os.name`: only `linux`.
    pub os: Option<PodOs>,
    /// `spec.serviceAccountName`, taken out as ignored ([`crate::ignored`])
    /// but kept for the downward API (`default` when absent).
    #[serde(skip)]
    pub service_account_name: Option<String>,
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
    /// Secrets (`kubernetes.io/dockerconfigjson`) holding registry
    /// credentials, tried before the host's.
    #[serde(default)]
    pub image_pull_secrets: Vec<LocalObjectReference>,
}

/// A reference to an object of the pod's namespace by name.
#[cfg(feature = "std")]
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalObjectReference {
    /// The object's name.
    pub name: Option<String>,
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

/// `spec.hostAliases[]`.
#[cfg(feature = "std")]
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostAlias {
    /// An IPv4 or IPv6 address.
    pub ip: String,
    /// Names for it.
    #[serde(default)]
    pub hostnames: Vec<String>,
}

/// `spec.dnsConfig`.
#[cfg(feature = "std")]
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsConfig {
    /// `nameserver` lines (at most 3).
    #[serde(default)]
    pub nameservers: Vec<String>,
    /// The `search` line (at most 32 domains).
    #[serde(default)]
    pub searches: Vec<String>,
    /// The `options` line.
    #[serde(default)]
    pub options: Vec<DnsOption>,
}

/// `spec.dnsConfig.options[]`.
#[cfg(feature = "std")]
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsOption {
    /// e.g. `ndots`.
    pub name: String,
    /// e.g. `2`.
    pub value: Option<String>,
}

/// `spec.os`.
#[cfg(feature = "std")]
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PodOs {
    /// Only `linux`.
    pub name: String,
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
    /// Where the container may write its termination message; default
    /// `/dev/termination-log`, a writable file in every container.
    pub termination_message_path: Option<String>,
    /// `File` or `FallbackToLogsOnError`.
    pub termination_message_policy: Option<String>,
    /// Replaces the image's Entrypoint.
    pub command: Option<Vec<String>>,
    /// Replaces the image's Cmd.
    pub args: Option<Vec<String>>,
    /// Added to (and overriding) the image's Env, with `$(VAR)` expansion.
    #[serde(default)]
    pub env: Vec<EnvVar>,
    /// Every key of ConfigMaps and Secrets, before `env`.
    #[serde(default)]
    pub env_from: Vec<EnvFromSource>,
    /// Replaces the image's WorkingDir.
    pub working_dir: Option<String>,
    /// User, capabilities, read-only root.
    pub security_context: Option<SecurityContext>,
    /// Volumes mounted into the container.
    #[serde(default)]
    pub volume_mounts: Vec<VolumeMount>,
    /// `limits` are enforced with cgroups; `requests` are accepted and ignored.
    pub resources: Option<Resources>,
    /// Ports; those with a `hostPort` are published to the host.
    #[serde(default)]
    pub ports: Vec<ContainerPort>,
    /// The stop signal and the postStart and preStop hooks.
    pub lifecycle: Option<Lifecycle>,
    /// Failing, the container is killed and restarted per `restartPolicy`.
    pub liveness_probe: Option<Probe>,
    /// The container's `ready`.
    pub readiness_probe: Option<Probe>,
    /// Holds the other two back until it succeeds; failing, as liveness.
    pub startup_probe: Option<Probe>,
    /// `Always` on an init container: a sidecar (a native sidecar, as
    /// Kubernetes 1.29 on runs it); not allowed on app containers.
    pub restart_policy: Option<String>,
}

/// `lifecycle` of a container.
#[cfg(feature = "std")]
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Lifecycle {
    /// The signal a stop sends instead of the image's StopSignal or SIGTERM.
    pub stop_signal: Option<String>,
    /// Run once the command started; the container is not started until it succeeds.
    pub post_start: Option<LifecycleHandler>,
    /// Run before the stop signal, within the grace period.
    pub pre_stop: Option<LifecycleHandler>,
}

/// `livenessProbe`, `readinessProbe`, `startupProbe`: one handler and
/// its timing (0 or absent takes the API server's default).
#[cfg(feature = "std")]
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Probe {
    /// Run a command in the container; exit code 0 is success.
    pub exec: Option<ExecAction>,
    /// `GET` a URL; 200..=399 is success.
    pub http_get: Option<HttpGetAction>,
    /// Connect to a port; connecting is success.
    pub tcp_socket: Option<TcpSocketAction>,
    /// Refused: the init has no HTTP/2 client.
    pub grpc: Option<GrpcAction>,
    /// Seconds from the start to the first check (default 0).
    pub initial_delay_seconds: Option<i32>,
    /// Seconds a check may take (default 1).
    pub timeout_seconds: Option<i32>,
    /// Seconds between checks (default 10).
    pub period_seconds: Option<i32>,
    /// Successes in a row that make a failed probe succeed (default 1).
    pub success_threshold: Option<i32>,
    /// Failures in a row that make a probe fail (default 3).
    pub failure_threshold: Option<i32>,
    /// The grace period when this probe's failure kills the container.
    pub termination_grace_period_seconds: Option<i64>,
}

/// `lifecycle.postStart`, `lifecycle.preStop`: one handler.
#[cfg(feature = "std")]
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LifecycleHandler {
    /// Run a command in the container.
    pub exec: Option<ExecAction>,
    /// `GET` a URL.
    pub http_get: Option<HttpGetAction>,
    /// Refused: deprecated, and a node's kubelet fails such a hook.
    pub tcp_socket: Option<TcpSocketAction>,
    /// Wait.
    pub sleep: Option<SleepAction>,
}

/// `exec` of a probe or hook.
#[cfg(feature = "std")]
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecAction {
    /// argv, run without a shell; required.
    #[serde(default)]
    pub command: Vec<String>,
}

/// `httpGet` of a probe or hook.
#[cfg(feature = "std")]
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpGetAction {
    /// The request's path and query (default `/`).
    pub path: Option<String>,
    /// A number, or the name of one of the container's `ports`.
    pub port: IntOrString,
    /// An IPv4 address; default the pod's IP.
    pub host: Option<String>,
    /// `HTTP` (the default); `HTTPS` is refused.
    pub scheme: Option<String>,
    /// Request headers, in order.
    #[serde(default)]
    pub http_headers: Vec<HttpHeader>,
}

/// `httpGet.httpHeaders[]`.
#[cfg(feature = "std")]
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpHeader {
    /// Letters, digits and `-`.
    pub name: String,
    /// Sent as it is.
    pub value: String,
}

/// `tcpSocket` of a probe or hook.
#[cfg(feature = "std")]
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpSocketAction {
    /// A number, or the name of one of the container's `ports`.
    pub port: IntOrString,
    /// An IPv4 address; default the pod's IP.
    pub host: Option<String>,
}

/// `grpc` of a probe (refused).
#[cfg(feature = "std")]
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcAction {
    /// The port number.
    pub port: i32,
    /// The service name the health check asks about.
    pub service: Option<String>,
}

/// `sleep` of a hook.
#[cfg(feature = "std")]
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SleepAction {
    /// How long, at most the pod's `terminationGracePeriodSeconds`.
    #[serde(default)]
    pub seconds: i64,
}

/// A port given by number or by name, as Kubernetes' `IntOrString`: a JSON
/// number is a number, a string a name (`"8080"` is a name, and not a valid one).
#[cfg(feature = "std")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntOrString {
    /// A number.
    Int(i32),
    /// A name.
    String(String),
}

#[cfg(feature = "std")]
impl<'de> Deserialize<'de> for IntOrString {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = IntOrString;
            fn expecting(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
                f.write_str("a port number or name")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<IntOrString, E> {
                let n = i32::try_from(v).map_err(|_| E::custom(format_args!("{v} is out of range")))?;
                Ok(IntOrString::Int(n))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<IntOrString, E> {
                let n = i32::try_from(v).map_err(|_| E::custom(format_args!("{v} is out of range")))?;
                Ok(IntOrString::Int(n))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<IntOrString, E> {
                Ok(IntOrString::String(v.to_string()))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// `ports[]` of a container.
#[cfg(feature = "std")]
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ContainerPort {
    /// An IANA service name, unique in the container (probes may name it).
    pub name: Option<String>,
    /// The port the container listens on.
    pub container_port: i32,
    /// The host port forwarded to it; none publishes nothing.
    pub host_port: Option<i32>,
    /// The host address the forward listens on (default 127.0.0.1).
    #[serde(rename = "hostIP")]
    pub host_ip: Option<String>,
    /// `TCP` (the default) or `UDP`.
    pub protocol: Option<String>,
}

/// `resources`.
#[cfg(feature = "std")]
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// `memory` and `cpu`, enforced with cgroups.
    #[serde(default)]
    pub limits: BTreeMap<String, Quantity>,
    /// `cpu` and `memory` decide the QoS class; all three (with
    /// `ephemeral-storage`) reach the downward API; nothing is scheduled.
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
    "ephemeralContainers", "hostPID", "hostUsers", "overhead", "resourceClaims",
    "runtimeClassName", "resources", "hostnameOverride",
    // Container
    "resizePolicy", "stdin", "stdinOnce", "tty", "volumeDevices",
    // EnvVarSource
    "fileKeyRef",
    // Volume sources, VolumeMount
    "persistentVolumeClaim", "nfs", "csi", "ephemeral", "image", "iscsi",
    "gitRepo", "recursiveReadOnly", "podCertificate", "awsElasticBlockStore", "azureDisk",
    "azureFile", "cephfs", "cinder", "fc", "flexVolume", "flocker", "gcePersistentDisk",
    "glusterfs", "photonPersistentDisk", "portworxVolume", "quobyte", "rbd", "scaleIO",
    "storageos", "vsphereVolume",
    // resources
    "claims",
];

#[cfg(feature = "std")]
impl PodSpec {
    /// Init containers, then app containers.
    pub fn all_containers(&self) -> impl Iterator<Item = &Container> {
        self.init_containers.iter().chain(&self.containers)
    }
}

#[cfg(feature = "std")]
impl Pod {
    /// Parses a manifest file (YAML or JSON, see [`crate::document`]) that
    /// holds one workload, naming the document and the JSON path of any
    /// error, without the API server's rules ([`crate::validate`]); see
    /// [`crate::workload::read`] for the whole reading.
    pub fn parse(text: &str) -> Result<Pod, Error> {
        crate::workload::read_checked(text, false).map(|w| w.pod)
    }
}

/// Reads a Kubernetes object from its JSON value, naming the JSON path of
/// any error; a field Kubernetes has but pod1 does not honour is named as such.
#[cfg(feature = "std")]
pub(crate) fn deserialize<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, Error> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let msg = inner.to_string();
        match unknown_field_name(&msg) {
            // The path already ends with the unknown field's name.
            Some(field) if KUBERNETES_FIELDS.contains(&field) => {
                Error::new(path, "this Kubernetes field is not supported by pod1; remove it")
            }
            Some(_) => Error::new(path, format!("unknown field; {}", expected_list(&msg))),
            None => Error::new(path, plain_message(&msg)),
        }
    })
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
        let e = err(r#"{"metadata":{"name":"p"},"spec":{"hostPID":true,"containers":[]}}"#);
        assert_eq!(e.path, "spec.hostPID");
        assert!(e.message.contains("not supported by pod1"), "{e}");
        // A field with no meaning in one VM is taken out and reported.
        let w = crate::workload::read(
            r#"{"metadata":{"name":"p"},"spec":{"nodeSelector":{"a":"b"},"containers":[{"name":"c","image":"dir:x"}]}}"#,
        )
        .expect("parses");
        assert_eq!(w.pod.metadata.name, "p");
        assert_eq!(
            w.ignored.iter().map(|i| i.path.as_str()).collect::<Vec<_>>(),
            ["spec.nodeSelector"]
        );
        let e = err(r#"{"metadata":{"name":"p"},"spec":{"containers":[
            {"name":"a","image":"dir:x","tty":true}]}}"#);
        assert_eq!(e.path, "spec.containers[0].tty");
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
