use super::*;

fn conf(text: &str) -> Registries {
    Registries::parse(text, Path::new("/etc/containers/registries.conf")).unwrap()
}

/// The candidates as one line: "a:1 b:1", or "error: …".
fn candidates(r: &Registries, written: &str) -> String {
    match r.candidates(written) {
        Ok(c) => c.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(" "),
        Err(e) => format!("error: {e:#}"),
    }
}

/// The endpoints as one line: "host/repo" each, `!` insecure, `~` a mirror.
fn endpoints(r: &Registries, image: &str) -> String {
    let r = r.endpoints(&Reference::parse_normalized(image).unwrap());
    let flag = |on: bool, c: &'static str| if on { c } else { "" };
    let show = |e: &Endpoint| format!("{}/{}{}{}", e.host, e.repository, flag(e.insecure, "!"), flag(e.mirror, "~"));
    match r {
        Ok(e) => e.iter().map(show).collect::<Vec<_>>().join(" "),
        Err(e) => format!("error: {e:#}"),
    }
}

/// Checks each `input => want` line of `table` (`want` a prefix of the
/// answer when it ends with `…`).
fn check(table: &str, f: impl Fn(&str) -> String) {
    for line in table.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (input, want) = line.split_once(" => ").unwrap();
        let got = f(input);
        match want.strip_suffix('…') {
            Some(start) => assert!(got.starts_with(start), "{input}: {got}"),
            None => assert_eq!(got, want, "{input}"),
        }
    }
}

const SEARCH: &str = r#"
unqualified-search-registries = ["quay.io", "docker.io"]
[aliases]
"busybox" = "docker.io/library/busybox"
"team/app" = "registry.example.com:5000/team/app"
"#;

#[test]
fn short_names() {
    let d = "@sha256:".to_string() + &"a".repeat(64);
    let none = "busybox => docker.io/library/busybox:latest\n org/app:v1 => docker.io/org/app:v1";
    check(none, |w| candidates(&Registries::default(), w));
    let table = format!(
        "ghcr.io/org/app => ghcr.io/org/app:latest
        localhost/app:1 => localhost/app:1
        localhost:5000/app => localhost:5000/app:latest
        busybox:1.36 => docker.io/library/busybox:1.36
        busybox{d} => docker.io/library/busybox{d}
        team/app => registry.example.com:5000/team/app:latest
        alpine:3 => quay.io/alpine:3 docker.io/library/alpine:3
        org/app => quay.io/org/app:latest docker.io/org/app:latest
        Busybox => error: …"
    );
    check(&table, |w| candidates(&conf(SEARCH), w));
    let enforcing = "short-name-mode = \"enforcing\"\n".to_string() + SEARCH;
    check(
        "alpine => error: \"alpine\" is ambiguous (quay.io/alpine:latest, docker.io/library/alpine:latest) and short-name-mode is \"enforcing\" in /etc/containers/registries.conf…
        busybox => docker.io/library/busybox:latest",
        |w| candidates(&conf(&enforcing), w),
    );
    let one = "short-name-mode = \"enforcing\"\nunqualified-search-registries = [\"quay.io\"]";
    check("app => quay.io/app:latest", |w| candidates(&conf(one), w));
    let disabled = "short-name-mode = \"disabled\"\n".to_string() + SEARCH;
    let all = "a => quay.io/a:latest docker.io/library/a:latest";
    check(all, |w| candidates(&conf(&disabled), w));
    // Unset: Docker Hub, as a node; set empty: obeyed.
    let no_search = "[aliases]\n\"a\" = \"quay.io/a\"\n";
    check("a => quay.io/a:latest\n b => docker.io/library/b:latest", |w| candidates(&conf(no_search), w));
    let empty = "unqualified-search-registries = []\n";
    check(
        "b => error: \"b\" is a short name, with no alias, and unqualified-search-registries is empty in /etc/containers/registries.conf…",
        |w| candidates(&conf(empty), w),
    );
}

const MIRRORS: &str = r#"registry = [
  { prefix = "docker.io", location = "docker.io", mirror = [{ location = "mirror.internal/hub" },
{ location = "digests.internal:5000", insecure = true, pull-from-mirror = "digest-only" },
{ location = "tags.internal", pull-from-mirror = "tag-only" }] },
  { prefix = "docker.io/library/busybox", location = "quay.io/mirrored/busybox/" },
  { location = "localhost:5000", insecure = true },
  { prefix = "ghcr.io/evil", blocked = true },
  { prefix = "*.corp.example", insecure = true, mirror = [{ location = "cache.example/corp" }] },
  { prefix = "*.other.example", location = "other-mirror.example" },
  { prefix = "example.net/digests", mirror-by-digest-only = true, mirror = [{ location = "m.example.net" }] },
]"#;

#[test]
fn endpoints_for_references() {
    let d = "@sha256:".to_string() + &"b".repeat(64);
    let hub = "registry-1.docker.io";
    let table = format!(
        "ghcr.io/org/app => ghcr.io/org/app
        alpine:3 => mirror.internal/hub/library/alpine~ tags.internal/library/alpine~ {hub}/library/alpine
        alpine{d} => mirror.internal/hub/library/alpine~ digests.internal:5000/library/alpine!~ {hub}/library/alpine
        busybox:1 => quay.io/mirrored/busybox
        busybox-extra => mirror.internal/hub/library/busybox-extra~ tags.internal/library/busybox-extra~ {hub}/library/busybox-extra
        localhost:5000/a/b => localhost:5000/a/b!
        localhost:50001/a => localhost:50001/a
        ghcr.io/evilish/a => ghcr.io/evilish/a
        ghcr.io/evil/app => error: pulling ghcr.io/evil/app:latest is blocked: [[registry]] prefix = \"ghcr.io/evil\" has blocked = true in /etc/containers/registries.conf
        a.b.corp.example/x/y => cache.example/corp/x/y~ a.b.corp.example/x/y!
        corp.example/x => corp.example/x
        s.other.example/x/y => other-mirror.example/x/y
        example.net/digests/a:1 => example.net/digests/a
        example.net/digests/a{d} => m.example.net/a~ example.net/digests/a"
    );
    check(&table, |image| endpoints(&conf(MIRRORS), image));
    check(&format!("busybox => {hub}/library/busybox"), |i| {
        endpoints(&Registries::default(), i)
    });
}

#[test]
fn refuses_bad_files() {
    let table = r#"
        [registries.search]\nregistries = ['docker.io'] => /x/r.conf is in the version 1 format…
        unqualified-search-registries = ["a" => /x/r.conf is not a valid registries.conf: TOML parse error at line 1…
        unqualified-search-registries = "docker.io" => /x/r.conf is not a valid registries.conf…
        unqualified-search-registries = ["https://quay.io"] => /x/r.conf: invalid location "https://quay.io"…
        unqualified-search-registries = ["quay.io/ns"] => /x/r.conf: unqualified-search-registries entry "quay.io/ns"…
        [[registry]]\ninsecure = true => /x/r.conf: a [[registry]] has neither prefix nor location
        [[registry]]\nlocation = "https://a.io" => /x/r.conf: invalid location…
        [[registry]]\nprefix = "*.a.io/x" => /x/r.conf: the wildcard prefix "*.a.io/x"…
        [[registry]]\nlocation = "a.io"\npull-from-mirror = "all" => /x/r.conf: pull-from-mirror is set on the registry "a.io"…
        [[registry]]\nlocation = "a.io"\n[[registry.mirror]]\ninsecure = true => /x/r.conf: a mirror of "a.io" has no location
        [[registry]]\nlocation = "a.io"\n[[registry.mirror]]\nlocation = "m"\npull-from-mirror = "x" => /x/r.conf: pull-from-mirror = "x"…
        [[registry]]\nlocation = "a.io"\nmirror-by-digest-only = true\n[[registry.mirror]]\nlocation = "m"\npull-from-mirror = "all" => /x/r.conf: "a.io" sets mirror-by-digest-only…
        [[registry]]\nlocation = "a.io"\n[[registry]]\nprefix = "b.io"\nlocation = "a.io"\ninsecure = true => /x/r.conf: the registry "a.io" is defined several times…
        short-name-mode = "strict" => /x/r.conf: short-name-mode = "strict"…
        [aliases]\n"quay.io/a" = "quay.io/a" => /x/r.conf: the alias name "quay.io/a"…
        [aliases]\n"a:1" = "quay.io/a" => /x/r.conf: the alias name "a:1"…
        [aliases]\n"a" = "a/b" => /x/r.conf: the alias "a" = "a/b" must name a registry…
        [aliases]\n"a" = "quay.io/a:1" => /x/r.conf: the alias "a" = "quay.io/a:1"…
        [aliases]\n"a" = "quay.io/A" => /x/r.conf: the alias "a" = "quay.io/A"…
        credential-helpers = ["x"]\n[[registry]]\nprefix = "a.io"\ninsecure = true => ok"#;
    check(table, |text| {
        match Registries::parse(&text.replace("\\n", "\n"), Path::new("/x/r.conf")) {
            Ok(_) => "ok".into(),
            Err(e) => format!("{e:#}"),
        }
    });
    // A prefix without location means itself.
    let r = conf("[[registry]]\nprefix = \"a.io\"\ninsecure = true\n");
    check("a.io/b => a.io/b!", |i| endpoints(&r, i));
}

#[test]
fn loads_files_and_drop_ins() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let write = |p: &str, text: &str| {
        let p = root.join(p.replace('~', "home/.config/containers"));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text.replace("\\n", "\n")).unwrap();
    };
    let load = |env: Option<&str>| {
        let (home, etc) = (Some(root.join("home")), root.join("etc"));
        Registries::load_from(&Paths { env: env.map(|e| root.join(e)), home, etc })
    };
    let short = |r: Result<Registries>, written: &str| candidates(&r.unwrap(), written);
    // Nothing: the default.
    assert!(load(None).unwrap().origin().is_none());
    check("busybox => docker.io/library/busybox:latest", |w| short(load(None), w));
    // The system file, its drop-ins in name order, then the user's.
    write("etc/registries.conf", SEARCH);
    for (path, text) in [
        ("etc/registries.conf.d/10-a.conf", r#"unqualified-search-registries = ["one.io"]\n[aliases]\n"busybox" = """#),
        ("etc/registries.conf.d/20-b.conf", r#"[aliases]\n"alpine" = "two.io/alpine""#),
        ("etc/registries.conf.d/30-c.conf.off", "this is not TOML"),
        ("~/registries.conf.d/x.conf", r#"[[registry]]\nlocation = "one.io"\nblocked = true"#),
        ("env.conf", "unqualified-search-registries = []"),
    ] {
        write(path, text);
    }
    let r = load(None).unwrap();
    assert_eq!(r.origin(), Some(root.join("etc/registries.conf").as_path()));
    check("busybox => one.io/busybox:latest\n alpine:1 => two.io/alpine:1", |w| candidates(&r, w));
    let blocked = "one.io/busybox => error: pulling one.io/busybox:latest is blocked: [[registry]] prefix = \"one.io\" has blocked = true in …/home/.config/containers/registries.conf.d/x.conf";
    check(blocked, |i| endpoints(&r, i).replace(&root.display().to_string(), "…"));
    // $CONTAINERS_REGISTRIES_CONF replaces the main file; drop-ins stay.
    check("busybox => one.io/busybox:latest", |w| short(load(Some("env.conf")), w));
    assert!(format!("{:#}", load(Some("missing.conf")).unwrap_err()).contains("missing.conf"));
    // The user's file replaces the system's, and its drop-ins only.
    write("~/registries.conf", "unqualified-search-registries = [\"user.io\"]");
    check("app => user.io/app:latest", |w| short(load(None), w));
    // A v1 drop-in is refused with its name; so is bad TOML.
    for (text, want) in [
        ("[registries.block]\nregistries = []", "y.conf is in the version 1 format"),
        ("[[registry]", "y.conf is not a valid registries.conf: TOML parse error at line 1"),
    ] {
        write("~/registries.conf.d/y.conf", text);
        let err = format!("{:#}", load(None).unwrap_err());
        assert!(err.contains(want) && err.contains("(and drop-ins must be") == text.contains("block"), "{err}");
    }
}

#[test]
fn loopback_and_prefixes() {
    for h in "localhost LOCALHOST:5000 127.0.0.1 127.1.2.3:80 ::1 [::1] [::1]:5000 [::ffff:127.0.0.1]:1".split(' ') {
        assert!(is_loopback(h), "{h}");
    }
    for h in "localhost.example.com 10.0.0.1 [::2]:5000 ghcr.io 128.0.0.1 [::1 [::1]x  ::".split(' ') {
        assert!(!is_loopback(h), "{h:?}");
    }
    let table = "a.io/b a.io => Some(4)
        a.io a.io => Some(4)
        a.io/b:1 a.io/b => Some(6)
        a.iox/b a.io => None
        a.io/bc a.io/b => None
        x.a.io/b *.a.io => Some(6)
        a.io/x.a.io *.a.io => None
        a.io/b *.a.io => None
        x.a.iox/b *.a.io => None";
    check(table, |i| i.split_once(' ').map(|(r, p)| format!("{:?}", matching_prefix(r, p))).unwrap());
    assert_eq!(split_tag("a/b:1@sha256:x"), ("a/b", ":1@sha256:x"));
    assert_eq!(split_tag("a:5000/b"), ("a:5000/b", ""));
}
