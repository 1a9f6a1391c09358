//! `WWW-Authenticate` challenges as registries send them (RFC 7235), and
//! the bearer token exchange of the distribution token protocol: the token
//! endpoint's URL and its JSON answer.
//!
//! The header parser is hand-written rather than a crate: the grammar is a
//! few lines of RFC 7235, the HTTP crates in the tree do not expose one, and
//! the value comes from the network, so it must be bounded and never panic,
//! which is easier to check in eighty lines than in a dependency.

use std::fmt;

use anyhow::{bail, Context, Result};

/// One challenge of a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// `Bearer realm="…",service="…",scope="…"`: fetch a token from `realm`.
    /// `realm` is empty when the registry sent none.
    Bearer {
        /// The token endpoint.
        realm: String,
        /// The `service` parameter to pass back.
        service: Option<String>,
        /// The scope the registry asks for (`repository:org/app:pull`).
        scope: Option<String>,
    },
    /// `Basic realm="…"`: send the username and password.
    Basic,
    /// Any other scheme, lowercased (`negotiate`, `digest`).
    Other(String),
}

/// The part of a header value looked at: registries send a few hundred
/// bytes, so anything beyond this is not a challenge worth reading.
const MAX_HEADER: usize = 16 << 10;
/// The most challenges read from one header value.
const MAX_CHALLENGES: usize = 32;

/// Every challenge in `header`, in order. Scheme and parameter names are
/// case-insensitive; values are tokens or quoted strings with backslash
/// escapes; a parameter given twice keeps its last value (as Docker's
/// parser does); what cannot be read is skipped up to the next comma.
pub fn parse(header: &str) -> Vec<Challenge> {
    let mut end = header.len().min(MAX_HEADER);
    while !header.is_char_boundary(end) {
        end -= 1;
    }
    let mut p = Parser {
        s: &header.as_bytes()[..end],
        i: 0,
    };
    let mut out = Vec::new();
    while p.i < p.s.len() && out.len() < MAX_CHALLENGES {
        p.skip(|b| b == b',' || is_ws(b));
        let Some(scheme) = p.token() else {
            // Not a scheme: skip to the next element.
            p.i += 1;
            p.skip(|b| b != b',');
            continue;
        };
        let scheme = scheme.to_ascii_lowercase();
        let mut params: Vec<(String, String)> = Vec::new();
        if p.skip(is_ws) > 0 {
            if let Some((name, value)) = p.param() {
                params.push((name, value));
                loop {
                    let save = p.i;
                    p.skip(is_ws);
                    if p.peek() != Some(b',') {
                        p.i = save;
                        break;
                    }
                    p.skip(|b| b == b',' || is_ws(b));
                    let at = p.i;
                    match p.param() {
                        Some(kv) => params.push(kv),
                        None => {
                            // The next challenge's scheme (or garbage).
                            p.i = at;
                            break;
                        }
                    }
                }
            } else {
                // token68 (`Basic dXNlcg==`) or garbage: nothing we use.
                p.skip(|b| b != b',');
            }
        }
        let get = |k: &str| params.iter().rev().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        out.push(match scheme.as_str() {
            "bearer" => Challenge::Bearer {
                realm: get("realm").unwrap_or_default(),
                service: get("service"),
                scope: get("scope"),
            },
            "basic" => Challenge::Basic,
            _ => Challenge::Other(scheme),
        });
    }
    out
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    /// Skips bytes matching `f`; returns how many.
    fn skip(&mut self, f: impl Fn(u8) -> bool) -> usize {
        let start = self.i;
        while self.peek().is_some_and(&f) {
            self.i += 1;
        }
        self.i - start
    }

    /// An RFC 7230 token.
    fn token(&mut self) -> Option<String> {
        let start = self.i;
        self.skip(is_tchar);
        let t = self.s.get(start..self.i)?;
        (!t.is_empty()).then(|| String::from_utf8_lossy(t).into_owned())
    }

    /// `name BWS "=" BWS (token / quoted-string)`; on failure the position
    /// is unspecified (callers restore it).
    fn param(&mut self) -> Option<(String, String)> {
        let name = self.token()?.to_ascii_lowercase();
        self.skip(is_ws);
        if self.peek() != Some(b'=') {
            return None;
        }
        self.i += 1;
        self.skip(is_ws);
        if self.peek() == Some(b'"') {
            self.i += 1;
            let mut v = Vec::new();
            loop {
                match self.peek()? {
                    b'"' => break,
                    b'\\' => {
                        self.i += 1;
                        v.push(self.peek()?);
                    }
                    b => v.push(b),
                }
                self.i += 1;
            }
            self.i += 1;
            return Some((name, String::from_utf8_lossy(&v).into_owned()));
        }
        // A token, read leniently: some servers leave URLs unquoted.
        let start = self.i;
        self.skip(|b| b != b',' && b != b'"' && !is_ws(b));
        let v = self.s.get(start..self.i)?;
        (!v.is_empty()).then(|| (name, String::from_utf8_lossy(v).into_owned()))
    }
}

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The longest realm accepted.
const MAX_REALM: usize = 4096;

/// The token endpoint: `realm` (http or https) with `service` and each of
/// `scopes` appended as query parameters, percent-encoded (after any query
/// the realm already has; a fragment is dropped).
pub fn token_url(realm: &str, service: Option<&str>, scopes: &[String]) -> Result<String> {
    if realm.is_empty() {
        bail!("the registry's Bearer challenge has no realm (token endpoint)");
    }
    if realm.len() > MAX_REALM || realm.bytes().any(|b| b <= b' ' || b == 0x7f) {
        bail!("the registry's token realm is not a URL (too long, or spaces or control characters)");
    }
    let lower = realm.get(..8).unwrap_or(realm).to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &realm[8..]
    } else if lower.starts_with("http://") {
        &realm[7..]
    } else {
        bail!("the registry's token realm {realm:?} is not an http or https URL");
    };
    if rest.split(['/', '?', '#']).next().unwrap_or("").is_empty() {
        bail!("the registry's token realm {realm:?} has no host");
    }
    let base = realm.split('#').next().unwrap_or(realm);
    let mut url = base.to_string();
    let mut sep = match base.find('?') {
        None => '?',
        Some(_) if base.ends_with(['?', '&']) => '\0',
        Some(_) => '&',
    };
    let params = service
        .map(|s| ("service", s))
        .into_iter()
        .chain(scopes.iter().map(|s| ("scope", s.as_str())));
    for (k, v) in params {
        if sep != '\0' {
            url.push(sep);
        }
        sep = '&';
        url.push_str(k);
        url.push('=');
        percent_encode(v, &mut url);
    }
    Ok(url)
}

/// RFC 3986 percent-encoding of everything but the unreserved characters.
fn percent_encode(s: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
}

/// A bearer token from a token endpoint.
pub struct Token {
    /// The token, for `Authorization: Bearer …`.
    pub token: String,
    /// Its lifetime in seconds as the endpoint gave it (the protocol says
    /// 60 when absent; that default is the caller's).
    pub expires_in: Option<u64>,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("token", &format_args!("<{} bytes>", self.token.len()))
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// The largest token response read.
const MAX_TOKEN_BODY: usize = 1 << 20;

/// The token in a token endpoint's JSON body: `token`, else `access_token`
/// (OAuth2's name, which some endpoints send alone). The token must be
/// printable ASCII, since it goes into a header.
pub fn token_from_response(body: &[u8]) -> Result<Token> {
    if body.len() > MAX_TOKEN_BODY {
        bail!("the token endpoint's answer is larger than {MAX_TOKEN_BODY} bytes");
    }
    let v: serde_json::Value =
        serde_json::from_slice(body).context("the token endpoint's answer is not JSON")?;
    let field = |k: &str| v.get(k).and_then(|t| t.as_str()).filter(|t| !t.is_empty());
    let Some(token) = field("token").or_else(|| field("access_token")) else {
        bail!("the token endpoint's answer has neither \"token\" nor \"access_token\"");
    };
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        bail!("the token endpoint's token has characters a header cannot carry");
    }
    Ok(Token {
        token: token.to_string(),
        expires_in: v.get("expires_in").and_then(|e| e.as_u64()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(realm: &str, service: Option<&str>, scope: Option<&str>) -> Challenge {
        Challenge::Bearer {
            realm: realm.into(),
            service: service.map(Into::into),
            scope: scope.map(Into::into),
        }
    }

    #[test]
    fn parses_challenges() {
        let hub = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#;
        let cases: Vec<(&str, Vec<Challenge>)> = vec![
            (
                hub,
                vec![bearer(
                    "https://auth.docker.io/token",
                    Some("registry.docker.io"),
                    Some("repository:library/busybox:pull"),
                )],
            ),
            (r#"Basic realm="Registry Realm""#, vec![Challenge::Basic]),
            (r#"bAsIc REALM="x""#, vec![Challenge::Basic]),
            ("Basic", vec![Challenge::Basic]),
            (
                r#"BEARER Realm = "https://a/t" , SERVICE=reg"#,
                vec![bearer("https://a/t", Some("reg"), None)],
            ),
            // Escapes, and a comma inside a quoted scope.
            (
                r#"Bearer realm="https://a/\"t\\",scope="repository:a:pull,push""#,
                vec![bearer(r#"https://a/"t\"#, None, Some("repository:a:pull,push"))],
            ),
            // Several challenges in one header.
            (
                r#"Basic realm="r", Bearer realm="https://t/", Negotiate"#,
                vec![
                    Challenge::Basic,
                    bearer("https://t/", None, None),
                    Challenge::Other("negotiate".into()),
                ],
            ),
            (
                r#"Negotiate abc==, Bearer realm=https://t/token"#,
                vec![
                    Challenge::Other("negotiate".into()),
                    bearer("https://t/token", None, None),
                ],
            ),
            // The last of a repeated parameter wins.
            (r#"Bearer realm="a",realm="b""#, vec![bearer("b", None, None)]),
            ("Bearer service=x", vec![bearer("", Some("x"), None)]),
            // Unterminated quote: the parameter is dropped.
            (r#"Bearer realm="https://a"#, vec![bearer("", None, None)]),
            ("", vec![]),
            (" , ,", vec![]),
            ("\"garbage\", Basic", vec![Challenge::Basic]),
        ];
        for (header, want) in cases {
            assert_eq!(parse(header), want, "{header}");
        }
    }

    #[test]
    fn parse_is_bounded_and_total_on_random_bytes() {
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            // xorshift64*
            seed ^= seed >> 12;
            seed ^= seed << 25;
            seed ^= seed >> 27;
            seed.wrapping_mul(0x2545_F491_4F6C_DD1D)
        };
        let alphabet = b"Bearer Basic realm=\"\\,= \t\xc3\xa9scope\x00\x7f";
        for _ in 0..20_000 {
            let len = (next() % 80) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    let r = next();
                    if r % 2 == 0 {
                        alphabet[(r >> 8) as usize % alphabet.len()]
                    } else {
                        (r >> 16) as u8
                    }
                })
                .collect();
            let s = String::from_utf8_lossy(&bytes);
            let got = parse(&s);
            assert!(got.len() <= MAX_CHALLENGES);
        }
        let huge = "Bearer realm=\"x\", ".repeat(10_000) + "é";
        assert_eq!(parse(&huge).len(), MAX_CHALLENGES);
        let long = "é".repeat(MAX_HEADER);
        assert!(parse(&long).is_empty());
    }

    #[test]
    fn builds_token_urls() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let ok: Vec<(&str, Option<&str>, Vec<String>, &str)> = vec![
            (
                "https://auth.docker.io/token",
                Some("registry.docker.io"),
                s(&["repository:library/busybox:pull"]),
                "https://auth.docker.io/token?service=registry.docker.io&scope=repository%3Alibrary%2Fbusybox%3Apull",
            ),
            ("http://localhost:5000/t", None, vec![], "http://localhost:5000/t"),
            ("HTTPS://a/t?x=1#frag", Some("a b"), s(&["s1", "s2"]), "HTTPS://a/t?x=1&service=a%20b&scope=s1&scope=s2"),
            ("https://a/t?", None, s(&["é"]), "https://a/t?scope=%C3%A9"),
        ];
        for (realm, service, scopes, want) in ok {
            assert_eq!(token_url(realm, service, &scopes).unwrap(), want, "{realm}");
        }
        for bad in [
            "",
            "ftp://a/t",
            "https://",
            "https:///t",
            "/token",
            "https://a/ t",
            "https://a/\n",
        ] {
            assert!(token_url(bad, None, &[]).is_err(), "{bad:?}");
        }
        assert!(token_url(&format!("https://a/{}", "x".repeat(MAX_REALM)), None, &[]).is_err());
    }

    #[test]
    fn reads_token_responses() {
        let t = token_from_response(br#"{"token":"abc","expires_in":300,"issued_at":"x"}"#).unwrap();
        assert_eq!((t.token.as_str(), t.expires_in), ("abc", Some(300)));
        let t = token_from_response(br#"{"access_token":"xyz"}"#).unwrap();
        assert_eq!((t.token.as_str(), t.expires_in), ("xyz", None));
        let t = token_from_response(br#"{"token":"","access_token":"b","expires_in":-1}"#).unwrap();
        assert_eq!((t.token.as_str(), t.expires_in), ("b", None));
        for bad in [
            &b"{}"[..],
            b"not json",
            b"[]",
            br#"{"token":3}"#,
            b"{\"token\":\"a\\r\\nX: y\"}",
        ] {
            assert!(
                token_from_response(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let secret = token_from_response(br#"{"token":"s3cr3t"}"#).unwrap();
        assert!(!format!("{secret:?}").contains("s3cr3t"));
    }
}
