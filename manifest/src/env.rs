//! Container environment: the image's Env, overridden by what the kubelet
//! computes from `envFrom` and `env` (ConfigMaps, Secrets, the downward
//! API, `$(VAR)` expansion).

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::downward::{self, Node, Use};
use crate::error::Error;
use crate::objects::{SourceKind, Sources};
use crate::pod::{Container, KeySelector, Pod};

/// The PATH a container gets when its image sets none (containerd's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Expands `$(NAME)` references in `input` with `lookup`, as Kubernetes'
/// `third_party/forked/golang/expansion` does: `$$` is a literal `$`, a
/// reference to an unknown name stays as written, and an unterminated `$(`
/// or a `$` before any other character is kept literally.
pub fn expand(input: &str, mut lookup: impl FnMut(&str) -> Option<String>) -> String {
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut checkpoint = 0;
    let mut cursor = 0;
    while cursor < bytes.len() {
        if bytes[cursor] == b'$' && cursor + 1 < bytes.len() {
            out.push_str(&input[checkpoint..cursor]);
            let rest = &input[cursor + 1..];
            let advance = match rest.as_bytes()[0] {
                b'$' => {
                    out.push('$');
                    1
                }
                b'(' => match rest.find(')') {
                    Some(close) => {
                        let name = &rest[1..close];
                        match lookup(name) {
                            Some(value) => out.push_str(&value),
                            None => {
                                out.push_str("$(");
                                out.push_str(name);
                                out.push(')');
                            }
                        }
                        close + 1
                    }
                    None => {
                        out.push_str("$(");
                        1
                    }
                },
                _ => {
                    // `$` followed by an ordinary character: both stay.
                    let ch = rest.chars().next().unwrap_or('$');
                    out.push('$');
                    out.push(ch);
                    ch.len_utf8()
                }
            };
            cursor += advance + 1;
            checkpoint = cursor;
        } else {
            cursor += 1;
        }
    }
    out.push_str(&input[checkpoint.min(input.len())..]);
    out
}

/// An ordered environment where setting an existing name replaces it in
/// place. Indexed by name, so building one from a ConfigMap of tens of
/// thousands of keys stays linear.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    vars: Vec<(String, String)>,
    index: BTreeMap<String, usize>,
}

impl Environment {
    /// Sets `name` to `value`, in place if it exists, else at the end.
    pub fn set(&mut self, name: &str, value: String) {
        match self.index.get(name) {
            Some(&i) => self.vars[i].1 = value,
            None => {
                self.index.insert(name.to_string(), self.vars.len());
                self.vars.push((name.to_string(), value));
            }
        }
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.index.get(name).map(|&i| self.vars[i].1.as_str())
    }

    /// The variables, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// `NAME=value` strings, in order.
    pub fn to_strings(&self) -> Vec<String> {
        self.iter().map(|(n, v)| format!("{n}={v}")).collect()
    }
}

/// A variable name as Kubernetes accepts it since 1.34
/// (RelaxedEnvironmentVariableValidation): printable ASCII but `=`.
pub fn is_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| (b' '..=b'~').contains(&b) && b != b'=')
}

/// What a container's variables are computed from.
#[derive(Debug)]
pub struct Context<'a> {
    /// The pod (for the downward API).
    pub pod: &'a Pod,
    /// The ConfigMaps and Secrets.
    pub sources: &'a Sources,
    /// The node's capacity (for resources without a limit).
    pub node: &'a Node,
    /// The pod's hostname (`HOSTNAME`).
    pub hostname: &'a str,
}

/// A container's environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Built {
    /// Everything the process gets, in order.
    pub all: Environment,
    /// The container's own variables (`envFrom` and `env`), the mapping
    /// `command`, `args` and `subPathExpr` are expanded with.
    pub defined: Environment,
    /// Warnings (envFrom keys skipped), as the kubelet's events say them.
    pub warnings: Vec<String>,
    /// The variables whose value came from a Secret (for displays that
    /// should not print it).
    pub secret: Vec<String>,
}

/// Builds a container's environment as containerd and the kubelet do:
/// a default PATH, `HOSTNAME`, then the image's Env, then the kubelet's
/// variables: every `envFrom` source in order (keys prefixed, invalid
/// names skipped with a warning), then `env` in order, a literal value
/// expanded against the variables defined before it (never the image's:
/// the kubelet does not see them), a `valueFrom` value taken as is.
/// `at` is the container's JSON path, for errors.
pub fn build(image_env: &[String], ctx: &Context, c: &Container, at: &str) -> Result<Built, Error> {
    let mut out = Built::default();
    out.all.set("PATH", DEFAULT_PATH.to_string());
    out.all.set("HOSTNAME", ctx.hostname.to_string());
    for entry in image_env {
        let (name, value) = entry.split_once('=').unwrap_or((entry, ""));
        out.all.set(name, value.to_string());
    }
    for (i, from) in c.env_from.iter().enumerate() {
        let at = format!("{at}.envFrom[{i}]");
        let (kind, r, field) = match (&from.config_map_ref, &from.secret_ref) {
            (Some(r), None) => (SourceKind::ConfigMap, r, "configMapRef"),
            (None, Some(r)) => (SourceKind::Secret, r, "secretRef"),
            _ => return Err(Error::new(at, "set exactly one of configMapRef and secretRef")),
        };
        let Some(data) = ctx.sources.get(kind, &r.name) else {
            if r.optional == Some(true) {
                continue;
            }
            return Err(missing(&format!("{at}.{field}"), kind, &r.name));
        };
        let prefix = from.prefix.as_deref().unwrap_or("");
        let mut invalid = Vec::new();
        for (key, value) in data {
            let name = format!("{prefix}{key}");
            if !is_name(&name) {
                invalid.push(name);
                continue;
            }
            out.defined.set(&name, text(value));
            if kind == SourceKind::Secret {
                out.secret.push(name);
            }
        }
        if !invalid.is_empty() {
            out.warnings.push(format!(
                "{at}: keys [{}] from the EnvFrom {} {:?} were skipped since they are considered invalid environment variable names",
                invalid.join(", "),
                kind.name(),
                r.name
            ));
        }
    }
    for (i, var) in c.env.iter().enumerate() {
        let value = if !var.value.is_empty() {
            expand(&var.value, |name| out.defined.get(name).map(str::to_string))
        } else if let Some(from) = &var.value_from {
            if from.secret_key_ref.is_some() {
                out.secret.push(var.name.clone());
            }
            match value_from(ctx, c, &format!("{at}.env[{i}].valueFrom"), from)? {
                Some(v) => v,
                // An optional reference to nothing leaves the variable out.
                None => continue,
            }
        } else {
            String::new()
        };
        out.defined.set(&var.name, value);
    }
    for (name, value) in out.defined.iter() {
        out.all.set(name, value.to_string());
    }
    Ok(out)
}

fn value_from(
    ctx: &Context,
    c: &Container,
    at: &str,
    from: &crate::pod::EnvVarSource,
) -> Result<Option<String>, Error> {
    let key = |kind: SourceKind, field: &str, sel: &KeySelector| -> Result<Option<String>, Error> {
        let optional = sel.optional == Some(true);
        let at = format!("{at}.{field}");
        match ctx.sources.get(kind, &sel.name) {
            None if optional => Ok(None),
            None => Err(missing(&at, kind, &sel.name)),
            Some(data) => match data.get(&sel.key) {
                Some(v) => Ok(Some(text(v))),
                None if optional => Ok(None),
                None => Err(Error::new(
                    format!("{at}.key"),
                    format!(
                        "{} {:?} has no key {:?}; set optional: true to run without it",
                        kind.name(),
                        sel.name,
                        sel.key
                    ),
                )),
            },
        }
    };
    match (
        &from.field_ref,
        &from.resource_field_ref,
        &from.config_map_key_ref,
        &from.secret_key_ref,
    ) {
        (Some(f), None, None, None) => downward::field(ctx.pod, ctx.node, &f.field_path, Use::Env)
            .map(Some)
            .map_err(|m| Error::new(format!("{at}.fieldRef.fieldPath"), m)),
        (None, Some(r), None, None) => {
            let target = match r.container_name.as_deref().filter(|n| !n.is_empty()) {
                None => c,
                Some(name) => ctx
                    .pod
                    .spec
                    .all_containers()
                    .find(|x| x.name == name)
                    .ok_or_else(|| {
                        Error::new(
                            format!("{at}.resourceFieldRef.containerName"),
                            format!("no container named {name:?} in the pod"),
                        )
                    })?,
            };
            downward::resource(target, r, ctx.node)
                .map(Some)
                .map_err(|m| Error::new(format!("{at}.resourceFieldRef"), m))
        }
        (None, None, Some(k), None) => key(SourceKind::ConfigMap, "configMapKeyRef", k),
        (None, None, None, Some(k)) => key(SourceKind::Secret, "secretKeyRef", k),
        _ => Err(Error::new(
            at,
            "set exactly one of fieldRef, resourceFieldRef, configMapKeyRef and secretKeyRef",
        )),
    }
}

/// A missing ConfigMap or Secret.
pub fn missing(at: &str, kind: SourceKind, name: &str) -> Error {
    Error::new(
        at,
        format!(
            "{} {name:?} not found: put it in the manifest file or add its file with -f, or set optional: true",
            kind.name()
        ),
    )
}

/// A value as the kubelet passes it on: Go's string of the bytes (here
/// with any invalid UTF-8 replaced, as Rust strings must be valid).
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(name: &str) -> Option<String> {
        match name {
            "A" => Some("a".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expansion_rules() {
        let cases = [
            ("$(A)", "a"),
            ("x$(A)y$(A)", "xaya"),
            ("$(EMPTY)", ""),
            ("$(UNDEF)", "$(UNDEF)"),
            ("$$(A)", "$(A)"),
            ("$$$(A)", "$a"),
            ("$$", "$"),
            ("$", "$"),
            ("a$", "a$"),
            ("$(A", "$(A"),
            ("$(", "$("),
            ("$A", "$A"),
            ("$é", "$é"),
            ("$()", "$()"),
            ("no refs", "no refs"),
            ("$(A)$(UNDEF)$$", "a$(UNDEF)$"),
        ];
        for (input, want) in cases {
            assert_eq!(expand(input, map), want, "input {input:?}");
        }
    }

    /// Builds container 0's environment of a pod written as JSON, with a
    /// ConfigMap `cm` {A: "from-cm", "1X": "digit", "B": "b"} and a Secret
    /// `s` {PASS: "hunter2"}.
    fn env(image_env: &[&str], container: serde_json::Value) -> Result<Built, Error> {
        let pod = serde_json::json!({"metadata": {"name": "p", "labels": {"app": "web"}},
            "spec": {"containers": [container]}});
        let mut pod = Pod::parse(&pod.to_string())?;
        pod.metadata.uid = Some("uid-1".into());
        let mut sources = Sources::default();
        sources.add(
            SourceKind::ConfigMap,
            serde_json::json!({"metadata": {"name": "cm"},
            "data": {"A": "from-cm", "1X": "digit", "B": "b"}}),
            "default",
        )?;
        sources.add(
            SourceKind::Secret,
            serde_json::json!({"metadata": {"name": "s"},
            "stringData": {"PASS": "hunter2"}}),
            "default",
        )?;
        let node = Node::new(512, 2);
        let ctx = Context {
            pod: &pod,
            sources: &sources,
            node: &node,
            hostname: "p",
        };
        let image_env: Vec<String> = image_env.iter().map(|s| s.to_string()).collect();
        build(&image_env, &ctx, &pod.spec.containers[0], "spec.containers[0]")
    }

    #[test]
    fn only_earlier_variables_expand() {
        let b = env(
            &[],
            serde_json::json!({"name": "c", "image": "dir:x", "env": [
            {"name": "B", "value": "$(A)-$(C)"}, {"name": "A", "value": "1"},
            {"name": "C", "value": "$(A)2"}, {"name": "D", "value": "$(B)"}]}),
        )
        .unwrap();
        assert_eq!(b.all.get("B"), Some("$(A)-$(C)"));
        assert_eq!(b.all.get("C"), Some("12"));
        assert_eq!(b.all.get("D"), Some("$(A)-$(C)"));
    }

    #[test]
    fn image_env_first_container_overrides_in_place() {
        let b = env(
            &["PATH=/bin", "X=image", "NOVALUE"],
            serde_json::json!({"name": "c", "image": "dir:x",
            "env": [{"name": "X", "value": "mine"}, {"name": "Y", "value": "$(PATH)"}]}),
        )
        .unwrap();
        assert_eq!(
            b.all.to_strings(),
            ["PATH=/bin", "HOSTNAME=p", "X=mine", "NOVALUE=", "Y=$(PATH)"]
        );
        assert_eq!(b.defined.to_strings(), ["X=mine", "Y=$(PATH)"]);
        let b = env(&[], serde_json::json!({"name": "c", "image": "dir:x"})).unwrap();
        assert_eq!(b.all.get("PATH"), Some(DEFAULT_PATH));
    }

    #[test]
    fn env_from_then_env_as_the_kubelet_orders_them() {
        let b = env(&["A=image"], serde_json::json!({"name": "c", "image": "dir:x",
            "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"},
                        {"configMapRef": {"name": "cm"}},
                        {"secretRef": {"name": "absent", "optional": true}}],
            "env": [
                {"name": "X", "value": "$(CM_A)+$(A)"},
                {"name": "B", "value": "env-wins"},
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "RAW", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "A"}}},
                {"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "s", "key": "PASS"}}},
                {"name": "NOPE", "valueFrom": {"secretKeyRef": {"name": "s", "key": "none", "optional": true}}},
                {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
                {"name": "LIT", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
                {"name": "Y", "value": "$(POD)/$(LIT)"}]})).unwrap();
        // A name may start with a digit since Kubernetes 1.34.
        assert_eq!(b.defined.get("CM_1X"), Some("digit"));
        assert_eq!(b.defined.get("1X"), Some("digit"));
        assert_eq!(
            b.all.get("A"),
            Some("from-cm"),
            "the kubelet's value overrides the image's"
        );
        assert_eq!(b.all.get("X"), Some("from-cm+from-cm"));
        assert_eq!(b.all.get("B"), Some("env-wins"));
        assert_eq!(b.all.get("RAW"), Some("from-cm"));
        assert_eq!(b.all.get("PASS"), Some("hunter2"));
        assert_eq!(b.all.get("NOPE"), None);
        assert_eq!(b.all.get("APP"), Some("web"));
        assert_eq!(b.all.get("MEM"), Some("512"), "no limit: the node's memory");
        assert_eq!(b.all.get("Y"), Some("p/uid-1"));
        // Order: image, envFrom keys (sorted within a source), then env.
        let names: Vec<String> = b
            .all
            .to_strings()
            .iter()
            .map(|s| s.split('=').next().unwrap().to_string())
            .collect();
        assert_eq!(&names[..4], ["PATH", "HOSTNAME", "A", "CM_1X"]);
        assert!(b.warnings.is_empty(), "{:?}", b.warnings);
    }

    #[test]
    fn invalid_keys_are_skipped_with_a_warning() {
        let b = env(
            &[],
            serde_json::json!({"name": "c", "image": "dir:x",
            "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "P="}]}),
        )
        .unwrap();
        assert!(b.defined.to_strings().is_empty());
        assert_eq!(b.warnings.len(), 1);
        assert!(b.warnings[0].contains("[P=1X, P=A, P=B]"), "{}", b.warnings[0]);
    }

    #[test]
    fn missing_references_are_errors_unless_optional() {
        let e = env(
            &[],
            serde_json::json!({"name": "c", "image": "dir:x",
            "envFrom": [{"secretRef": {"name": "nope"}}]}),
        )
        .unwrap_err();
        assert_eq!(e.path, "spec.containers[0].envFrom[0].secretRef");
        assert!(e.message.contains("Secret \"nope\" not found"), "{e}");
        let e = env(
            &[],
            serde_json::json!({"name": "c", "image": "dir:x",
            "env": [{"name": "V", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "zz"}}}]}),
        )
        .unwrap_err();
        assert_eq!(e.path, "spec.containers[0].env[0].valueFrom.configMapKeyRef.key");
        let e = env(
            &[],
            serde_json::json!({"name": "c", "image": "dir:x",
            "env": [{"name": "V", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeSelector"}}}]}),
        )
        .unwrap_err();
        assert_eq!(e.path, "spec.containers[0].env[0].valueFrom.fieldRef.fieldPath");
        let e = env(
            &[],
            serde_json::json!({"name": "c", "image": "dir:x",
            "env": [{"name": "V", "valueFrom": {}}]}),
        )
        .unwrap_err();
        assert!(e.message.contains("exactly one"), "{e}");
    }

    #[test]
    fn names() {
        assert!(is_name("A_1") && is_name("1a") && is_name("a.b-c") && is_name("x y"));
        assert!(!is_name("") && !is_name("a=b") && !is_name("é") && !is_name("a\tb"));
    }

    #[test]
    fn value_from_as_the_api_server_checks_it() {
        for (from, path) in [
            (
                serde_json::json!({"fieldRef": {"apiVersion": "v9", "fieldPath": "metadata.name"}}),
                "fieldRef.apiVersion",
            ),
            (
                serde_json::json!({"fieldRef": {"fieldPath": "metadata.labels['no spaces']"}}),
                "fieldRef.fieldPath",
            ),
            (
                serde_json::json!({"configMapKeyRef": {"key": "k"}}),
                "configMapKeyRef.name",
            ),
            (
                serde_json::json!({"secretKeyRef": {"name": "s", "key": "a/b"}}),
                "secretKeyRef.key",
            ),
        ] {
            let pod = serde_json::json!({"metadata": {"name": "p"}, "spec": {"containers": [
                {"name": "c", "image": "dir:x", "env": [{"name": "V", "valueFrom": from}]}]}});
            let e = crate::workload::read(&pod.to_string()).unwrap_err();
            assert_eq!(e.path, format!("spec.containers[0].env[0].valueFrom.{path}"));
        }
    }
}
