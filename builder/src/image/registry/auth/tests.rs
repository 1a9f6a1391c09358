use super::*;
use std::os::unix::fs::PermissionsExt;

const HELPER: &str = r#"#!/bin/sh
[ "$1" = get ] || exit 2
server=$(cat)
case "$server" in
ghcr.io) echo '{"ServerURL":"ghcr.io","Username":"u","Secret":"p:w"}' ;;
"https://index.docker.io/v1/") echo '{"Username":"<token>","Secret":"refresh"}' ;;
empty.io) echo '{"Username":"x","Secret":""}' ;;
slow.io) sleep 5 ;;
big.io) while :; do echo xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; done ;;
broken.io) echo "the keychain is locked" >&2; exit 3 ;;
notjson.io) echo "hello" ;;
*) echo "credentials not found in native keychain"; exit 1 ;;
esac
"#;

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// A temp dir with `bin/docker-credential-test` and the named files
/// (then a missing one, which is not listed as tried).
fn setup(files: &[(&str, String)]) -> (tempfile::TempDir, Sources) {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let helper = bin.join("docker-credential-test");
    std::fs::write(&helper, HELPER).unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut list = Vec::new();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        list.push(AuthFile { legacy: name.ends_with("dockercfg"), path, secret: None });
    }
    list.push(AuthFile { path: dir.path().join("missing.json"), legacy: false, secret: None });
    let sources = Sources { files: list, path: Some(bin.into_os_string()), timeout: Duration::from_millis(400) };
    (dir, sources)
}

/// "user:password", "token:…", or "none".
fn show(l: &Lookup) -> String {
    match &l.credentials {
        Some(Credentials::Basic { username, password }) => format!("{username}:{password}"),
        Some(Credentials::IdentityToken(t)) => format!("token:{t}"),
        None => "none".into(),
    }
}

#[test]
fn auth_file_keys() {
    let containers = format!(
        r#"{{"auths":{{"quay.io/org/app":{{"auth":"{}"}},"quay.io/org":{{"auth":"{}"}},"quay.io":{{"auth":"{}"}},
        "empty.example":{{}},"tok.example":{{"auth":"{}","identitytoken":"idt"}},"nul.example":{{"auth":"{}"}}}}}}"#,
        b64("app:1"), b64("org:2"), b64("host:3"), b64("me:"), b64("u:p:w\0\0"),
    );
    let docker = format!(
        r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{}"}},"http://localhost:5000":{{"auth":"{}"}},
        "reg.example/v2/":{{"auth":"{}"}},"empty.example":{{"auth":"{}"}},"quay.io":{{"auth":"{}"}}}},"HttpHeaders":{{"X":"y"}}}}"#,
        b64("hub:pw"), b64("local:pw"), b64("reg:pw"), b64("second:pw"), b64("never:pw"),
    );
    let legacy = format!(r#"{{"https://old.example/v1/":{{"auth":"{}","email":"a@b"}}}}"#, b64("old:pw"));
    let (dir, src) = setup(&[("auth.json", containers), ("config.json", docker), (".dockercfg", legacy)]);
    let cases = [
        ("quay.io", "org/app", "app:1", "auth.json"),
        ("quay.io", "org/other", "org:2", "auth.json"),
        ("quay.io", "else/x", "host:3", "auth.json"),
        ("docker.io", "library/busybox", "hub:pw", "config.json"),
        ("localhost:5000", "a", "local:pw", "config.json"),
        ("reg.example", "a/b", "reg:pw", "config.json"),
        ("empty.example", "a", "second:pw", "config.json"),
        ("tok.example", "a", "token:idt", "auth.json"),
        ("nul.example", "a", "u:p:w", "auth.json"),
        ("old.example", "a", "old:pw", ".dockercfg"),
        ("ghcr.io", "a", "none", ""),
    ];
    for (registry, repo, want, from) in cases {
        let l = lookup_in(&src, registry, repo).unwrap();
        assert_eq!(show(&l), want, "{registry}/{repo}");
        let source = l.source.unwrap_or_default();
        assert!(from.is_empty() == source.is_empty() && source.ends_with(from), "{registry}: {source}");
    }
    let l = lookup_in(&src, "ghcr.io", "a").unwrap();
    let names: Vec<_> = l.tried.iter().map(|p| p.strip_prefix(dir.path()).unwrap().to_path_buf()).collect();
    assert_eq!(names, [Path::new("auth.json"), Path::new("config.json"), Path::new(".dockercfg")]);
}

#[test]
fn bad_files_are_named() {
    let cases = [
        ("{\"auths\": ", "not a valid auth file"),
        ("{\"auths\": {\"a.io\": {\"auth\": 3}}}", "not a valid auth file"),
        ("{\"auths\": {\"a.io\": {\"auth\": \"!!!\"}}}", "not base64"),
        ("{\"credHelpers\": {\"a.io\": \"../../bin/sh\"}}", "not a credential helper name"),
        ("{\"credHelpers\": {\"a.io\": \"absent\"}}", "docker-credential-absent is not on PATH"),
    ];
    for (text, want) in cases {
        let (_dir, src) = setup(&[("auth.json", text.to_string())]);
        let err = format!("{:#}", lookup_in(&src, "a.io", "x/y").unwrap_err());
        assert!(err.contains(want) && err.contains("auth.json"), "{text}: {err}");
    }
}

#[test]
fn credential_helpers() {
    let docker = format!(
        r#"{{"credsStore":"test","credHelpers":{{"ghcr.io":"test","broken.io":"test","slow.io":"test","big.io":"test","notjson.io":"test"}},
        "auths":{{"fallback.io":{{"auth":"{}"}}}}}}"#,
        b64("file:pw")
    );
    let (_dir, src) = setup(&[("config.json", docker)]);
    let cases = [
        ("ghcr.io", "u:p:w", "docker-credential-test"),
        ("docker.io", "token:refresh", "docker-credential-test"),
        ("empty.io", "none", ""),
        ("fallback.io", "file:pw", "config.json"),
        ("quay.io", "none", ""),
    ];
    for (registry, want, from) in cases {
        let l = lookup_in(&src, registry, "a/b").unwrap();
        assert_eq!(show(&l), want, "{registry}");
        assert!(l.source.unwrap_or_default().contains(from), "{registry}");
    }
    for (registry, want) in [
        ("broken.io", "the keychain is locked"),
        ("slow.io", "did not answer within"),
        ("big.io", "docker-credential-test"),
        ("notjson.io", "did not answer with JSON"),
    ] {
        let started = Instant::now();
        let err = format!("{:#}", lookup_in(&src, registry, "a").unwrap_err());
        assert!(err.contains(want) && err.contains("config.json"), "{registry}: {err}");
        assert!(started.elapsed() < Duration::from_secs(3), "{registry}");
    }
    // A credsStore that is not installed is skipped, as podman does.
    let docker = format!(r#"{{"credsStore":"desktop","auths":{{"a.io":{{"auth":"{}"}}}}}}"#, b64("f:p"));
    let (_dir, src) = setup(&[("config.json", docker)]);
    assert_eq!(show(&lookup_in(&src, "a.io", "b").unwrap()), "f:p");
}

#[test]
fn default_file_order() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().to_str().unwrap().to_string();
    let files = |vars: &[(&str, &str)]| -> Vec<String> {
        let var = |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| OsString::from(v));
        default_files(var, 1000).iter().map(|f| format!("{}{}", f.path.display(), if f.legacy { " (legacy)" } else { "" })).collect()
    };
    assert_eq!(files(&[("REGISTRY_AUTH_FILE", "/a.json"), ("HOME", "/h")]), ["/a.json"]);
    assert_eq!(files(&[("HOME", "/h")]), [
        "/run/containers/1000/auth.json", "/h/.config/containers/auth.json", "/h/.docker/config.json", "/h/.dockercfg (legacy)",
    ]);
    let vars = [("HOME", "/h"), ("XDG_RUNTIME_DIR", &run), ("XDG_CONFIG_HOME", "/c"), ("DOCKER_CONFIG", "/d")];
    assert_eq!(files(&vars), [
        format!("{run}/containers/auth.json"), "/c/containers/auth.json".into(), "/d/config.json".into(), "/h/.dockercfg (legacy)".into(),
    ]);
    assert!(files(&[("XDG_RUNTIME_DIR", "/no/such/dir")]).is_empty());
}

#[test]
fn keys_normalise() {
    for (key, host_only, want) in [
        ("https://index.docker.io/v1/", false, "index.docker.io"),
        ("docker.io", false, "index.docker.io"),
        ("registry-1.docker.io", false, "index.docker.io"),
        ("http://localhost:5000/x", false, "localhost:5000"),
        ("reg.example/v2", false, "reg.example"),
        ("reg.example/", false, "reg.example"),
        ("reg.example/ns", false, "reg.example/ns"),
        ("reg.example/ns", true, "reg.example"),
    ] {
        assert_eq!(normalize_key(key, host_only), want, "{key}");
    }
}

#[test]
fn debug_hides_secrets() {
    let b = Credentials::Basic { username: "me".into(), password: "hunter2".into() };
    let t = Credentials::IdentityToken("tok3n".into());
    let l = Lookup { credentials: Some(b), tried: vec![], source: None };
    assert!(format!("{l:?}").contains("me") && !format!("{l:?}").contains("hunter2"));
    assert!(!format!("{t:?}").contains("tok3n"));
}
