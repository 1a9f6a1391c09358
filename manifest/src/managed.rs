//! The files the kubelet and containerd manage in every container:
//! /etc/hosts, /etc/hostname and /etc/resolv.conf, and the pod's names.

use alloc::format;
use alloc::string::{String, ToString};

use crate::downward::POD_IP;
use crate::error::Error;
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
/// the pod's address with its names, then the `hostAliases`.
pub fn hosts(pod: &Pod, names: &Names) -> String {
    let mut out = String::from(
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
    );
    let h = &names.hostname;
    match &names.domain {
        Some(d) => out.push_str(&format!("{POD_IP}\t{h}.{d}\t{h}\n")),
        None => out.push_str(&format!("{POD_IP}\t{h}\n")),
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
/// config: `search`, `nameserver` and `options` lines. With no cluster
/// DNS and no network the kubelet's config holds only `dnsConfig`, so a
/// pod without it gets an empty file (no resolver).
pub fn resolv_conf(pod: &Pod) -> String {
    let mut out = String::new();
    let Some(dns) = &pod.spec.dns_config else {
        return out;
    };
    if !dns.searches.is_empty() {
        out.push_str(&format!("search {}\n", dns.searches.join(" ")));
    }
    for ns in &dns.nameservers {
        out.push_str(&format!("nameserver {ns}\n"));
    }
    if !dns.options.is_empty() {
        let opts: alloc::vec::Vec<String> = dns
            .options
            .iter()
            .map(|o| match &o.value {
                Some(v) => format!("{}:{v}", o.name),
                None => o.name.clone(),
            })
            .collect();
        out.push_str(&format!("options {}\n", opts.join(" ")));
    }
    out
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
        let text = hosts(&p, &n);
        assert!(text.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"));
        assert!(text.ends_with("fe00::2\tip6-allrouters\n127.0.0.1\tweb-0\n\n# Entries added by HostAliases.\n10.1.2.3\tfoo.remote\tbar.remote\n"), "{text}");
        let p = pod(serde_json::json!({"hostname": "h", "subdomain": "sub"}));
        let n = names(&p).unwrap();
        assert_eq!(n.uts, "h");
        assert!(hosts(&p, &n).ends_with("127.0.0.1\th.sub.shop.svc.cluster.local\th\n"));
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
        assert_eq!(resolv_conf(&pod(serde_json::json!({}))), "");
        let p = pod(
            serde_json::json!({"dnsConfig": {"nameservers": ["1.1.1.1"], "searches": ["a.b", "c"],
            "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}}),
        );
        assert_eq!(
            resolv_conf(&p),
            "search a.b c\nnameserver 1.1.1.1\noptions ndots:2 edns0\n"
        );
    }
}
