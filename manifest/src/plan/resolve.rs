//! From a validated pod and its images to the [`Plan`].

use std::collections::BTreeMap;

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::*;
use crate::error::Error;
use crate::image::UserDb;
use crate::pod::{Container, Pod};
use crate::{argv, env, validate};

/// Validates `pod` and resolves it against its images, keyed by the
/// manifest's `image` strings. Every image the pod names must be present.
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
                source: None,
                fs_group: None,
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
pub(super) fn qos_class<'a>(containers: impl Iterator<Item = &'a Container>) -> QosClass {
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
        user: User {
            uid,
            gid,
            additional_gids: Vec::new(),
        },
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
                sub_path: None,
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
        no_new_privileges: !privileged,
        files: Vec::new(),
        refused: None,
        // The device program is the plan's first (see `resolve`).
        devices: (!privileged).then_some(0),
    })
}

/// Normalises `net_admin` / `CAP_NET_ADMIN` to `NET_ADMIN`.
pub fn capability_name(name: &str) -> String {
    let upper = name.to_ascii_uppercase();
    upper.strip_prefix("CAP_").map(str::to_string).unwrap_or(upper)
}

/// The capability set as containerd computes it: the default set (all when
/// privileged); `add: [ALL]` gives all, `drop: [ALL]` none; then the named
/// adds, then the named drops. Sorted by capability number.
pub(super) fn capabilities(privileged: bool, caps: Option<&crate::pod::Capabilities>) -> Vec<String> {
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
