//! The plan: a pod with every container fully resolved. The builder writes it
//! into the initramfs; the init runs it without needing the images' configs.

use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

#[cfg(feature = "std")]
use crate::image::ImageConfig;
use crate::pod::{RestartPolicy, SeccompProfileType, Sysctl};

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
    /// `spec.activeDeadlineSeconds`: the pod is stopped this long after
    /// the init took it on (phase Failed, reason DeadlineExceeded).
    pub active_deadline_seconds: Option<u64>,
    /// One PID namespace for the whole pod.
    pub share_process_namespace: bool,
    /// Stay in the VM's network namespace.
    pub host_network: bool,
    /// Stay in the VM's IPC namespace.
    pub host_ipc: bool,
    /// Set in the pod's namespaces before any container starts.
    pub sysctls: Vec<Sysctl>,
    /// The volumes (emptyDir, prepared ones, hostPath).
    pub volumes: Vec<VolumePlan>,
    /// Restart backoff.
    pub backoff: Backoff,
    /// The pod's QoS class, from which the containers' oom_score_adj follows.
    pub qos_class: QosClass,
    /// A Job's `backoffLimit`: how many times its pod is retried. Under
    /// restartPolicy OnFailure the init counts the pod's container restarts
    /// against it (as the Job controller counts restartCount) and gives up
    /// when they run out; under Never `pod1 run` boots the pod again.
    pub backoff_limit: Option<u32>,
    /// The BPF programs (seccomp filters, the device program) in hex, each
    /// distinct one once: containers refer to them by index.
    pub programs: Vec<String>,
    /// The pod's NIC (QEMU's user network): `None`, loopback only.
    /// `pod1 run` gives QEMU these addresses and the init the same ones on
    /// the kernel command line (`pod1.net=`), so the init skips this.
    #[cfg(feature = "std")]
    pub network: Option<NetworkPlan>,
    /// Container ports published to the host (`hostPort`): `pod1 run`
    /// sets up the forwards; the init skips them.
    #[cfg(feature = "std")]
    pub ports: Vec<PortPlan>,
    /// What the init skips unread (`network`, `ports`): their types'
    /// parsing code would cost the init about 15 KB.
    #[cfg(not(feature = "std"))]
    #[serde(default, skip_serializing)]
    pub network: serde::de::IgnoredAny,
    /// (As `network`.)
    #[cfg(not(feature = "std"))]
    #[serde(default, skip_serializing)]
    pub ports: serde::de::IgnoredAny,
}

/// The addresses of the VM's one NIC, as QEMU's user-mode network serves
/// them (`pod1 run` gives QEMU the same ones).
#[cfg(feature = "std")]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkPlan {
    /// The pod's IPv4 address (`status.podIP`).
    pub address: String,
    /// Its prefix length.
    pub prefix_len: u8,
    /// The default gateway; also the host, as seen from the pod.
    pub gateway: String,
    /// The DNS server, forwarding to the host's resolvers.
    pub dns: String,
}

/// A port published from the host to the pod.
#[cfg(feature = "std")]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortPlan {
    /// The container declaring it.
    pub container: String,
    /// The port's name.
    pub name: Option<String>,
    /// TCP or UDP.
    pub protocol: Protocol,
    /// The host address it listens on.
    pub host_ip: String,
    /// The host port.
    pub host_port: u16,
    /// The pod's port it forwards to.
    pub container_port: u16,
}

/// A published port's protocol.
#[cfg(feature = "std")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Protocol {
    /// TCP.
    #[serde(rename = "TCP")]
    Tcp,
    /// UDP.
    #[serde(rename = "UDP")]
    Udp,
}

#[cfg(feature = "std")]
impl NetworkPlan {
    /// The kernel parameter that gives the init these addresses:
    /// `pod1.net=ADDRESS/PREFIX,GATEWAY`.
    pub fn cmdline_value(&self) -> String {
        alloc::format!("{}/{},{}", self.address, self.prefix_len, self.gateway)
    }
}

#[cfg(feature = "std")]
impl Protocol {
    /// `tcp` or `udp`, as QEMU and `-p` spell it.
    pub fn lower(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
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

/// A volume of the pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VolumePlan {
    /// Volume name.
    pub name: String,
    /// emptyDir: tmpfs size in bytes, if limited.
    pub size_limit_bytes: Option<u64>,
    /// A volume whose files the builder wrote (configMap, secret,
    /// downwardAPI, projected): this directory of the initramfs, mounted
    /// read-only (nosuid, nodev) wherever a container mounts the volume.
    /// `None`: an emptyDir.
    pub source: Option<String>,
    /// `securityContext.fsGroup` for an emptyDir: its directory is owned
    /// by this group and setgid (mode 02777), as the kubelet leaves it.
    pub fs_group: Option<u32>,
    /// A hostPath volume: the host's file or directory, shared with
    /// virtio-fs ([`crate::hostpath`]).
    pub host_path: Option<crate::hostpath::HostPathPlan>,
}

/// A container, ready to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerPlan {
    /// Container name.
    pub name: String,
    /// The image as the manifest names it.
    pub image: String,
    /// The image's ID (`sha256:` and its config's digest; empty for a
    /// `dir:` image), the status's `imageID`.
    pub image_id: String,
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
    /// PR_SET_NO_NEW_PRIVS before exec. When false (`allowPrivilegeEscalation:
    /// true`, or privileged), the seccomp filter is installed before the
    /// user and capabilities change, as runc does, since it then needs
    /// CAP_SYS_ADMIN.
    pub no_new_privileges: bool,
    /// Files bound in after /dev ([`FileMount`]), in order.
    pub files: Vec<FileMount>,
    /// An init container with `restartPolicy: Always`: a sidecar, which
    /// runs beside the app containers from its turn in the init sequence,
    /// restarts whenever it exits, and stops after them.
    pub sidecar: bool,
    /// The signal a stop sends: `lifecycle.stopSignal`, else the image's
    /// `StopSignal`, else SIGTERM.
    pub stop_signal: i32,
    /// The file of the initramfs bound at `terminationMessagePath`, read
    /// (its last `termination_message_max` bytes) when the container ends.
    pub termination_message_file: String,
    /// `terminationMessagePolicy: FallbackToLogsOnError`: a failed
    /// container with an empty message file gets its log's tail instead.
    pub fallback_to_logs: bool,
    /// The kubelet's bound on the message: 4 KiB, or less when the pod's
    /// 12 KiB are shared by more than three containers.
    pub termination_message_max: u32,
    /// Why the container must not start (the kubelet's
    /// CreateContainerConfigError, e.g. `runAsNonRoot` with a root user):
    /// the init reports [`crate::events::Event::ContainerWaiting`] and
    /// counts it as failed without running it.
    pub refused: Option<String>,
    /// The cgroup device program ([`crate::devices`]): an index into
    /// [`Plan::programs`], eBPF instructions in little-endian order.
    /// `None`: every device (privileged).
    pub devices: Option<usize>,
    /// Probes and lifecycle hooks (absent from the plan when none).
    #[serde(default, skip_serializing_if = "Checks::is_empty")]
    pub checks: Checks,
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

/// uid, gid and the supplementary groups (exactly these, in this order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct User {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// The groups of setgroups(2): the image's /etc/group entries naming
    /// the user, `fsGroup`, then `supplementalGroups`, as containerd
    /// merges them (duplicates kept out).
    pub additional_gids: Vec<u32>,
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
    /// `subPath` (or `subPathExpr`, expanded): a relative path inside the
    /// volume, without `..`; mounted instead of the volume's root. Made
    /// (with the volume root's mode) if missing; resolved without leaving
    /// the volume, whatever symlinks a container put there.
    pub sub_path: Option<String>,
}

/// A file of the initramfs bound into a container after its /dev is made:
/// the managed /etc/hosts, /etc/hostname, /etc/resolv.conf and the
/// termination message file, as the kubelet and containerd bind them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileMount {
    /// The file in the initramfs.
    pub source: String,
    /// Absolute path in the container, resolved inside the container's
    /// root as runc resolves it (symlinks followed, never leaving the
    /// root); an empty file is made where it resolves if missing.
    pub target: String,
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
    /// Its ID (`sha256:` and its config's digest), or empty.
    pub id: String,
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

mod checks;
#[cfg(feature = "std")]
mod container;
mod probe;
#[cfg(feature = "std")]
mod resolve;
#[cfg(feature = "std")]
pub use container::{capability_name, sub_path_ok, TERMINATION_LOG};
pub use probe::{Checks, Handler, ProbePlan};
#[cfg(feature = "std")]
pub use resolve::{resolve, resolve_all, Inputs, PlanFile, Resolved, POD1_DIR};

#[cfg(test)]
mod tests;
