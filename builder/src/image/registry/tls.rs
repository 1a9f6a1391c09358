//! The certificates registries are verified against.

/// The system's roots (rustls-native-certs: the distribution's bundle,
/// `SSL_CERT_FILE`, `SSL_CERT_DIR`) plus the CAs of the containers'
/// `certs.d` directories (`*.crt` under `<dir>/<host[:port]>/`).
pub(super) fn trust_roots() -> anyhow::Result<Vec<ureq::tls::Certificate<'static>>> {
    let native = rustls_native_certs::load_native_certs();
    let mut roots: Vec<ureq::tls::Certificate<'static>> = native
        .certs
        .iter()
        .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned())
        .collect();
    let mut dirs = vec![
        std::path::PathBuf::from("/etc/containers/certs.d"),
        std::path::PathBuf::from("/etc/docker/certs.d"),
    ];
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(std::path::Path::new(&home).join(".config/containers/certs.d"));
    }
    for dir in dirs {
        let Ok(hosts) = std::fs::read_dir(&dir) else {
            continue;
        };
        for host in hosts.flatten() {
            let Ok(files) = std::fs::read_dir(host.path()) else {
                continue;
            };
            for f in files.flatten() {
                let path = f.path();
                if path.extension().is_some_and(|e| e == "crt") {
                    let pem = std::fs::read(&path)
                        .map_err(|e| anyhow::anyhow!("reading the CA {}: {e}", path.display()))?;
                    for item in ureq::tls::parse_pem(&pem) {
                        match item {
                            Ok(ureq::tls::PemItem::Certificate(c)) => roots.push(c),
                            Ok(_) => {}
                            Err(e) => anyhow::bail!("the CA file {} is not PEM: {e}", path.display()),
                        }
                    }
                }
            }
        }
    }
    Ok(roots)
}
