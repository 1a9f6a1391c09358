//! Where an HTTP check's redirect leads, as the kubelet decides for its
//! probes and HTTP hooks (pkg/probe/http's RedirectChecker with
//! followNonLocalRedirects false, over Go's client): a 301, 302, 303, 307
//! or 308 with a `Location` is followed when the new URL names the same
//! host (the port may differ), up to 10 requests in all; a redirect to
//! another host ends the check with the redirect's answer, which the
//! kubelet counts as a success with a warning. Pure code: the `Location`
//! in, the next request's parts out.

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

/// The request a redirect leads to.
#[derive(Debug, PartialEq, Eq)]
pub struct Next {
    /// `host:port` to connect to (the port 80 when the URL names none).
    pub addr: String,
    pub port: u16,
    /// The URL's authority as written (`10.0.2.15:8080`): the `Host`
    /// header, unless a custom one is kept (see `schemeless`).
    pub authority: String,
    /// Whether the `Location` named no scheme (Go's `!IsAbs()`: relative,
    /// or `//host/path`): the only case where Go keeps a custom `Host`.
    pub schemeless: bool,
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
    let reference = location.split('#').next().unwrap_or_default();
    if reference.bytes().any(|b| b < b' ' || b == 0x7f) {
        return Redirect::Invalid(format!(
            "failed to parse Location header {location:?}: parse {reference:?}: net/url: invalid control character in URL"
        ));
    }
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
    // Another scheme, or one without an authority (`http:/x`: Go's URL
    // then has an empty host, which is not the probe's).
    if scheme.as_deref().is_some_and(|s| s != "http") || (scheme.is_some() && !rest.starts_with("//")) {
        return Redirect::Stop;
    }
    let schemeless = scheme.is_none();
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
        return finish(authority, host, schemeless, base_path, query.or(base_query));
    } else {
        let dir = &base_path[..base_path.rfind('/').map_or(0, |i| i + 1)];
        remove_dots(&format!("{dir}{path}"))
    };
    match new_authority {
        None => finish(authority, host, schemeless, &new_path, query),
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
            finish(a, host, schemeless, &new_path, query)
        }
    }
}

/// The host and the port of an authority (80 when none is written);
/// `None` for the port when it is not a number from 1 to 65535.
fn split_port(authority: &str) -> (&str, Option<u16>) {
    // An IPv6 literal's colons are inside its brackets.
    let after = authority.rfind(']').map_or(0, |i| i + 1);
    let split = authority[after..]
        .rfind(':')
        .map(|i| (&authority[..after + i], &authority[after + i + 1..]));
    match split {
        Some((h, "")) => (h, Some(80)),
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => (h, p.parse().ok().filter(|p| *p > 0)),
        Some((h, _)) => (h, None),
        None => (authority, Some(80)),
    }
}

/// The next request, for `authority` (already checked) and the path.
fn finish(authority: &str, host: &str, schemeless: bool, path: &str, query: Option<&str>) -> Redirect {
    let port = split_port(authority).1.unwrap_or(80);
    let path = wire::escape(path);
    let query = query.map(|q| format!("?{}", wire::escape(q))).unwrap_or_default();
    // Go's URL.String shows an empty path as nothing; the request line
    // needs at least `/`.
    let url = format!("http://{authority}{path}{query}");
    let target = match path.is_empty() {
        true => format!("/{query}"),
        false => format!("{path}{query}"),
    };
    Redirect::Follow(Next {
        addr: format!("{host}:{}", u32::from(port)),
        port,
        authority: authority.to_string(),
        schemeless,
        url,
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
            assert!(n.schemeless && n.addr == "10.0.2.15:8080", "{location}");
        }
        // Absolute: the same host on another port, or on the default one.
        let n = follow("http://10.0.2.15:9090/ok", "/");
        assert_eq!(
            (n.addr.as_str(), n.port, n.target.as_str()),
            ("10.0.2.15:9090", 9090, "/ok")
        );
        assert!(!n.schemeless && n.authority == "10.0.2.15:9090");
        let n = follow("HTTP://10.0.2.15", "/x");
        assert_eq!(
            (n.addr.as_str(), n.target.as_str(), n.authority.as_str()),
            ("10.0.2.15:80", "/", "10.0.2.15")
        );
        assert_eq!(n.url, "http://10.0.2.15");
        // Scheme-relative: no scheme, so a custom Host may be kept.
        let n = follow("//user@10.0.2.15:81/p?q#f", "/x");
        assert_eq!((n.addr.as_str(), n.target.as_str()), ("10.0.2.15:81", "/p?q"));
        assert!(n.schemeless);
    }

    #[test]
    fn other_hosts_and_schemes_stop_and_bad_urls_fail() {
        let r = |l: &str| resolve(l, "10.0.2.15:8080", "10.0.2.15", "/");
        assert_eq!(r("http://10.0.2.16:8080/"), Redirect::Stop);
        assert_eq!(r("http://example.com/health"), Redirect::Stop);
        assert_eq!(r("https://10.0.2.15:8443/"), Redirect::Stop);
        assert_eq!(r("mailto:x@y"), Redirect::Stop);
        assert_eq!(r("http:/x"), Redirect::Stop);
        assert_eq!(r("http:g"), Redirect::Stop);
        assert_eq!(r("http://[::1]/"), Redirect::Stop);
        assert_eq!(r("http://[::1]:8080/"), Redirect::Stop);
        assert_eq!(
            r("http://10.0.2.15:x/"),
            Redirect::Invalid(
                "failed to parse Location header \"http://10.0.2.15:x/\": parse \"http://10.0.2.15:x/\": invalid port \":x\" after host"
                    .into()
            )
        );
        assert_eq!(
            r("/a\tb#f"),
            Redirect::Invalid(
                "failed to parse Location header \"/a\\tb#f\": parse \"/a\\tb\": net/url: invalid control character in URL"
                    .into()
            )
        );
    }

    #[test]
    fn the_codes_go_follows() {
        assert!(follows(301) && follows(302) && follows(303) && follows(307) && follows(308));
        assert!(!follows(300) && !follows(304) && !follows(305) && !follows(200));
    }
}
