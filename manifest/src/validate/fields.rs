//! The API server's rules for the fields a real manifest carries beyond
//! the core ones: volume sources, env sources, mounts, DNS, names and the
//! security fields.

use alloc::format;
use alloc::string::String;

use super::{clean_absolute, dns_label, id_range};
use crate::error::Error;
use crate::pod::{Container, Pod, Volume, VolumeMount};

/// Exactly one source per volume.
pub(super) fn volume_source(at: &str, v: &Volume) -> Result<(), Error> {
    let n = [
        v.empty_dir.is_some(),
        v.config_map.is_some(),
        v.secret.is_some(),
        v.downward_api.is_some(),
        v.projected.is_some(),
        v.host_path.is_some(),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    match n {
        1 => match &v.host_path {
            Some(h) => host_path(&format!("{at}.hostPath"), h),
            None => Ok(()),
        },
        0 => Err(Error::new(
            at,
            "a volume needs a source: emptyDir, configMap, secret, downwardAPI, projected or hostPath",
        )),
        _ => Err(Error::new(at, "a volume has exactly one source")),
    }
}

/// A hostPath: a path, and a type a VM can share.
fn host_path(at: &str, h: &crate::pod::HostPathVolumeSource) -> Result<(), Error> {
    if h.path.is_empty() || h.path.contains('\0') {
        return Err(Error::new(
            format!("{at}.path"),
            "a host path is required (absolute, or relative to the manifest's directory)",
        ));
    }
    crate::hostpath::HostPathType::parse(h.kind.as_deref().unwrap_or(""))
        .map(|_| ())
        .map_err(|m| Error::new(format!("{at}.type"), m))
}

/// The pod-level fields.
pub(super) fn pod_spec(pod: &Pod) -> Result<(), Error> {
    let spec = &pod.spec;
    if let Some(ns) = &pod.metadata.namespace {
        dns_label("metadata.namespace", ns)?;
    }
    if let Some(s) = &spec.subdomain {
        dns_label("spec.subdomain", s)?;
    }
    if let Some(d) = spec.active_deadline_seconds.filter(|d| *d <= 0) {
        return Err(Error::new(
            "spec.activeDeadlineSeconds",
            format!("{d}: must be greater than 0"),
        ));
    }
    if let Some(os) = spec.os.as_ref().filter(|os| os.name != "linux") {
        return Err(Error::new(
            "spec.os.name",
            format!("{:?}: a pod1 pod runs linux", os.name),
        ));
    }
    for (i, a) in spec.host_aliases.iter().enumerate() {
        if a.ip.parse::<core::net::IpAddr>().is_err() {
            return Err(Error::new(
                format!("spec.hostAliases[{i}].ip"),
                format!("{:?} is not an IP address", a.ip),
            ));
        }
        for (j, h) in a.hostnames.iter().enumerate() {
            if h.is_empty() || h.len() > 253 || h.split('.').any(|l| !super::is_dns_label(l)) {
                return Err(Error::new(
                    format!("spec.hostAliases[{i}].hostnames[{j}]"),
                    format!("{h:?} is not a valid DNS name"),
                ));
            }
        }
    }
    match spec.dns_policy.as_deref() {
        None | Some("ClusterFirst" | "ClusterFirstWithHostNet" | "Default") => {}
        Some("None")
            if spec
                .dns_config
                .as_ref()
                .is_some_and(|d| !d.nameservers.is_empty()) => {}
        Some("None") => {
            return Err(Error::new(
                "spec.dnsConfig.nameservers",
                "must provide at least one DNS nameserver when dnsPolicy is None",
            ))
        }
        Some(p) => {
            return Err(Error::new(
                "spec.dnsPolicy",
                format!("{p:?}: use ClusterFirst, ClusterFirstWithHostNet, Default or None"),
            ))
        }
    }
    if let Some(dns) = &spec.dns_config {
        if dns.nameservers.len() > 3 {
            return Err(Error::new("spec.dnsConfig.nameservers", "at most 3 nameservers"));
        }
        for (i, ns) in dns.nameservers.iter().enumerate() {
            if ns.parse::<core::net::IpAddr>().is_err() {
                return Err(Error::new(
                    format!("spec.dnsConfig.nameservers[{i}]"),
                    format!("{ns:?} is not an IP address"),
                ));
            }
        }
        if dns.searches.len() > 32 {
            return Err(Error::new("spec.dnsConfig.searches", "at most 32 search domains"));
        }
    }
    if let Some(sc) = &spec.security_context {
        let at = "spec.securityContext";
        id_range(&format!("{at}.fsGroup"), sc.fs_group)?;
        for (i, g) in sc.supplemental_groups.iter().enumerate() {
            id_range(&format!("{at}.supplementalGroups[{i}]"), Some(*g))?;
        }
        one_of(
            &format!("{at}.supplementalGroupsPolicy"),
            sc.supplemental_groups_policy.as_deref(),
            &["Merge", "Strict"],
        )?;
        one_of(
            &format!("{at}.fsGroupChangePolicy"),
            sc.fs_group_change_policy.as_deref(),
            &["Always", "OnRootMismatch"],
        )?;
    }
    Ok(())
}

/// A container's env, termination message and security fields.
pub(super) fn container(at: &str, c: &Container) -> Result<(), Error> {
    for (i, e) in c.env.iter().enumerate() {
        if !crate::env::is_name(&e.name) {
            return Err(Error::new(
                format!("{at}.env[{i}].name"),
                format!(
                    "{:?} is not a valid variable name: printable ASCII characters but '='",
                    e.name
                ),
            ));
        }
        if !e.value.is_empty() && e.value_from.is_some() {
            return Err(Error::new(
                format!("{at}.env[{i}].valueFrom"),
                "may not be set when `value` is not empty",
            ));
        }
    }
    for (i, e) in c.env.iter().enumerate() {
        if let Some(from) = &e.value_from {
            value_from(&format!("{at}.env[{i}].valueFrom"), from)?;
        }
    }
    for (i, e) in c.env_from.iter().enumerate() {
        if let Some(p) = e
            .prefix
            .as_deref()
            .filter(|p| !p.is_empty() && !crate::env::is_name(p))
        {
            return Err(Error::new(
                format!("{at}.envFrom[{i}].prefix"),
                format!("{p:?} is not a valid variable name prefix"),
            ));
        }
    }
    one_of(
        &format!("{at}.imagePullPolicy"),
        c.image_pull_policy.as_deref(),
        &["Always", "IfNotPresent", "Never"],
    )?;
    if let Some(p) = &c.termination_message_path {
        clean_absolute(&format!("{at}.terminationMessagePath"), p)?;
    }
    one_of(
        &format!("{at}.terminationMessagePolicy"),
        c.termination_message_policy.as_deref(),
        &["File", "FallbackToLogsOnError"],
    )?;
    let Some(sc) = &c.security_context else {
        return Ok(());
    };
    let at = format!("{at}.securityContext");
    if sc.allow_privilege_escalation == Some(false) {
        if sc.privileged == Some(true) {
            return Err(Error::new(
                format!("{at}.allowPrivilegeEscalation"),
                "cannot set allowPrivilegeEscalation to false and privileged to true",
            ));
        }
        // The API server compares the literal spelling.
        let adds_sys_admin = sc
            .capabilities
            .as_ref()
            .is_some_and(|c| c.add.iter().any(|n| n == "CAP_SYS_ADMIN"));
        if adds_sys_admin {
            return Err(Error::new(
                format!("{at}.allowPrivilegeEscalation"),
                "cannot set allowPrivilegeEscalation to false and capabilities.add CAP_SYS_ADMIN",
            ));
        }
    }
    match sc.proc_mount.as_deref() {
        None | Some("Default") => Ok(()),
        Some("Unmasked") => Err(Error::new(
            format!("{at}.procMount"),
            "Unmasked needs hostUsers: false (user namespaces), which pod1 does not support; use Default",
        )),
        Some(other) => Err(Error::new(
            format!("{at}.procMount"),
            format!("{other:?}: use Default"),
        )),
    }
}

/// A mount's subPath, subPathExpr and mountPropagation.
pub(super) fn volume_mount(at: &str, m: &VolumeMount) -> Result<(), Error> {
    let set = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
    if set(&m.sub_path) && set(&m.sub_path_expr) {
        return Err(Error::new(
            format!("{at}.subPathExpr"),
            "subPath and subPathExpr are mutually exclusive",
        ));
    }
    if let Some(p) = m.sub_path.as_deref().filter(|p| !p.is_empty()) {
        crate::plan::sub_path_ok(&format!("{at}.subPath"), p)?;
    }
    if let Some(p) = m.sub_path_expr.as_deref().filter(|p| !p.is_empty()) {
        crate::plan::sub_path_ok(&format!("{at}.subPathExpr"), p)?;
    }
    match m.mount_propagation.as_deref() {
        None | Some("None") => Ok(()),
        Some(other) => Err(Error::new(
            format!("{at}.mountPropagation"),
            format!("{other:?}: pod1 propagates no mounts between the VM and the host; use None"),
        )),
    }
}

/// What the API server checks of a `valueFrom`: a `fieldRef`'s apiVersion
/// and subscript, a key reference's name and key.
fn value_from(at: &str, from: &crate::pod::EnvVarSource) -> Result<(), Error> {
    if let Some(f) = &from.field_ref {
        if let Some(v) = f.api_version.as_deref().filter(|v| *v != "v1") {
            return Err(Error::new(
                format!("{at}.fieldRef.apiVersion"),
                format!("{v:?}: only \"v1\""),
            ));
        }
        let key = ["metadata.labels['", "metadata.annotations['"]
            .iter()
            .find_map(|p| f.field_path.strip_prefix(p)?.strip_suffix("']"));
        if let Some(k) = key.filter(|k| !is_qualified_name(k)) {
            return Err(Error::new(
                format!("{at}.fieldRef.fieldPath"),
                format!("{k:?} is not a valid label or annotation key"),
            ));
        }
    }
    for (field, sel) in [
        ("configMapKeyRef", &from.config_map_key_ref),
        ("secretKeyRef", &from.secret_key_ref),
    ] {
        let Some(sel) = sel else { continue };
        if sel.name.is_empty() {
            return Err(Error::new(format!("{at}.{field}.name"), "required"));
        }
        if !crate::objects::is_key(&sel.key) {
            return Err(Error::new(
                format!("{at}.{field}.key"),
                format!(
                    "{:?} is not a valid key: letters, digits, '-', '_' and '.'",
                    sel.key
                ),
            ));
        }
    }
    Ok(())
}

/// A Kubernetes qualified name: an optional DNS-subdomain prefix and
/// `/`, then at most 63 letters, digits, `-`, `_` and `.`, alphanumeric
/// at both ends.
fn is_qualified_name(k: &str) -> bool {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    let b = name.as_bytes();
    prefix.map_or(true, |p| super::dns_subdomain("", p).is_ok())
        && !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))
}

fn one_of(at: &str, value: Option<&str>, allowed: &[&str]) -> Result<(), Error> {
    match value {
        Some(v) if !allowed.contains(&v) => {
            Err(Error::new(at, format!("{v:?}: use {}", allowed.join(" or "))))
        }
        _ => Ok(()),
    }
}
