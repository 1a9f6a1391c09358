//! Registry credentials where podman and docker keep them:
//! containers-auth.json(5) files, Docker's `config.json`, and the
//! `docker-credential-*` helpers they name, looked up in containers/image's
//! order. Docker's `credsStore` (which containers/image ignores) is honoured
//! as Docker does, before the file's `auths`.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use base64::Engine;
use serde::Deserialize;

/// Credentials for one registry.
pub enum Credentials {
    /// HTTP Basic, or the password grant of a token endpoint.
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: String,
    },
    /// An OAuth2 refresh token (`identitytoken`, or a helper's `<token>`).
    IdentityToken(String),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Credentials::IdentityToken(_) => f.write_str("IdentityToken(<redacted>)"),
        }
    }
}

/// The outcome of [`lookup`].
#[derive(Debug)]
pub struct Lookup {
    /// What was found, if anything.
    pub credentials: Option<Credentials>,
    /// The auth files that exist and were read, in order (for messages).
    pub tried: Vec<PathBuf>,
    /// Where the credentials came from: a file, or a helper and its file.
    pub source: Option<String>,
}

/// An auth file, and whether it is the legacy `~/.dockercfg` format (a
/// bare map of hosts).
#[derive(Debug, Clone)]
struct AuthFile {
    path: PathBuf,
    legacy: bool,
    /// A pod's pull Secret: the file's contents, held in memory.
    secret: Option<SecretJson>,
}

/// The contents of a pull Secret; `Debug` never shows them.
#[derive(Clone)]
struct SecretJson(Vec<u8>);

impl fmt::Debug for SecretJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes>", self.0.len())
    }
}

/// A pod's `imagePullSecrets` entry: a Secret's `.dockerconfigjson` (type
/// `kubernetes.io/dockerconfigjson`) or legacy `.dockercfg`.
#[derive(Clone)]
pub struct PullSecret {
    /// The Secret's name.
    pub name: String,
    /// The key's value.
    pub json: Vec<u8>,
    /// `.dockercfg`: a bare map of registries.
    pub legacy: bool,
}

impl fmt::Debug for PullSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PullSecret")
            .field("name", &self.name)
            .field("legacy", &self.legacy)
            .finish()
    }
}

/// Where to look: the files in order, the `PATH` helpers are found on, and
/// how long a helper may take.
struct Sources {
    files: Vec<AuthFile>,
    path: Option<OsString>,
    timeout: Duration,
}

/// The largest auth file read, and the most a helper may print.
const MAX_FILE: u64 = 4 << 20;
const MAX_HELPER_OUTPUT: u64 = 64 << 10;
const HELPER_TIMEOUT: Duration = Duration::from_secs(30);

/// Credentials for `registry` (a reference's domain: `docker.io`,
/// `localhost:5000`) and `repository` (its path). See [`default_files`] for
/// the files; within each, in order: its `credHelpers` entry for the
/// registry, Docker's `credsStore`, then `auths` keys from the most
/// specific (`host/namespace/repo`) to the host, then keys written as URLs
/// (`https://index.docker.io/v1/`). The first file with credentials wins.
pub fn lookup(registry: &str, repository: &str) -> Result<Lookup> {
    lookup_with(&[], registry, repository)
}

/// As [`lookup`], the pod's pull Secrets first, as the kubelet tries them
/// before the node's own credentials (their `auths` only: a Secret never
/// names a helper for the host to run).
pub fn lookup_with(secrets: &[PullSecret], registry: &str, repository: &str) -> Result<Lookup> {
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    let mut files: Vec<AuthFile> = secrets
        .iter()
        .map(|s| AuthFile {
            path: PathBuf::from(format!("the pull Secret {:?}", s.name)),
            legacy: s.legacy,
            secret: Some(SecretJson(s.json.clone())),
        })
        .collect();
    files.extend(default_files(
        |k| std::env::var_os(k).filter(|v| !v.is_empty()),
        uid,
    ));
    let sources = Sources {
        files,
        path: std::env::var_os("PATH"),
        timeout: HELPER_TIMEOUT,
    };
    lookup_in(&sources, registry, repository)
}

/// containers/image's auth files: `$REGISTRY_AUTH_FILE` alone when set;
/// else `$XDG_RUNTIME_DIR/containers/auth.json` (or
/// `/run/containers/$UID/auth.json`), `$XDG_CONFIG_HOME/containers/auth.json`
/// (or `~/.config/…`), `$DOCKER_CONFIG/config.json` (or
/// `~/.docker/config.json`), and the legacy `~/.dockercfg`.
fn default_files(var: impl Fn(&str) -> Option<OsString>, uid: u32) -> Vec<AuthFile> {
    let file = |p: PathBuf| AuthFile {
        path: p,
        legacy: false,
        secret: None,
    };
    if let Some(f) = var("REGISTRY_AUTH_FILE") {
        return vec![file(f.into())];
    }
    let home = var("HOME").map(PathBuf::from);
    let mut out = Vec::new();
    match var("XDG_RUNTIME_DIR").map(PathBuf::from) {
        // containers/image skips (with a warning) a runtime dir that is gone.
        Some(dir) if !dir.exists() => {}
        Some(dir) => out.push(file(dir.join("containers/auth.json"))),
        None => out.push(file(PathBuf::from(format!("/run/containers/{uid}/auth.json")))),
    }
    let config = var("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".config")));
    out.extend(config.map(|c| file(c.join("containers/auth.json"))));
    let docker = var("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".docker")));
    out.extend(docker.map(|d| file(d.join("config.json"))));
    out.extend(home.map(|h| AuthFile {
        path: h.join(".dockercfg"),
        legacy: true,
        secret: None,
    }));
    out
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct FileJson {
    auths: std::collections::BTreeMap<String, EntryJson>,
    #[serde(rename = "credHelpers")]
    cred_helpers: std::collections::BTreeMap<String, String>,
    #[serde(rename = "credsStore")]
    creds_store: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct EntryJson {
    auth: String,
    identitytoken: String,
}

fn lookup_in(src: &Sources, registry: &str, repository: &str) -> Result<Lookup> {
    let mut out = Lookup {
        credentials: None,
        tried: Vec::new(),
        source: None,
    };
    let key = format!("{registry}/{repository}");
    let wanted = normalize_registry(registry);
    for file in &src.files {
        let Some(json) = read_file(file)? else { continue };
        out.tried.push(file.path.clone());
        let shown = file.path.display();
        // 1. A helper for this registry, then Docker's default store.
        let helper = json.cred_helpers.get(registry).or_else(|| {
            json.cred_helpers
                .iter()
                .find(|(k, _)| normalize_key(k, true) == wanted)
                .map(|(_, v)| v)
        });
        let stores = helper.map(|h| (h, true)).into_iter().chain(
            Some(&json.creds_store)
                .filter(|s| !s.is_empty())
                .map(|s| (s, false)),
        );
        for (name, required) in stores {
            if let Some(c) = from_helper(src, name, registry, required)
                .with_context(|| format!("the credential helper {name:?} named in {shown}"))?
            {
                out.credentials = Some(c);
                out.source = Some(format!("docker-credential-{name} (named in {shown})"));
                return Ok(out);
            }
        }
        // 2. `auths`: exact keys from the most specific, then URL forms.
        let mut exact = Vec::new();
        if file.legacy {
            exact.push(registry.to_string());
        } else {
            let mut k = key.as_str();
            loop {
                exact.push(k.to_string());
                match k.rfind('/') {
                    Some(i) => k = k.get(..i).unwrap_or(""),
                    None => break,
                }
            }
        }
        let entry = exact
            .iter()
            .find_map(|k| json.auths.get_key_value(k))
            .or_else(|| {
                json.auths
                    .iter()
                    .find(|(k, _)| normalize_key(k, file.legacy) == wanted)
            });
        if let Some((k, e)) = entry {
            if let Some(c) = decode(e).with_context(|| format!("{shown}: the entry {k:?}"))? {
                out.credentials = Some(c);
                out.source = Some(shown.to_string());
                return Ok(out);
            }
        }
    }
    Ok(out)
}

/// A file's contents; `None` when it does not exist.
fn read_file(file: &AuthFile) -> Result<Option<FileJson>> {
    let shown = file.path.display();
    let mut raw = Vec::new();
    if let Some(SecretJson(json)) = &file.secret {
        raw.clone_from(json);
    } else {
        let f = match std::fs::File::open(&file.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {shown}")),
        };
        f.take(MAX_FILE + 1)
            .read_to_end(&mut raw)
            .with_context(|| format!("reading {shown}"))?;
    }
    if raw.len() as u64 > MAX_FILE {
        bail!("{shown} is larger than {MAX_FILE} bytes; it is not an auth file");
    }
    let bad = || format!("{shown} is not a valid auth file (JSON as containers-auth.json(5) describes)");
    if file.legacy {
        let auths = serde_json::from_slice(&raw).with_context(bad)?;
        return Ok(Some(FileJson {
            auths,
            ..FileJson::default()
        }));
    }
    let mut json: FileJson = serde_json::from_slice(&raw).with_context(bad)?;
    if file.secret.is_some() {
        json.cred_helpers.clear();
        json.creds_store.clear();
    }
    Ok(Some(json))
}

/// An `auths` entry: `identitytoken` if set, else `auth`'s base64
/// `user:password`. An empty entry (Docker's marker for a helper) is none.
fn decode(e: &EntryJson) -> Result<Option<Credentials>> {
    if !e.identitytoken.is_empty() {
        return Ok(Some(Credentials::IdentityToken(e.identitytoken.clone())));
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(e.auth.trim())
        .ok()
        .context("\"auth\" is not base64")?;
    let text = String::from_utf8(raw)
        .ok()
        .context("\"auth\" is not UTF-8 text")?;
    Ok(text.split_once(':').map(|(user, pass)| Credentials::Basic {
        username: user.to_string(),
        password: pass.trim_matches('\0').to_string(),
    }))
}

/// containers/image's key normalisation: `http(s)://host/…` (and, here,
/// Docker's `host/v1/`, `host/v2` forms) mean `host`; Docker Hub's names
/// are one.
fn normalize_key(key: &str, host_only: bool) -> String {
    let stripped = key
        .strip_prefix("http://")
        .or_else(|| key.strip_prefix("https://"));
    let api = key
        .split_once('/')
        .is_some_and(|(_, p)| matches!(p.trim_end_matches('/'), "v1" | "v2") || p.is_empty());
    let host = match stripped {
        Some(s) => s.split('/').next().unwrap_or(s),
        None if host_only || api => key.split('/').next().unwrap_or(key),
        None => key,
    };
    normalize_registry(host)
}

fn normalize_registry(registry: &str) -> String {
    match registry {
        "docker.io" | "registry-1.docker.io" => "index.docker.io".to_string(),
        r => r.to_string(),
    }
}

/// Asks `docker-credential-NAME` for `registry`. Docker Hub is asked as
/// Docker names it (`https://index.docker.io/v1/`), then as podman does
/// (`docker.io`). A helper that is not installed is an error when a
/// `credHelpers` entry names it (`required`), and skipped for a
/// `credsStore`, which podman ignores.
fn from_helper(src: &Sources, name: &str, registry: &str, required: bool) -> Result<Option<Credentials>> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !valid {
        bail!("{name:?} is not a credential helper name");
    }
    let program = format!("docker-credential-{name}");
    let Some(exe) = find_on_path(&program, src.path.as_deref()) else {
        if required {
            bail!("{program} is not on PATH: install it, or remove the entry");
        }
        return Ok(None);
    };
    let servers: &[&str] = if registry == "docker.io" {
        &["https://index.docker.io/v1/", "docker.io"]
    } else {
        &[registry]
    };
    for server in servers {
        if let Some(c) = run_helper(&exe, server, src.timeout)? {
            return Ok(Some(c));
        }
    }
    Ok(None)
}

fn find_on_path(program: &str, path: Option<&OsStr>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path?)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(program))
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

#[derive(Deserialize)]
struct HelperJson {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// Runs `exe get` with `server` on stdin, in its own process group (killed
/// whole at the deadline), reading at most [`MAX_HELPER_OUTPUT`] of each
/// output stream. "credentials not found" on a failure means none.
fn run_helper(exe: &Path, server: &str, timeout: Duration) -> Result<Option<Credentials>> {
    let shown = exe.display();
    let mut cmd = Command::new(exe);
    cmd.arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = spawn_retrying(&mut cmd).with_context(|| format!("running {shown}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading closes the pipe: not our error.
        let _ = stdin.write_all(server.as_bytes());
    }
    let (tx, rx) = mpsc::channel();
    for (i, pipe) in [
        child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>),
        child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .enumerate()
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(p) = pipe {
                let _ = p.take(MAX_HELPER_OUTPUT + 1).read_to_end(&mut buf);
            }
            let _ = tx.send((i, buf));
        });
    }
    let deadline = Instant::now() + timeout;
    let kill = |pid: u32| {
        if let Ok(pid) = libc::pid_t::try_from(pid) {
            // SAFETY: kill has no memory-safety preconditions; the negative
            // pid is the process group the helper leads (process_group(0)).
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
    };
    let status = loop {
        match child.try_wait().with_context(|| format!("waiting for {shown}"))? {
            Some(s) => break s,
            None if Instant::now() >= deadline => {
                kill(child.id());
                let _ = child.wait();
                bail!("{shown} did not answer within {}s", timeout.as_secs_f32());
            }
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    let mut outputs = [Vec::new(), Vec::new()];
    for _ in 0..2 {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(100));
        let Ok((i, buf)) = rx.recv_timeout(left) else {
            // A child of the helper holds the pipe open; while it lives the
            // group id cannot be reused, so this reaches only that group.
            kill(child.id());
            bail!("{shown} exited but its children kept its output open past the deadline");
        };
        if let Some(o) = outputs.get_mut(i) {
            *o = buf;
        }
    }
    let [stdout, stderr] = outputs;
    if stdout.len() as u64 > MAX_HELPER_OUTPUT || stderr.len() as u64 > MAX_HELPER_OUTPUT {
        bail!("{shown} printed more than {MAX_HELPER_OUTPUT} bytes");
    }
    if !status.success() {
        let said = String::from_utf8_lossy(if stdout.trim_ascii().is_empty() {
            &stderr
        } else {
            &stdout
        });
        let said = said.trim();
        if said.to_ascii_lowercase().contains("credentials not found") {
            return Ok(None);
        }
        let brief: String = said.chars().take(200).collect();
        bail!("{shown} get {server:?} failed ({status}): {brief}");
    }
    let answer: HelperJson = serde_json::from_slice(&stdout)
        .ok()
        .with_context(|| format!("{shown} did not answer with JSON {{\"Username\", \"Secret\"}}"))?;
    Ok(match (answer.username.as_str(), answer.secret) {
        (_, s) if s.is_empty() => None,
        ("<token>", s) => Some(Credentials::IdentityToken(s)),
        (u, s) => Some(Credentials::Basic {
            username: u.to_string(),
            password: s,
        }),
    })
}

/// Spawns, retrying briefly on ETXTBSY (a script just written, while
/// another thread forked with its descriptor open).
fn spawn_retrying(cmd: &mut Command) -> std::io::Result<std::process::Child> {
    let mut tries = 0;
    loop {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 20 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            r => return r,
        }
    }
}

// Tables, one case a line.
#[rustfmt::skip]
#[cfg(test)]
mod tests;
