//! From a manifest file to the one pod it runs and the ConfigMaps and
//! Secrets that pod reads.
//!
//! A file holds exactly one workload: a `Pod`; a `Job` (`batch/v1`), whose
//! template runs as the Job controller would run its one pod; or a
//! `Deployment` (`apps/v1`), one replica of its template. Any number of
//! ConfigMaps and Secrets may sit beside it, and more come from extra files
//! ([`add_sources`]).

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::document::{self, Object};
use crate::error::Error;
use crate::ignored::{self, Ignored};
use crate::objects::{SourceKind, Sources};
use crate::pod::Pod;

/// The workload a file runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// The pod, with namespace and uid filled in.
    pub pod: Pod,
    /// What it came from.
    pub kind: Kind,
    /// The ConfigMaps and Secrets it may read.
    pub sources: Sources,
    /// Fields taken out because they have no meaning in a pod1 VM, with
    /// paths as the file spells them.
    pub ignored: Vec<Ignored>,
}

/// The kind of workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A Pod.
    Pod,
    /// A Job's pod, retried up to `backoff_limit` times when it fails.
    Job {
        /// `spec.backoffLimit` (default 6).
        backoff_limit: u32,
    },
    /// One replica of a Deployment's template.
    Deployment,
}

/// The namespace a pod without one is in.
pub const DEFAULT_NAMESPACE: &str = "default";

const ONE_POD: &str = "pod1 runs one pod";
const NO_CONTROLLER: &str = "a pod1 pod has no controller or API server";

/// Job spec fields: (name, Some(why it is ignored) or None: refused).
#[rustfmt::skip]
const JOB_FIELDS: &[(&str, Option<&str>)] = &[
    ("ttlSecondsAfterFinished", Some(NO_CONTROLLER)),
    ("selector", Some(NO_CONTROLLER)),
    ("manualSelector", Some(NO_CONTROLLER)),
    ("activeDeadlineSeconds", Some("a Job's deadline spans its retries, which pod1 run boots anew: set the pod template's activeDeadlineSeconds, or pod1 run --timeout")),
    ("podFailurePolicy", None), ("successPolicy", None), ("backoffLimitPerIndex", None),
    ("maxFailedIndexes", None), ("podReplacementPolicy", None), ("managedBy", None),
];

/// Deployment spec fields, as [`JOB_FIELDS`].
#[rustfmt::skip]
const DEPLOYMENT_FIELDS: &[(&str, Option<&str>)] = &[
    ("strategy", Some("one replica in one VM has nothing to roll out")),
    ("minReadySeconds", Some(NO_CONTROLLER)),
    ("revisionHistoryLimit", Some(NO_CONTROLLER)),
    ("progressDeadlineSeconds", Some(NO_CONTROLLER)),
];

/// Reads the workload of a manifest file and the objects beside it.
/// Errors name the document when the file holds more than a lone Pod.
pub fn read(text: &str) -> Result<Workload, Error> {
    read_checked(text, true)
}

/// As [`read`]; `validate` false skips the API server's rules (for
/// [`Pod::parse`], whose callers validate on their own).
pub(crate) fn read_checked(text: &str, validate: bool) -> Result<Workload, Error> {
    let objects = document::objects(text)?;
    let mut workloads = objects
        .iter()
        .filter(|o| matches!(o.kind.as_str(), "Pod" | "Job" | "Deployment" | ""));
    let Some(main) = workloads.next() else {
        return Err(Error::new(
            "",
            "the file holds no workload: write a Pod (or a Job or Deployment)",
        ));
    };
    if let Some(second) = workloads.next() {
        return Err(Error::new(
            second.label(),
            format!("a second workload (after {}): a file runs one pod", main.label()),
        ));
    }
    let labelled = objects.len() > 1 || !matches!(main.kind.as_str(), "Pod" | "");
    let at = |e: Error| if labelled { in_object(main, e) } else { e };
    let (pod_value, kind, prefix, mut ignored) = pod_of(main).map_err(at)?;
    let mut pod_value = pod_value;
    let stripped = ignored::strip(&mut pod_value);
    let mut pod: Pod = crate::pod::deserialize(pod_value).map_err(|e| at(under(prefix, e)))?;
    for i in stripped {
        if i.path == "spec.serviceAccountName"
            || (i.path == "spec.serviceAccount" && pod.spec.service_account_name.is_none())
        {
            pod.spec.service_account_name = i.value.as_str().map(str::to_string);
        }
        ignored.push(Ignored {
            path: format!("{prefix}{}", i.path),
            ..i
        });
    }
    if objects.len() > 1 {
        for i in &mut ignored {
            i.path = format!("{}: {}", main.label(), i.path);
        }
    }
    let meta = &mut pod.metadata;
    meta.namespace
        .get_or_insert_with(|| DEFAULT_NAMESPACE.to_string());
    if meta.uid.is_none() {
        meta.uid = Some(content_uid(text));
    }
    if validate {
        crate::validate::validate(&pod).map_err(|e| at(under(prefix, e)))?;
    }
    let mut workload = Workload {
        pod,
        kind,
        sources: Sources::default(),
        ignored,
    };
    add_objects(&mut workload, &objects, true)?;
    Ok(workload)
}

/// Adds the ConfigMaps and Secrets of another file (`-f`); it may hold
/// nothing else. Errors name the document.
pub fn add_sources(workload: &mut Workload, text: &str) -> Result<(), Error> {
    let objects = document::objects(text)?;
    add_objects(workload, &objects, false)
}

fn add_objects(workload: &mut Workload, objects: &[Object], main: bool) -> Result<(), Error> {
    let namespace = workload.pod.metadata.namespace.clone().unwrap_or_default();
    for o in objects {
        let kind = match o.kind.as_str() {
            "ConfigMap" => SourceKind::ConfigMap,
            "Secret" => SourceKind::Secret,
            "Pod" | "Job" | "Deployment" | "" if main => continue,
            "Pod" | "Job" | "Deployment" | "" => {
                return Err(Error::new(
                    o.label(),
                    "a workload in an extra file: it may hold ConfigMaps and Secrets only",
                ))
            }
            other => {
                return Err(Error::new(
                    o.label(),
                    format!("{other} objects are not supported: a file holds one Pod, Job or Deployment, and ConfigMaps and Secrets"),
                ))
            }
        };
        if let Some(v) = o
            .value
            .get("apiVersion")
            .and_then(Value::as_str)
            .filter(|v| *v != "v1")
        {
            return Err(in_object(
                o,
                Error::new("apiVersion", format!("{v:?}: a {} is \"v1\"", kind.name())),
            ));
        }
        let mut value = o.value.clone();
        let stripped = ignored::strip_metadata(&mut value);
        workload.ignored.extend(stripped.into_iter().map(|i| Ignored {
            path: format!("{}: {}", o.label(), i.path),
            ..i
        }));
        workload
            .sources
            .add(kind, value, &namespace)
            .map_err(|e| in_object(o, e))?;
    }
    Ok(())
}

/// The pod a workload object runs: its JSON, its kind, the path prefix of
/// its pod fields (`spec.template.`) and what was ignored at its own level.
fn pod_of(o: &Object) -> Result<(Value, Kind, &'static str, Vec<Ignored>), Error> {
    let v = &o.value;
    let api = v.get("apiVersion").and_then(Value::as_str);
    let (want, fields) = match o.kind.as_str() {
        "Job" => ("batch/v1", JOB_FIELDS),
        "Deployment" => ("apps/v1", DEPLOYMENT_FIELDS),
        _ => return Ok((v.clone(), Kind::Pod, "", Vec::new())),
    };
    if api != Some(want) {
        return Err(Error::new(
            "apiVersion",
            format!("{:?}: a {} is {want:?}", api.unwrap_or(""), o.kind),
        ));
    }
    let mut top = v.clone();
    let mut ignored = ignored::strip_metadata(&mut top);
    for key in top
        .as_object()
        .map(|m| m.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default()
    {
        if !matches!(key.as_str(), "apiVersion" | "kind" | "metadata" | "spec") {
            return Err(Error::new(
                key,
                "unknown field; expected apiVersion, kind, metadata or spec",
            ));
        }
    }
    let meta: crate::pod::ObjectMeta =
        crate::pod::deserialize(top.get("metadata").cloned().unwrap_or(Value::Null))
            .map_err(|e| under("metadata.", e))?;
    let Some(Value::Object(spec)) = top.get("spec") else {
        return Err(Error::new(
            "spec",
            "missing: a Job or Deployment needs spec.template",
        ));
    };
    let mut kind = Kind::Deployment;
    let int = |key: &str| -> Result<Option<i64>, Error> {
        match spec.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_i64()
                .filter(|n| *n >= 0)
                .map(Some)
                .ok_or_else(|| Error::new(format!("spec.{key}"), "expected a whole number, 0 or more")),
        }
    };
    for (key, value) in spec {
        let at = format!("spec.{key}");
        match (o.kind.as_str(), key.as_str()) {
            (_, "template") => {}
            ("Job", "backoffLimit") => {
                let n = int(key)?.unwrap_or(6);
                let Ok(backoff_limit) = i32::try_from(n) else {
                    return Err(Error::new(at, format!("{n} is over 2147483647")));
                };
                kind = Kind::Job {
                    backoff_limit: backoff_limit as u32,
                };
            }
            ("Job", "completions" | "parallelism") => {
                if int(key)?.is_some_and(|n| n != 1) {
                    return Err(Error::new(
                        at,
                        format!("{value}: {ONE_POD}; set 1 or leave it out"),
                    ));
                }
            }
            ("Job", "completionMode") if value == "NonIndexed" => {}
            ("Job", "completionMode") => {
                return Err(Error::new(at, format!("{value}: {ONE_POD}; only NonIndexed")))
            }
            ("Job", "suspend") if value == false || value.is_null() => {}
            ("Job", "suspend") => return Err(Error::new(at, "a suspended Job runs nothing")),
            ("Deployment", "replicas") => {
                if int(key)? != Some(1) && !value.is_null() {
                    ignored.push(Ignored {
                        path: at,
                        reason: "pod1 runs one replica",
                        value: value.clone(),
                    });
                }
            }
            ("Deployment", "paused") if value == false || value.is_null() => {}
            // Checked against the template's labels below.
            ("Deployment", "selector") => {}
            ("Deployment", "paused") => return Err(Error::new(at, "a paused Deployment runs nothing")),
            _ => match fields.iter().find(|(name, _)| name == key) {
                Some((_, Some(reason))) => ignored.push(Ignored {
                    path: at,
                    reason,
                    value: value.clone(),
                }),
                Some((_, None)) => {
                    return Err(Error::new(
                        at,
                        "this Kubernetes field is not supported by pod1; remove it",
                    ))
                }
                None => {
                    let known: Vec<&str> = fields.iter().map(|(n, _)| *n).collect();
                    return Err(Error::new(
                        at,
                        format!(
                            "unknown field; {} spec fields pod1 knows: template, {}",
                            o.kind,
                            known.join(", ")
                        ),
                    ));
                }
            },
        }
    }
    if o.kind == "Job" && kind == Kind::Deployment {
        kind = Kind::Job { backoff_limit: 6 };
    }
    let Some(Value::Object(template)) = spec.get("template") else {
        return Err(Error::new("spec.template", "missing: the pod to run"));
    };
    for key in template.keys() {
        if !matches!(key.as_str(), "metadata" | "spec") {
            return Err(Error::new(
                format!("spec.template.{key}"),
                "unknown field; expected metadata or spec",
            ));
        }
    }
    let restart = template
        .get("spec")
        .and_then(|s| s.get("restartPolicy"))
        .and_then(Value::as_str);
    match (kind, restart) {
        (Kind::Job { .. }, Some("Never" | "OnFailure")) | (Kind::Deployment, None | Some("Always")) => {}
        (Kind::Job { .. }, _) => {
            return Err(Error::new(
                "spec.template.spec.restartPolicy",
                "a Job's pod restarts OnFailure or Never; set one",
            ))
        }
        _ => {
            return Err(Error::new(
                "spec.template.spec.restartPolicy",
                "a Deployment's pod restarts Always",
            ))
        }
    }
    // Names and labels as the controllers give them, from the object's
    // content so that builds stay reproducible.
    let hash = Sha256::digest(o.value.to_string().as_bytes());
    let owner_uid = meta.uid.clone().unwrap_or_else(|| uuid(&hash));
    let mut pod_meta = template.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let Some(m) = pod_meta.as_object_mut() else {
        return Err(Error::new("spec.template.metadata", "expected an object"));
    };
    let labels = m.entry("labels").or_insert_with(|| json!({}));
    if kind == Kind::Deployment {
        // apps/v1 requires a selector, and it must select the template.
        let Some(selector) = spec.get("selector").filter(|s| !s.is_null()) else {
            return Err(Error::new(
                "spec.selector",
                "required: the labels of the pods the Deployment runs",
            ));
        };
        if let Some(Value::Object(want)) = selector.get("matchLabels") {
            for (k, v) in want {
                if labels.get(k) != Some(v) {
                    return Err(Error::new(
                        "spec.selector",
                        format!("selector does not match template labels ({k}: {v})"),
                    ));
                }
            }
        }
    }
    let name = match kind {
        Kind::Job { .. } => {
            for (k, v) in [
                ("batch.kubernetes.io/controller-uid", &owner_uid),
                ("batch.kubernetes.io/job-name", &meta.name),
                ("controller-uid", &owner_uid),
                ("job-name", &meta.name),
            ] {
                labels[k] = json!(v);
            }
            generated(&format!("{}-", meta.name), &hash[..5])
        }
        _ => {
            let template_hash = suffix(&hash[5..15]);
            labels["pod-template-hash"] = json!(template_hash);
            generated(&format!("{}-{template_hash}-", meta.name), &hash[15..20])
        }
    };
    m.insert("name".into(), json!(name));
    if let Some(ns) = &meta.namespace {
        m.insert("namespace".into(), json!(ns));
    }
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta,
                     "spec": template.get("spec").cloned().unwrap_or(Value::Null)});
    Ok((pod, kind, "spec.template.", ignored))
}

/// A generated name as the API server makes one from `generateName`: the
/// base cut to 58 characters, then 5 characters.
fn generated(base: &str, random: &[u8]) -> String {
    let cut = &base[..base.len().min(58)];
    format!("{cut}{}", suffix(random))
}

/// The characters Kubernetes' name generator uses (no vowels, no 0/1/3).
fn suffix(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

/// A uid for a pod that has none: a UUID (version 8, "custom") made from
/// the manifest's content, so one manifest always builds the same
/// initramfs; a node would draw a random one for each pod.
fn content_uid(text: &str) -> String {
    uuid(&Sha256::digest(text.as_bytes()))
}

fn uuid(hash: &[u8]) -> String {
    let mut b = [0u8; 16];
    b.copy_from_slice(&hash[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex = crate::plan::hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

fn under(prefix: &str, e: Error) -> Error {
    if prefix.is_empty() || e.path.is_empty() {
        e
    } else {
        Error::new(format!("{prefix}{}", e.path), e.message)
    }
}

fn in_object(o: &Object, e: Error) -> Error {
    let path = if e.path.is_empty() {
        o.label()
    } else {
        format!("{}: {}", o.label(), e.path)
    };
    Error::new(path, e.message)
}

#[cfg(test)]
mod tests {
    use super::*;

    const POD: &str = "spec:\n  containers: [{name: c, image: 'dir:x'}]\n";

    #[test]
    fn a_pod_and_its_objects() {
        let text = format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: s, resourceVersion: '1'}}\nstringData: {{k: v}}\n---\nkind: Pod\nmetadata: {{name: p}}\n{POD}---\nkind: ConfigMap\nmetadata: {{name: c}}\ndata: {{a: b}}\n"
        );
        let w = read(&text).unwrap();
        assert_eq!(w.kind, Kind::Pod);
        assert_eq!(w.pod.metadata.namespace.as_deref(), Some("default"));
        let uid = w.pod.metadata.uid.clone().unwrap();
        assert_eq!(uid.len(), 36);
        assert_eq!(&uid[14..15], "8", "a version 8 UUID: {uid}");
        assert_eq!(
            read(&text).unwrap().pod.metadata.uid.unwrap(),
            uid,
            "stable for one manifest"
        );
        assert_eq!(w.sources.secrets["s"]["k"], b"v");
        assert_eq!(w.sources.config_maps["c"]["a"], b"b");
        assert_eq!(
            w.ignored[0].path,
            "document 1 (Secret s): metadata.resourceVersion"
        );
        // An explicit uid is kept.
        let w = read(&format!("metadata: {{name: p, uid: abc}}\n{POD}")).unwrap();
        assert_eq!(w.pod.metadata.uid.as_deref(), Some("abc"));
    }

    #[test]
    fn errors_name_the_document() {
        let e = read("kind: ConfigMap\nmetadata: {name: c}\n---\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: 'dir:x', comand: [x]}]\n").unwrap_err();
        assert_eq!(e.path, "document 2 (Pod p): spec.containers[0].comand");
        let e = read(&format!(
            "kind: Pod\nmetadata: {{name: p}}\n{POD}---\nkind: Pod\nmetadata: {{name: q}}\n{POD}"
        ))
        .unwrap_err();
        assert!(e.message.contains("a second workload"), "{e}");
        let e = read("kind: Service\nmetadata: {name: s}\n").unwrap_err();
        assert!(e.message.contains("no workload"), "{e}");
        let e = read(&format!(
            "kind: Pod\nmetadata: {{name: p}}\n{POD}---\nkind: Service\nmetadata: {{name: s}}\n"
        ))
        .unwrap_err();
        assert_eq!(e.path, "document 2 (Service s)");
        let e = read(&format!("kind: Pod\nmetadata: {{name: p}}\n{POD}---\nkind: ConfigMap\nmetadata: {{name: c}}\ndata: {{'a b': x}}\n")).unwrap_err();
        assert_eq!(e.path, "document 2 (ConfigMap c): data.a b");
    }

    #[test]
    fn jobs_and_deployments() {
        let job = "apiVersion: batch/v1\nkind: Job\nmetadata: {name: pi}\nspec:\n  backoffLimit: 2\n  ttlSecondsAfterFinished: 100\n  template:\n    metadata: {labels: {app: pi}}\n    spec:\n      restartPolicy: Never\n      nodeSelector: {a: b}\n      containers: [{name: c, image: 'dir:x'}]\n";
        let w = read(job).unwrap();
        assert_eq!(w.kind, Kind::Job { backoff_limit: 2 });
        assert!(
            w.pod.metadata.name.starts_with("pi-") && w.pod.metadata.name.len() == 8,
            "{}",
            w.pod.metadata.name
        );
        assert_eq!(w.pod.metadata.labels["job-name"], "pi");
        assert_eq!(w.pod.metadata.labels["app"], "pi");
        let paths: Vec<&str> = w.ignored.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(
            paths,
            ["spec.ttlSecondsAfterFinished", "spec.template.spec.nodeSelector"]
        );
        let e = read(&job.replace("restartPolicy: Never", "restartPolicy: Always")).unwrap_err();
        assert_eq!(e.path, "document 1 (Job pi): spec.template.spec.restartPolicy");
        let e = read(&job.replace("backoffLimit: 2", "parallelism: 3")).unwrap_err();
        assert!(e.message.contains("runs one pod"), "{e}");
        let e = read(&job.replace("batch/v1", "v1")).unwrap_err();
        assert!(e.message.contains("batch/v1"), "{e}");
        let e = read(&job.replace("'dir:x'}", "'dir:x', bogus: 1}")).unwrap_err();
        assert_eq!(
            e.path,
            "document 1 (Job pi): spec.template.spec.containers[0].bogus"
        );
        let e = read(&job.replace("'dir:x'}", "'dir:x', imagePullPolicy: Sometimes}")).unwrap_err();
        assert!(e.message.contains("Always or IfNotPresent or Never"), "{e}");
        assert_eq!(
            read(&job.replace("  backoffLimit: 2\n", "")).unwrap().kind,
            Kind::Job { backoff_limit: 6 }
        );
        // A long name is cut as the API server's name generator cuts it.
        let long = "j".repeat(63);
        let w = read(&job.replace("name: pi}", &format!("name: {long}}}"))).unwrap();
        assert_eq!(w.pod.metadata.name.len(), 63);
        assert!(w.pod.metadata.name.starts_with(&"j".repeat(58)));

        let deploy = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 3\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers: [{name: c, image: 'dir:x'}]\n";
        let w = read(deploy).unwrap();
        assert_eq!(w.kind, Kind::Deployment);
        assert!(w.pod.metadata.labels.contains_key("pod-template-hash"));
        assert_eq!(w.ignored[0].path, "spec.replicas");
        assert_eq!(w.ignored[0].reason, "pod1 runs one replica");
        assert!(
            read(&deploy.replace("      containers", "      restartPolicy: Never\n      containers"))
                .is_err()
        );
        let e = read(&deploy.replace("  selector: {matchLabels: {app: web}}\n", "")).unwrap_err();
        assert!(e.message.starts_with("required"), "{e}");
        let e = read(&deploy.replace("matchLabels: {app: web}", "matchLabels: {app: api}")).unwrap_err();
        assert!(e.message.contains("does not match template labels"), "{e}");
        let e = read(&deploy.replace("  replicas: 3", "  paused: true")).unwrap_err();
        assert!(e.message.contains("paused"), "{e}");
        let e = read(&deploy.replace("  replicas: 3", "  replica: 3")).unwrap_err();
        assert_eq!(e.path, "document 1 (Deployment web): spec.replica");
        assert!(e.message.starts_with("unknown field"), "{e}");
        // Requests above limits, as the API server refuses them.
        let e = read(&deploy.replace(
            "containers: [{name: c, image: 'dir:x'}]",
            "containers: [{name: c, image: 'dir:x', resources: {limits: {memory: 64Mi}, requests: {memory: 1Gi}}}]",
        ))
        .unwrap_err();
        assert!(e.path.ends_with("resources.requests.memory"), "{e}");
    }

    #[test]
    fn extra_files_hold_only_objects() {
        let mut w = read(&format!("metadata: {{name: p, namespace: ns}}\n{POD}")).unwrap();
        add_sources(
            &mut w,
            "kind: List\nitems:\n- {kind: Secret, metadata: {name: s, namespace: ns}, data: {k: dg==}}\n",
        )
        .unwrap();
        assert_eq!(w.sources.secrets["s"]["k"], b"v");
        let e = add_sources(&mut w, "kind: Secret\nmetadata: {name: t, namespace: other}\n").unwrap_err();
        assert!(e.message.contains("can read only its own"), "{e}");
        let e = add_sources(&mut w, &format!("kind: Pod\nmetadata: {{name: q}}\n{POD}")).unwrap_err();
        assert!(e.message.contains("ConfigMaps and Secrets only"), "{e}");
    }

    #[test]
    fn service_account_name_is_kept_for_the_downward_api() {
        let w = read("metadata: {name: p}\nspec:\n  serviceAccountName: robot\n  containers: [{name: c, image: 'dir:x'}]\n").unwrap();
        assert_eq!(w.pod.spec.service_account_name.as_deref(), Some("robot"));
        assert_eq!(w.ignored[0].path, "spec.serviceAccountName");
    }
}
