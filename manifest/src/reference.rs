//! Image references as Docker and containerd read them (the grammar of
//! the distribution project's `reference` package): `busybox` is
//! `docker.io/library/busybox:latest`, `ghcr.io/org/app@sha256:…` keeps its
//! digest, `registry.internal:5000/team/app:v2` its host and port.
//!
//! Hand-written rather than a crate: the grammar is small and fixed, and
//! the crates that implement it bring a regex engine for it.

use alloc::format;
use alloc::string::{String, ToString};
use core::fmt;

/// The registry of names without a host.
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// The tag of a reference with neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";

/// A normalised reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `docker.io`, `ghcr.io`, `localhost:5000`, `[::1]:5000`.
    pub domain: String,
    /// `library/busybox`, `org/app`.
    pub path: String,
    /// The tag; `latest` when neither tag nor digest was given.
    pub tag: Option<String>,
    /// `sha256:…`.
    pub digest: Option<String>,
}

impl Reference {
    /// Parses and normalises `s` as `docker pull` and containerd do.
    pub fn parse_normalized(s: &str) -> Result<Reference, String> {
        let bad = |why: &str| format!("invalid image reference {s:?}: {why}");
        if s.len() == 64
            && s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            return Err(bad(
                "a 64-character hexadecimal string is an image ID, not a name",
            ));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (r, Some(d)),
            None => (s, None),
        };
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        // A first component that looks like a host (a dot, a port,
        // `localhost`, or capitals) is the registry, as Docker decides it.
        let (domain, remainder) = match name.split_once('/') {
            Some((first, rest))
                if first.contains(['.', ':']) || first == "localhost" || first.to_lowercase() != first =>
            {
                (first, rest.to_string())
            }
            _ => (DEFAULT_DOMAIN, name.to_string()),
        };
        let domain = if domain == "index.docker.io" {
            DEFAULT_DOMAIN
        } else {
            domain
        };
        let path = if domain == DEFAULT_DOMAIN && !remainder.contains('/') {
            format!("library/{remainder}")
        } else {
            remainder
        };
        if path.to_lowercase() != path {
            return Err(bad("the repository name must be lowercase"));
        }
        if !is_domain(domain) {
            return Err(bad(&format!("{domain:?} is not a registry host[:port]")));
        }
        if path.is_empty() || !path.split('/').all(is_path_component) {
            return Err(bad(
                "a repository path is lowercase letters and digits, separated by '.', '_', '__', '-' and '/'",
            ));
        }
        if domain.len() + 1 + path.len() > 255 {
            return Err(bad("the repository name is longer than 255 characters"));
        }
        if let Some(t) = tag {
            if !is_tag(t) {
                return Err(bad(
                    "a tag is at most 128 letters, digits, '_', '.' and '-', not starting with '.' or '-'",
                ));
            }
        }
        if let Some(d) = digest {
            check_digest(d).map_err(|why| bad(&why))?;
        }
        Ok(Reference {
            domain: domain.to_string(),
            path,
            tag: match (tag, digest) {
                (None, None) => Some(DEFAULT_TAG.to_string()),
                (t, _) => t.map(str::to_string),
            },
            digest: digest.map(str::to_string),
        })
    }

    /// `domain/path`, the repository.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }
}

impl fmt::Display for Reference {
    /// `docker.io/library/busybox:latest`, `ghcr.io/o/a:v1@sha256:…`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// `host[:port]`: DNS labels (letters, digits, '-' inside) joined by
/// dots, or a bracketed IPv6 address; the port all digits.
fn is_domain(d: &str) -> bool {
    let (host, port) = match d.strip_prefix('[') {
        Some(v6) => {
            let Some((addr, rest)) = v6.split_once(']') else {
                return false;
            };
            let port = match rest {
                "" => None,
                r => match r.strip_prefix(':') {
                    Some(p) => Some(p),
                    None => return false,
                },
            };
            if addr.parse::<core::net::Ipv6Addr>().is_err() {
                return false;
            }
            (None, port)
        }
        None => match d.rsplit_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(d), None),
        },
    };
    let label = |l: &str| {
        !l.is_empty()
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    host.map_or(true, |h| h.split('.').all(label))
        && port.map_or(true, |p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// `[a-z0-9]+` runs joined by one separator: `.`, `_`, `__` or `-`+.
fn is_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_lowercase() || b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !(b[i].is_ascii_lowercase() || b[i].is_ascii_digit()) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn is_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c))
}

/// `algorithm:hex`, with the exact length for sha256 and sha512.
fn check_digest(d: &str) -> Result<(), String> {
    let (alg, hex) = d
        .split_once(':')
        .ok_or_else(|| format!("digest {d:?} is not ALGORITHM:HEX"))?;
    let want = match alg {
        "sha256" => 64,
        "sha512" => 128,
        other => return Err(format!("digest algorithm {other:?} is not sha256 or sha512")),
    };
    if hex.len() != want
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(format!("a {alg} digest is {want} lowercase hexadecimal digits"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        Reference::parse_normalized(s)
            .map(|r| r.to_string())
            .unwrap_or_else(|e| e)
    }

    #[test]
    fn normalised_as_docker_does() {
        let d = "sha256:".to_string() + &"a".repeat(64);
        for (input, want) in [
            ("busybox", "docker.io/library/busybox:latest".to_string()),
            ("busybox:1.36", "docker.io/library/busybox:1.36".into()),
            ("library/busybox", "docker.io/library/busybox:latest".into()),
            ("docker.io/busybox", "docker.io/library/busybox:latest".into()),
            ("index.docker.io/user/app:v1", "docker.io/user/app:v1".into()),
            ("user/app", "docker.io/user/app:latest".into()),
            ("ghcr.io/org/app:v2", "ghcr.io/org/app:v2".into()),
            ("localhost/app", "localhost/app:latest".into()),
            ("localhost:5000/team/app:v2", "localhost:5000/team/app:v2".into()),
            (
                "registry.internal:5000/team/app",
                "registry.internal:5000/team/app:latest".into(),
            ),
            ("[::1]:5000/app:x", "[::1]:5000/app:x".into()),
            (&format!("ghcr.io/org/app@{d}"), format!("ghcr.io/org/app@{d}")),
            (&format!("app:1.0@{d}"), format!("docker.io/library/app:1.0@{d}")),
            (
                "a-b__c_d/f--g.h:_x.y-z",
                "docker.io/a-b__c_d/f--g.h:_x.y-z".into(),
            ),
        ] {
            assert_eq!(norm(input), want, "{input}");
        }
        let r = Reference::parse_normalized("localhost:5000/team/app").unwrap();
        assert_eq!(
            (r.domain.as_str(), r.path.as_str(), r.name()),
            ("localhost:5000", "team/app", "localhost:5000/team/app".into())
        );
    }

    #[test]
    fn no_input_panics() {
        // Strings over the grammar's own characters and a few others
        // (multi-byte ones included), from a fixed-seed generator.
        let alphabet: Vec<char> = "aZ09.-_:/@[]é💥 ".chars().collect();
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..50_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 24) as usize;
            let s: String = (0..len)
                .map(|i| alphabet[((seed >> (i % 8 * 8)) as usize + i) % alphabet.len()])
                .collect();
            let _ = Reference::parse_normalized(&s);
        }
    }

    #[test]
    fn refused_as_docker_refuses() {
        for (input, why) in [
            ("Busybox", "lowercase"),
            ("docker.io/Library/busybox", "lowercase"),
            ("busybox:", "a tag is"),
            ("busybox:-x", "a tag is"),
            ("busybox@sha256:abc", "64 lowercase"),
            ("busybox@md5:abcd", "not sha256"),
            ("a..b", "repository path"),
            ("a/", "repository path"),
            ("-a", "repository path"),
            ("host:port/a", "host[:port]"),
            ("[::1]x/a", "host[:port]"),
            ("[zz]:5000/a", "host[:port]"),
            (&"a".repeat(64), "image ID"),
            (&format!("x/{}", "a".repeat(260)), "255"),
        ] {
            let e = norm(input);
            assert!(e.contains(why), "{input:?}: {e}");
        }
    }
}
