//! The plan: a pod with every container fully resolved. The builder writes it
//! into the initramfs; the init runs it without needing the images' configs.

#[cfg(feature = "std")]
use std::collections::BTreeMap;

use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

#[cfg(feature = "std")]
use crate::error::Error;
#[cfg(feature = "std")]
use crate::image::{ImageConfig, UserDb};
#[cfg(feature = "std")]
use crate::pod::{Container, Pod};
use crate::pod::{RestartPolicy, SeccompProfileType, Sysctl};
#[cfg(feature = "std")]
use crate::{argv, env, validate};

/// Where the builder puts the plan inside the initramfs.
pub const PLAN_PATH: &str = "etc/pod1/plan.json";

/// Annotation: restart backoff base in milliseconds (Kubernetes: 10 s).
pub const ANNOTATION_BACKOFF_MS: &str = "pod1/restart-backoff-ms";
/// Annotation: restart backoff cap in milliseconds (Kubernetes: 300 s).
pub const ANNOTATION_BACKOFF_MAX_MS: &str = "pod1/restart-backoff-max-ms";
/// Annotation: the most processes each container's cgroup may hold.
pub const ANNOTATION_PIDS_LIMIT: &str = "pod1/pids-limit";
/// Every `pod1/` annotation; any other `pod1/` key is a typo.
#[rustfmt::skip]
pub const ANNOTATIONS: &[&str] = &[ANNOTATION_BACKOFF_MS, ANNOTATION_BACKOFF_MAX_MS, ANNOTATION_PIDS_LIMIT];

/// Capability names, indexed by their number in `linux/capability.h`.
#[rustfmt::skip]
pub const CAPABILITIES: &[&str] = &[
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
    "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
];

/// The capabilities a container gets unless privileged: Docker's and containerd's default set.
#[rustfmt::skip]
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
    "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
];

/// The resolved pod.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Plan {
    /// `metadata.name`.
    pub pod: String,
    /// `spec.hostname`, else `metadata.name`.
    pub hostname: String,
    /// `spec.restartPolicy`.
    pub restart_policy: RestartPolicy,
    /// Run one at a time, in order; each must exit 0.
    pub init_containers: Vec<ContainerPlan>,
    /// Started together after the init containers.
    pub containers: Vec<ContainerPlan>,
    /// Seconds between SIGTERM and SIGKILL on stop.
    pub termination_grace_period_seconds: u64,
    /// One PID namespace for the whole pod.
    pub share_process_namespace: bool,
    /// Stay in the VM's network namespace.
    pub host_network: bool,
    /// Stay in the VM's IPC namespace.
    pub host_ipc: bool,
    /// Set in the pod's namespaces before any container starts.
    pub sysctls: Vec<Sysctl>,
    /// emptyDir volumes.
    pub volumes: Vec<VolumePlan>,
    /// Restart backoff.
    pub backoff: Backoff,
    /// The pod's QoS class, from which the containers' oom_score_adj follows.
    pub qos_class: QosClass,
    /// The BPF programs (seccomp filters, the device program) in hex, each
    /// distinct one once: containers refer to them by index.
    pub programs: Vec<String>,
}

/// Kubernetes' QoS classes (`status.qosClass`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum QosClass {
    /// Every container has cpu and memory limits equal to its requests.
    Guaranteed,
    /// Some requests or limits, not Guaranteed.
    Burstable,
    /// No cpu or memory request or limit anywhere.
    BestEffort,
}

/// A container's `oom_score_adj` as the kubelet sets it: -997 when
/// Guaranteed, 1000 when BestEffort, and for Burstable
/// `1000 - 1000 * memory request / memory capacity`, kept within 3..=999 so
/// it stays above Guaranteed and below BestEffort.
pub fn oom_score_adj(qos: QosClass, memory_request: Option<u64>, capacity: u64) -> i32 {
    match qos {
        QosClass::Guaranteed => -997,
        QosClass::BestEffort => 1000,
        QosClass::Burstable => {
            let request = u128::from(memory_request.unwrap_or(0));
            let share = (1000 * request).checked_div(u128::from(capacity)).unwrap_or(0);
            let adj = 1000 - share.min(1000) as i32;
            if adj < 3 {
                3
            } else if adj == 1000 {
                999
            } else {
                adj
            }
        }
    }
}

/// Restart backoff, as the kubelet does it: `initial_ms` doubling up to
/// `max_ms`, back to `initial_ms` after a container ran for `reset_ms`.
/// Set with the annotations [`ANNOTATION_BACKOFF_MS`] and [`ANNOTATION_BACKOFF_MAX_MS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Backoff {
    /// First delay (Kubernetes: 10 s).
    pub initial_ms: u64,
    /// Cap (Kubernetes: 300 s).
    pub max_ms: u64,
    /// Running this long resets the delay (Kubernetes: 10 min).
    pub reset_ms: u64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial_ms: 10_000,
            max_ms: 300_000,
            reset_ms: 600_000,
        }
    }
}

/// An emptyDir volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VolumePlan {
    /// Volume name.
    pub name: String,
    /// tmpfs size in bytes, if limited.
    pub size_limit_bytes: Option<u64>,
}

/// A container, ready to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerPlan {
    /// Container name.
    pub name: String,
    /// The image as the manifest names it.
    pub image: String,
    /// The image's root filesystem inside the initramfs, e.g. `/pod1/images/<id>`.
    pub rootfs: String,
    /// The command line; `argv[0]` is looked up in the container's PATH.
    pub argv: Vec<String>,
    /// `NAME=value` strings.
    pub env: Vec<String>,
    /// Absolute working directory.
    pub working_dir: String,
    /// Who the process runs as.
    pub user: User,
    /// Mount the root filesystem read-only.
    pub read_only_root_filesystem: bool,
    /// No masked paths, writable /sys, all capabilities.
    pub privileged: bool,
    /// The process's capability set (bounding, permitted, effective), by name.
    pub capabilities: Vec<String>,
    /// Volumes to mount.
    pub volume_mounts: Vec<MountPlan>,
    /// cgroup limits.
    pub limits: Limits,
    /// `resources.requests.memory` (the limit when only that is set, as
    /// the API server defaults it), for the oom_score_adj.
    pub memory_request_bytes: Option<u64>,
    /// The seccomp filter, installed last before exec; `None`: unconfined.
    pub seccomp: Option<Seccomp>,
    /// The cgroup device program ([`crate::devices`]): an index into
    /// [`Plan::programs`], eBPF instructions in little-endian order.
    /// `None`: every device (privileged).
    pub devices: Option<usize>,
}

/// A container's seccomp filter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Seccomp {
    /// `RuntimeDefault` or `Localhost`.
    pub profile: SeccompProfileType,
    /// With `Localhost`: the file, as the manifest names it.
    pub localhost_profile: Option<String>,
    /// `SECCOMP_FILTER_FLAG_*` bits for seccomp(2).
    pub flags: u32,
    /// The compiled classic BPF program: an index into [`Plan::programs`],
    /// 8 bytes per instruction, the kernel's `struct sock_filter` in
    /// little-endian order. The builder compiles it after [`resolve`];
    /// `None` until then.
    pub program: Option<usize>,
}

/// uid and gid; supplementary groups are cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// A volume mount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MountPlan {
    /// An entry of [`Plan::volumes`].
    pub name: String,
    /// Absolute path in the container.
    pub mount_path: String,
    /// Read-only.
    pub read_only: bool,
}

/// cgroup v2 limits of one container.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Limits {
    /// `memory.max`.
    pub memory_bytes: Option<u64>,
    /// `cpu.max` in thousandths of a CPU.
    pub cpu_millis: Option<u64>,
    /// `pids.max`.
    pub pids: Option<u64>,
}

/// One image as the builder imported it.
#[cfg(feature = "std")]
#[derive(Debug, Clone, Default)]
pub struct ImageInfo {
    /// Its configuration.
    pub config: ImageConfig,
    /// Where its root filesystem sits in the initramfs.
    pub rootfs: String,
    /// Its `/etc/passwd`, if any.
    pub passwd: Option<String>,
    /// Its `/etc/group`, if any.
    pub group: Option<String>,
}

impl Plan {
    /// Init containers then app containers.
    pub fn all_containers(&self) -> impl Iterator<Item = &ContainerPlan> {
        self.init_containers.iter().chain(&self.containers)
    }
}

/// Lowercase hex, as the plan carries programs (seccomp, devices).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    bytes
        .iter()
        .flat_map(|b| {
            [
                DIGITS[(b >> 4) as usize] as char,
                DIGITS[(b & 15) as usize] as char,
            ]
        })
        .collect()
}

/// The inverse of [`hex`]; `None` unless it is whole bytes of hex digits.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    text.as_bytes()
        .chunks(2)
        .map(|p| Some(nibble(*p.first()?)? << 4 | nibble(*p.get(1)?)?))
        .collect()
}

/// Validates `pod` and resolves it against its images, keyed by the
/// manifest's `image` strings. Every image the pod names must be present.
#[cfg(feature = "std")]
pub fn resolve(pod: &Pod, images: &BTreeMap<String, ImageInfo>) -> Result<Plan, Error> {
    validate::validate(pod)?;
    let spec = &pod.spec;
    let hostname = spec.hostname.clone().unwrap_or_else(|| pod.metadata.name.clone());
    let annotation = |key: &str, default: u64| -> Result<u64, Error> {
        match pod.metadata.annotations.get(key) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| {
                Error::new(
                    format!("metadata.annotations.{key}"),
                    format!("{v:?} is not a whole number"),
                )
            }),
        }
    };
    let initial_ms = annotation(ANNOTATION_BACKOFF_MS, Backoff::default().initial_ms)?;
    let backoff = Backoff {
        initial_ms,
        max_ms: annotation(
            ANNOTATION_BACKOFF_MAX_MS,
            Backoff::default().max_ms.max(initial_ms),
        )?,
        reset_ms: Backoff::default().reset_ms,
    };
    let pids = pod
        .metadata
        .annotations
        .get(ANNOTATION_PIDS_LIMIT)
        .map(|_| annotation(ANNOTATION_PIDS_LIMIT, 0))
        .transpose()?;
    let resolve_list = |field: &str, list: &[Container]| -> Result<Vec<ContainerPlan>, Error> {
        list.iter()
            .enumerate()
            .map(|(i, c)| resolve_container(pod, &format!("spec.{field}[{i}]"), c, &hostname, images, pids))
            .collect()
    };
    Ok(Plan {
        pod: pod.metadata.name.clone(),
        hostname: hostname.clone(),
        restart_policy: spec.restart_policy.unwrap_or_default(),
        init_containers: resolve_list("initContainers", &spec.init_containers)?,
        containers: resolve_list("containers", &spec.containers)?,
        termination_grace_period_seconds: spec.termination_grace_period_seconds.unwrap_or(30) as u64,
        share_process_namespace: spec.share_process_namespace,
        host_network: spec.host_network,
        host_ipc: spec.host_ipc,
        sysctls: spec
            .security_context
            .as_ref()
            .map(|s| s.sysctls.clone())
            .unwrap_or_default(),
        volumes: spec
            .volumes
            .iter()
            .map(|v| VolumePlan {
                name: v.name.clone(),
                size_limit_bytes: v
                    .empty_dir
                    .as_ref()
                    .and_then(|e| e.size_limit.as_ref())
                    .and_then(|q| q.whole()),
            })
            .collect(),
        backoff,
        qos_class: qos_class(spec.init_containers.iter().chain(&spec.containers)),
        programs: alloc::vec![hex(&crate::devices::program(crate::devices::DEFAULT_RULES))],
    })
}

/// The pod's QoS class as the kubelet computes it (only cpu and memory
/// count; a request defaults to the limit when unset, as the API server
/// defaults it): BestEffort with no request or limit; Guaranteed when every
/// container limits both and the summed requests equal the summed limits.
#[cfg(feature = "std")]
fn qos_class<'a>(containers: impl Iterator<Item = &'a Container>) -> QosClass {
    let mut requests: BTreeMap<&str, u128> = BTreeMap::new();
    let mut limits: BTreeMap<&str, u128> = BTreeMap::new();
    let mut guaranteed = true;
    for c in containers {
        let r = c.resources.as_ref();
        let mut limited = 0;
        for key in ["cpu", "memory"] {
            let limit = r
                .and_then(|r| r.limits.get(key))
                .and_then(|q| q.millis())
                .filter(|m| *m > 0);
            let request = r
                .and_then(|r| r.requests.get(key))
                .and_then(|q| q.millis())
                .or(limit)
                .filter(|m| *m > 0);
            if let Some(v) = request {
                *requests.entry(key).or_default() += v;
            }
            if let Some(v) = limit {
                *limits.entry(key).or_default() += v;
                limited += 1;
            }
        }
        if limited < 2 {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        QosClass::BestEffort
    } else if guaranteed && requests == limits {
        QosClass::Guaranteed
    } else {
        QosClass::Burstable
    }
}

#[cfg(feature = "std")]
fn resolve_container(
    pod: &Pod,
    at: &str,
    c: &Container,
    hostname: &str,
    images: &BTreeMap<String, ImageInfo>,
    pids: Option<u64>,
) -> Result<ContainerPlan, Error> {
    let image = images.get(&c.image).ok_or_else(|| {
        Error::new(
            format!("{at}.image"),
            format!("image {:?} was not imported", c.image),
        )
    })?;
    let cfg = &image.config;
    let (environment, defined) = env::build(&cfg.env, hostname, &c.env);
    let lookup = |name: &str| defined.get(name).map(str::to_string);
    let expand_all = |list: &Option<Vec<String>>| -> Vec<String> {
        list.iter().flatten().map(|s| env::expand(s, lookup)).collect()
    };
    let argv = argv::resolve(&expand_all(&c.command), &expand_all(&c.args), &cfg.entrypoint, &cfg.cmd)
        .map_err(|_| {
            Error::new(
                at,
                format!(
                    "container {:?}: no command specified: the image {:?} has no Entrypoint or Cmd; set `command`",
                    c.name, c.image
                ),
            )
        })?;
    let sc = c.security_context.clone().unwrap_or_default();
    let psc = pod.spec.security_context.clone().unwrap_or_default();
    // Validation has checked these fit in 0..=2^31-1.
    let run_as_user = sc.run_as_user.or(psc.run_as_user).map(|v| v as u32);
    let run_as_group = sc.run_as_group.or(psc.run_as_group).map(|v| v as u32);
    let db = UserDb {
        passwd: image.passwd.as_deref(),
        group: image.group.as_deref(),
    };
    let (uid, gid) = db.resolve(&cfg.user, run_as_user, run_as_group).map_err(|msg| {
        Error::new(
            at,
            format!("container {:?}: {msg}; set securityContext.runAsUser", c.name),
        )
    })?;
    let privileged = sc.privileged.unwrap_or(false);
    // containerd gives a privileged container no filter, whatever its
    // profile; absent a profile, the runtime's default applies (as the
    // kubelet's --seccomp-default and Docker do).
    let profile = sc.seccomp_profile.or(psc.seccomp_profile);
    let seccomp = match profile.as_ref().map(|p| p.kind) {
        _ if privileged => None,
        Some(SeccompProfileType::Unconfined) => None,
        kind => Some(Seccomp {
            profile: kind.unwrap_or(SeccompProfileType::RuntimeDefault),
            localhost_profile: profile.and_then(|p| p.localhost_profile),
            flags: 0,
            program: None,
        }),
    };
    let working_dir = match (&c.working_dir, cfg.working_dir.as_str()) {
        (Some(dir), _) => dir.clone(),
        (None, "") => "/".to_string(),
        (None, dir) => dir.to_string(),
    };
    let limits = c.resources.as_ref().map(|r| &r.limits);
    let limit = |key: &str| limits.and_then(|l| l.get(key));
    Ok(ContainerPlan {
        name: c.name.clone(),
        image: c.image.clone(),
        rootfs: image.rootfs.clone(),
        argv,
        env: environment.to_strings(),
        working_dir,
        user: User { uid, gid },
        read_only_root_filesystem: sc.read_only_root_filesystem.unwrap_or(false),
        privileged,
        capabilities: capabilities(privileged, sc.capabilities.as_ref()),
        volume_mounts: c
            .volume_mounts
            .iter()
            .map(|m| MountPlan {
                name: m.name.clone(),
                mount_path: m.mount_path.clone(),
                read_only: m.read_only,
            })
            .collect(),
        limits: Limits {
            memory_bytes: limit("memory").and_then(|q| q.whole()),
            cpu_millis: limit("cpu")
                .and_then(|q| q.millis())
                .and_then(|m| u64::try_from(m).ok()),
            pids,
        },
        memory_request_bytes: c
            .resources
            .as_ref()
            .and_then(|r| r.requests.get("memory"))
            .or(limit("memory"))
            .and_then(|q| q.whole()),
        seccomp,
        // The device program is the plan's first (see `resolve`).
        devices: (!privileged).then_some(0),
    })
}

/// Normalises `net_admin` / `CAP_NET_ADMIN` to `NET_ADMIN`.
#[cfg(feature = "std")]
pub fn capability_name(name: &str) -> String {
    let upper = name.to_ascii_uppercase();
    upper.strip_prefix("CAP_").map(str::to_string).unwrap_or(upper)
}

/// The capability set as containerd computes it: the default set (all when
/// privileged); `add: [ALL]` gives all, `drop: [ALL]` none; then the named
/// adds, then the named drops. Sorted by capability number.
#[cfg(feature = "std")]
fn capabilities(privileged: bool, caps: Option<&crate::pod::Capabilities>) -> Vec<String> {
    let all: Vec<String> = CAPABILITIES.iter().map(|s| s.to_string()).collect();
    if privileged {
        return all;
    }
    let mut set: Vec<String> = DEFAULT_CAPABILITIES.iter().map(|s| s.to_string()).collect();
    if let Some(caps) = caps {
        let add: Vec<String> = caps.add.iter().map(|s| capability_name(s)).collect();
        let drop: Vec<String> = caps.drop.iter().map(|s| capability_name(s)).collect();
        if add.iter().any(|c| c == "ALL") {
            set = all.clone();
        }
        if drop.iter().any(|c| c == "ALL") {
            set.clear();
        }
        set.extend(add.into_iter().filter(|c| c != "ALL"));
        set.retain(|c| !drop.contains(c));
    }
    all.into_iter().filter(|c| set.contains(c)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn images(cfg: ImageConfig) -> BTreeMap<String, ImageInfo> {
        let info = ImageInfo {
            config: cfg,
            rootfs: "/pod1/images/abc".into(),
            passwd: Some("root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n".into()),
            group: Some("root:x:0:\napp:x:1000:\n".into()),
        };
        BTreeMap::from([("oci:img".to_string(), info)])
    }

    fn plan(json: &str, cfg: ImageConfig) -> Result<Plan, Error> {
        resolve(&Pod::parse(json)?, &images(cfg))
    }

    #[test]
    fn resolves_a_pod() {
        let cfg = ImageConfig {
            entrypoint: vec!["/bin/sh".into()],
            cmd: vec!["-c".into(), "true".into()],
            env: vec!["PATH=/bin".into(), "GREETING=hi".into()],
            working_dir: "/srv".into(),
            user: "app".into(),
        };
        let p = plan(
            r#"{"metadata":{"name":"demo","annotations":{"pod1/restart-backoff-ms":"50"}},
                "spec":{"restartPolicy":"OnFailure",
                "containers":[{"name":"web","image":"oci:img",
                   "args":["-c","echo $(WHO) $$(WHO)"],
                   "env":[{"name":"WHO","value":"$(GREETING) world"}],
                   "securityContext":{"capabilities":{"add":["net_admin"],"drop":["CAP_KILL"]}}}]}}"#,
            cfg,
        )
        .unwrap();
        let c = &p.containers[0];
        assert_eq!(p.hostname, "demo");
        assert_eq!(p.restart_policy, RestartPolicy::OnFailure);
        assert_eq!(c.argv, ["/bin/sh", "-c", "echo $(GREETING) world $(WHO)"]);
        assert_eq!(
            c.env,
            [
                "PATH=/bin",
                "HOSTNAME=demo",
                "GREETING=hi",
                "WHO=$(GREETING) world"
            ]
        );
        assert_eq!(c.working_dir, "/srv");
        assert_eq!(c.user, User { uid: 1000, gid: 1000 });
        assert_eq!(c.rootfs, "/pod1/images/abc");
        assert!(c.capabilities.contains(&"NET_ADMIN".to_string()));
        assert!(!c.capabilities.contains(&"KILL".to_string()));
        assert_eq!(p.backoff.initial_ms, 50);
        assert_eq!(p.termination_grace_period_seconds, 30);
    }

    #[test]
    fn no_command_names_the_container() {
        let e = plan(
            r#"{"metadata":{"name":"p"},"spec":{"containers":[{"name":"a","image":"oci:img"}]}}"#,
            ImageConfig::default(),
        )
        .unwrap_err();
        assert_eq!(e.path, "spec.containers[0]");
        assert!(e.message.contains("no command specified"), "{e}");
        assert!(e.message.contains("\"a\""), "{e}");
    }

    #[test]
    fn empty_lists_mean_absent() {
        let cfg = ImageConfig {
            entrypoint: vec!["/ep".into()],
            cmd: vec!["c".into()],
            ..Default::default()
        };
        let p = plan(
            r#"{"metadata":{"name":"p"},"spec":{"containers":[{"name":"a","image":"oci:img","command":[],"args":[]}]}}"#,
            cfg,
        )
        .unwrap();
        assert_eq!(p.containers[0].argv, ["/ep", "c"]);
    }

    #[test]
    fn run_as_overrides_image_user_and_pod_level_applies() {
        let cfg = ImageConfig {
            cmd: vec!["x".into()],
            user: "app".into(),
            ..Default::default()
        };
        let p = plan(
            r#"{"metadata":{"name":"p"},"spec":{"securityContext":{"runAsGroup":5},
               "containers":[{"name":"a","image":"oci:img","securityContext":{"runAsUser":7}}]}}"#,
            cfg,
        )
        .unwrap();
        assert_eq!(p.containers[0].user, User { uid: 7, gid: 5 });
    }

    #[test]
    fn capability_sets() {
        let caps = |add: &[&str], drop: &[&str]| {
            let c = crate::pod::Capabilities {
                add: add.iter().map(|s| s.to_string()).collect(),
                drop: drop.iter().map(|s| s.to_string()).collect(),
            };
            capabilities(false, Some(&c))
        };
        assert_eq!(capabilities(false, None).len(), DEFAULT_CAPABILITIES.len());
        assert_eq!(capabilities(true, None).len(), CAPABILITIES.len());
        assert_eq!(caps(&[], &["ALL"]), Vec::<String>::new());
        assert_eq!(caps(&["NET_ADMIN"], &["ALL"]), ["NET_ADMIN"]);
        assert_eq!(caps(&["ALL"], &["SYS_ADMIN"]).len(), CAPABILITIES.len() - 1);
    }

    #[test]
    fn plan_round_trips_through_json() {
        let cfg = ImageConfig {
            cmd: vec!["x".into()],
            ..Default::default()
        };
        let p = plan(
            r#"{"metadata":{"name":"p"},"spec":{"containers":[{"name":"a","image":"oci:img"}]}}"#,
            cfg,
        )
        .unwrap();
        let json = serde_json::to_string(&p).unwrap();
        assert!(
            json.starts_with(r#"{"pod":"p","hostname":"p","restartPolicy":"Always","initContainers":[]"#),
            "{json}"
        );
        let back: Plan = serde_json::from_str(&json).unwrap();
        assert_eq!(back, p);
    }
}

#[cfg(test)]
mod qos_tests {
    use super::*;

    fn class(containers: serde_json::Value) -> QosClass {
        let pod = serde_json::json!({"metadata": {"name": "q"}, "spec": {"containers": containers}});
        let pod = Pod::parse(&pod.to_string()).expect("pod");
        qos_class(pod.spec.init_containers.iter().chain(&pod.spec.containers))
    }

    #[test]
    fn qos_class_as_the_kubelet_computes_it() {
        let c = |resources: serde_json::Value| serde_json::json!({"name": "c", "image": "oci:x", "resources": resources});
        let both = serde_json::json!({"cpu": "500m", "memory": "64Mi"});
        assert_eq!(
            class(serde_json::json!([c(serde_json::json!({}))])),
            QosClass::BestEffort
        );
        // Limits alone: requests default to them.
        assert_eq!(
            class(serde_json::json!([c(serde_json::json!({"limits": both}))])),
            QosClass::Guaranteed
        );
        assert_eq!(
            class(serde_json::json!([c(
                serde_json::json!({"limits": both, "requests": both})
            )])),
            QosClass::Guaranteed
        );
        assert_eq!(
            class(serde_json::json!([c(
                serde_json::json!({"limits": both, "requests": {"memory": "32Mi"}})
            )])),
            QosClass::Burstable
        );
        assert_eq!(
            class(serde_json::json!([c(
                serde_json::json!({"limits": {"memory": "64Mi"}})
            )])),
            QosClass::Burstable
        );
        assert_eq!(
            class(serde_json::json!([c(
                serde_json::json!({"requests": {"cpu": "1"}})
            )])),
            QosClass::Burstable
        );
        // One container without limits makes the pod Burstable.
        let mut other = c(serde_json::json!({}));
        other["name"] = "d".into();
        assert_eq!(
            class(serde_json::json!([c(serde_json::json!({"limits": both})), other])),
            QosClass::Burstable
        );
        // Other resources do not count.
        assert_eq!(
            class(serde_json::json!([c(
                serde_json::json!({"requests": {"ephemeral-storage": "1Gi"}})
            )])),
            QosClass::BestEffort
        );
    }

    #[test]
    fn oom_score_adj_as_the_kubelet_sets_it() {
        let gib = 1 << 30;
        assert_eq!(oom_score_adj(QosClass::Guaranteed, Some(gib), gib), -997);
        assert_eq!(oom_score_adj(QosClass::BestEffort, None, gib), 1000);
        assert_eq!(oom_score_adj(QosClass::Burstable, Some(gib / 4), gib), 750);
        // No memory request: 1000 would equal BestEffort, so 999.
        assert_eq!(oom_score_adj(QosClass::Burstable, None, gib), 999);
        // A request at or over capacity: still above Guaranteed.
        assert_eq!(oom_score_adj(QosClass::Burstable, Some(gib), gib), 3);
        assert_eq!(oom_score_adj(QosClass::Burstable, Some(4 * gib), gib), 3);
        assert_eq!(oom_score_adj(QosClass::Burstable, Some(gib), 0), 999);
    }
}
