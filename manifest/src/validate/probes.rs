//! Probes and lifecycle hooks: the API server's rules (`validateProbe`,
//! `validateHandler` and the actions' checks), then what pod1's init cannot
//! do, each refused with why and what to write instead.

use alloc::format;

use crate::error::Error;
use crate::pod::{Container, HttpGetAction, IntOrString, LifecycleHandler, Probe};

/// The API server's message for probes and hooks on an init container that
/// runs to completion: it never becomes ready and is never stopped.
const NOT_ON_INIT: &str = "may not be set for init containers without restartPolicy=Always";

/// The three probes, which the API server tells apart in two rules.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Liveness,
    Readiness,
    Startup,
}

/// Checks `c`'s probes and hooks. `runs_to_completion`: an init container
/// that is not a sidecar, which may have none of them (nor any `lifecycle`,
/// as the API server rules). `grace`: the pod's
/// `terminationGracePeriodSeconds`, which bounds a `sleep` hook.
pub(super) fn container(at: &str, c: &Container, runs_to_completion: bool, grace: i64) -> Result<(), Error> {
    let probes = [
        ("livenessProbe", &c.liveness_probe, Kind::Liveness),
        ("readinessProbe", &c.readiness_probe, Kind::Readiness),
        ("startupProbe", &c.startup_probe, Kind::Startup),
    ];
    if runs_to_completion {
        let mut set = core::iter::once(("lifecycle", c.lifecycle.is_some()))
            .chain(probes.iter().map(|(field, p, _)| (*field, p.is_some())));
        return match set.find(|(_, set)| *set) {
            Some((field, _)) => Err(Error::new(format!("{at}.{field}"), NOT_ON_INIT)),
            None => Ok(()),
        };
    }
    if let Some(l) = &c.lifecycle {
        for (field, hook) in [("postStart", &l.post_start), ("preStop", &l.pre_stop)] {
            if let Some(h) = hook {
                lifecycle_handler(&format!("{at}.lifecycle.{field}"), c, h, grace)?;
            }
        }
    }
    for (field, p, kind) in probes {
        if let Some(p) = p {
            probe(&format!("{at}.{field}"), c, p, kind)?;
        }
    }
    Ok(())
}

fn probe(at: &str, c: &Container, p: &Probe, kind: Kind) -> Result<(), Error> {
    one_handler(
        at,
        &[
            ("exec", p.exec.is_some()),
            ("httpGet", p.http_get.is_some()),
            ("tcpSocket", p.tcp_socket.is_some()),
            ("grpc", p.grpc.is_some()),
        ],
    )?;
    for (field, n) in [
        ("initialDelaySeconds", p.initial_delay_seconds),
        ("timeoutSeconds", p.timeout_seconds),
        ("periodSeconds", p.period_seconds),
        ("successThreshold", p.success_threshold),
        ("failureThreshold", p.failure_threshold),
    ] {
        if let Some(n) = n.filter(|n| *n < 0) {
            return Err(Error::new(
                format!("{at}.{field}"),
                format!("{n} must be greater than or equal to 0"),
            ));
        }
    }
    // 0 is the API server's default, 1, before this rule is checked.
    let success = p.success_threshold.filter(|n| *n != 0).unwrap_or(1);
    if kind != Kind::Readiness && success != 1 {
        return Err(Error::new(
            format!("{at}.successThreshold"),
            format!("{success}: must be 1 for a liveness or startup probe"),
        ));
    }
    if let Some(g) = p.termination_grace_period_seconds {
        let at = format!("{at}.terminationGracePeriodSeconds");
        if g <= 0 {
            return Err(Error::new(at, format!("{g} must be greater than 0")));
        }
        if kind == Kind::Readiness {
            return Err(Error::new(at, "must not be set for readinessProbes"));
        }
    }
    if let Some(e) = &p.exec {
        exec(at, &e.command)?;
    }
    if let Some(h) = &p.http_get {
        http_get(&format!("{at}.httpGet"), c, h)?;
    }
    if let Some(t) = &p.tcp_socket {
        let at = format!("{at}.tcpSocket");
        port(&format!("{at}.port"), c, &t.port)?;
        host(&format!("{at}.host"), t.host.as_deref())?;
    }
    if p.grpc.is_some() {
        return Err(Error::new(
            format!("{at}.grpc"),
            "pod1's init has no HTTP/2 client to make a gRPC health check; use an exec probe running grpc_health_probe (if the image has it), or a tcpSocket probe on the port",
        ));
    }
    Ok(())
}

fn lifecycle_handler(at: &str, c: &Container, h: &LifecycleHandler, grace: i64) -> Result<(), Error> {
    one_handler(
        at,
        &[
            ("exec", h.exec.is_some()),
            ("httpGet", h.http_get.is_some()),
            ("tcpSocket", h.tcp_socket.is_some()),
            ("sleep", h.sleep.is_some()),
        ],
    )?;
    if let Some(e) = &h.exec {
        exec(at, &e.command)?;
    }
    if let Some(g) = &h.http_get {
        http_get(&format!("{at}.httpGet"), c, g)?;
    }
    if h.tcp_socket.is_some() {
        // The API server accepts it (deprecated, kept for old manifests), but
        // the kubelet has no way to run it: the hook fails every time, and a
        // failed postStart kills the container. Refused here, so the pod does
        // not behave in pod1 as it never would on a node.
        return Err(Error::new(
            format!("{at}.tcpSocket"),
            "a node's kubelet cannot run a tcpSocket hook (deprecated) and fails it every time; use exec, httpGet or sleep, or remove the hook",
        ));
    }
    if let Some(s) = &h.sleep {
        // Zero is allowed since Kubernetes 1.34 (PodLifecycleSleepActionAllowZero, GA).
        if !(0..=grace).contains(&s.seconds) {
            return Err(Error::new(
                format!("{at}.sleep.seconds"),
                format!(
                    "{} must be between 0 and the pod's terminationGracePeriodSeconds ({grace})",
                    s.seconds
                ),
            ));
        }
    }
    Ok(())
}

/// Exactly one handler, with the API server's messages.
fn one_handler(at: &str, handlers: &[(&str, bool)]) -> Result<(), Error> {
    let mut set = handlers.iter().filter(|(_, set)| *set).map(|(name, _)| *name);
    match (set.next(), set.next()) {
        (None, _) => Err(Error::new(
            at,
            format!(
                "must specify a handler type: one of {}",
                handlers
                    .iter()
                    .map(|(name, _)| *name)
                    .collect::<alloc::vec::Vec<_>>()
                    .join(", ")
            ),
        )),
        (Some(_), Some(second)) => Err(Error::new(
            format!("{at}.{second}"),
            "may not specify more than 1 handler type",
        )),
        (Some(_), None) => Ok(()),
    }
}

fn exec(at: &str, command: &[alloc::string::String]) -> Result<(), Error> {
    if command.is_empty() {
        return Err(Error::new(
            format!("{at}.exec.command"),
            "required: the command to run in the container (argv, without a shell)",
        ));
    }
    Ok(())
}

fn http_get(at: &str, c: &Container, h: &HttpGetAction) -> Result<(), Error> {
    port(&format!("{at}.port"), c, &h.port)?;
    match h.scheme.as_deref() {
        None | Some("" | "HTTP") => {}
        Some("HTTPS") => {
            return Err(Error::new(
                format!("{at}.scheme"),
                "pod1's init has no TLS client; serve the check over HTTP, or use an exec probe",
            ))
        }
        Some(s) => {
            return Err(Error::new(
                format!("{at}.scheme"),
                format!("{s:?}: supported values: \"HTTP\", \"HTTPS\""),
            ))
        }
    }
    for (i, header) in h.http_headers.iter().enumerate() {
        let hat = format!("{at}.httpHeaders[{i}]");
        let name = &header.name;
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(Error::new(
                format!("{hat}.name"),
                format!("{name:?}: a valid HTTP header name consists of letters, digits and '-' (e.g. X-Header-Name)"),
            ));
        }
        // HTAB is allowed in a field value; any other control byte is not.
        if header
            .value
            .bytes()
            .any(|b| b != b'\t' && (b < 0x20 || b == 0x7f))
        {
            return Err(Error::new(
                format!("{hat}.value"),
                "holds a control character, which would break the HTTP/1.1 request it goes into (a node's kubelet fails every such check); remove it",
            ));
        }
    }
    if let Some(path) = &h.path {
        if path.bytes().any(|b| b < 0x20 || b == 0x7f) {
            return Err(Error::new(
                format!("{at}.path"),
                "holds a control character, which would split the HTTP/1.1 request line it goes into; remove it, or write it percent-encoded (%0A)",
            ));
        }
    }
    host(&format!("{at}.host"), h.host.as_deref())
}

/// A port number, or a name: valid as the API server checks it, and
/// defined by one of the container's `ports`, which the kubelet looks it
/// up in at every check (failing every one when there is none).
fn port(at: &str, c: &Container, port: &IntOrString) -> Result<(), Error> {
    match port {
        IntOrString::Int(n) if !(1..=65535).contains(n) => {
            Err(Error::new(at, format!("{n} must be between 1 and 65535, inclusive")))
        }
        IntOrString::Int(_) => Ok(()),
        IntOrString::String(name) if !crate::network::is_service_name(name) => Err(Error::new(
            at,
            format!("{name:?} must be a port number, or a name of at most 15 lowercase letters, digits and '-', with a letter, not starting or ending with '-' nor with '--'"),
        )),
        IntOrString::String(name) if !c.ports.iter().any(|p| p.name.as_deref() == Some(name)) => Err(Error::new(
            at,
            format!("no port named {name:?} in this container's ports: the check would fail every time; name one in ports[] or give the number"),
        )),
        IntOrString::String(_) => Ok(()),
    }
}

/// An IPv4 address or nothing (the pod's IP).
fn host(at: &str, host: Option<&str>) -> Result<(), Error> {
    match host {
        Some(h) if !h.is_empty() && h.parse::<core::net::Ipv4Addr>().is_err() => Err(Error::new(
            at,
            format!("{h:?} is not an IPv4 address: a node resolves a name itself, pod1 resolves none; leave host empty to reach the pod's IP"),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use crate::error::Error;
    use crate::pod::{IntOrString, Pod};
    use serde_json::{json, Value};

    /// Validates a pod whose app container `c` (with `ports` http:8080)
    /// has the fields of `extra`; `spec` adds to the pod's spec.
    fn check_with(spec: Value, extra: Value) -> Result<(), Error> {
        let mut c =
            json!({"name": "c", "image": "oci:x", "ports": [{"name": "http", "containerPort": 8080}]});
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let mut s = json!({"containers": [c]});
        s.as_object_mut()
            .unwrap()
            .extend(spec.as_object().unwrap().clone());
        let pod = Pod::parse(&json!({"metadata": {"name": "p"}, "spec": s}).to_string())?;
        crate::validate::validate(&pod)
    }

    fn check(extra: Value) -> Result<(), Error> {
        check_with(json!({}), extra)
    }

    /// The path and message of the error `extra` gives.
    fn error(extra: Value) -> (String, String) {
        match check(extra.clone()) {
            Ok(()) => panic!("expected an error for {extra}"),
            Err(e) => (e.path, e.message),
        }
    }

    fn path(extra: Value) -> String {
        error(extra).0
    }

    const AT: &str = "spec.containers[0]";

    #[test]
    fn valid_probes_and_hooks() {
        check(json!({
            "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http", "host": "10.0.2.15",
                "scheme": "HTTP", "httpHeaders": [{"name": "X-Probe", "value": "a\tb"}]},
                "initialDelaySeconds": 0, "timeoutSeconds": 0, "periodSeconds": 0,
                "successThreshold": 0, "failureThreshold": 0, "terminationGracePeriodSeconds": 5},
            "readinessProbe": {"tcpSocket": {"port": 8080}, "successThreshold": 3},
            "startupProbe": {"exec": {"command": ["true"]}, "successThreshold": 1},
            "lifecycle": {"postStart": {"httpGet": {"port": 80}}, "preStop": {"sleep": {"seconds": 30}}}
        }))
        .unwrap();
        // A sidecar may have them all.
        let sidecar = json!({"name": "s", "image": "oci:x", "restartPolicy": "Always",
            "livenessProbe": {"exec": {"command": ["true"]}}, "lifecycle": {"preStop": {"exec": {"command": ["x"]}}}});
        check_with(json!({"initContainers": [sidecar]}), json!({})).unwrap();
    }

    #[test]
    fn exactly_one_handler() {
        let (p, m) = error(json!({"livenessProbe": {"periodSeconds": 1}}));
        assert_eq!(p, format!("{AT}.livenessProbe"));
        assert!(m.contains("must specify a handler type"), "{m}");
        assert_eq!(
            path(json!({"readinessProbe": {"exec": {"command": ["x"]}, "tcpSocket": {"port": 1}}})),
            format!("{AT}.readinessProbe.tcpSocket")
        );
        assert_eq!(
            path(json!({"lifecycle": {"preStop": {}}})),
            format!("{AT}.lifecycle.preStop")
        );
        assert_eq!(
            path(json!({"lifecycle": {"postStart": {"exec": {"command": ["x"]}, "sleep": {"seconds": 1}}}})),
            format!("{AT}.lifecycle.postStart.sleep")
        );
    }

    #[test]
    fn numbers_are_not_negative() {
        for field in [
            "initialDelaySeconds",
            "timeoutSeconds",
            "periodSeconds",
            "successThreshold",
            "failureThreshold",
        ] {
            let mut probe = json!({"exec": {"command": ["x"]}});
            probe[field] = json!(-1);
            let (p, m) = error(json!({"readinessProbe": probe}));
            assert_eq!(p, format!("{AT}.readinessProbe.{field}"));
            assert!(m.contains("greater than or equal to 0"), "{m}");
        }
    }

    #[test]
    fn liveness_and_startup_succeed_once() {
        for probe in ["livenessProbe", "startupProbe"] {
            let (p, m) = error(json!({probe: {"exec": {"command": ["x"]}, "successThreshold": 2}}));
            assert_eq!(p, format!("{AT}.{probe}.successThreshold"));
            assert!(m.contains("must be 1"), "{m}");
        }
        check(json!({"readinessProbe": {"exec": {"command": ["x"]}, "successThreshold": 2}})).unwrap();
    }

    #[test]
    fn a_probes_grace_period() {
        let tgps = |probe: &str, g: i64| json!({probe: {"exec": {"command": ["x"]}, "terminationGracePeriodSeconds": g}});
        let (p, m) = error(tgps("livenessProbe", 0));
        assert_eq!(p, format!("{AT}.livenessProbe.terminationGracePeriodSeconds"));
        assert!(m.contains("greater than 0"), "{m}");
        let (p, m) = error(tgps("readinessProbe", 5));
        assert_eq!(p, format!("{AT}.readinessProbe.terminationGracePeriodSeconds"));
        assert!(m.contains("readinessProbes"), "{m}");
        check(tgps("startupProbe", 5)).unwrap();
    }

    #[test]
    fn an_init_container_that_runs_to_completion_has_none() {
        let init = |extra: Value| {
            let mut c = json!({"name": "i", "image": "oci:x"});
            c.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            check_with(json!({"initContainers": [c]}), json!({})).unwrap_err()
        };
        for field in ["livenessProbe", "readinessProbe", "startupProbe"] {
            let e = init(json!({field: {"exec": {"command": ["x"]}}}));
            assert_eq!(e.path, format!("spec.initContainers[0].{field}"));
            assert_eq!(e.message, super::NOT_ON_INIT);
        }
        // The whole of `lifecycle`, as the API server rules, a stop signal too.
        for lifecycle in [
            json!({"preStop": {"sleep": {"seconds": 1}}}),
            json!({"stopSignal": "SIGTERM"}),
        ] {
            let e = init(json!({"lifecycle": lifecycle}));
            assert_eq!(e.path, "spec.initContainers[0].lifecycle");
            assert_eq!(e.message, super::NOT_ON_INIT);
        }
    }

    #[test]
    fn sleep_within_the_pods_grace_period() {
        let sleep = |s: i64| json!({"lifecycle": {"preStop": {"sleep": {"seconds": s}}}});
        // Zero is allowed (Kubernetes 1.34); the default grace period is 30.
        check(sleep(0)).unwrap();
        check(sleep(30)).unwrap();
        let (p, m) = error(sleep(31));
        assert_eq!(p, format!("{AT}.lifecycle.preStop.sleep.seconds"));
        assert!(m.contains("(30)"), "{m}");
        assert!(check(sleep(-1)).is_err());
        let grace = json!({"terminationGracePeriodSeconds": 5});
        check_with(grace.clone(), sleep(5)).unwrap();
        assert!(check_with(grace, sleep(6)).unwrap_err().message.contains("(5)"));
        check(json!({"lifecycle": {"postStart": {"sleep": {}}}})).unwrap();
    }

    #[test]
    fn ports_by_number_or_by_a_name_the_container_defines() {
        let tcp = |port: Value| json!({"livenessProbe": {"tcpSocket": {"port": port}}});
        let port_at = format!("{AT}.livenessProbe.tcpSocket.port");
        for bad in [
            json!(0),
            json!(65536),
            json!("80"),
            json!("Http"),
            json!("a--b"),
            json!("-a"),
            json!("abcdefghijklmnop"),
        ] {
            assert_eq!(path(tcp(bad)), port_at);
        }
        check(tcp(json!(65535))).unwrap();
        check(tcp(json!("http"))).unwrap();
        let (p, m) = error(tcp(json!("metrics")));
        assert_eq!(p, port_at);
        assert!(m.contains("no port named \"metrics\""), "{m}");
        let (p, _) = error(json!({"lifecycle": {"postStart": {"httpGet": {"port": "admin"}}}}));
        assert_eq!(p, format!("{AT}.lifecycle.postStart.httpGet.port"));
    }

    #[test]
    fn http_get_as_the_api_server_checks_it() {
        let http = |get: Value| json!({"readinessProbe": {"httpGet": get}});
        let at = format!("{AT}.readinessProbe.httpGet");
        let (p, m) = error(http(json!({"port": 80, "scheme": "ftp"})));
        assert_eq!(p, format!("{at}.scheme"));
        assert!(m.contains("\"HTTP\", \"HTTPS\""), "{m}");
        for name in ["X_Bad", "", "X Bad"] {
            let headers = json!([{"name": "Ok", "value": ""}, {"name": name, "value": "v"}]);
            assert_eq!(
                path(http(json!({"port": 80, "httpHeaders": headers}))),
                format!("{at}.httpHeaders[1].name")
            );
        }
        let (p, _) = error(json!({"startupProbe": {"exec": {"command": []}}}));
        assert_eq!(p, format!("{AT}.startupProbe.exec.command"));
        assert_eq!(
            path(json!({"lifecycle": {"postStart": {"exec": {}}}})),
            format!("{AT}.lifecycle.postStart.exec.command")
        );
    }

    #[test]
    fn what_pod1s_init_cannot_do_is_refused() {
        let (p, m) = error(json!({"livenessProbe": {"grpc": {"port": 9090}}}));
        assert_eq!(p, format!("{AT}.livenessProbe.grpc"));
        assert!(m.contains("grpc_health_probe") && m.contains("tcpSocket"), "{m}");
        let (p, m) = error(json!({"livenessProbe": {"httpGet": {"port": 443, "scheme": "HTTPS"}}}));
        assert_eq!(p, format!("{AT}.livenessProbe.httpGet.scheme"));
        assert!(m.contains("TLS"), "{m}");
        for host in ["localhost", "::1", "10.0.2.256", " 10.0.2.15"] {
            let (p, m) = error(json!({"readinessProbe": {"tcpSocket": {"port": 80, "host": host}}}));
            assert_eq!(p, format!("{AT}.readinessProbe.tcpSocket.host"));
            assert!(m.contains("leave host empty"), "{m}");
        }
        check(json!({"readinessProbe": {"tcpSocket": {"port": 80, "host": ""}}})).unwrap();
        let get = |path: &str, value: &str| json!({"livenessProbe": {"httpGet": {"port": 80, "path": path, "httpHeaders": [{"name": "X", "value": value}]}}});
        assert_eq!(
            path(get("/", "a\r\nEvil: 1")),
            format!("{AT}.livenessProbe.httpGet.httpHeaders[0].value")
        );
        assert_eq!(
            path(get("/", "\u{7f}")),
            format!("{AT}.livenessProbe.httpGet.httpHeaders[0].value")
        );
        assert_eq!(path(get("/a\nb", "")), format!("{AT}.livenessProbe.httpGet.path"));
        check(get("/caf\u{e9} ok?q=1", "caf\u{e9}")).unwrap();
        // A node's kubelet fails a tcpSocket hook every time.
        let (p, m) = error(json!({"lifecycle": {"preStop": {"tcpSocket": {"port": 80}}}}));
        assert_eq!(p, format!("{AT}.lifecycle.preStop.tcpSocket"));
        assert!(m.contains("fails it every time"), "{m}");
    }

    #[test]
    fn probe_ports_parse_as_kubernetes_reads_them() {
        let port = |port: &str| {
            let json = format!(
                r#"{{"metadata":{{"name":"p"}},"spec":{{"containers":[
                    {{"name":"a","image":"dir:x","livenessProbe":{{"tcpSocket":{{"port":{port}}}}}}}]}}}}"#
            );
            Pod::parse(&json).map(|pod| {
                pod.spec.containers[0]
                    .liveness_probe
                    .clone()
                    .unwrap()
                    .tcp_socket
                    .unwrap()
                    .port
            })
        };
        assert_eq!(port("8080"), Ok(IntOrString::Int(8080)));
        assert_eq!(port(r#""http""#), Ok(IntOrString::String("http".into())));
        // A quoted number is a name, as Kubernetes reads it.
        assert_eq!(port(r#""80""#), Ok(IntOrString::String("80".into())));
        let e = port("4294967296").unwrap_err();
        assert_eq!(e.path, "spec.containers[0].livenessProbe.tcpSocket.port");
        assert!(port("[80]").unwrap_err().message.contains("port number or name"));
        // A probe has no sleep, a hook no grpc.
        let unknown = |c: Value| {
            let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [c]}});
            Pod::parse(&pod.to_string()).unwrap_err().message
        };
        let m = unknown(json!({"name": "a", "image": "dir:x", "readinessProbe": {"sleep": {"seconds": 1}}}));
        assert!(m.starts_with("unknown field"), "{m}");
        let m =
            unknown(json!({"name": "a", "image": "dir:x", "lifecycle": {"preStop": {"grpc": {"port": 1}}}}));
        assert!(m.starts_with("unknown field"), "{m}");
    }
}
