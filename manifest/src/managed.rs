//! The files the kubelet and containerd manage in every container:
//! /etc/hosts, /etc/hostname and /etc/resolv.conf, and the pod's names.

use alloc::format;
use alloc::string::{String, ToString};

use std::collections::BTreeSet;

use alloc::vec::Vec;

use crate::downward::Node;
use crate::error::Error;
use crate::network::{HOST_ALIAS, MAX_NAMESERVERS, MAX_SEARCHES};
use crate::pod::Pod;

/// The cluster domain of the pod's DNS names.
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// The pod's names as the kubelet derives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// `spec.hostname`, else `metadata.name` cut to 63 characters (without
    /// a trailing `-` or `.`).
    pub hostname: String,
    /// `subdomain.namespace.svc.cluster.local` with a `subdomain`.
    pub domain: Option<String>,
    /// The kernel hostname of the pod: the FQDN with `setHostnameAsFQDN`.
    pub uts: String,
}

/// The pod's names; with `setHostnameAsFQDN`, an FQDN over 64 characters is
/// an error, as on a node.
pub fn names(pod: &Pod) -> Result<Names, Error> {
    let hostname = match &pod.spec.hostname {
        Some(h) => h.clone(),
        None => {
            let name = &pod.metadata.name;
            let cut = &name[..name.len().min(63)];
            cut.trim_end_matches(['-', '.']).to_string()
        }
    };
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let domain = pod
        .spec
        .subdomain
        .as_ref()
        .map(|s| format!("{s}.{namespace}.svc.{CLUSTER_DOMAIN}"));
    let uts = match (&domain, pod.spec.set_hostname_as_fqdn) {
        (Some(d), true) => {
            let fqdn = format!("{hostname}.{d}");
            if fqdn.len() > 64 {
                return Err(Error::new(
                    "spec.setHostnameAsFQDN",
                    format!(
                        "the FQDN {fqdn:?} is too long (64 characters is the max, {} requested)",
                        fqdn.len()
                    ),
                ));
            }
            fqdn
        }
        _ => hostname.clone(),
    };
    Ok(Names {
        hostname,
        domain,
        uts,
    })
}

/// /etc/hosts as the kubelet writes it for a pod: the localhost lines,
/// the pod's address with its names, the host's address as
/// [`HOST_ALIAS`] when the VM has a network, then the `hostAliases`.
pub fn hosts(pod: &Pod, names: &Names, node: &Node) -> String {
    let mut out = String::from(
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
    );
    let (h, ip) = (&names.hostname, node.pod_ip());
    match &names.domain {
        Some(d) => out.push_str(&format!("{ip}\t{h}.{d}\t{h}\n")),
        None => out.push_str(&format!("{ip}\t{h}\n")),
    }
    if let Some(net) = &node.network {
        out.push_str(&format!("{}\t{HOST_ALIAS}\n", net.plan.gateway));
    }
    if !pod.spec.host_aliases.is_empty() {
        out.push_str("\n# Entries added by HostAliases.\n");
        for a in &pod.spec.host_aliases {
            out.push_str(&format!("{}\t{}\n", a.ip, a.hostnames.join("\t")));
        }
    }
    out
}

/// /etc/resolv.conf as containerd writes it from the kubelet's DNS
/// config: `search`, `nameserver` and `options` lines, and what was cut
/// to the kubelet's limits. Under `dnsPolicy: None` only `dnsConfig`
/// counts. Otherwise the base is the node's resolver: QEMU's DNS server
/// (which forwards to the host's) with the host's search domains when the
/// VM has a network, nothing without one (`ClusterFirst` falls back to
/// it, as the kubelet does when it has no cluster DNS); `dnsConfig` is
/// appended, duplicates dropped, and its options override the same names.
pub fn resolv_conf(pod: &Pod, node: &Node) -> (String, Vec<String>) {
    let mut servers: Vec<String> = Vec::new();
    let mut searches: Vec<String> = Vec::new();
    let mut options: Vec<(String, Option<String>)> = Vec::new();
    let policy = pod.spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    if let (Some(net), false) = (&node.network, policy == "None") {
        servers.push(net.plan.dns.clone());
        searches.extend(net.searches.iter().cloned());
    }
    if let Some(dns) = &pod.spec.dns_config {
        servers.extend(dns.nameservers.iter().cloned());
        searches.extend(dns.searches.iter().cloned());
        for o in &dns.options {
            options.retain(|(name, _)| *name != o.name);
            options.push((o.name.clone(), o.value.clone()));
        }
    }
    let dedup = |list: &mut Vec<String>| {
        let mut seen = BTreeSet::new();
        list.retain(|x| seen.insert(x.clone()));
    };
    dedup(&mut servers);
    dedup(&mut searches);
    let mut warnings = Vec::new();
    if servers.len() > MAX_NAMESERVERS {
        warnings.push(format!(
            "spec.dnsConfig.nameservers: a pod's resolv.conf keeps {MAX_NAMESERVERS} nameservers; {} dropped (the VM's own DNS server is the first)",
            servers[MAX_NAMESERVERS..].join(", ")
        ));
        servers.truncate(MAX_NAMESERVERS);
    }
    if searches.len() > MAX_SEARCHES {
        warnings.push(format!(
            "spec.dnsConfig.searches: a pod's resolv.conf keeps {MAX_SEARCHES} search domains; the rest are dropped"
        ));
        searches.truncate(MAX_SEARCHES);
    }
    let mut out = String::new();
    if !searches.is_empty() {
        out.push_str(&format!("search {}\n", searches.join(" ")));
    }
    for ns in &servers {
        out.push_str(&format!("nameserver {ns}\n"));
    }
    if !options.is_empty() {
        let opts: Vec<String> = options
            .iter()
            .map(|(name, value)| match value {
                Some(v) => format!("{name}:{v}"),
                None => name.clone(),
            })
            .collect();
        out.push_str(&format!("options {}\n", opts.join(" ")));
    }
    (out, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(spec: serde_json::Value) -> Pod {
        let mut spec = spec;
        spec["containers"] = serde_json::json!([{"name": "c", "image": "dir:x"}]);
        Pod::parse(
            &serde_json::json!({"metadata": {"name": "web-0", "namespace": "shop"}, "spec": spec})
                .to_string(),
        )
        .unwrap()
    }

    #[test]
    fn hosts_file_as_the_kubelet_writes_it() {
        let p = pod(serde_json::json!({"hostAliases": [
            {"ip": "10.1.2.3", "hostnames": ["foo.remote", "bar.remote"]}]}));
        let n = names(&p).unwrap();
        let none = Node::new(512, 1);
        let text = hosts(&p, &n, &none);
        assert!(text.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"));
        assert!(text.ends_with("fe00::2\tip6-allrouters\n127.0.0.1\tweb-0\n\n# Entries added by HostAliases.\n10.1.2.3\tfoo.remote\tbar.remote\n"), "{text}");
        let p = pod(serde_json::json!({"hostname": "h", "subdomain": "sub"}));
        let n = names(&p).unwrap();
        assert_eq!(n.uts, "h");
        assert!(hosts(&p, &n, &none).ends_with("127.0.0.1\th.sub.shop.svc.cluster.local\th\n"));
        let net = none.with_network(Some(crate::network::Network::user(Vec::new())));
        assert!(hosts(&p, &n, &net)
            .ends_with("10.0.2.15\th.sub.shop.svc.cluster.local\th\n10.0.2.2\thost.containers.internal\n"));
    }

    #[test]
    fn fqdn_hostname() {
        let p = pod(serde_json::json!({"subdomain": "sub", "setHostnameAsFQDN": true}));
        assert_eq!(names(&p).unwrap().uts, "web-0.sub.shop.svc.cluster.local");
        let p = pod(
            serde_json::json!({"hostname": "h".repeat(40), "subdomain": "sub", "setHostnameAsFQDN": true}),
        );
        assert!(names(&p).unwrap_err().message.contains("too long"));
        // Without a subdomain there is no FQDN to set.
        let p = pod(serde_json::json!({"setHostnameAsFQDN": true}));
        assert_eq!(names(&p).unwrap().uts, "web-0");
    }

    #[test]
    fn resolv_conf_lines() {
        let none = Node::new(512, 1);
        let net = none
            .clone()
            .with_network(Some(crate::network::Network::user(vec!["corp.example".into()])));
        let conf = |spec: serde_json::Value, node: &Node| resolv_conf(&pod(spec), node).0;
        assert_eq!(conf(serde_json::json!({}), &none), "");
        assert_eq!(
            conf(serde_json::json!({}), &net),
            "search corp.example\nnameserver 10.0.2.3\n"
        );
        let dns = serde_json::json!({"nameservers": ["1.1.1.1", "10.0.2.3"], "searches": ["a.b", "c"],
            "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}, {"name": "ndots", "value": "3"}]});
        assert_eq!(
            conf(serde_json::json!({"dnsConfig": dns}), &none),
            "search a.b c\nnameserver 1.1.1.1\nnameserver 10.0.2.3\noptions edns0 ndots:3\n"
        );
        // dnsConfig is appended to the VM's resolver, duplicates dropped...
        assert_eq!(
            conf(serde_json::json!({"dnsConfig": dns}), &net),
            "search corp.example a.b c\nnameserver 10.0.2.3\nnameserver 1.1.1.1\noptions edns0 ndots:3\n"
        );
        // ...or stands alone under dnsPolicy None.
        assert_eq!(
            conf(
                serde_json::json!({"dnsPolicy": "None", "dnsConfig": {"nameservers": ["9.9.9.9"]}}),
                &net
            ),
            "nameserver 9.9.9.9\n"
        );
        let (text, warnings) = resolv_conf(
            &pod(serde_json::json!({"dnsConfig": {"nameservers": ["1.1.1.1", "2.2.2.2", "3.3.3.3"]}})),
            &net,
        );
        assert_eq!(text.matches("nameserver").count(), 3);
        assert!(warnings[0].contains("3.3.3.3 dropped"), "{warnings:?}");
    }
}
