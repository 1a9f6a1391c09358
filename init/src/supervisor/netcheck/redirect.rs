//! Where an HTTP probe's redirect leads, as the kubelet's prober decides
//! (pkg/probe/http's RedirectChecker with followNonLocalRedirects false,
//! over Go's client): a 301, 302, 303, 307 or 308 with a `Location` is
//! followed when the new URL names the same host (the port may differ),
//! up to 10 requests in all; a redirect to another host ends the probe with
//! the redirect's answer, which the kubelet counts as a success with a
//! warning. Pure code: the answer's head in, the next request's parts out.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::wire;

/// The most requests one probe makes (Go's client stops before an 11th).
pub const MAX_REQUESTS: usize = 10;

/// The status codes Go's client follows (for a GET).
pub fn follows(code: u32) -> bool {
    matches!(code, 301 | 302 | 303 | 307 | 308)
}

/// The `Location` of an answer's head (the bytes after the status line
/// up to the blank line): the first such header, trimmed; `None` without
/// one or when the first is empty (Go then keeps the answer as it is).
pub fn location(head: &[u8]) -> Option<String> {
    let value = head.split(|b| *b == b'\n').find_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let colon = line.iter().position(|b| *b == b':')?;
        let name = &line[..colon];
        name.eq_ignore_ascii_case(b"location").then(|| &line[colon + 1..])
    })?;
    let value = String::from_utf8_lossy(value);
    let value = value.trim_matches([' ', '\t']);
    (!value.is_empty()).then(|| value.to_string())
}

/// The request a redirect leads to.
#[derive(Debug, PartialEq, Eq)]
pub struct Next {
    /// `host:port` to connect to (the port 80 when the URL names none).
    pub addr: String,
    /// The host (an address literal here) without the port.
    pub host: String,
    pub port: u16,
    /// The URL's authority as written (`10.0.2.15:8080`): the `Host`
    /// header, unless the redirect was relative and the probe named its
    /// own `Host`.
    pub authority: String,
    /// Whether the `Location` named no authority (relative).
    pub relative: bool,
    /// The request target: path (at least `/`) and `?query`, no fragment.
    pub target: String,
    /// The URL as Go prints it (errors, the next `Referer`).
    pub url: String,
}

/// What a redirect does.
#[derive(Debug, PartialEq, Eq)]
pub enum Redirect {
    /// Follow it.
    Follow(Next),
    /// Keep the redirect's answer as the probe's (another host, or a
    /// scheme pod1 cannot speak: https).
    Stop,
    /// The `Location` is not a URL: Go's message.
    Invalid(String),
}

/// Resolves `location` against the current request (`authority`, its
/// host without the port, and `target`) as Go's URL.ResolveReference does,
/// and decides whether to follow it.
pub fn resolve(location: &str, authority: &str, host: &str, target: &str) -> Redirect {
    if location.bytes().any(|b| b < b' ' || b == 0x7f) {
        return Redirect::Invalid(format!(
            "failed to parse Location header {location:?}: net/url: invalid control character in URL"
        ));
    }
    let reference = location.split('#').next().unwrap_or_default();
    // A scheme: letters, digits, `+-.`, starting with a letter, before ':'.
    let scheme_end = reference.find(':').filter(|&i| {
        let s = &reference.as_bytes()[..i];
        !s.is_empty()
            && s[0].is_ascii_alphabetic()
            && s.iter().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(b))
    });
    let (scheme, rest) = match scheme_end {
        Some(i) => (Some(reference[..i].to_ascii_lowercase()), &reference[i + 1..]),
        None => (None, reference),
    };
    if scheme.as_deref().is_some_and(|s| s != "http") {
        return Redirect::Stop;
    }
    let (new_authority, path_query) = match rest.strip_prefix("//") {
        Some(r) => {
            let end = r.find(['/', '?']).unwrap_or(r.len());
            (Some(&r[..end]), &r[end..])
        }
        None => (None, rest),
    };
    let (path, query) = match path_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_query, None),
    };
    let (base_path, base_query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let new_path = if new_authority.is_some() || path.starts_with('/') {
        remove_dots(path)
    } else if path.is_empty() {
        // Only a query (or nothing): the same path; the query is the new
        // one if given, else the current one.
        return finish(authority, host, true, base_path, query.or(base_query));
    } else {
        let dir = &base_path[..base_path.rfind('/').map_or(0, |i| i + 1)];
        remove_dots(&format!("{dir}{path}"))
    };
    match new_authority {
        None => finish(authority, host, true, &new_path, query),
        Some(a) => {
            // Userinfo is not part of the host.
            let a = a.rsplit('@').next().unwrap_or_default();
            let (h, port) = split_port(a);
            if port.is_none() {
                return Redirect::Invalid(format!(
                    "failed to parse Location header {location:?}: parse {location:?}: invalid port {:?} after host",
                    &a[h.len()..]
                ));
            }
            if !h.eq_ignore_ascii_case(host) {
                return Redirect::Stop;
            }
            finish(a, host, false, &new_path, query)
        }
    }
}

/// The host and the port of an authority (80 when none is written);
/// `None` for the port when it is not a number from 1 to 65535.
fn split_port(authority: &str) -> (&str, Option<u16>) {
    match authority.rsplit_once(':') {
        Some((h, "")) => (h, Some(80)),
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => (h, p.parse().ok().filter(|p| *p > 0)),
        Some((h, _)) => (h, None),
        None => (authority, Some(80)),
    }
}

/// The next request, for `authority` (already checked) and the path.
fn finish(authority: &str, host: &str, relative: bool, path: &str, query: Option<&str>) -> Redirect {
    let port = split_port(authority).1.unwrap_or(80);
    let mut target = wire::escape(if path.is_empty() { "/" } else { path });
    if let Some(q) = query {
        target.push('?');
        target.push_str(&wire::escape(q));
    }
    Redirect::Follow(Next {
        addr: format!("{host}:{}", u32::from(port)),
        host: host.to_string(),
        port,
        authority: authority.to_string(),
        relative,
        url: format!("http://{authority}{target}"),
        target,
    })
}

/// RFC 3986's remove_dot_segments (Go's resolvePath): `.` and `..`
/// segments go, a `..` above the root stays at the root.
fn remove_dots(path: &str) -> String {
    if path.is_empty() {
        return String::new();
    }
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').collect();
    let last = segments.len() - 1;
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "." => {}
            ".." => {
                if out.len() > 1 {
                    out.pop();
                }
            }
            s => out.push(s),
        }
        // A path ending in `.` or `..` names a directory: keep its slash.
        if i == last && (*seg == "." || *seg == "..") {
            out.push("");
        }
    }
    let joined = out.join("/");
    if joined.starts_with('/') {
        joined
    } else {
        format!("/{joined}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn follow(location: &str, target: &str) -> Next {
        match resolve(location, "10.0.2.15:8080", "10.0.2.15", target) {
            Redirect::Follow(n) => n,
            other => panic!("{location}: {other:?}"),
        }
    }

    #[test]
    fn locations_resolve_as_go_resolves_references() {
        let cases = [
            ("/login", "/a/b?x=1", "/login", "http://10.0.2.15:8080/login"),
            ("c", "/a/b", "/a/c", "http://10.0.2.15:8080/a/c"),
            (
                "../c?y=2#top",
                "/a/b/d",
                "/a/c?y=2",
                "http://10.0.2.15:8080/a/c?y=2",
            ),
            ("../../../x", "/a/b", "/x", "http://10.0.2.15:8080/x"),
            ("?q", "/a/b?x=1", "/a/b?q", "http://10.0.2.15:8080/a/b?q"),
            ("", "/a/b?x=1", "/a/b?x=1", "http://10.0.2.15:8080/a/b?x=1"),
            ("./", "/a/b", "/a/", "http://10.0.2.15:8080/a/"),
            ("/a b", "/", "/a%20b", "http://10.0.2.15:8080/a%20b"),
        ];
        for (location, base, target, url) in cases {
            let n = follow(location, base);
            assert_eq!(
                (n.target.as_str(), n.url.as_str()),
                (target, url),
                "{location} from {base}"
            );
            assert!(n.relative && n.addr == "10.0.2.15:8080", "{location}");
        }
        // Absolute: the same host on another port, or on the default one.
        let n = follow("http://10.0.2.15:9090/ok", "/");
        assert_eq!(
            (n.addr.as_str(), n.port, n.target.as_str()),
            ("10.0.2.15:9090", 9090, "/ok")
        );
        assert!(!n.relative && n.authority == "10.0.2.15:9090");
        let n = follow("HTTP://10.0.2.15", "/x");
        assert_eq!(
            (n.addr.as_str(), n.target.as_str(), n.authority.as_str()),
            ("10.0.2.15:80", "/", "10.0.2.15")
        );
        let n = follow("//user@10.0.2.15:81/p?q#f", "/x");
        assert_eq!((n.addr.as_str(), n.target.as_str()), ("10.0.2.15:81", "/p?q"));
    }

    #[test]
    fn other_hosts_and_schemes_stop_and_bad_urls_fail() {
        let r = |l: &str| resolve(l, "10.0.2.15:8080", "10.0.2.15", "/");
        assert_eq!(r("http://10.0.2.16:8080/"), Redirect::Stop);
        assert_eq!(r("http://example.com/health"), Redirect::Stop);
        assert_eq!(r("https://10.0.2.15:8443/"), Redirect::Stop);
        assert_eq!(r("mailto:x@y"), Redirect::Stop);
        assert_eq!(
            r("http://10.0.2.15:x/"),
            Redirect::Invalid(
                "failed to parse Location header \"http://10.0.2.15:x/\": parse \"http://10.0.2.15:x/\": invalid port \":x\" after host"
                    .into()
            )
        );
        assert!(matches!(r("/a\nb"), Redirect::Invalid(m) if m.contains("invalid control character")));
    }

    #[test]
    fn the_location_is_the_first_header_of_that_name() {
        let head = b"Content-Type: text/plain\r\nlocation:  /next \r\nLocation: /other\r\n";
        assert_eq!(location(head).as_deref(), Some("/next"));
        assert_eq!(location(b"Location:\r\nLocation: /x\r\n"), None);
        assert_eq!(location(b"X-Location: /no\r\n"), None);
        assert!(follows(302) && follows(308) && !follows(300) && !follows(304));
    }
}
