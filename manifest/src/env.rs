//! Container environment: the image's Env, overridden by the container's
//! `env`, with Kubernetes' `$(VAR)` expansion.

use crate::pod::EnvVar;

/// The PATH a container gets when its image sets none (containerd's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Expands `$(NAME)` references in `input` with `lookup`, as Kubernetes'
/// `third_party/forked/golang/expansion` does: `$$` is a literal `$`, a
/// reference to an unknown name stays as written, and an unterminated `$(`
/// or a `$` before any other character is kept literally.
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
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

/// An ordered environment where setting an existing name replaces it in place.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment(Vec<(String, String)>);

impl Environment {
    /// Sets `name` to `value`, in place if it exists, else at the end.
    pub fn set(&mut self, name: &str, value: String) {
        match self.0.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name.to_string(), value)),
        }
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// `NAME=value` strings, in order.
    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(|(n, v)| format!("{n}={v}")).collect()
    }
}

/// Builds a container's environment as containerd and the kubelet do:
/// a default PATH, `HOSTNAME`, then the image's Env, then the container's
/// `env` in order, each value expanded against the container variables
/// defined before it (Kubernetes does not expand against the image's Env,
/// which the kubelet never sees).
///
/// Returns the environment and the container variables, the mapping that
/// `command` and `args` are expanded with.
pub fn build(image_env: &[String], hostname: &str, env: &[EnvVar]) -> (Environment, Environment) {
    let mut all = Environment::default();
    all.set("PATH", DEFAULT_PATH.to_string());
    all.set("HOSTNAME", hostname.to_string());
    for entry in image_env {
        let (name, value) = entry.split_once('=').unwrap_or((entry, ""));
        all.set(name, value.to_string());
    }
    let mut defined = Environment::default();
    for var in env {
        let value = expand(&var.value, |name| defined.get(name).map(str::to_string));
        defined.set(&var.name, value.clone());
        all.set(&var.name, value);
    }
    (all, defined)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<EnvVar> {
        pairs
            .iter()
            .map(|(n, v)| EnvVar {
                name: n.to_string(),
                value: v.to_string(),
            })
            .collect()
    }

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

    #[test]
    fn only_earlier_variables_expand() {
        let (all, _) = build(
            &[],
            "h",
            &vars(&[("B", "$(A)-$(C)"), ("A", "1"), ("C", "$(A)2"), ("D", "$(B)")]),
        );
        assert_eq!(all.get("B"), Some("$(A)-$(C)"));
        assert_eq!(all.get("C"), Some("12"));
        assert_eq!(all.get("D"), Some("$(A)-$(C)"));
    }

    #[test]
    fn image_env_first_container_overrides_in_place() {
        let (all, defined) = build(
            &["PATH=/bin".into(), "X=image".into(), "NOVALUE".into()],
            "web",
            &vars(&[("X", "mine"), ("Y", "$(PATH)")]),
        );
        assert_eq!(
            all.to_strings(),
            ["PATH=/bin", "HOSTNAME=web", "X=mine", "NOVALUE=", "Y=$(PATH)"]
        );
        assert_eq!(defined.to_strings(), ["X=mine", "Y=$(PATH)"]);
    }

    #[test]
    fn default_path_when_image_has_none() {
        let (all, _) = build(&[], "h", &[]);
        assert_eq!(all.get("PATH"), Some(DEFAULT_PATH));
        assert_eq!(all.get("HOSTNAME"), Some("h"));
    }
}
