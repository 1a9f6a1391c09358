//! From a validated pod, its ConfigMaps and Secrets and its images to the
//! [`Plan`] and the files the builder writes beside it.

use std::collections::BTreeMap;

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::container::{resolve_container, Pod1Paths};
use super::*;
use crate::downward::Node;
use crate::error::Error;
use crate::hostpath::{self, HostPathPlan, HostPathType};
use crate::objects::Sources;
use crate::pod::{Container, Pod};
use crate::volumes::{self, Entry};
use crate::{managed, validate};

/// What a plan is made from.
#[derive(Debug)]
pub struct Inputs<'a> {
    /// The pod (validated again here).
    pub pod: &'a Pod,
    /// The ConfigMaps and Secrets it reads.
    pub sources: &'a Sources,
    /// The VM it runs on, for resources without limits.
    pub node: Node,
    /// Its images, keyed by the manifest's `image` strings.
    pub images: &'a BTreeMap<String, ImageInfo>,
    /// A Job's `backoffLimit` ([`Plan::backoff_limit`]).
    pub backoff_limit: Option<u32>,
}

/// A file of the initramfs the plan refers to (volume contents, the
/// managed /etc files, termination logs); uid 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanFile {
    /// Its path in the initramfs, without a leading `/`.
    pub path: String,
    /// What it is.
    pub entry: Entry,
    /// Its group.
    pub gid: u32,
}

/// A resolved pod.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// The plan the init runs.
    pub plan: Plan,
    /// The files it refers to, parents first.
    pub files: Vec<PlanFile>,
    /// Things the user should know (skipped envFrom keys), one line each.
    pub warnings: Vec<String>,
    /// Per container, the env variables that hold a Secret's value.
    pub secret_env: BTreeMap<String, Vec<String>>,
}

/// Where the plan's own files go in the initramfs.
pub const POD1_DIR: &str = "pod1";

/// Validates the pod and resolves it. Every image it names must be present.
pub fn resolve_all(inputs: &Inputs) -> Result<Resolved, Error> {
    let pod = inputs.pod;
    validate::validate(pod)?;
    let spec = &pod.spec;
    let names = managed::names(pod)?;
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
    let fs_group = spec
        .security_context
        .as_ref()
        .and_then(|s| s.fs_group)
        .map(|g| g as u32);
    let mut files = Vec::new();
    let dir = |path: String, files: &mut Vec<PlanFile>| {
        files.push(PlanFile {
            path,
            entry: Entry::Dir(0o755),
            gid: 0,
        })
    };
    dir(POD1_DIR.to_string(), &mut files);
    dir(format!("{POD1_DIR}/etc"), &mut files);
    let file = |name: &str, text: String, mode: u32, files: &mut Vec<PlanFile>| {
        let path = format!("{POD1_DIR}/{name}");
        files.push(PlanFile {
            path: path.clone(),
            entry: Entry::File(text.into_bytes(), mode),
            gid: 0,
        });
        alloc::format!("/{path}")
    };
    let (resolv_conf, mut warnings) = managed::resolv_conf(pod, &inputs.node);
    let paths = Pod1Paths {
        hosts: file(
            "etc/hosts",
            managed::hosts(pod, &names, &inputs.node),
            0o644,
            &mut files,
        ),
        hostname: file(
            "etc/hostname",
            alloc::format!("{}\n", names.uts),
            0o644,
            &mut files,
        ),
        resolv_conf: file("etc/resolv.conf", resolv_conf, 0o644, &mut files),
        termination_dir: alloc::format!("/{POD1_DIR}/termination"),
    };
    dir(format!("{POD1_DIR}/termination"), &mut files);
    for c in spec.all_containers() {
        file(
            &format!("termination/{}", c.name),
            String::new(),
            0o666,
            &mut files,
        );
    }
    let mut volume_plans = Vec::new();
    if !spec.volumes.is_empty() {
        dir(format!("{POD1_DIR}/volumes"), &mut files);
    }
    for (i, v) in spec.volumes.iter().enumerate() {
        let at = format!("spec.volumes[{i}]");
        let payload = volumes::payload(pod, inputs.sources, &inputs.node, v, &at)?;
        let source = payload.map(|payload| {
            let root = format!("{POD1_DIR}/volumes/{}", v.name);
            let tree = volumes::layout(&payload, v.secret.is_some(), fs_group);
            for (rel, entry) in tree.entries {
                let path = if rel.is_empty() {
                    root.clone()
                } else {
                    format!("{root}/{rel}")
                };
                files.push(PlanFile {
                    path,
                    entry,
                    gid: tree.gid,
                });
            }
            format!("/{root}")
        });
        // Read-only when no container mounts it for writing.
        let read_only = spec
            .all_containers()
            .flat_map(|c| &c.volume_mounts)
            .filter(|m| m.name == v.name)
            .all(|m| m.read_only);
        let host_path = v.host_path.as_ref().map(|h| {
            // Validation has checked the type.
            let kind = HostPathType::parse(h.kind.as_deref().unwrap_or("")).unwrap_or(HostPathType::Unset);
            HostPathPlan {
                // The builder makes it absolute (it knows the manifest's directory).
                path: h.path.clone(),
                kind,
                tag: hostpath::tag(i),
                file: kind.is_file(),
                read_only,
            }
        });
        volume_plans.push(VolumePlan {
            host_path,
            name: v.name.clone(),
            size_limit_bytes: v
                .empty_dir
                .as_ref()
                .and_then(|e| e.size_limit.as_ref())
                .and_then(|q| q.whole()),
            fs_group: fs_group.filter(|_| source.is_none() && v.host_path.is_none()),
            source,
        });
    }
    let mut secret_env = BTreeMap::new();
    let mut resolve_list = |field: &str, list: &[Container]| -> Result<Vec<ContainerPlan>, Error> {
        list.iter()
            .enumerate()
            .map(|(i, c)| {
                let at = format!("spec.{field}[{i}]");
                let (plan, built) = resolve_container(inputs, &names, &paths, &at, c, pids)?;
                warnings.extend(built.warnings);
                secret_env.insert(c.name.clone(), built.secret);
                Ok(plan)
            })
            .collect()
    };
    let init_containers = resolve_list("initContainers", &spec.init_containers)?;
    let containers = resolve_list("containers", &spec.containers)?;
    let plan = Plan {
        pod: pod.metadata.name.clone(),
        hostname: names.uts.clone(),
        restart_policy: spec.restart_policy.unwrap_or_default(),
        init_containers,
        containers,
        termination_grace_period_seconds: spec.termination_grace_period_seconds.unwrap_or(30) as u64,
        // Validated positive.
        active_deadline_seconds: spec.active_deadline_seconds.map(|d| d as u64),
        share_process_namespace: spec.share_process_namespace,
        host_network: spec.host_network,
        host_ipc: spec.host_ipc,
        sysctls: spec
            .security_context
            .as_ref()
            .map(|s| s.sysctls.clone())
            .unwrap_or_default(),
        volumes: volume_plans,
        backoff,
        qos_class: qos_class(spec.all_containers()),
        backoff_limit: inputs.backoff_limit,
        programs: alloc::vec![hex(&crate::devices::program(crate::devices::DEFAULT_RULES))],
        network: inputs.node.network.as_ref().map(|n| n.plan.clone()),
        ports: crate::network::published(spec),
    };
    Ok(Resolved {
        plan,
        files,
        warnings,
        secret_env,
    })
}

/// [`resolve_all`] with no ConfigMaps or Secrets on a 512 MiB, 1-CPU VM:
/// the plan alone.
pub fn resolve(pod: &Pod, images: &BTreeMap<String, ImageInfo>) -> Result<Plan, Error> {
    let sources = Sources::default();
    let inputs = Inputs {
        pod,
        sources: &sources,
        node: Node::new(512, 1),
        images,
        backoff_limit: None,
    };
    resolve_all(&inputs).map(|r| r.plan)
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
