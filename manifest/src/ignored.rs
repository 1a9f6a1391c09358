//! Fields a real manifest carries that have no meaning for one pod in one
//! VM: accepted with one warning each (refused with `--strict`), so a pod
//! taken from a cluster runs as it is and the user learns what did not
//! apply. Everything else Kubernetes has but pod1 does not honour stays an
//! error (see [`crate::pod::KUBERNETES_FIELDS`]).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use serde_json::Value;

const ONE_VM: &str = "a pod1 pod runs on one VM, with nothing to schedule";
const NO_API: &str = "a pod1 pod has no API server to talk to";
const NO_LSM: &str = "a pod1 VM runs no Linux security module (SELinux, AppArmor)";
const SERVICE_ACCOUNT: &str =
    "a pod1 pod has no API server to talk to (the downward API still reports the name)";
const LINUX: &str = "a pod1 pod runs Linux";
const SERVER_SET: &str = "the API server sets it; a pod1 pod has none";

/// Each ignored field: its path (`[]` stands for every element of a list)
/// and why it has no meaning here.
#[rustfmt::skip]
pub const IGNORED: &[(&str, &str)] = &[
    ("status", "pod1 reports the pod's status itself"),
    ("metadata.generateName", "metadata.name names the pod"),
    ("metadata.ownerReferences", NO_API),
    ("metadata.finalizers", NO_API),
    ("metadata.managedFields", SERVER_SET),
    ("metadata.resourceVersion", SERVER_SET),
    ("metadata.generation", SERVER_SET),
    ("metadata.creationTimestamp", SERVER_SET),
    ("metadata.deletionTimestamp", SERVER_SET),
    ("metadata.deletionGracePeriodSeconds", SERVER_SET),
    ("metadata.selfLink", SERVER_SET),
    ("spec.nodeSelector", ONE_VM),
    ("spec.nodeName", ONE_VM),
    ("spec.affinity", ONE_VM),
    ("spec.tolerations", ONE_VM),
    ("spec.topologySpreadConstraints", ONE_VM),
    ("spec.schedulerName", ONE_VM),
    ("spec.schedulingGates", ONE_VM),
    ("spec.priorityClassName", ONE_VM),
    ("spec.priority", ONE_VM),
    ("spec.preemptionPolicy", ONE_VM),
    ("spec.serviceAccountName", SERVICE_ACCOUNT),
    ("spec.serviceAccount", SERVICE_ACCOUNT),
    ("spec.automountServiceAccountToken", NO_API),
    ("spec.enableServiceLinks", "a pod1 VM has no Services"),
    ("spec.readinessGates", "a pod1 VM has no Services to route to the pod"),
    ("spec.securityContext.seLinuxOptions", NO_LSM),
    ("spec.securityContext.seLinuxChangePolicy", NO_LSM),
    ("spec.securityContext.appArmorProfile", NO_LSM),
    ("spec.securityContext.windowsOptions", LINUX),
    ("spec.containers[].securityContext.seLinuxOptions", NO_LSM),
    ("spec.containers[].securityContext.appArmorProfile", NO_LSM),
    ("spec.containers[].securityContext.windowsOptions", LINUX),
    ("spec.initContainers[].securityContext.seLinuxOptions", NO_LSM),
    ("spec.initContainers[].securityContext.appArmorProfile", NO_LSM),
    ("spec.initContainers[].securityContext.windowsOptions", LINUX),
];

/// A field that was taken out, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    /// Its JSON path, e.g. `spec.containers[1].ports`.
    pub path: String,
    /// Why it has no meaning in a pod1 VM.
    pub reason: &'static str,
    /// What it held.
    pub value: Value,
}

/// Takes every [`IGNORED`] field out of `pod`, in table order.
pub fn strip(pod: &mut Value) -> Vec<Ignored> {
    strip_matching(pod, |_| true)
}

/// Takes the object-level [`IGNORED`] fields (`metadata.*`, `status`) out
/// of any object.
pub fn strip_metadata(object: &mut Value) -> Vec<Ignored> {
    strip_matching(object, |pattern| !pattern.starts_with("spec."))
}

fn strip_matching(pod: &mut Value, keep: impl Fn(&str) -> bool) -> Vec<Ignored> {
    let mut found = Vec::new();
    for (pattern, reason) in IGNORED.iter().filter(|(p, _)| keep(p)) {
        let parts: Vec<&str> = pattern.split('.').collect();
        remove(pod, &parts, String::new(), reason, &mut found);
    }
    found
}

fn remove(v: &mut Value, parts: &[&str], at: String, reason: &'static str, found: &mut Vec<Ignored>) {
    let Some((first, rest)) = parts.split_first() else {
        return;
    };
    let Some(map) = v.as_object_mut() else { return };
    let dot = if at.is_empty() {
        String::new()
    } else {
        format!("{at}.")
    };
    match (first.strip_suffix("[]"), rest.is_empty()) {
        (Some(list), _) => {
            if let Some(Value::Array(items)) = map.get_mut(list) {
                for (i, item) in items.iter_mut().enumerate() {
                    remove(item, rest, format!("{dot}{list}[{i}]"), reason, found);
                }
            }
        }
        (None, true) => {
            if let Some(value) = map.remove(*first) {
                found.push(Ignored {
                    path: format!("{dot}{first}"),
                    reason,
                    value,
                });
            }
        }
        (None, false) => {
            if let Some(inner) = map.get_mut(*first) {
                remove(inner, rest, format!("{dot}{first}"), reason, found);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_and_names_each_field() {
        let mut pod = serde_json::json!({
            "metadata": {"name": "p", "resourceVersion": "7"},
            "spec": {"nodeSelector": {"disk": "ssd"}, "containers": [
                {"name": "a"}, {"name": "b", "securityContext": {"appArmorProfile": {"type": "Unconfined"}}}]},
            "status": {"phase": "Running"}
        });
        let found = strip(&mut pod);
        let paths: Vec<&str> = found.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "status",
                "metadata.resourceVersion",
                "spec.nodeSelector",
                "spec.containers[1].securityContext.appArmorProfile"
            ]
        );
        assert_eq!(
            pod,
            serde_json::json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}, {"name": "b", "securityContext": {}}]}})
        );
        // Nothing to strip, nothing found; odd shapes are left to the parser.
        assert!(strip(&mut serde_json::json!({"spec": {"containers": 3}})).is_empty());
    }
}
