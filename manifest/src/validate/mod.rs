//! The rules Kubernetes' API server applies to a Pod, as far as pod1 honours them.

use std::collections::BTreeSet;

use crate::error::Error;
use crate::image::Source;
use crate::plan::{capability_name, ANNOTATIONS, CAPABILITIES};
use crate::pod::{Container, Pod, SeccompProfile, SeccompProfileType};

mod fields;
mod probes;

/// Checks `pod`; the first problem found is returned with its JSON path.
pub fn validate(pod: &Pod) -> Result<(), Error> {
    if let Some(v) = pod.api_version.as_deref().filter(|v| *v != "v1") {
        return Err(Error::new(
            "apiVersion",
            format!("{v:?}: only \"v1\" is supported"),
        ));
    }
    if let Some(k) = pod.kind.as_deref().filter(|k| *k != "Pod") {
        return Err(Error::new("kind", format!("{k:?}: only \"Pod\" is supported")));
    }
    dns_subdomain("metadata.name", &pod.metadata.name)?;
    for key in pod.metadata.annotations.keys() {
        if key.starts_with("pod1/") && !ANNOTATIONS.contains(&key.as_str()) {
            return Err(Error::new(
                format!("metadata.annotations.{key}"),
                format!("unknown pod1 annotation; known: {}", ANNOTATIONS.join(", ")),
            ));
        }
    }
    let spec = &pod.spec;
    if spec.containers.is_empty() {
        return Err(Error::new(
            "spec.containers",
            "a pod needs at least one container",
        ));
    }
    if let Some(h) = &spec.hostname {
        dns_label("spec.hostname", h)?;
    }
    if let Some(g) = spec.termination_grace_period_seconds.filter(|g| *g < 0) {
        return Err(Error::new(
            "spec.terminationGracePeriodSeconds",
            format!("{g} is negative"),
        ));
    }
    let mut volumes = BTreeSet::new();
    for (i, v) in spec.volumes.iter().enumerate() {
        let at = format!("spec.volumes[{i}]");
        dns_label(&format!("{at}.name"), &v.name)?;
        if !volumes.insert(v.name.as_str()) {
            return Err(Error::new(
                format!("{at}.name"),
                format!("duplicate volume name {:?}", v.name),
            ));
        }
        fields::volume_source(&at, v)?;
        let Some(empty_dir) = &v.empty_dir else {
            continue;
        };
        if let Some(m) = empty_dir
            .medium
            .as_deref()
            .filter(|m| !m.is_empty() && *m != "Memory")
        {
            return Err(Error::new(
                format!("{at}.emptyDir.medium"),
                format!("{m:?}: use \"\" or \"Memory\""),
            ));
        }
        if empty_dir.size_limit.as_ref().is_some_and(|q| q.whole().is_none()) {
            return Err(Error::new(
                format!("{at}.emptyDir.sizeLimit"),
                "not a valid quantity (e.g. 64Mi)",
            ));
        }
    }
    fields::pod_spec(pod)?;
    crate::network::validate(spec)?;
    if let Some(sc) = &spec.security_context {
        id_range("spec.securityContext.runAsUser", sc.run_as_user)?;
        id_range("spec.securityContext.runAsGroup", sc.run_as_group)?;
        seccomp("spec.securityContext.seccompProfile", sc.seccomp_profile.as_ref())?;
        for (i, s) in sc.sysctls.iter().enumerate() {
            sysctl(
                &format!("spec.securityContext.sysctls[{i}]"),
                &s.name,
                spec.host_network,
                spec.host_ipc,
            )?;
        }
    }
    let mut names = BTreeSet::new();
    let lists = [
        ("initContainers", &spec.init_containers),
        ("containers", &spec.containers),
    ];
    for (field, list) in lists {
        for (i, c) in list.iter().enumerate() {
            let at = format!("spec.{field}[{i}]");
            container(&at, c, &volumes)?;
            match (c.restart_policy.as_deref(), field) {
                (None, _) | (Some("Always"), "initContainers") => {}
                (Some(_), "initContainers") => {
                    return Err(Error::new(
                        format!("{at}.restartPolicy"),
                        "only \"Always\" may be set (a sidecar)",
                    ))
                }
                (Some(_), _) => {
                    return Err(Error::new(
                        format!("{at}.restartPolicy"),
                        "may not be set for non-init containers",
                    ))
                }
            }
            let runs_to_completion = field == "initContainers" && c.restart_policy.is_none();
            let grace = spec.termination_grace_period_seconds.unwrap_or(30);
            probes::container(&at, c, runs_to_completion, grace)?;
            lifecycle(&at, c, spec.os.is_some())?;
            if !names.insert(c.name.as_str()) {
                return Err(Error::new(
                    format!("{at}.name"),
                    format!("duplicate container name {:?}", c.name),
                ));
            }
        }
    }
    Ok(())
}

fn container(at: &str, c: &Container, volumes: &BTreeSet<&str>) -> Result<(), Error> {
    dns_label(&format!("{at}.name"), &c.name)?;
    Source::parse(&c.image).map_err(|m| Error::new(format!("{at}.image"), m))?;
    fields::container(at, c)?;
    if let Some(dir) = &c.working_dir {
        clean_absolute(&format!("{at}.workingDir"), dir)?;
    }
    let mut paths = BTreeSet::new();
    for (i, m) in c.volume_mounts.iter().enumerate() {
        let mat = format!("{at}.volumeMounts[{i}]");
        if !volumes.contains(m.name.as_str()) {
            return Err(Error::new(
                format!("{mat}.name"),
                format!("no volume named {:?} in spec.volumes", m.name),
            ));
        }
        clean_absolute(&format!("{mat}.mountPath"), &m.mount_path)?;
        if m.mount_path == "/" {
            return Err(Error::new(
                format!("{mat}.mountPath"),
                "cannot mount a volume over /",
            ));
        }
        fields::volume_mount(&mat, m)?;
        if !paths.insert(m.mount_path.trim_end_matches('/')) {
            return Err(Error::new(
                format!("{mat}.mountPath"),
                format!("{:?} is mounted twice", m.mount_path),
            ));
        }
    }
    if let Some(sc) = &c.security_context {
        id_range(&format!("{at}.securityContext.runAsUser"), sc.run_as_user)?;
        id_range(&format!("{at}.securityContext.runAsGroup"), sc.run_as_group)?;
        seccomp(
            &format!("{at}.securityContext.seccompProfile"),
            sc.seccomp_profile.as_ref(),
        )?;
        if let Some(caps) = &sc.capabilities {
            for (list, names) in [("add", &caps.add), ("drop", &caps.drop)] {
                for (i, name) in names.iter().enumerate() {
                    let n = capability_name(name);
                    if n != "ALL" && !CAPABILITIES.contains(&n.as_str()) {
                        return Err(Error::new(
                            format!("{at}.securityContext.capabilities.{list}[{i}]"),
                            format!("unknown capability {name:?}"),
                        ));
                    }
                }
            }
        }
    }
    if let Some(r) = &c.resources {
        for (key, q) in &r.limits {
            let kat = format!("{at}.resources.limits.{key}");
            match key.as_str() {
                "memory" | "cpu" => {}
                _ => return Err(Error::new(kat, "pod1 enforces only memory and cpu limits")),
            }
            if q.millis().is_none() || q.millis() == Some(0) {
                return Err(Error::new(
                    kat,
                    "not a valid positive quantity (e.g. 128Mi, 500m)",
                ));
            }
        }
        for (key, q) in &r.requests {
            let kat = format!("{at}.resources.requests.{key}");
            if !matches!(key.as_str(), "cpu" | "memory" | "ephemeral-storage") {
                return Err(Error::new(
                    kat,
                    "a pod1 VM has cpu, memory and ephemeral-storage to request",
                ));
            }
            let Some(request) = q.millis() else {
                return Err(Error::new(kat, "not a valid quantity"));
            };
            // As the API server: a request above its limit is an error.
            if r.limits
                .get(key)
                .and_then(|l| l.millis())
                .is_some_and(|l| request > l)
            {
                return Err(Error::new(
                    kat,
                    format!("must be less than or equal to the {key} limit"),
                ));
            }
        }
    }
    Ok(())
}

/// `lifecycle.stopSignal`: a signal Kubernetes knows, with `spec.os.name`
/// set as the API server requires (the hooks are checked in [`probes`]).
fn lifecycle(at: &str, c: &Container, os_named: bool) -> Result<(), Error> {
    let Some(l) = &c.lifecycle else { return Ok(()) };
    let Some(sig) = &l.stop_signal else { return Ok(()) };
    let at = format!("{at}.lifecycle.stopSignal");
    if !os_named {
        return Err(Error::new(
            at,
            "spec.os.name must be set (to linux) to use a stop signal",
        ));
    }
    if crate::signals::stop_signal(sig).is_none() {
        return Err(Error::new(
            at,
            format!("{sig:?} is not a signal Kubernetes supports on Linux (e.g. SIGTERM, SIGQUIT, SIGUSR1, SIGRTMIN+3)"),
        ));
    }
    Ok(())
}

/// As Kubernetes validates it: `localhostProfile` is set with `Localhost`
/// and only then.
fn seccomp(at: &str, profile: Option<&SeccompProfile>) -> Result<(), Error> {
    let Some(p) = profile else { return Ok(()) };
    match (p.kind, p.localhost_profile.as_deref()) {
        (SeccompProfileType::Localhost, None | Some("")) => Err(Error::new(
            format!("{at}.localhostProfile"),
            "required with type Localhost: the path of a seccomp profile (JSON), relative to the manifest",
        )),
        (SeccompProfileType::Localhost, Some(_)) => Ok(()),
        (_, Some(_)) => Err(Error::new(
            format!("{at}.localhostProfile"),
            "only allowed with type Localhost",
        )),
        (_, None) => Ok(()),
    }
}

/// Kubernetes allows only namespaced sysctls in a pod.
fn sysctl(at: &str, name: &str, host_network: bool, host_ipc: bool) -> Result<(), Error> {
    let ipc = name.starts_with("kernel.shm")
        || name.starts_with("kernel.msg")
        || name == "kernel.sem"
        || name.starts_with("fs.mqueue.");
    let net = name.starts_with("net.");
    let well_formed = !name.is_empty()
        && name.split(['.', '/']).all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        });
    if !well_formed || !(ipc || net) {
        return Err(Error::new(
            format!("{at}.name"),
            format!("{name:?} is not a namespaced sysctl; allowed: kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*, net.*"),
        ));
    }
    if net && host_network {
        return Err(Error::new(
            format!("{at}.name"),
            format!("{name:?} would change the VM's network; not allowed with hostNetwork"),
        ));
    }
    if ipc && host_ipc {
        return Err(Error::new(
            format!("{at}.name"),
            format!("{name:?} would change the VM's IPC; not allowed with hostIPC"),
        ));
    }
    Ok(())
}

pub(crate) fn id_range(at: &str, id: Option<i64>) -> Result<(), Error> {
    match id {
        Some(id) if !(0..=i64::from(i32::MAX)).contains(&id) => {
            Err(Error::new(at, format!("{id} is outside 0..=2147483647")))
        }
        _ => Ok(()),
    }
}

/// An absolute path with no `..` component.
pub(crate) fn clean_absolute(at: &str, path: &str) -> Result<(), Error> {
    if !path.starts_with('/') {
        return Err(Error::new(at, format!("{path:?} must be an absolute path")));
    }
    if path.split('/').any(|p| p == "..") {
        return Err(Error::new(at, format!("{path:?} must not contain '..'")));
    }
    if path.contains('\0') {
        return Err(Error::new(at, "contains a NUL byte"));
    }
    Ok(())
}

/// RFC 1123 label: at most 63 lowercase letters, digits and '-', alphanumeric at both ends.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

pub(crate) fn dns_label(at: &str, s: &str) -> Result<(), Error> {
    if is_dns_label(s) {
        Ok(())
    } else {
        Err(Error::new(at, format!("{s:?} is not a valid name: use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit")))
    }
}

pub(crate) fn dns_subdomain(at: &str, s: &str) -> Result<(), Error> {
    // RFC 1123 subdomain as Kubernetes checks it: at most 253 characters
    // in all, each dot-separated part as a label but with no length limit
    // of its own.
    let part = |p: &str| {
        !p.is_empty()
            && is_dns_label(&p[..1])
            && is_dns_label(&p[p.len() - 1..])
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    if s.len() <= 253 && s.split('.').all(part) {
        Ok(())
    } else {
        Err(Error::new(
            at,
            format!(
                "{s:?} is not a valid name: use lowercase letters, digits, '-' and '.' (a DNS subdomain)"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(spec: &str) -> Result<(), Error> {
        let pod = Pod::parse(&format!(r#"{{"metadata":{{"name":"p"}},"spec":{spec}}}"#))?;
        validate(&pod)
    }

    fn path_of(spec: &str) -> String {
        match check(spec) {
            Ok(()) => panic!("expected an error for {spec}"),
            Err(e) => {
                assert!(!e.message.is_empty());
                e.path
            }
        }
    }

    const C: &str = r#"{"name":"a","image":"oci:x"}"#;

    #[test]
    fn valid_pod() {
        check(&format!(
            r#"{{"volumes":[{{"name":"data","emptyDir":{{}}}}],
                "securityContext":{{"sysctls":[{{"name":"net.ipv4.ip_forward","value":"1"}},{{"name":"kernel.shmmax","value":"1"}}]}},
                "initContainers":[{{"name":"setup","image":"dir:r","volumeMounts":[{{"name":"data","mountPath":"/data"}}]}}],
                "containers":[{C}]}}"#
        ))
        .unwrap();
    }

    #[test]
    fn rules() {
        assert_eq!(path_of(r#"{"containers":[]}"#), "spec.containers");
        assert_eq!(
            path_of(r#"{"containers":[{"name":"Web","image":"oci:x"}]}"#),
            "spec.containers[0].name"
        );
        assert_eq!(
            path_of(r#"{"containers":[{"name":"-a","image":"oci:x"}]}"#),
            "spec.containers[0].name"
        );
        assert_eq!(
            path_of(&format!(r#"{{"initContainers":[{C}],"containers":[{C}]}}"#)),
            "spec.containers[0].name"
        );
        assert_eq!(
            path_of(r#"{"containers":[{"name":"a","image":"Nginx"}]}"#),
            "spec.containers[0].image"
        );
        assert_eq!(
            path_of(
                r#"{"containers":[{"name":"a","image":"oci:x","volumeMounts":[{"name":"nope","mountPath":"/d"}]}]}"#
            ),
            "spec.containers[0].volumeMounts[0].name"
        );
        assert_eq!(
            path_of(
                r#"{"volumes":[{"name":"v","emptyDir":{}}],"containers":[{"name":"a","image":"oci:x","volumeMounts":[{"name":"v","mountPath":"d"}]}]}"#
            ),
            "spec.containers[0].volumeMounts[0].mountPath"
        );
        assert_eq!(
            path_of(
                r#"{"volumes":[{"name":"v","emptyDir":{}}],"containers":[{"name":"a","image":"oci:x","volumeMounts":[{"name":"v","mountPath":"/a/../b"}]}]}"#
            ),
            "spec.containers[0].volumeMounts[0].mountPath"
        );
        assert_eq!(
            path_of(r#"{"containers":[{"name":"a","image":"oci:x","workingDir":"rel"}]}"#),
            "spec.containers[0].workingDir"
        );
        assert_eq!(
            path_of(
                r#"{"securityContext":{"sysctls":[{"name":"kernel.panic","value":"1"}]},"containers":[{"name":"a","image":"oci:x"}]}"#
            ),
            "spec.securityContext.sysctls[0].name"
        );
        assert_eq!(
            path_of(
                r#"{"hostNetwork":true,"securityContext":{"sysctls":[{"name":"net.ipv4.ip_forward","value":"1"}]},"containers":[{"name":"a","image":"oci:x"}]}"#
            ),
            "spec.securityContext.sysctls[0].name"
        );
        assert_eq!(
            path_of(r#"{"volumes":[{"name":"v"}],"containers":[{"name":"a","image":"oci:x"}]}"#),
            "spec.volumes[0]"
        );
        assert_eq!(
            path_of(
                r#"{"containers":[{"name":"a","image":"oci:x","securityContext":{"capabilities":{"add":["FLY"]}}}]}"#
            ),
            "spec.containers[0].securityContext.capabilities.add[0]"
        );
        assert_eq!(
            path_of(r#"{"containers":[{"name":"a","image":"oci:x","securityContext":{"runAsUser":-1}}]}"#),
            "spec.containers[0].securityContext.runAsUser"
        );
        assert_eq!(
            path_of(
                r#"{"containers":[{"name":"a","image":"oci:x","resources":{"limits":{"memory":"lots"}}}]}"#
            ),
            "spec.containers[0].resources.limits.memory"
        );
        assert_eq!(
            path_of(r#"{"terminationGracePeriodSeconds":-1,"containers":[{"name":"a","image":"oci:x"}]}"#),
            "spec.terminationGracePeriodSeconds"
        );
    }

    #[test]
    fn pod_name_and_annotations() {
        let pod = Pod::parse(
            r#"{"metadata":{"name":"Bad_Name"},"spec":{"containers":[{"name":"a","image":"oci:x"}]}}"#,
        )
        .unwrap();
        assert_eq!(validate(&pod).unwrap_err().path, "metadata.name");
        let pod = Pod::parse(r#"{"metadata":{"name":"p","annotations":{"pod1/restart-backof-ms":"1"}},"spec":{"containers":[{"name":"a","image":"oci:x"}]}}"#).unwrap();
        assert_eq!(
            validate(&pod).unwrap_err().path,
            "metadata.annotations.pod1/restart-backof-ms"
        );
        let pod = Pod::parse(r#"{"apiVersion":"v2","metadata":{"name":"p"},"spec":{"containers":[{"name":"a","image":"oci:x"}]}}"#).unwrap();
        assert_eq!(validate(&pod).unwrap_err().path, "apiVersion");
    }
}
