//! A real registry for the pull tests: Debian's `docker-registry` (CNCF
//! distribution 2.8) on a loopback port, filled with `skopeo copy`.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::{bin, fixtures, kernels, run};
use std::process::Output;

/// The machine's own non-loopback IPv4 address (the source of its default
/// route), for tests of what pod1 allows only on loopback.
pub fn own_address() -> String {
    let out = run(Command::new("ip").args(["-4", "route", "get", "1.1.1.1"]));
    let text = String::from_utf8(out.stdout).unwrap();
    let src = text.split_whitespace().skip_while(|w| *w != "src").nth(1);
    src.expect("a non-loopback IPv4 address (the machine has no default route)")
        .to_string()
}

/// A running registry, stopped when dropped.
#[derive(Debug)]
pub struct Registry {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// Its storage, config and (with TLS) certificate.
    pub dir: PathBuf,
    /// Whether it speaks TLS.
    pub tls: bool,
}

/// How to start one.
#[derive(Debug, Default, Clone, Copy)]
pub struct Options<'a> {
    /// TLS with this certificate and key (PEM files).
    pub tls: Option<(&'a Path, &'a Path)>,
    /// Basic authentication against this htpasswd file (bcrypt entries).
    pub htpasswd: Option<&'a Path>,
    /// Token authentication: (realm, service, root certificate of the tokens).
    pub token: Option<(&'a str, &'a str, &'a Path)>,
    /// The address to listen on instead of 127.0.0.1.
    pub ip: Option<&'a str>,
}

impl Registry {
    /// Starts a registry in `dir` (created) on a free loopback port.
    pub fn start(dir: &Path, opts: Options<'_>) -> Registry {
        std::fs::create_dir_all(dir.join("storage")).unwrap();
        let ip = opts.ip.unwrap_or("127.0.0.1");
        let port = TcpListener::bind((ip, 0)).unwrap().local_addr().unwrap().port();
        let addr = format!("{ip}:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
            dir.join("storage").display()
        );
        if let Some((cert, key)) = opts.tls {
            config += &format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            );
        }
        if let Some(file) = opts.htpasswd {
            config += &format!(
                "auth:\n  htpasswd:\n    realm: pod1-test\n    path: {}\n",
                file.display()
            );
        }
        if let Some((realm, service, root)) = opts.token {
            config += &format!(
                "auth:\n  token:\n    realm: {realm}\n    service: {service}\n    issuer: pod1-test-issuer\n    rootcertbundle: {}\n",
                root.display()
            );
        }
        std::fs::write(dir.join("config.yml"), config).unwrap();
        let log = std::fs::File::create(dir.join("registry.log")).unwrap();
        let mut child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("docker-registry (apt-get install docker-registry; scripts/setup.sh does)");
        let start = Instant::now();
        while TcpStream::connect(&addr).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "docker-registry exited ({status}): {}",
                    std::fs::read_to_string(dir.join("registry.log")).unwrap_or_default()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "docker-registry did not listen on {addr}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Registry {
            child,
            addr,
            dir: dir.to_path_buf(),
            tls: opts.tls.is_some(),
        }
    }

    /// `skopeo copy SOURCE docker://ADDR/REPO_TAG` with `extra` options
    /// (e.g. `--dest-creds`, `--dest-compress-format zstd`, `--all`).
    pub fn push(&self, source: &str, repo_tag: &str, extra: &[&str]) {
        run(Command::new("skopeo")
            .args(["--insecure-policy", "copy", "-q", "--dest-tls-verify=false"])
            .args(extra)
            .arg(source)
            .arg(format!("docker://{}/{repo_tag}", self.addr)));
    }

    /// The manifest of `repo_tag` as the registry serves it.
    pub fn manifest(&self, repo_tag: &str) -> serde_json::Value {
        let out = run(Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{}/{repo_tag}", self.addr)));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// The file holding blob `digest` in the registry's storage.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A CA and a server certificate it signed for 127.0.0.1 and localhost:
/// (ca, cert, key).
pub fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    crate::sh(&format!(
        "cd {d}
         openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=pod1-test-ca -keyout ca.key -out ca.pem 2>/dev/null
         openssl req -newkey rsa:2048 -nodes -subj /CN=pod1-test -keyout key.pem -out cert.csr 2>/dev/null
         printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\nbasicConstraints=CA:FALSE\\n' > ext
         openssl x509 -req -in cert.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile ext -out cert.pem 2>/dev/null",
        d = dir.display()
    ));
    (dir.join("ca.pem"), dir.join("cert.pem"), dir.join("key.pem"))
}

/// An htpasswd file with one bcrypt entry (glibc's crypt, from Python).
pub fn htpasswd(dir: &Path, user: &str, password: &str) -> PathBuf {
    let file = dir.join("htpasswd");
    let out = run(Command::new("python3").args([
        "-W",
        "ignore",
        "-c",
        "import crypt, sys; print(sys.argv[1] + ':' + crypt.crypt(sys.argv[2], crypt.mksalt(crypt.METHOD_BLOWFISH)))",
        user,
        password,
    ]));
    std::fs::write(&file, out.stdout).unwrap();
    file
}

/// A registry token service as distribution's `auth: token` expects one:
/// it checks a user's basic credentials and answers with a JWT (RS256,
/// the signing certificate in `x5c`) granting the scope asked for.
#[derive(Debug)]
pub struct TokenService {
    /// `http://127.0.0.1:PORT/token`.
    pub realm: String,
    /// Requests served, as `user scope` lines (user empty when anonymous).
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl TokenService {
    /// Serves tokens signed by `key` (with `cert`, self-signed) for the
    /// service `service`, to `user`:`password` only.
    pub fn start(cert: &Path, key: &Path, service: &str, user: &str, password: &str) -> TokenService {
        use std::io::{BufRead, BufReader, Write};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let realm = format!("http://{}/token", listener.local_addr().unwrap());
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (cert, key, service) = (cert.to_path_buf(), key.to_path_buf(), service.to_string());
        let expected = format!("Basic {}", b64(format!("{user}:{password}").as_bytes(), false));
        let served = log.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request = String::new();
                let _ = reader.read_line(&mut request);
                let mut authorized = None;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                        break;
                    }
                    if let Some(v) = line
                        .strip_prefix("Authorization: ")
                        .or(line.strip_prefix("authorization: "))
                    {
                        authorized = Some(v.trim() == expected);
                    }
                }
                let scope = request
                    .split(['?', '&', ' '])
                    .find_map(|p| p.strip_prefix("scope="))
                    .map(|s| s.replace("%3A", ":").replace("%2F", "/").replace("%2C", ","))
                    .unwrap_or_default();
                served.lock().unwrap().push(format!(
                    "{} {scope}",
                    match authorized {
                        Some(true) => "user",
                        Some(false) => "wrong",
                        None => "",
                    }
                ));
                let response = if authorized == Some(true) {
                    let body = format!(
                        "{{\"token\":\"{}\",\"expires_in\":300}}",
                        jwt(&cert, &key, &service, &scope)
                    );
                    format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
                } else {
                    "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
                };
                let _ = stream.write_all(response.as_bytes());
            }
        });
        TokenService { realm, log }
    }
}

/// A JWT for `scope` (`repository:NAME:ACTIONS`) signed with openssl.
fn jwt(cert: &Path, key: &Path, service: &str, scope: &str) -> String {
    let pem = std::fs::read_to_string(cert).unwrap();
    let der: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let header = format!("{{\"typ\":\"JWT\",\"alg\":\"RS256\",\"x5c\":[\"{der}\"]}}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut parts = scope.splitn(3, ':');
    let (kind, name, actions) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    let actions: Vec<String> = actions.split(',').map(|a| format!("\"{a}\"")).collect();
    let claims = format!(
        "{{\"iss\":\"pod1-test-issuer\",\"sub\":\"user\",\"aud\":\"{service}\",\"exp\":{},\"nbf\":{},\"iat\":{},\"jti\":\"{now}\",\"access\":[{{\"type\":\"{kind}\",\"name\":\"{name}\",\"actions\":[{}]}}]}}",
        now + 600,
        now - 60,
        now - 60,
        actions.join(",")
    );
    let signing_input = format!(
        "{}.{}",
        b64(header.as_bytes(), true),
        b64(claims.as_bytes(), true)
    );
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(signing_input.as_bytes())
            .unwrap();
    }
    let signature = child.wait_with_output().unwrap().stdout;
    format!("{signing_input}.{}", b64(&signature, true))
}

/// Base64, standard or URL-safe without padding (JWT).
fn b64(data: &[u8], url: bool) -> String {
    let table: &[u8] = if url {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    } else {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    };
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(table[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
        if !url {
            for _ in chunk.len()..3 {
                out.push('=');
            }
        }
    }
    out
}

/// One test's world: a store, configuration files and environment.
#[derive(Debug)]
pub struct World {
    /// Its directory: the store (`cache/`), registries.conf, auth.json.
    pub dir: PathBuf,
}

impl World {
    pub fn new(name: &str) -> World {
        let dir = fixtures().join(format!("registry-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("xdg")).unwrap();
        std::fs::write(dir.join("registries.conf"), "").unwrap();
        World { dir }
    }

    pub fn config(&self, text: &str) {
        std::fs::write(self.dir.join("registries.conf"), text).unwrap();
    }

    /// `pod1 ARGS` in this world, with `env` on top.
    pub fn pod1(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(bin("pod1"));
        cmd.args(args)
            .env("POD1_CACHE", self.dir.join("cache"))
            .env("CONTAINERS_REGISTRIES_CONF", self.dir.join("registries.conf"))
            .env("REGISTRY_AUTH_FILE", self.dir.join("auth.json"))
            .env("XDG_RUNTIME_DIR", self.dir.join("xdg"))
            .env("DOCKER_CONFIG", self.dir.join("docker"))
            .env("HOME", &self.dir);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    /// A pod running `script` in `image` (policy `policy` when given).
    pub fn pod(&self, name: &str, image: &str, policy: Option<&str>, script: &str) -> PathBuf {
        let mut c = json!({"name": "c", "image": image, "command": ["sh", "-c", script]});
        if let Some(p) = policy {
            c["imagePullPolicy"] = json!(p);
        }
        let manifest = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"restartPolicy": "Never", "containers": [c]}});
        let path = self.dir.join(format!("{name}.json"));
        std::fs::write(&path, manifest.to_string()).unwrap();
        path
    }

    pub fn run(&self, pod: &Path, extra: &[&str]) -> Output {
        let (_, kernel) = &kernels()[0];
        let mut args = vec![
            "run",
            pod.to_str().unwrap(),
            "--kernel",
            kernel.to_str().unwrap(),
            "--timeout",
            "180",
        ];
        args.extend(extra);
        self.pod1(&args, &[])
    }

    /// Blob files in the store, and whether anything half-written is there.
    pub fn store_blobs(&self) -> Vec<String> {
        let dir = self.dir.join("cache/images/blobs/sha256");
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn ok(o: &Output) -> String {
    assert!(o.status.success(), "failed ({}): {}", o.status, text(o));
    text(o)
}

pub fn failed(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(125), "expected exit 125: {}", text(o));
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn busybox() -> String {
    format!("oci:{}:latest", fixtures().join("busybox").display())
}
