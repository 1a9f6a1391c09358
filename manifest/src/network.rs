//! The pod's network: one NIC on QEMU's user-mode network stack (slirp),
//! and the container ports published to the host.
//!
//! slirp gives the VM a private /24 of its own: the VM's address, a
//! gateway that is also the host (the host's loopback services are
//! reachable through it), and a DNS server that forwards to the host's
//! resolvers. The addresses are fixed here and handed to QEMU by `pod1 run`
//! from the plan, so the guest needs no DHCP client: the init configures
//! them itself.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use std::collections::BTreeSet;

use crate::error::Error;
use crate::plan::{NetworkPlan, PortPlan, Protocol};
use crate::pod::{Container, PodSpec};

/// The name containers reach the host by (podman's name for it), in
/// every container's /etc/hosts.
pub const HOST_ALIAS: &str = "host.containers.internal";
/// The host address a published port listens on when `hostIP` is not
/// given: loopback, so nothing is published beyond this machine unless
/// asked for (a node publishes on every interface).
pub const DEFAULT_HOST_IP: &str = "127.0.0.1";
/// The most `nameserver` lines a pod's resolv.conf keeps, as the kubelet
/// (glibc reads no more).
pub const MAX_NAMESERVERS: usize = 3;
/// The most search domains a pod's resolv.conf keeps, as the kubelet.
pub const MAX_SEARCHES: usize = 32;

/// The network the VM is built for (the downward API, /etc/hosts and
/// /etc/resolv.conf depend on it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    /// The addresses.
    pub plan: NetworkPlan,
    /// The host's DNS search domains, for resolv.conf.
    pub searches: Vec<String>,
}

impl Network {
    /// QEMU's user-mode network with its own default addresses
    /// (10.0.2.0/24: the guest .15, the gateway and host .2, DNS .3) and
    /// the host's search domains.
    pub fn user(searches: Vec<String>) -> Network {
        Network {
            plan: NetworkPlan {
                address: "10.0.2.15".to_string(),
                prefix_len: 24,
                gateway: "10.0.2.2".to_string(),
                dns: "10.0.2.3".to_string(),
            },
            searches,
        }
    }
}

/// The search domains of a resolv.conf (its last `search` or `domain`
/// line wins, as in glibc's resolver).
pub fn host_searches(resolv_conf: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in resolv_conf.lines() {
        let mut words = line.split_whitespace();
        if let Some("search" | "domain") = words.next() {
            out = words
                .take_while(|w| !w.starts_with(['#', ';']))
                .map(str::to_string)
                .collect();
        }
    }
    out.truncate(MAX_SEARCHES);
    out
}

/// Checks every container's `ports` as the API server does: a name is an
/// IANA service name unique in its container, ports are 1..65535, the
/// protocol TCP or UDP (SCTP is refused: QEMU's user network forwards
/// neither it nor anything else), `hostIP` an IPv4 address, each
/// `hostIP`/`hostPort`/protocol once in the pod, and with `hostNetwork`
/// a `hostPort` equal to its `containerPort`.
pub fn validate(spec: &PodSpec) -> Result<(), Error> {
    let mut taken = BTreeSet::new();
    for (at, c) in containers(spec) {
        let mut names = BTreeSet::new();
        for (i, p) in c.ports.iter().enumerate() {
            let at = format!("{at}.ports[{i}]");
            if let Some(name) = &p.name {
                if !is_service_name(name) {
                    return Err(Error::new(
                        format!("{at}.name"),
                        format!("{name:?} must be at most 15 lowercase letters, digits and '-', with a letter, not starting or ending with '-' nor with '--'"),
                    ));
                }
                if !names.insert(name.as_str()) {
                    return Err(Error::new(
                        format!("{at}.name"),
                        format!("duplicate port name {name:?}"),
                    ));
                }
            }
            port_number(&format!("{at}.containerPort"), p.container_port)?;
            protocol(&at, p.protocol.as_deref())?;
            if let Some(ip) = p.host_ip.as_deref().filter(|ip| !ip.is_empty()) {
                if ip.parse::<core::net::Ipv4Addr>().is_err() {
                    return Err(Error::new(
                        format!("{at}.hostIP"),
                        format!("{ip:?} is not an IPv4 address (QEMU's user network publishes on IPv4 only)"),
                    ));
                }
            }
            // As the API server defaults them: hostPort from containerPort
            // under hostNetwork, protocol TCP.
            let host_port = match p.host_port.filter(|p| *p != 0) {
                Some(h) => h,
                None if spec.host_network => p.container_port,
                None => continue,
            };
            port_number(&format!("{at}.hostPort"), host_port)?;
            if spec.host_network && host_port != p.container_port {
                return Err(Error::new(
                    format!("{at}.hostPort"),
                    "must match containerPort when hostNetwork is true",
                ));
            }
            let protocol = p.protocol.clone().unwrap_or_else(|| "TCP".to_string());
            let key = (protocol, host_ip(p), host_port);
            if !taken.insert(key) {
                return Err(Error::new(
                    format!("{at}.hostPort"),
                    format!("{host_port} is published twice for the same protocol and hostIP"),
                ));
            }
        }
    }
    Ok(())
}

/// The ports published to the host: each with a `hostPort` (under
/// `hostNetwork`, every port, its `hostPort` defaulting to its
/// `containerPort`, as the API server defaults it). A `containerPort`
/// alone publishes nothing, as on a node.
pub fn published(spec: &PodSpec) -> Vec<PortPlan> {
    let mut out = Vec::new();
    for (_, c) in containers(spec) {
        for p in &c.ports {
            let host_port = match p.host_port.filter(|p| *p != 0) {
                Some(h) => h,
                None if spec.host_network => p.container_port,
                None => continue,
            };
            out.push(PortPlan {
                container: c.name.clone(),
                name: p.name.clone(),
                protocol: match p.protocol.as_deref() {
                    Some("UDP") => Protocol::Udp,
                    _ => Protocol::Tcp,
                },
                host_ip: host_ip(p),
                host_port: host_port as u16,
                container_port: p.container_port as u16,
            });
        }
    }
    out
}

fn containers(spec: &PodSpec) -> impl Iterator<Item = (String, &Container)> {
    let init = spec
        .init_containers
        .iter()
        .enumerate()
        .map(|(i, c)| (format!("spec.initContainers[{i}]"), c));
    let app = spec
        .containers
        .iter()
        .enumerate()
        .map(|(i, c)| (format!("spec.containers[{i}]"), c));
    init.chain(app)
}

fn host_ip(p: &crate::pod::ContainerPort) -> String {
    match p.host_ip.as_deref() {
        None | Some("") => DEFAULT_HOST_IP.to_string(),
        Some(ip) => ip.to_string(),
    }
}

fn port_number(at: &str, port: i32) -> Result<(), Error> {
    match port {
        1..=65535 => Ok(()),
        _ => Err(Error::new(at, format!("{port} must be between 1 and 65535"))),
    }
}

fn protocol(at: &str, protocol: Option<&str>) -> Result<(), Error> {
    match protocol {
        None | Some("TCP" | "UDP") => Ok(()),
        Some("SCTP") => Err(Error::new(
            format!("{at}.protocol"),
            "SCTP cannot be published: QEMU's user network forwards TCP and UDP only",
        )),
        Some(p) => Err(Error::new(
            format!("{at}.protocol"),
            format!("{p:?}: use TCP or UDP"),
        )),
    }
}

/// An IANA service name as Kubernetes checks a port's name
/// (`IsValidPortName`).
pub(crate) fn is_service_name(name: &str) -> bool {
    (1..=15).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && name.bytes().any(|b| b.is_ascii_lowercase())
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pod::Pod;

    fn spec(host_network: bool, ports: serde_json::Value) -> PodSpec {
        let pod = serde_json::json!({"metadata": {"name": "p"}, "spec": {"hostNetwork": host_network,
            "containers": [{"name": "a", "image": "dir:x", "ports": ports}]}});
        Pod::parse(&pod.to_string()).unwrap().spec
    }

    #[test]
    fn only_host_ports_are_published() {
        let s = spec(
            false,
            serde_json::json!([{"containerPort": 80}, {"name": "dns", "containerPort": 53, "hostPort": 5353, "protocol": "UDP"},
                {"containerPort": 8080, "hostPort": 8080, "hostIP": "0.0.0.0"}]),
        );
        validate(&s).unwrap();
        let p = published(&s);
        assert_eq!(p.len(), 2);
        assert_eq!(
            (
                p[0].protocol,
                p[0].host_ip.as_str(),
                p[0].host_port,
                p[0].container_port
            ),
            (Protocol::Udp, "127.0.0.1", 5353, 53)
        );
        assert_eq!((p[1].host_ip.as_str(), p[1].name.as_deref()), ("0.0.0.0", None));
        // With hostNetwork every port is published at its own number.
        let s = spec(true, serde_json::json!([{"containerPort": 80}]));
        validate(&s).unwrap();
        assert_eq!(published(&s)[0].host_port, 80);
    }

    #[test]
    fn ports_are_checked_as_the_api_server_does() {
        let err = |ports: serde_json::Value, host_network: bool| {
            let e = validate(&spec(host_network, ports)).unwrap_err();
            format!("{}: {}", e.path, e.message)
        };
        assert!(err(serde_json::json!([{"containerPort": 0}]), false).contains("ports[0].containerPort"));
        assert!(err(
            serde_json::json!([{"containerPort": 1, "hostPort": 70000}]),
            false
        )
        .contains("hostPort"));
        assert!(err(
            serde_json::json!([{"containerPort": 1, "protocol": "SCTP"}]),
            false
        )
        .contains("TCP and UDP only"));
        assert!(err(
            serde_json::json!([{"containerPort": 1, "protocol": "tcp"}]),
            false
        )
        .contains("use TCP or UDP"));
        assert!(err(serde_json::json!([{"containerPort": 1, "hostIP": "::1"}]), false).contains("IPv4"));
        assert!(
            err(serde_json::json!([{"containerPort": 1, "name": "Web"}]), false).contains("ports[0].name")
        );
        assert!(err(
            serde_json::json!([{"containerPort": 1, "name": "web"}, {"containerPort": 2, "name": "web"}]),
            false
        )
        .contains("duplicate port name"));
        assert!(err(
            serde_json::json!([{"containerPort": 1, "hostPort": 9}, {"containerPort": 2, "hostPort": 9}]),
            false
        )
        .contains("published twice"));
        assert!(err(serde_json::json!([{"containerPort": 1, "hostPort": 9}, {"containerPort": 2, "hostPort": 9, "protocol": "TCP"}]), false)
            .contains("published twice"));
        assert!(err(
            serde_json::json!([{"containerPort": 80}, {"containerPort": 80, "protocol": "TCP"}]),
            true
        )
        .contains("published twice"));
        // The same host port for TCP and UDP, or on two addresses, is fine.
        validate(&spec(
            false,
            serde_json::json!([{"containerPort": 1, "hostPort": 9},
            {"containerPort": 1, "hostPort": 9, "protocol": "UDP"},
            {"containerPort": 2, "hostPort": 9, "hostIP": "127.0.0.2"}]),
        ))
        .unwrap();
        assert!(
            err(serde_json::json!([{"containerPort": 80, "hostPort": 8080}]), true)
                .contains("must match containerPort")
        );
    }

    #[test]
    fn search_domains_of_the_host() {
        assert_eq!(host_searches("nameserver 1.1.1.1\n"), Vec::<String>::new());
        assert_eq!(
            host_searches("domain old\nsearch a.example b.example # comment\nnameserver 1.1.1.1\n"),
            ["a.example", "b.example"]
        );
        assert_eq!(host_searches("search a\ndomain z\n"), ["z"]);
    }
}
