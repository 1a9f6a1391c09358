//! The pull side of the OCI distribution protocol over HTTP(S): one
//! endpoint's manifests and blobs, with the registry's token or basic
//! authentication.
//!
//! A small client on `ureq` (blocking, rustls) rather than `oci-client`:
//! pod1 is synchronous (`oci-client` brings tokio and reqwest for what is
//! three GET requests), and the parts it would not do are the ones pod1
//! needs to control: registries.conf endpoints and mirrors, which scheme a
//! loopback or `insecure` registry may use, the trust store with
//! `certs.d`, resumed downloads into the store, and error messages that
//! name the host, the reference and the auth files tried.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use sha2::{Digest, Sha256, Sha512};

use super::auth::{self, Credentials};
use super::challenge::{self, Challenge};
use super::config::{is_loopback, Endpoint};
pub use super::errors::Error;
use super::errors::{self, describe, status_error};
use crate::tree::hex;

/// What a manifest request accepts: OCI and Docker schema 2 manifests and
/// indexes (schema 1 is long gone from registries and is refused).
pub const MANIFEST_TYPES: [&str; 4] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// A manifest body larger than this is refused (containerd and
/// containers/image use the same bound).
const MAX_MANIFEST: u64 = 4 << 20;
/// Token responses and error bodies are small.
pub(super) const MAX_SMALL_BODY: u64 = 1 << 20;
/// How an endpoint is spoken to, in the order tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Https,
    /// TLS without verification: `insecure = true` registries only.
    HttpsUnverified,
    /// Plain HTTP: `insecure = true` registries and loopback addresses.
    Http,
}

impl Scheme {
    fn url(self) -> &'static str {
        match self {
            Scheme::Https | Scheme::HttpsUnverified => "https",
            Scheme::Http => "http",
        }
    }
}

/// A manifest or index as the registry served it.
#[derive(Debug)]
pub struct Manifest {
    /// Its bytes, verbatim: its digest is theirs.
    pub bytes: Vec<u8>,
    /// Its media type (Content-Type, else the body's `mediaType`).
    pub media_type: String,
    /// `sha256:…` of the bytes (or the algorithm of the digest asked for).
    pub digest: String,
}

/// Where a blob's bytes go: a partial download that may already hold
/// its first bytes.
pub trait Sink: Write {
    /// The bytes already held (an HTTP range asks for the rest).
    fn offset(&self) -> u64;
    /// Forget them: the registry sends the whole blob.
    fn restart(&mut self) -> std::io::Result<()>;
}

/// Where an endpoint's credentials came from, for messages.
#[derive(Debug)]
struct Found {
    source: Option<String>,
    tried: Vec<std::path::PathBuf>,
}

impl Found {
    fn tried(&self) -> String {
        match self.tried.as_slice() {
            [] => "no auth file exists".to_string(),
            files => format!(
                "there are none in {}",
                files
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// A registry client; shared by the threads of one pull. Its `Debug`
/// shows no credentials or tokens.
pub struct Client {
    verified: ureq::Agent,
    unverified: ureq::Agent,
    schemes: Mutex<HashMap<String, Scheme>>,
    /// `Authorization` values per (host, repository).
    authorizations: Mutex<HashMap<(String, String), String>>,
    /// The pod's `imagePullSecrets`, tried before the host's auth files.
    pull_secrets: Vec<auth::PullSecret>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("schemes", &*lock(&self.schemes))
            .field("pull_secrets", &self.pull_secrets)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client trusting the system's certificates (and `SSL_CERT_FILE` /
    /// `SSL_CERT_DIR`) plus every CA in the `certs.d` directories.
    pub fn new() -> anyhow::Result<Client> {
        let roots = super::tls::trust_roots()?;
        let agent = |verify: bool| {
            let tls = ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::new_with_certs(&roots))
                .disable_verification(!verify)
                .build();
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                // Blob storage redirects (S3, a CDN) never see the registry's credentials.
                .redirect_auth_headers(ureq::config::RedirectAuthHeaders::Never)
                .tls_config(tls)
                .user_agent(concat!("pod1/", env!("CARGO_PKG_VERSION")))
                .timeout_connect(Some(Duration::from_secs(30)))
                .timeout_recv_response(Some(Duration::from_secs(60)))
                .timeout_per_read(Some(Duration::from_secs(60)))
                .build()
                .new_agent()
        };
        Ok(Client {
            verified: agent(true),
            unverified: agent(false),
            schemes: Mutex::default(),
            authorizations: Mutex::default(),
            pull_secrets: Vec::new(),
        })
    }

    /// Credentials from a pod's pull Secrets come first.
    pub fn with_pull_secrets(mut self, secrets: Vec<auth::PullSecret>) -> Client {
        self.pull_secrets = secrets;
        self
    }

    /// The manifest or index `reference` (a tag or a digest) of `ep`'s
    /// repository; a digest is verified.
    pub fn manifest(&self, ep: &Endpoint, reference: &str) -> Result<Manifest, Error> {
        let what = format!("{}/{}:{reference}", ep.host, ep.repository).replace(":sha", "@sha");
        let mut resp = self.get(
            ep,
            &format!("manifests/{reference}"),
            &MANIFEST_TYPES.join(", "),
            None,
        )?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err(status_error(status, &mut resp, &format!("the manifest {what}")));
        }
        let content_type =
            header(&resp, "content-type").map(|t| t.split(';').next().unwrap_or("").trim().to_string());
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(MAX_MANIFEST)
            .read_to_vec()
            .map_err(|e| {
                Error::Transient(format!("reading the manifest {what}: {}", describe(&e, &ep.host)))
            })?;
        let algorithm = match reference.split_once(':') {
            Some(("sha512", _)) => "sha512",
            _ => "sha256",
        };
        let digest = match algorithm {
            "sha512" => format!("sha512:{}", hex(&Sha512::digest(&bytes))),
            _ => format!("sha256:{}", hex(&Sha256::digest(&bytes))),
        };
        if reference.contains(':') && digest != reference {
            return Err(Error::Invalid(format!(
                "{} served {what} with digest {digest}: the manifest is corrupt or forged, and was discarded",
                ep.host
            )));
        }
        let media_type = match content_type.filter(|t| MANIFEST_TYPES.contains(&t.as_str())) {
            Some(t) => t,
            None => serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v.get("mediaType")?.as_str().map(str::to_string))
                .unwrap_or_default(),
        };
        Ok(Manifest {
            bytes,
            media_type,
            digest,
        })
    }

    /// Downloads blob `digest` of `size` bytes into `out`, continuing
    /// after the bytes it already holds when the registry honours a range
    /// (else `out` is restarted). `progress` gets the bytes held so far.
    /// The caller verifies the digest.
    pub fn blob(
        &self,
        ep: &Endpoint,
        digest: &str,
        size: u64,
        out: &mut dyn Sink,
        progress: &dyn Fn(u64),
    ) -> Result<(), Error> {
        let offset = out.offset();
        let what = format!("blob {digest} of {}/{}", ep.host, ep.repository);
        let range = (offset > 0 && offset < size).then_some(offset);
        let mut resp = self.get(ep, &format!("blobs/{digest}"), "*/*", range)?;
        let mut held = match resp.status().as_u16() {
            // The rest, from where it was asked for (a registry that sends
            // another range would corrupt the blob).
            206 if range.is_some()
                && header(&resp, "content-range")
                    .is_some_and(|r| r.starts_with(&format!("bytes {offset}-"))) =>
            {
                offset
            }
            200 => {
                if offset > 0 {
                    out.restart().map_err(|e| Error::Local(format!("{what}: {e}")))?;
                }
                0
            }
            status => return Err(status_error(status, &mut resp, &what)),
        };
        let mut body = resp.into_body().into_reader();
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = body
                .read(&mut buf)
                .map_err(|e| Error::Transient(format!("downloading {what}: {e}")))?;
            if n == 0 {
                break;
            }
            held += n as u64;
            if held > size {
                return Err(Error::Invalid(format!(
                    "{} sent more than the {size} bytes of {what}: discarded",
                    ep.host
                )));
            }
            out.write_all(&buf[..n]).map_err(|e| {
                let hint = match e.kind() {
                    std::io::ErrorKind::StorageFull => {
                        ": free some space or move the store with POD1_CACHE (the partial download is kept, and the next pull resumes it)"
                    }
                    _ => "",
                };
                Error::Local(format!("writing {what} into the store: {e}{hint}"))
            })?;
            progress(held);
        }
        if held < size {
            return Err(Error::Transient(format!(
                "{} ended {what} after {held} of {size} bytes",
                ep.host
            )));
        }
        Ok(())
    }

    /// A GET of `/v2/<repository>/<path>`, authenticated as the registry asks.
    fn get(
        &self,
        ep: &Endpoint,
        path: &str,
        accept: &str,
        range: Option<u64>,
    ) -> Result<ureq::http::Response<ureq::Body>, Error> {
        let scheme = self.scheme(ep)?;
        let url = format!("{}://{}/v2/{}/{path}", scheme.url(), ep.host, ep.repository);
        let key = (ep.host.clone(), ep.repository.clone());
        let send = |authorization: Option<&str>| {
            let mut req = self.agent(scheme).get(&url).header("Accept", accept);
            if let Some(a) = authorization {
                req = req.header("Authorization", a);
            }
            if let Some(from) = range {
                req = req.header("Range", format!("bytes={from}-"));
            }
            req.call().map_err(|e| Error::Transient(describe(&e, &ep.host)))
        };
        let known = lock(&self.authorizations).get(&key).cloned();
        let resp = send(known.as_deref())?;
        if resp.status().as_u16() != 401 {
            return Ok(resp);
        }
        let challenges: Vec<Challenge> = resp
            .headers()
            .get_all("www-authenticate")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(challenge::parse)
            .collect();
        let (authorization, found) = self.authorize(ep, scheme, &challenges)?;
        lock(&self.authorizations).insert(key, authorization.clone());
        let resp = send(Some(&authorization))?;
        let registry = auth_registry(&ep.host);
        match resp.status().as_u16() {
            401 => Err(Error::Denied(match &found.source {
                Some(source) => format!(
                    "{} refused the credentials for {registry} from {source} (401): check them with `podman login {registry}` or `docker login {registry}`",
                    ep.host
                ),
                None => format!(
                    "{} requires credentials for {} (401): {}; log in with `podman login {registry}` or `docker login {registry}`",
                    ep.host,
                    ep.repository,
                    found.tried()
                ),
            })),
            _ => Ok(resp),
        }
    }

    /// The `Authorization` value answering the registry's challenges, and
    /// where its credentials came from.
    fn authorize(
        &self,
        ep: &Endpoint,
        scheme: Scheme,
        challenges: &[Challenge],
    ) -> Result<(String, Found), Error> {
        let registry = auth_registry(&ep.host);
        let lookup = auth::lookup_with(&self.pull_secrets, registry, &ep.repository)
            .map_err(|e| Error::Denied(format!("reading the credentials for {registry}: {e:#}")))?;
        let found = Found {
            source: lookup.source,
            tried: lookup.tried,
        };
        let credentials = lookup.credentials;
        for c in challenges {
            match c {
                Challenge::Bearer {
                    realm,
                    service,
                    scope,
                } => {
                    let scope = scope
                        .clone()
                        .unwrap_or_else(|| format!("repository:{}:pull", ep.repository));
                    let token = self.token(
                        ep,
                        scheme,
                        realm,
                        service.as_deref(),
                        &scope,
                        credentials.as_ref(),
                    )?;
                    return Ok((token, found));
                }
                Challenge::Basic => {
                    return match &credentials {
                        Some(Credentials::Basic { username, password }) => Ok((basic(username, password), found)),
                        _ => Err(Error::Denied(format!(
                            "{} asks for a user name and password for {registry} (401): {}; run `podman login {registry}` or `docker login {registry}`",
                            ep.host,
                            found.tried()
                        ))),
                    };
                }
                Challenge::Other(_) => {}
            }
        }
        Err(Error::Denied(format!(
            "{} asks for authentication (401) in a way pod1 does not speak (neither Bearer nor Basic)",
            ep.host
        )))
    }

    /// A bearer token from the registry's token service.
    fn token(
        &self,
        ep: &Endpoint,
        scheme: Scheme,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        credentials: Option<&Credentials>,
    ) -> Result<String, Error> {
        let agent = self.realm_agent(ep, scheme, realm)?;
        let denied = |status: u16| {
            Error::Denied(format!(
                "the token service of {} ({realm}) refused access to {} ({status}){}",
                ep.host,
                ep.repository,
                if credentials.is_some() {
                    String::new()
                } else {
                    format!(
                        ": the repository may be private; log in with `podman login {}`",
                        auth_registry(&ep.host)
                    )
                }
            ))
        };
        let resp = match credentials {
            Some(Credentials::IdentityToken(refresh)) => {
                let mut form = vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh.as_str()),
                    ("client_id", "pod1"),
                    ("scope", scope),
                ];
                if let Some(s) = service {
                    form.push(("service", s));
                }
                let url = challenge::token_url(realm, None, &[])
                    .map_err(|e| Error::Invalid(format!("{}: {e:#}", ep.host)))?;
                agent.post(&url).send_form(form)
            }
            other => {
                let url = challenge::token_url(realm, service, &[scope.to_string()])
                    .map_err(|e| Error::Invalid(format!("{}: {e:#}", ep.host)))?;
                let mut req = agent.get(&url);
                if let Some(Credentials::Basic { username, password }) = other {
                    req = req.header("Authorization", basic(username, password));
                }
                req.call()
            }
        };
        let mut resp = resp.map_err(|e| Error::Transient(describe(&e, realm)))?;
        match resp.status().as_u16() {
            200 => {}
            s @ (401 | 403) => return Err(denied(s)),
            s => {
                return Err(Error::Transient(format!(
                    "the token service {realm} answered {s}"
                )))
            }
        }
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_SMALL_BODY)
            .read_to_vec()
            .map_err(|e| Error::Transient(format!("reading a token from {realm}: {e}")))?;
        let token = challenge::token_from_response(&body)
            .map_err(|e| Error::Invalid(format!("the token service {realm}: {e:#}")))?;
        Ok(format!("Bearer {}", token.token))
    }

    /// How the token service at `realm` may be reached: HTTPS verified,
    /// unless it is the registry's own host reached unverified (an
    /// `insecure` registry); plain HTTP only where the registry itself may
    /// use it (its own host when `insecure`, or a loopback address).
    fn realm_agent(&self, ep: &Endpoint, scheme: Scheme, realm: &str) -> Result<&ureq::Agent, Error> {
        let (realm_scheme, rest) = realm.split_once("://").unwrap_or(("", realm));
        let host = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
        let same_host = host.eq_ignore_ascii_case(&ep.host);
        match realm_scheme.to_ascii_lowercase().as_str() {
            "https" if same_host && scheme == Scheme::HttpsUnverified => Ok(&self.unverified),
            "https" => Ok(&self.verified),
            "http" if is_loopback(host) || (same_host && ep.insecure) => Ok(&self.verified),
            "http" => Err(Error::Denied(format!(
                "{} sends its token requests to {}, in plain HTTP, which pod1 uses only for loopback addresses and registries marked insecure",
                ep.host,
                errors::printable(realm, 200)
            ))),
            _ => Err(Error::Invalid(format!(
                "{} names a token service that is not an HTTP(S) URL: {}",
                ep.host,
                errors::printable(realm, 200)
            ))),
        }
    }

    fn agent(&self, scheme: Scheme) -> &ureq::Agent {
        match scheme {
            Scheme::HttpsUnverified => &self.unverified,
            _ => &self.verified,
        }
    }

    /// How `ep` is spoken to: HTTPS with verified certificates; for an
    /// `insecure` registry then HTTPS unverified and HTTP; for a loopback
    /// address HTTP too (as Docker allows by default). Probed with
    /// `GET /v2/` once per host; an answer of 400 is a TLS server hit in
    /// plain HTTP and does not count.
    fn scheme(&self, ep: &Endpoint) -> Result<Scheme, Error> {
        if let Some(s) = lock(&self.schemes).get(&ep.host) {
            return Ok(*s);
        }
        let mut order = vec![Scheme::Https];
        if ep.insecure {
            order.push(Scheme::HttpsUnverified);
        }
        if ep.insecure || is_loopback(&ep.host) {
            order.push(Scheme::Http);
        }
        let mut failures = Vec::new();
        for scheme in order {
            let url = format!("{}://{}/v2/", scheme.url(), ep.host);
            match self.agent(scheme).get(&url).call() {
                Ok(resp) if resp.status().as_u16() != 400 => {
                    lock(&self.schemes).insert(ep.host.clone(), scheme);
                    return Ok(scheme);
                }
                Ok(resp) => failures.push(format!("{url} answered {}", resp.status().as_u16())),
                Err(e) => failures.push(format!("{url}: {}", describe(&e, &ep.host))),
            }
        }
        let hint = if ep.insecure || is_loopback(&ep.host) {
            ""
        } else {
            " (plain HTTP is used only for loopback addresses and registries marked insecure in registries.conf)"
        };
        Err(Error::Transient(format!(
            "cannot reach the registry {}: {}{hint}",
            ep.host,
            failures.join("; ")
        )))
    }
}

/// The registry name credentials are stored under for an endpoint host.
fn auth_registry(host: &str) -> &str {
    match host {
        "registry-1.docker.io" | "index.docker.io" => "docker.io",
        other => other,
    }
}

fn basic(username: &str, password: &str) -> String {
    let raw = format!("{username}:{password}");
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn header<'a>(resp: &'a ureq::http::Response<ureq::Body>, name: &str) -> Option<&'a str> {
    resp.headers().get(name)?.to_str().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(host: &str, insecure: bool) -> Endpoint {
        Endpoint {
            host: host.to_string(),
            repository: "team/app".to_string(),
            insecure,
            mirror: false,
        }
    }

    #[test]
    fn where_a_token_service_may_be_reached() {
        let c = Client::new().unwrap();
        let verified = |a: &ureq::Agent| std::ptr::eq(a, &c.verified);
        let secure = ep("registry.example.com", false);
        let insecure = ep("registry.example.com", true);
        // Verified HTTPS anywhere.
        assert!(verified(
            c.realm_agent(&secure, Scheme::Https, "https://auth.example.com/token")
                .unwrap()
        ));
        // Unverified only for the insecure registry's own host.
        let own = c.realm_agent(
            &insecure,
            Scheme::HttpsUnverified,
            "https://registry.example.com/token",
        );
        assert!(!verified(own.unwrap()));
        let other = c.realm_agent(
            &insecure,
            Scheme::HttpsUnverified,
            "https://auth.example.com/token",
        );
        assert!(verified(other.unwrap()));
        // Plain HTTP, in any case, only to loopback or the insecure registry itself.
        for realm in [
            "http://auth.example.com/t",
            "HTTP://auth.example.com/t",
            "hTtP://registry.example.com@evil.example/t",
        ] {
            let e = c
                .realm_agent(&secure, Scheme::Https, realm)
                .unwrap_err()
                .to_string();
            assert!(e.contains("in plain HTTP"), "{realm}: {e}");
        }
        assert!(c
            .realm_agent(&insecure, Scheme::Http, "HTTP://registry.example.com/t")
            .is_ok());
        assert!(c
            .realm_agent(&secure, Scheme::Https, "http://127.0.0.1:5001/t")
            .is_ok());
        assert!(c.realm_agent(&secure, Scheme::Https, "ftp://x/t").is_err());
        // No secret in Debug.
        lock(&c.authorizations).insert(("h".into(), "r".into()), "Basic c2VjcmV0".into());
        assert!(!format!("{c:?}").contains("c2VjcmV0"));
    }
}
