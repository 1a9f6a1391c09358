//! A container's probes and hooks as the init runs them ([`Checks`]): the
//! API server's defaults applied, and what the kubelet works out at every
//! check (the pod's IP for an empty `host`, a named port's number, the
//! request line) worked out once, so the init only acts.
#![cfg(feature = "std")]

use alloc::string::{String, ToString};

use super::{Checks, Handler, ProbePlan};
use crate::pod::{Container, ExecAction, HttpGetAction, IntOrString, Probe, TcpSocketAction};

/// `c`'s probes and hooks; `pod_ip` is the pod's address as the downward
/// API gives it (`status.podIP`). `c` has been validated: every probe and
/// hook has exactly one handler pod1 can run, and its numbers are in range.
pub(super) fn checks(c: &Container, pod_ip: &str) -> Checks {
    let lifecycle = c.lifecycle.as_ref();
    let hook = |h: Option<&crate::pod::LifecycleHandler>| {
        let h = h?;
        if let Some(s) = &h.sleep {
            return u64::try_from(s.seconds)
                .ok()
                .map(|seconds| Handler::Sleep { seconds });
        }
        // Validation refuses a tcpSocket hook (a node's kubelet cannot run
        // one); were it allowed, it would map as a probe's does.
        handler(
            c,
            pod_ip,
            h.exec.as_ref(),
            h.http_get.as_ref(),
            h.tcp_socket.as_ref(),
        )
    };
    let plan = |p: &Option<Probe>| p.as_ref().and_then(|p| probe(c, pod_ip, p));
    Checks {
        liveness: plan(&c.liveness_probe),
        readiness: plan(&c.readiness_probe),
        startup: plan(&c.startup_probe),
        post_start: hook(lifecycle.and_then(|l| l.post_start.as_ref())),
        pre_stop: hook(lifecycle.and_then(|l| l.pre_stop.as_ref())),
    }
}

/// A probe with the API server's defaults (`SetDefaults_Probe`: 0 or
/// absent is 1 s timeout, 10 s period, 1 success, 3 failures).
fn probe(c: &Container, pod_ip: &str, p: &Probe) -> Option<ProbePlan> {
    let or = |n: Option<i32>, default: u32| {
        n.and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n > 0)
            .unwrap_or(default)
    };
    let handler = match handler(
        c,
        pod_ip,
        p.exec.as_ref(),
        p.http_get.as_ref(),
        p.tcp_socket.as_ref(),
    )? {
        // The kubelet expands a probe's command (not a hook's) with the
        // container's `env` values alone (`ExpandContainerCommandOnlyStatic`):
        // a `valueFrom` variable is empty there, an unknown one stays.
        Handler::Exec { command } => {
            let values: alloc::collections::BTreeMap<&str, &str> = c
                .env
                .iter()
                .map(|e| (e.name.as_str(), e.value.as_str()))
                .collect();
            let lookup = |name: &str| values.get(name).map(|v| v.to_string());
            Handler::Exec {
                command: command.iter().map(|a| crate::env::expand(a, lookup)).collect(),
            }
        }
        other => other,
    };
    Some(ProbePlan {
        handler,
        initial_delay_seconds: or(p.initial_delay_seconds, 0),
        period_seconds: or(p.period_seconds, 10),
        timeout_seconds: or(p.timeout_seconds, 1),
        success_threshold: or(p.success_threshold, 1),
        failure_threshold: or(p.failure_threshold, 3),
        termination_grace_period_seconds: p
            .termination_grace_period_seconds
            .and_then(|g| u64::try_from(g).ok()),
    })
}

fn handler(
    c: &Container,
    pod_ip: &str,
    exec: Option<&ExecAction>,
    http_get: Option<&HttpGetAction>,
    tcp_socket: Option<&TcpSocketAction>,
) -> Option<Handler> {
    // As the kubelet: an empty host is the pod's IP.
    let host = |h: &Option<String>| match h.as_deref() {
        None | Some("") => pod_ip.to_string(),
        Some(h) => h.to_string(),
    };
    if let Some(e) = exec {
        return Some(Handler::Exec {
            command: e.command.clone(),
        });
    }
    if let Some(h) = http_get {
        return Some(Handler::Http {
            host: host(&h.host),
            port: port(c, &h.port)?,
            path: request_target(h.path.as_deref().unwrap_or("")),
            headers: h
                .http_headers
                .iter()
                .map(|h| (canonical_header_name(&h.name), h.value.clone()))
                .collect(),
        });
    }
    let t = tcp_socket?;
    Some(Handler::Tcp {
        host: host(&t.host),
        port: port(c, &t.port)?,
    })
}

/// A port's number: given, or that of the container's port of that name
/// (the kubelet's `findPortByName`).
fn port(c: &Container, port: &IntOrString) -> Option<u16> {
    let n = match port {
        IntOrString::Int(n) => *n,
        IntOrString::String(name) => {
            c.ports
                .iter()
                .find(|p| p.name.as_ref() == Some(name))?
                .container_port
        }
    };
    u16::try_from(n).ok()
}

/// The request target a node sends for `path`: the kubelet parses it as a
/// URL reference and Go writes it after the host, so an empty path is `/`,
/// a relative one gets a `/` in front, a fragment (`#...`) is not sent,
/// and a byte a request line cannot carry (a space, non-ASCII) is
/// percent-encoded, as is a `%` that starts no escape. The init writes the
/// result into the request line as it is.
fn request_target(path: &str) -> String {
    let path = path.split('#').next().unwrap_or("");
    let mut out = String::with_capacity(path.len() + 1);
    if !path.starts_with('/') {
        out.push('/');
    }
    let bytes = path.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let escape_start = b == b'%'
            && bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
            && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
        // RFC 3986's unreserved and sub-delims, and what a path or query
        // holds besides: what Go leaves as written.
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?[]".contains(&b) || escape_start {
            out.push(char::from(b));
        } else {
            out.push_str(&alloc::format!("%{b:02X}"));
        }
    }
    out
}

/// A header name as Go's `http.Header` writes it (the kubelet adds the
/// manifest's headers to one): `x-custom-id` is sent as `X-Custom-Id`. So
/// the init tells a `User-Agent`, `Accept` or `Host` that replaces its
/// default by comparing bytes.
fn canonical_header_name(name: &str) -> String {
    let mut upper = true;
    name.chars()
        .map(|ch| {
            let out = if upper {
                ch.to_ascii_uppercase()
            } else {
                ch.to_ascii_lowercase()
            };
            upper = ch == '-';
            out
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::downward::Node;
    use crate::network::Network;
    use crate::objects::Sources;
    use crate::plan::*;
    use crate::pod::Pod;
    use serde_json::{json, Value};
    use std::collections::BTreeMap;

    #[test]
    fn request_targets_as_a_node_sends_them() {
        for (path, target) in [
            ("", "/"),
            ("/", "/"),
            ("healthz", "/healthz"),
            ("/healthz?verbose=1&x=a/b", "/healthz?verbose=1&x=a/b"),
            ("?ready", "/?ready"),
            ("/a#frag", "/a"),
            ("/with space", "/with%20space"),
            ("/caf\u{e9}", "/caf%C3%A9"),
            ("/%41%zz%4", "/%41%25zz%254"),
            ("/a\"<>\\^`{|}", "/a%22%3C%3E%5C%5E%60%7B%7C%7D"),
            ("/a\r\nb", "/a%0D%0Ab"),
            ("/p;v=1/:@!$'()*+,[]~", "/p;v=1/:@!$'()*+,[]~"),
        ] {
            assert_eq!(request_target(path), target, "{path:?}");
        }
    }

    #[test]
    fn header_names_as_go_writes_them() {
        assert_eq!(canonical_header_name("user-agent"), "User-Agent");
        assert_eq!(canonical_header_name("X-CUSTOM-id"), "X-Custom-Id");
        assert_eq!(canonical_header_name("accept"), "Accept");
        assert_eq!(canonical_header_name("a--b"), "A--B");
        assert_eq!(canonical_header_name("1x"), "1x");
    }

    /// The checks of each container of a pod of `containers` (image
    /// `oci:img`), built with a network (the pod's IP 10.0.2.15) or without.
    fn resolved(spec: Value, network: bool) -> Vec<Checks> {
        let info = ImageInfo {
            config: ImageConfig {
                cmd: vec!["x".into()],
                ..Default::default()
            },
            rootfs: "/r".into(),
            passwd: None,
            group: None,
            id: "sha256:0".into(),
        };
        let images = BTreeMap::from([("oci:img".to_string(), info)]);
        let pod = Pod::parse(&json!({"metadata": {"name": "p"}, "spec": spec}).to_string()).unwrap();
        let inputs = Inputs {
            pod: &pod,
            sources: &Sources::default(),
            node: Node::new(512, 1).with_network(network.then(|| Network::user(vec![]))),
            images: &images,
            backoff_limit: None,
        };
        let plan = resolve_all(&inputs).unwrap().plan;
        plan.init_containers
            .iter()
            .chain(&plan.containers)
            .map(|c| c.checks.clone())
            .collect()
    }

    fn one(c: Value, network: bool) -> Checks {
        let mut c = c;
        c["name"] = "c".into();
        c["image"] = "oci:img".into();
        resolved(json!({"containers": [c]}), network).remove(0)
    }

    #[test]
    fn probes_take_the_api_servers_defaults() {
        let c = one(
            json!({"livenessProbe": {"exec": {"command": ["true"]}, "successThreshold": 0}}),
            true,
        );
        assert_eq!(
            c.liveness,
            Some(ProbePlan {
                handler: Handler::Exec {
                    command: vec!["true".into()]
                },
                initial_delay_seconds: 0,
                period_seconds: 10,
                timeout_seconds: 1,
                success_threshold: 1,
                failure_threshold: 3,
                termination_grace_period_seconds: None,
            })
        );
        assert_eq!(
            (c.readiness, c.startup, c.post_start, c.pre_stop),
            (None, None, None, None)
        );
        let given = json!({"tcpSocket": {"port": 1}, "initialDelaySeconds": 2, "periodSeconds": 3,
            "timeoutSeconds": 4, "successThreshold": 5, "failureThreshold": 6});
        let mut startup = given.clone();
        startup["successThreshold"] = 1.into();
        startup["terminationGracePeriodSeconds"] = 7.into();
        let c = one(json!({"readinessProbe": given, "startupProbe": startup}), true);
        let r = c.readiness.unwrap();
        assert_eq!(
            (
                r.initial_delay_seconds,
                r.period_seconds,
                r.timeout_seconds,
                r.success_threshold,
                r.failure_threshold
            ),
            (2, 3, 4, 5, 6)
        );
        assert_eq!(c.startup.unwrap().termination_grace_period_seconds, Some(7));
    }

    #[test]
    fn the_pods_ip_and_port_numbers_are_filled_in() {
        let c = json!({"ports": [{"name": "web", "containerPort": 8080}],
            "livenessProbe": {"tcpSocket": {"port": "web"}},
            "readinessProbe": {"httpGet": {"port": 9090, "host": "10.0.2.2"}}});
        for (network, ip) in [(true, "10.0.2.15"), (false, crate::downward::POD_IP)] {
            let checks = one(c.clone(), network);
            assert_eq!(
                checks.liveness.unwrap().handler,
                Handler::Tcp {
                    host: ip.into(),
                    port: 8080
                }
            );
            let Handler::Http { host, port, .. } = checks.readiness.unwrap().handler else {
                panic!("not http")
            };
            assert_eq!((host.as_str(), port), ("10.0.2.2", 9090));
        }
    }

    #[test]
    fn http_requests_as_the_kubelet_makes_them() {
        let get = |path: Value, headers: Value| {
            let c = one(
                json!({"ports": [{"name": "http", "containerPort": 80}],
                    "readinessProbe": {"httpGet": {"port": "http", "path": path, "httpHeaders": headers}}}),
                false,
            );
            match c.readiness.unwrap().handler {
                Handler::Http { path, headers, .. } => (path, headers),
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(get(Value::Null, json!([])).0, "/");
        assert_eq!(get("ready".into(), json!([])).0, "/ready");
        assert_eq!(get("/a b?x=1#top".into(), json!([])).0, "/a%20b?x=1");
        let headers = json!([{"name": "user-agent", "value": "me"}, {"name": "X-B", "value": "2"},
            {"name": "x-a", "value": "1"}]);
        let pair = |n: &str, v: &str| (n.to_string(), v.to_string());
        assert_eq!(
            get("/".into(), headers).1,
            [pair("User-Agent", "me"), pair("X-B", "2"), pair("X-A", "1")]
        );
    }

    #[test]
    fn a_probes_command_is_expanded_with_the_env_values_and_a_hooks_is_not() {
        let c = one(
            json!({"env": [{"name": "F", "value": "/ready"}, {"name": "S", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                "livenessProbe": {"exec": {"command": ["test", "-f", "$(F)", "$(S)", "$(NONE)", "$$(F)"]}},
                "lifecycle": {"preStop": {"exec": {"command": ["rm", "$(F)"]}}}}),
            true,
        );
        let command = |h: &Option<Handler>| match h {
            Some(Handler::Exec { command }) => command.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            command(&c.liveness.map(|p| p.handler)),
            ["test", "-f", "/ready", "", "$(NONE)", "$(F)"]
        );
        assert_eq!(command(&c.pre_stop), ["rm", "$(F)"]);
    }

    #[test]
    fn hooks() {
        let c = one(
            json!({"lifecycle": {"postStart": {"httpGet": {"port": 80, "path": "/started"}},
                "preStop": {"sleep": {"seconds": 5}}}}),
            true,
        );
        assert_eq!(
            c.post_start,
            Some(Handler::Http {
                host: "10.0.2.15".into(),
                port: 80,
                path: "/started".into(),
                headers: vec![]
            })
        );
        assert_eq!(c.pre_stop, Some(Handler::Sleep { seconds: 5 }));
        let c = one(
            json!({"lifecycle": {"preStop": {"exec": {"command": ["nginx", "-s", "quit"]}}}}),
            true,
        );
        assert_eq!(
            c.pre_stop,
            Some(Handler::Exec {
                command: vec!["nginx".into(), "-s".into(), "quit".into()]
            })
        );
        // A sidecar has its checks; an app container without any has none
        // (and none in the plan's JSON).
        let all = resolved(
            json!({"initContainers": [{"name": "s", "image": "oci:img", "restartPolicy": "Always",
                "startupProbe": {"exec": {"command": ["x"]}}}],
                "containers": [{"name": "c", "image": "oci:img"}]}),
            true,
        );
        assert!(all[0].startup.is_some());
        assert!(all[1].is_empty());
    }
}
