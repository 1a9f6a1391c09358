//! The bytes of an HTTP check: the request as the kubelet's client writes
//! it, and the status line of the answer as Go's client reads it.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// The request target for `path`: with a leading `/` if it has none (Go
/// adds it in the URL), cut at a fragment (`#`, never sent), and with the
/// bytes a request line cannot carry percent-encoded (control bytes,
/// space, non-ASCII and `"<>\^`{|}`, which Go's URL escapes too).
pub(super) fn request_target(path: &str) -> String {
    let path = path.split('#').next().unwrap_or_default();
    match path.starts_with('/') {
        true => escape(path),
        false => escape(&format!("/{path}")),
    }
}

/// `s` with the bytes a request line cannot carry percent-encoded
/// (control bytes, space, non-ASCII and `"<>\^`{|}`, which Go's URL
/// escapes too).
pub(super) fn escape(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut t = String::with_capacity(s.len());
    for b in s.bytes() {
        if b <= b' ' || b >= 0x7f || b"\"<>\\^`{|}".contains(&b) {
            t.push('%');
            t.push(char::from(HEX[usize::from(b >> 4)]));
            t.push(char::from(HEX[usize::from(b & 15)]));
        } else {
            t.push(char::from(b));
        }
    }
    t
}

/// A header name in Go's canonical form (`x-request-id` →
/// `X-Request-Id`), or Go's error for a name that is not an HTTP token.
fn canonical(name: &str) -> Result<String, String> {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        return Err(format!("net/http: invalid header field name {name:?}"));
    }
    let mut upper = true;
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        out.push(char::from(if upper {
            b.to_ascii_uppercase()
        } else {
            b.to_ascii_lowercase()
        }));
        upper = b == b'-';
    }
    Ok(out)
}

/// `s` without leading and trailing spaces and tabs (Go's
/// textproto.TrimString), by bytes.
fn trim(s: &str) -> &str {
    let ws = |b: &u8| *b == b' ' || *b == b'\t';
    let start = s.bytes().take_while(ws).count();
    let end = s.len() - s.bytes().rev().take_while(ws).count();
    s.get(start..end).unwrap_or_default()
}

/// The request, as the kubelet's prober sends it:
///
/// ```text
/// GET {target} HTTP/1.1
/// Host: {host:port, or the handler's Host}
/// User-Agent: kube-probe/1.34      (or the handler's; none if it is empty)
/// Accept: */*                      (unless the handler has an Accept)
/// Connection: close
/// {the handler's other headers, in order}
/// ```
///
/// As Go's client: the first `Host` and `User-Agent` win and are sent in
/// their place (an empty `Host` leaves the default); an `Accept` whose
/// first value is empty removes every `Accept`; `Content-Length`,
/// `Transfer-Encoding` and `Trailer` are never sent from the headers; a
/// value is trimmed of spaces and tabs; a name that is not a token or a
/// value with a control byte (CR, LF, ...) is an error, so the request
/// cannot be split.
pub(super) fn request(
    target: &str,
    addr: &str,
    headers: &[(String, String)],
    default_agent: &str,
) -> Result<Vec<u8>, String> {
    let mut named = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let name = canonical(name)?;
        if value.bytes().any(|b| (b < b' ' && b != b'\t') || b == 0x7f) {
            return Err(format!("net/http: invalid header field value for {name:?}"));
        }
        named.push((name, trim(value)));
    }
    let first = |wanted: &str| named.iter().find(|(n, _)| n == wanted).map(|(_, v)| *v);
    let host = first("Host").filter(|h| !h.is_empty()).unwrap_or(addr);
    let agent = first("User-Agent").unwrap_or(default_agent);
    let accept = first("Accept");
    let mut r = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n");
    if !agent.is_empty() {
        r.push_str(&format!("User-Agent: {agent}\r\n"));
    }
    if accept.is_none() {
        r.push_str("Accept: */*\r\n");
    }
    r.push_str("Connection: close\r\n");
    for (name, value) in &named {
        let skip = match name.as_str() {
            "Host" | "User-Agent" | "Content-Length" | "Transfer-Encoding" | "Trailer" => true,
            "Accept" => accept == Some(""),
            _ => false,
        };
        if !skip {
            r.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    r.push_str("\r\n");
    Ok(r.into_bytes())
}

/// The status code in an answer's status line (`line`, without its
/// `\n`), parsed by hand as Go's http.ReadResponse does, in its order:
/// `PROTO SP CODE [SP REASON]`, the code exactly three digits, the
/// protocol `HTTP/d.d`; the error is Go's (`malformed HTTP status code
/// "OK"`).
pub(super) fn status_code(line: &[u8]) -> Result<u32, String> {
    // What Go quotes of the line; cut short (a server may send anything).
    let quoted = |what: &str, bytes: &[u8]| {
        let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(100)]);
        format!("{what} {shown:?}")
    };
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let Some(sp) = line.iter().position(|b| *b == b' ') else {
        return Err(quoted("malformed HTTP response", line));
    };
    let (proto, rest) = (&line[..sp], &line[sp + 1..]);
    let status = &rest[rest.iter().take_while(|b| **b == b' ').count()..];
    let code = status.split(|b| *b == b' ').next().unwrap_or_default();
    if code.len() != 3 || !code.iter().all(u8::is_ascii_digit) {
        return Err(quoted("malformed HTTP status code", code));
    }
    let version = proto.len() == 8
        && proto.starts_with(b"HTTP/")
        && proto[5].is_ascii_digit()
        && proto[6] == b'.'
        && proto[7].is_ascii_digit();
    if !version {
        return Err(quoted("malformed HTTP version", proto));
    }
    Ok(code.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
}
