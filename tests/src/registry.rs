//! A real registry for the pull tests: Debian's `docker-registry` (CNCF
//! distribution 2.8) on a loopback port, filled with `skopeo copy`.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::run;

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
}

impl Registry {
    /// Starts a registry in `dir` (created) on a free loopback port.
    pub fn start(dir: &Path, opts: Options<'_>) -> Registry {
        std::fs::create_dir_all(dir.join("storage")).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
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
