//! A registry's failures in words: the classes a pull acts on, the
//! registry's own error bodies made safe to print, transport errors naming
//! the host.

use super::client::MAX_SMALL_BODY;

/// Why a request failed, in the classes a pull acts on.
#[derive(Debug)]
pub enum Error {
    /// The registry does not have it (404, MANIFEST_UNKNOWN, NAME_UNKNOWN):
    /// the next candidate or mirror may.
    NotFound(String),
    /// Authentication failed or access was denied (401/403).
    Denied(String),
    /// The network, TLS or the registry failed; worth retrying.
    Transient(String),
    /// The registry answered something wrong (bad digest, bad body).
    Invalid(String),
    /// This machine failed (the store could not be written): no other
    /// endpoint would do better.
    Local(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::NotFound(m)
            | Error::Denied(m)
            | Error::Transient(m)
            | Error::Invalid(m)
            | Error::Local(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

/// The error a non-success status means, with the registry's own error
/// code and message (untrusted: printable characters only, cut short).
pub(super) fn status_error(status: u16, resp: &mut ureq::http::Response<ureq::Body>, what: &str) -> Error {
    let body = resp
        .body_mut()
        .with_config()
        .limit(MAX_SMALL_BODY)
        .read_to_vec()
        .unwrap_or_default();
    let detail = registry_errors(&body);
    let detail = if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    };
    match status {
        404 => Error::NotFound(format!("{what} does not exist (404){detail}")),
        401 | 403 => Error::Denied(format!(
            "access to {what} is denied ({status}){detail}: the credentials used (or none) may not pull it; check them with `podman login`"
        )),
        429 | 500..=599 => Error::Transient(format!("{what}: the registry answered {status}{detail}")),
        _ => Error::Invalid(format!("{what}: the registry answered {status}{detail}")),
    }
}

/// `CODE: message` of a distribution error body, made safe to print.
pub fn registry_errors(body: &[u8]) -> String {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return String::new();
    };
    let Some(errors) = v.get("errors").and_then(|e| e.as_array()) else {
        return String::new();
    };
    let text: Vec<String> = errors
        .iter()
        .take(3)
        .map(|e| {
            let field = |k: &str| e.get(k).and_then(|v| v.as_str()).unwrap_or("");
            format!("{} {}", field("code"), field("message"))
        })
        .collect();
    printable(text.join("; ").trim(), 300)
}

/// At most `max` characters of `s`, control characters replaced: what a
/// registry says reaches the user's terminal.
pub fn printable(s: &str, max: usize) -> String {
    s.chars()
        .take(max)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// A transport error in words, naming `host` (host[:port] or a URL).
pub(super) fn describe(e: &ureq::Error, host: &str) -> String {
    let cert = |detail: String| {
        format!(
            "the TLS certificate of {host} is not trusted ({detail}): add its CA to /etc/containers/certs.d/{host}/ca.crt (or SSL_CERT_FILE), or mark the registry insecure in registries.conf"
        )
    };
    match e {
        ureq::Error::HostNotFound => format!("unknown host {host}"),
        ureq::Error::ConnectionFailed => format!("cannot connect to {host}"),
        ureq::Error::Timeout(t) => format!("{host} timed out ({t})"),
        ureq::Error::Rustls(r @ rustls::Error::InvalidCertificate(_)) => cert(r.to_string()),
        ureq::Error::Io(io) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused => format!("connection refused at {}", with_port(host)),
            // getaddrinfo's failure, which ureq passes on as it is.
            _ if io.to_string().contains("lookup address") => format!("unknown host {host} ({io})"),
            _ => match io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                Some(r @ rustls::Error::InvalidCertificate(_)) => cert(r.to_string()),
                _ => format!("{host}: {io}"),
            },
        },
        other => format!("{host}: {other}"),
    }
}

/// `host:443` when `host` names no port (for "connection refused at …").
fn with_port(host: &str) -> String {
    let has_port = match host.rfind(']') {
        Some(end) => host[end..].contains(':'),
        None => host.contains(':'),
    };
    if has_port || host.contains("://") {
        host.to_string()
    } else {
        format!("{host}:443")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_error_bodies_are_made_safe() {
        let body =
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown\u001b[2J","detail":{}}]}"#;
        assert_eq!(registry_errors(body), "MANIFEST_UNKNOWN manifest unknown?[2J");
        assert_eq!(registry_errors(b"<html>"), "");
        let long = format!(
            r#"{{"errors":[{{"code":"X","message":"{}"}}]}}"#,
            "a".repeat(5000)
        );
        assert_eq!(registry_errors(long.as_bytes()).chars().count(), 300);
    }

    #[test]
    fn ports_in_messages() {
        assert_eq!(with_port("ghcr.io"), "ghcr.io:443");
        assert_eq!(with_port("localhost:5000"), "localhost:5000");
        assert_eq!(with_port("[::1]:5000"), "[::1]:5000");
        assert_eq!(with_port("[::1]"), "[::1]:443");
    }
}
