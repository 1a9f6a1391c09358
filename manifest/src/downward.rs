//! The downward API: pod fields and container resources as the kubelet
//! renders them, for env values and for downwardAPI volume files.

use std::collections::BTreeMap;

use alloc::format;
use alloc::string::{String, ToString};

use crate::network::Network;
use crate::pod::{Container, Pod, ResourceFieldSelector};
use crate::quantity::Quantity;

/// The pod's address without a network (`--network none`): loopback. It
/// is then what `status.podIP`, `status.hostIP` and /etc/hosts give.
pub const POD_IP: &str = "127.0.0.1";
/// `spec.nodeName`: the VM is the pod's node.
pub const NODE_NAME: &str = "pod1";

/// What the node (the VM) has, for resources a container does not limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Memory in bytes.
    pub memory_bytes: u64,
    /// CPUs, in thousandths.
    pub cpu_millis: u64,
    /// Ephemeral storage in bytes: the VM's root tmpfs, half its memory.
    pub ephemeral_storage_bytes: u64,
    /// Its network, if it has one.
    pub network: Option<Network>,
}

impl Node {
    /// A VM of `memory_mib` MiB and `cpus` CPUs.
    pub fn new(memory_mib: u64, cpus: u64) -> Node {
        Node {
            memory_bytes: memory_mib << 20,
            cpu_millis: cpus * 1000,
            ephemeral_storage_bytes: memory_mib << 19,
            network: None,
        }
    }

    /// The same VM with `network`.
    pub fn with_network(self, network: Option<Network>) -> Node {
        Node { network, ..self }
    }

    /// The pod's address (the node's too: the VM is both): the NIC's, else
    /// loopback.
    pub fn pod_ip(&self) -> &str {
        self.network.as_ref().map_or(POD_IP, |n| n.plan.address.as_str())
    }
}

/// Where a field is read: env values may read status and spec fields,
/// volume files the whole label and annotation maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// `env[].valueFrom.fieldRef`.
    Env,
    /// `downwardAPI.items[].fieldRef`.
    Volume,
}

/// The value of `fieldPath` for `pod`, or why it cannot be read.
pub fn field(pod: &Pod, node: &Node, path: &str, usage: Use) -> Result<String, String> {
    let meta = &pod.metadata;
    let subscript = |prefix: &str| -> Option<String> {
        let key = path
            .strip_prefix(prefix)?
            .strip_prefix("['")?
            .strip_suffix("']")?;
        Some(key.to_string())
    };
    if let Some(key) = subscript("metadata.labels") {
        return Ok(meta.labels.get(&key).cloned().unwrap_or_default());
    }
    if let Some(key) = subscript("metadata.annotations") {
        return Ok(meta.annotations.get(&key).cloned().unwrap_or_default());
    }
    let text = |s: &Option<String>| s.clone().unwrap_or_default();
    Ok(match (path, usage) {
        ("metadata.name", _) => meta.name.clone(),
        ("metadata.namespace", _) => text(&meta.namespace),
        ("metadata.uid", _) => text(&meta.uid),
        ("metadata.labels", Use::Volume) => format_map(&meta.labels),
        ("metadata.annotations", Use::Volume) => format_map(&meta.annotations),
        ("spec.nodeName", Use::Env) => NODE_NAME.to_string(),
        ("spec.serviceAccountName", Use::Env) => pod
            .spec
            .service_account_name
            .clone()
            .unwrap_or_else(|| "default".to_string()),
        ("status.podIP" | "status.podIPs" | "status.hostIP" | "status.hostIPs", Use::Env) => {
            node.pod_ip().to_string()
        }
        _ => {
            let supported = match usage {
                Use::Env => "metadata.name, metadata.namespace, metadata.uid, metadata.labels['KEY'], metadata.annotations['KEY'], spec.nodeName, spec.serviceAccountName, status.podIP(s), status.hostIP(s)",
                Use::Volume => "metadata.name, metadata.namespace, metadata.uid, metadata.labels, metadata.annotations, metadata.labels['KEY'], metadata.annotations['KEY']",
            };
            return Err(format!("{path:?} cannot be read here; supported: {supported}"));
        }
    })
}

/// The value of a `resourceFieldRef` for `container`, as the kubelet
/// gives it: the limit (the node's capacity when there is none) or the
/// request (the limit when only that is set, as the API server defaults
/// it; 0 when neither is), divided by `divisor` and rounded up.
pub fn resource(container: &Container, sel: &ResourceFieldSelector, node: &Node) -> Result<String, String> {
    let (kind, name) = sel
        .resource
        .split_once('.')
        .filter(|(k, _)| matches!(*k, "limits" | "requests"))
        .ok_or_else(|| unsupported(&sel.resource))?;
    let capacity = match name {
        "cpu" => u128::from(node.cpu_millis),
        "memory" => u128::from(node.memory_bytes) * 1000,
        "ephemeral-storage" => u128::from(node.ephemeral_storage_bytes) * 1000,
        _ => return Err(unsupported(&sel.resource)),
    };
    let resources = container.resources.as_ref();
    let limit = resources
        .and_then(|r| r.limits.get(name))
        .and_then(Quantity::millis);
    let request = resources
        .and_then(|r| r.requests.get(name))
        .and_then(Quantity::millis);
    let millis = match kind {
        "limits" => limit.unwrap_or(capacity),
        _ => request.or(limit).unwrap_or(0),
    };
    let divisor = match &sel.divisor {
        Some(d) => d
            .millis()
            .filter(|m| *m > 0)
            .ok_or("divisor: not a positive quantity")?,
        None => 1000,
    };
    check_divisor(name, divisor)?;
    // CPU divides milli by milli; bytes divide whole by whole, the value
    // first rounded up to a whole byte (as Quantity.Value() does).
    let value = if name == "cpu" {
        millis.div_ceil(divisor)
    } else {
        millis.div_ceil(1000).div_ceil(divisor / 1000)
    };
    Ok(value.to_string())
}

fn unsupported(resource: &str) -> String {
    format!("{resource:?}: supported resources are limits.cpu, limits.memory, limits.ephemeral-storage, requests.cpu, requests.memory, requests.ephemeral-storage")
}

/// The divisors the API server accepts (in thousandths).
fn check_divisor(name: &str, divisor: u128) -> Result<(), String> {
    let ok = match name {
        "cpu" => matches!(divisor, 1 | 1000),
        _ => {
            let decimal = (0..=6).map(|e| 1000 * 1000u128.pow(e));
            let binary = (1..=6).map(|e| 1000 * 1024u128.pow(e));
            decimal.chain(binary).any(|d| d == divisor)
        }
    };
    if ok {
        Ok(())
    } else if name == "cpu" {
        Err("divisor: a cpu divisor is 1m or 1".to_string())
    } else {
        Err(
            "divisor: a byte divisor is 1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi or 1Ei"
                .to_string(),
        )
    }
}

/// Labels or annotations as the kubelet writes them into a file: one
/// `key="value"` line per entry, sorted by key, the value quoted as Go's
/// `%q` does, no newline after the last.
pub fn format_map(map: &BTreeMap<String, String>) -> String {
    let lines: alloc::vec::Vec<String> = map.iter().map(|(k, v)| format!("{k}={}", go_quote(v))).collect();
    lines.join("\n")
}

/// Go's strconv.Quote: `"` and `\` escaped, the C escapes for \a \b \f
/// \n \r \t \v, `\xNN` for other ASCII controls, `\uNNNN` for the other
/// characters Go does not print (here: Unicode controls and the format
/// characters that reach labels in practice), everything else as is.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\x7f' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() || matches!(c, '\u{ad}' | '\u{2028}' | '\u{2029}' | '\u{feff}') => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Pod {
        let mut pod = Pod::parse(
            r#"{"metadata":{"name":"p","labels":{"b":"2","a":"x\"y\n\u00e9\t"},"annotations":{"k":"v"}},
                "spec":{"containers":[{"name":"c","image":"dir:x","resources":{
                  "limits":{"memory":"64Mi","cpu":"250m"},"requests":{"ephemeral-storage":"1Gi"}}}]}}"#,
        )
        .unwrap();
        pod.metadata.uid = Some("u-1".into());
        pod
    }

    #[test]
    fn fields() {
        let p = pod();
        let node = Node::new(512, 1);
        let f = |path, usage| field(&p, &node, path, usage);
        assert_eq!(f("metadata.name", Use::Env).unwrap(), "p");
        assert_eq!(f("metadata.namespace", Use::Env).unwrap(), "default");
        assert_eq!(f("metadata.uid", Use::Volume).unwrap(), "u-1");
        assert_eq!(f("metadata.labels['b']", Use::Env).unwrap(), "2");
        assert_eq!(f("metadata.labels['none']", Use::Env).unwrap(), "");
        assert_eq!(f("metadata.annotations['k']", Use::Volume).unwrap(), "v");
        assert_eq!(f("status.podIPs", Use::Env).unwrap(), POD_IP);
        let net = node.clone().with_network(Some(Network::user(Vec::new())));
        assert_eq!(field(&p, &net, "status.hostIP", Use::Env).unwrap(), "10.0.2.15");
        assert_eq!(f("spec.serviceAccountName", Use::Env).unwrap(), "default");
        assert_eq!(
            f("metadata.labels", Use::Volume).unwrap(),
            "a=\"x\\\"y\\n\u{e9}\\t\"\nb=\"2\""
        );
        assert!(f("metadata.labels", Use::Env)
            .unwrap_err()
            .contains("cannot be read here"));
        assert!(f("status.podIP", Use::Volume).is_err());
        assert!(f("spec.nodeSelector", Use::Env).is_err());
    }

    #[test]
    fn resources_round_up_and_default_to_the_node() {
        let p = pod();
        let c = &p.spec.containers[0];
        let node = Node::new(512, 2);
        let r = |resource: &str, divisor: Option<&str>| {
            let sel = ResourceFieldSelector {
                container_name: None,
                resource: resource.into(),
                divisor: divisor.map(|d| Quantity::Text(d.into())),
            };
            resource_value(c, &sel, &node)
        };
        fn resource_value(c: &Container, s: &ResourceFieldSelector, n: &Node) -> Result<String, String> {
            resource(c, s, n)
        }
        assert_eq!(r("limits.cpu", None).unwrap(), "1"); // 250m rounds up
        assert_eq!(r("limits.cpu", Some("1m")).unwrap(), "250");
        assert_eq!(r("requests.cpu", Some("1m")).unwrap(), "250"); // defaults to the limit
        assert_eq!(r("limits.memory", None).unwrap(), (64u64 << 20).to_string());
        assert_eq!(r("limits.memory", Some("1Mi")).unwrap(), "64");
        assert_eq!(r("limits.memory", Some("1M")).unwrap(), "68"); // 67.1 rounds up
        assert_eq!(r("requests.memory", Some("1Mi")).unwrap(), "64");
        assert_eq!(r("requests.ephemeral-storage", Some("1Gi")).unwrap(), "1");
        // No limit: the node's capacity.
        assert_eq!(r("limits.ephemeral-storage", Some("1Mi")).unwrap(), "256");
        assert!(r("limits.cpu", Some("2")).unwrap_err().contains("1m or 1"));
        assert_eq!(r("limits.memory", Some("1Ei")).unwrap(), "1");
        assert_eq!(r("limits.memory", Some("1E")).unwrap(), "1");
        assert!(r("limits.memory", Some("3Mi")).is_err());
        assert!(r("limits.hugepages-2Mi", None).is_err());
        assert!(r("cpu", None).is_err());
    }

    #[test]
    fn go_quoting() {
        assert_eq!(go_quote("plain"), "\"plain\"");
        assert_eq!(
            go_quote("\x00\x1b\x7f\u{85}\u{feff}é😀"),
            "\"\\x00\\x1b\\x7f\\u0085\\ufeff\u{e9}😀\""
        );
    }
}
