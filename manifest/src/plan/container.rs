//! One container of the plan: argv, environment, user and groups,
//! security settings, mounts and the managed files.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::resolve::Inputs;
use super::*;
use crate::error::Error;
use crate::image::UserDb;
use crate::managed::Names;
use crate::pod::{Container, Pod};
use crate::{argv, env};

/// Where the pod's managed files are in the initramfs.
pub(super) struct Pod1Paths {
    pub hosts: String,
    pub hostname: String,
    pub resolv_conf: String,
    /// One file per container, named after it.
    pub termination_dir: String,
}

/// The default `terminationMessagePath`.
pub const TERMINATION_LOG: &str = "/dev/termination-log";

/// The signal that stops `c`: `lifecycle.stopSignal` (validated), else its
/// image's `StopSignal` (one containerd cannot read is an error, as
/// containerd refuses to create the container), else SIGTERM.
fn stop_signal(at: &str, c: &Container, image: &crate::image::ImageConfig) -> Result<i32, Error> {
    if let Some(n) = c
        .lifecycle
        .as_ref()
        .and_then(|l| l.stop_signal.as_deref())
        .and_then(crate::signals::stop_signal)
    {
        return Ok(n);
    }
    if image.stop_signal.is_empty() {
        return Ok(crate::signals::SIGTERM);
    }
    crate::signals::image_signal(&image.stop_signal).ok_or_else(|| {
        Error::new(
            format!("{at}.image"),
            format!("the image's StopSignal {:?} is not a signal", image.stop_signal),
        )
    })
}

/// The most bytes of a container's termination message, as the kubelet
/// bounds them: 4 KiB each, within 12 KiB for the whole pod
/// (`MaxContainerTerminationMessageLength`, `MaxPodTerminationMessageLogLength`).
pub fn termination_message_max(containers: usize) -> u32 {
    let share = 12 * 1024 / containers.max(1);
    share.min(4 * 1024) as u32
}

pub(super) fn resolve_container(
    inputs: &Inputs,
    names: &Names,
    paths: &Pod1Paths,
    at: &str,
    c: &Container,
    pids: Option<u64>,
) -> Result<(ContainerPlan, env::Built), Error> {
    let pod = inputs.pod;
    let image = inputs.images.get(&c.image).ok_or_else(|| {
        Error::new(
            format!("{at}.image"),
            format!("image {:?} was not imported", c.image),
        )
    })?;
    let cfg = &image.config;
    let ctx = env::Context {
        pod,
        sources: inputs.sources,
        node: &inputs.node,
        hostname: &names.uts,
    };
    let built = env::build(&cfg.env, &ctx, c, at)?;
    let defined = &built.defined;
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
    let run_as_user = sc.run_as_user.or(psc.run_as_user);
    let run_as_group = sc.run_as_group.or(psc.run_as_group).map(|v| v as u32);
    let db = UserDb {
        passwd: image.passwd.as_deref(),
        group: image.group.as_deref(),
    };
    let (uid, gid) = db
        .resolve(&cfg.user, run_as_user.map(|v| v as u32), run_as_group)
        .map_err(|msg| {
            Error::new(
                at,
                format!("container {:?}: {msg}; set securityContext.runAsUser", c.name),
            )
        })?;
    let mut additional_gids = match psc.supplemental_groups_policy.as_deref() {
        Some("Strict") => alloc::vec![gid],
        _ => db.member_groups(uid, gid),
    };
    for g in psc.fs_group.iter().chain(&psc.supplemental_groups) {
        let g = *g as u32;
        if !additional_gids.contains(&g) {
            additional_gids.push(g);
        }
    }
    let mut refused = sc
        .run_as_non_root
        .or(psc.run_as_non_root)
        .filter(|yes| *yes)
        .and_then(|_| non_root_violation(pod, c, run_as_user, &cfg.user));
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
    let mut volume_mounts = Vec::new();
    for (i, m) in c.volume_mounts.iter().enumerate() {
        let sub_path = match (&m.sub_path, &m.sub_path_expr) {
            (Some(p), _) if !p.is_empty() => Some(p.clone()),
            (_, Some(e)) if !e.is_empty() => {
                // As the kubelet: a variable that is undefined or empty
                // keeps the container from being created.
                let mut missing = alloc::collections::BTreeSet::new();
                let p = env::expand(e, |name| match defined.get(name) {
                    Some(v) if !v.is_empty() => Some(v.to_string()),
                    _ => {
                        missing.insert(name.to_string());
                        Some(String::new())
                    }
                });
                if missing.is_empty() {
                    sub_path_ok(&format!("{at}.volumeMounts[{i}].subPathExpr"), &p)?;
                    Some(p)
                } else {
                    let names: Vec<String> = missing.into_iter().collect();
                    refused.get_or_insert(alloc::format!(
                        "failed to prepare subPath for volumeMount {:?} of container {:?}: missing value for {}",
                        m.name,
                        c.name,
                        names.join(", ")
                    ));
                    None
                }
            }
            _ => None,
        };
        volume_mounts.push(MountPlan {
            name: m.name.clone(),
            mount_path: m.mount_path.clone(),
            read_only: m.read_only,
            sub_path,
        });
    }
    let read_only_root = sc.read_only_root_filesystem.unwrap_or(false);
    let mounts_at = |path: &str| {
        c.volume_mounts
            .iter()
            .any(|m| m.mount_path.trim_end_matches('/') == path)
    };
    let mut files = Vec::new();
    for (source, target, read_only) in [
        (&paths.hosts, "/etc/hosts", false),
        (&paths.hostname, "/etc/hostname", read_only_root),
        (&paths.resolv_conf, "/etc/resolv.conf", read_only_root),
    ] {
        if !mounts_at(target) {
            files.push(FileMount {
                source: source.clone(),
                target: target.to_string(),
                read_only,
            });
        }
    }
    let termination_message_file = alloc::format!("{}/{}", paths.termination_dir, c.name);
    files.push(FileMount {
        source: termination_message_file.clone(),
        target: c
            .termination_message_path
            .clone()
            .unwrap_or_else(|| TERMINATION_LOG.to_string()),
        read_only: false,
    });
    let limits = c.resources.as_ref().map(|r| &r.limits);
    let limit = |key: &str| limits.and_then(|l| l.get(key));
    let plan = ContainerPlan {
        name: c.name.clone(),
        image: c.image.clone(),
        image_id: image.id.clone(),
        rootfs: image.rootfs.clone(),
        argv,
        env: built.all.to_strings(),
        working_dir,
        user: User {
            uid,
            gid,
            additional_gids,
        },
        read_only_root_filesystem: read_only_root,
        privileged,
        capabilities: capabilities(privileged, sc.capabilities.as_ref()),
        volume_mounts,
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
        no_new_privileges: !privileged && sc.allow_privilege_escalation != Some(true),
        files,
        sidecar: c.restart_policy.as_deref() == Some("Always"),
        stop_signal: stop_signal(at, c, &image.config)?,
        termination_message_file,
        fallback_to_logs: c.termination_message_policy.as_deref() == Some("FallbackToLogsOnError"),
        termination_message_max: termination_message_max(pod.spec.all_containers().count()),
        refused,
        // The device program is the plan's first (see `resolve_all`).
        devices: (!privileged).then_some(0),
        checks: super::checks::checks(c, inputs.node.pod_ip()),
    };
    Ok((plan, built))
}

/// A subPath (or an expanded subPathExpr): relative, no `..` element.
pub fn sub_path_ok(at: &str, path: &str) -> Result<(), Error> {
    if path.starts_with('/') || path.split('/').any(|p| p == "..") {
        return Err(Error::new(
            at,
            alloc::format!("{path:?}: a relative path without '..'"),
        ));
    }
    Ok(())
}

/// The kubelet's runAsNonRoot check, with its messages: an explicit
/// runAsUser must not be 0; otherwise the image's User must be numeric
/// and not 0 (an empty User is root; a name cannot be verified).
fn non_root_violation(
    pod: &Pod,
    c: &Container,
    run_as_user: Option<i64>,
    image_user: &str,
) -> Option<String> {
    let who = alloc::format!(
        "pod: \"{}_{}({})\", container: {}",
        pod.metadata.name,
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.uid.as_deref().unwrap_or(""),
        c.name
    );
    if let Some(uid) = run_as_user {
        return (uid == 0).then(|| alloc::format!("container's runAsUser breaks non-root policy ({who})"));
    }
    let user = image_user.split(':').next().unwrap_or("");
    // containerd reads a numeric user as a signed 64-bit number.
    match user.parse::<i64>() {
        _ if user.is_empty() => Some(alloc::format!("container has runAsNonRoot and image will run as root ({who})")),
        Ok(0) => Some(alloc::format!("container has runAsNonRoot and image will run as root ({who})")),
        Ok(_) => None,
        Err(_) => Some(alloc::format!(
            "container has runAsNonRoot and image has non-numeric user ({user}), cannot verify user is non-root ({who})"
        )),
    }
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
