//! `registries.conf` as containers-registries.conf(5) and
//! containers-registries.conf.d(5) define it (the version 2 format): where
//! short names are searched, their aliases, and per-prefix locations,
//! mirrors, `insecure` and `blocked`. Where the man page and containers/image
//! differ, the man page wins (a `prefix` without `location` means itself).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use pod1_manifest::reference::Reference;
use serde::Deserialize;

/// The registry configuration: none at all (the default, where short names
/// mean Docker Hub as Docker has it), or what the files said.
#[derive(Debug, Clone, Default)]
pub struct Registries {
    /// The main file, else the first drop-in read; `None`: no configuration.
    origin: Option<PathBuf>,
    /// `unqualified-search-registries` and the file that set it last.
    search: Option<(Vec<String>, PathBuf)>,
    /// Whether `short-name-mode` is `enforcing`, and the file that set it.
    enforcing: Option<(bool, PathBuf)>,
    /// Short name → fully-qualified name (`None`: erased by a later file).
    aliases: BTreeMap<String, (Option<String>, PathBuf)>,
    /// `[[registry]]` tables by prefix.
    registries: BTreeMap<String, Registry>,
}

#[derive(Debug, Clone)]
struct Registry {
    prefix: String,
    /// Empty only for a `*.example.com` prefix: the reference as written.
    location: String,
    insecure: bool,
    blocked: bool,
    mirror_by_digest_only: bool,
    mirrors: Vec<Mirror>,
    origin: PathBuf,
}

#[derive(Debug, Clone)]
struct Mirror {
    location: String,
    insecure: bool,
    pull: Pull,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pull {
    All,
    DigestOnly,
    TagOnly,
}

/// Where to fetch an image from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The URL authority: `ghcr.io`, `localhost:5000`, `[::1]:5000`;
    /// Docker Hub is `registry-1.docker.io`.
    pub host: String,
    /// The repository on that host, after `prefix` → `location` rewriting.
    pub repository: String,
    /// `insecure = true`: plain HTTP and unverified TLS are allowed.
    pub insecure: bool,
    /// A `[[registry.mirror]]`, not the registry's own location.
    pub mirror: bool,
}

// The file as TOML; unknown keys are ignored, as containers/image does.
#[derive(Deserialize, Default)]
#[serde(default, rename_all = "kebab-case")]
struct FileToml {
    unqualified_search_registries: Option<Vec<String>>,
    short_name_mode: Option<String>,
    registry: Vec<RegistryToml>,
    aliases: BTreeMap<String, String>,
    /// The v1 format's `[registries.search]`, `.insecure`, `.block`.
    registries: Option<toml::Value>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "kebab-case")]
struct RegistryToml {
    prefix: String,
    location: String,
    insecure: bool,
    blocked: bool,
    mirror_by_digest_only: bool,
    pull_from_mirror: String,
    mirror: Vec<MirrorToml>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "kebab-case")]
struct MirrorToml {
    location: String,
    insecure: bool,
    pull_from_mirror: String,
}

/// The largest configuration file read, and the most drop-ins.
const MAX_FILE: u64 = 1 << 20;
const MAX_DROP_INS: usize = 1000;

/// Where the files are, for [`Registries::load`] and its tests.
struct Paths {
    /// `$CONTAINERS_REGISTRIES_CONF`, else `$REGISTRIES_CONFIG_PATH`.
    env: Option<PathBuf>,
    home: Option<PathBuf>,
    /// `/etc/containers`.
    etc: PathBuf,
}

impl Registries {
    /// `$CONTAINERS_REGISTRIES_CONF` (or `$REGISTRIES_CONFIG_PATH`), else
    /// `~/.config/containers/registries.conf`, else
    /// `/etc/containers/registries.conf`, then the `*.conf` drop-ins in
    /// name order: `~/.config/containers/registries.conf.d` when the user's
    /// file is the main one, else `/etc/containers/registries.conf.d` and
    /// then the user's. Nothing found: [`Registries::default`].
    pub fn load() -> Result<Registries> {
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        Registries::load_from(&Paths {
            env: var("CONTAINERS_REGISTRIES_CONF").or_else(|| var("REGISTRIES_CONFIG_PATH")),
            home: var("HOME"),
            etc: PathBuf::from("/etc/containers"),
        })
    }

    fn load_from(paths: &Paths) -> Result<Registries> {
        let user = paths.home.as_ref().map(|h| h.join(".config/containers"));
        let user_dir = user.as_ref().map(|u| u.join("registries.conf.d"));
        let etc_dir = Some(paths.etc.join("registries.conf.d"));
        let user_file = user
            .as_ref()
            .map(|u| u.join("registries.conf"))
            .filter(|f| f.exists());
        let (main, dirs) = match (&paths.env, user_file) {
            (Some(env), _) => (Some(env.clone()), [etc_dir, user_dir]),
            (None, Some(user_file)) => (Some(user_file), [user_dir, None]),
            (None, None) => (Some(paths.etc.join("registries.conf")), [etc_dir, user_dir]),
        };
        let mut out = Registries::default();
        if let Some(main) = main {
            match read_bounded(&main) {
                Ok(text) => out.apply(parse_file(&text, &main, false)?),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && paths.env.is_none() => {}
                Err(e) => return Err(e).with_context(|| format!("reading {}", main.display())),
            }
        }
        for dir in dirs.iter().flatten() {
            for file in drop_ins(dir)? {
                let text = read_bounded(&file).with_context(|| format!("reading {}", file.display()))?;
                out.apply(parse_file(&text, &file, true)?);
            }
        }
        Ok(out)
    }

    /// Reads `text`, a registries.conf in the v2 format; `origin` names it
    /// in errors and in the messages of [`Registries::candidates`].
    pub fn parse(text: &str, origin: &Path) -> Result<Registries> {
        let mut out = Registries::default();
        out.apply(parse_file(text, origin, false)?);
        Ok(out)
    }

    /// Merges a later file: its registries replace those of the same
    /// prefix, its search list and mode replace the earlier ones, its
    /// aliases are added (an empty value erases one).
    fn apply(&mut self, f: Registries) {
        self.origin = self.origin.take().or(f.origin);
        self.registries.extend(f.registries);
        if f.search.is_some() {
            self.search = f.search;
        }
        if f.enforcing.is_some() {
            self.enforcing = f.enforcing;
        }
        self.aliases.extend(f.aliases);
    }

    /// The main configuration file (or first drop-in) read, if any.
    pub fn origin(&self) -> Option<&Path> {
        self.origin.as_deref()
    }

    /// The references `written` may mean, in the order to try: itself when
    /// its first component is a host (has a `.` or `:`, or is `localhost`);
    /// else its alias, with the written tag or digest; else one per
    /// unqualified-search registry. With no configuration, or none that
    /// sets unqualified-search-registries, Docker Hub. `short-name-mode = "enforcing"` refuses an ambiguous short name,
    /// as containers/image does without a terminal to ask on.
    pub fn candidates(&self, written: &str) -> Result<Vec<Reference>> {
        let parse = |s: &str| Reference::parse_normalized(s).map_err(anyhow::Error::msg);
        if !is_short(written) || self.origin.is_none() {
            return Ok(vec![parse(written)?]);
        }
        let (name, suffix) = split_tag(written);
        if let Some((Some(value), origin)) = self.aliases.get(name) {
            let full = format!("{value}{suffix}");
            return Ok(vec![parse(&full).with_context(|| {
                format!("the alias {name:?} = {value:?} in {}", origin.display())
            })?]);
        }
        // No file sets unqualified-search-registries (Debian's default
        // registries.conf is all comments): Docker Hub, as the kubelet's
        // containerd reads every short name. A list, even empty, is obeyed.
        let Some((search, from)) = self.search.as_ref() else {
            return Ok(vec![parse(written)?]);
        };
        if search.is_empty() {
            bail!(
                "{written:?} is a short name, with no alias, and unqualified-search-registries is empty in {}: write the full name (e.g. docker.io/library/{written}) or list a registry there",
                from.display()
            );
        }
        let out = search
            .iter()
            .map(|reg| parse(&format!("{reg}/{written}")))
            .collect::<Result<Vec<_>>>()
            .with_context(|| {
                format!(
                    "searching for {written:?} as unqualified-search-registries in {} say",
                    from.display()
                )
            })?;
        if let (Some((true, mode_from)), true) = (&self.enforcing, out.len() > 1) {
            let names: Vec<String> = out.iter().map(|r| r.to_string()).collect();
            bail!(
                "{written:?} is ambiguous ({}) and short-name-mode is \"enforcing\" in {}: write the full name or add an [aliases] entry",
                names.join(", "),
                mode_from.display()
            );
        }
        Ok(out)
    }

    /// Where to pull `r` from, in order: the mirrors of the `[[registry]]`
    /// with the longest matching prefix (as `pull-from-mirror` and
    /// `mirror-by-digest-only` allow for a tag or digest reference), then
    /// its location. A blocked registry is an error.
    pub fn endpoints(&self, r: &Reference) -> Result<Vec<Endpoint>> {
        let name = r.name();
        // The longest prefix; of equals, the first in order (`rev` then the
        // last maximum).
        let best = self
            .registries
            .values()
            .filter(|g| matching_prefix(&name, &g.prefix).is_some());
        let Some(reg) = best.rev().max_by_key(|g| g.prefix.len()) else {
            return Ok(vec![endpoint(r, false, false)]);
        };
        if reg.blocked {
            bail!(
                "pulling {r} is blocked: [[registry]] prefix = {:?} has blocked = true in {}",
                reg.prefix,
                reg.origin.display()
            );
        }
        let digested = r.digest.is_some();
        let mirrors = reg
            .mirrors
            .iter()
            .filter(|m| match (reg.mirror_by_digest_only, m.pull) {
                (true, _) | (false, Pull::DigestOnly) => digested,
                (false, Pull::TagOnly) => !digested,
                (false, Pull::All) => true,
            });
        let full = r.to_string();
        let mut out = Vec::new();
        for (location, insecure, mirror) in
            mirrors
                .map(|m| (&m.location, m.insecure, true))
                .chain([(&reg.location, reg.insecure, false)])
        {
            let rewritten = match (location.is_empty(), matching_prefix(&full, &reg.prefix)) {
                (true, _) => r.clone(),
                (false, Some(at)) => {
                    let s = format!("{location}{}", full.get(at..).unwrap_or(""));
                    Reference::parse_normalized(&s)
                        .map_err(anyhow::Error::msg)
                        .with_context(|| {
                            format!(
                            "rewriting {full} for the [[registry]] prefix {:?} (location {location:?}) in {}",
                            reg.prefix,
                            reg.origin.display()
                        )
                        })?
                }
                (false, None) => bail!("internal error: prefix {:?} no longer matches {full}", reg.prefix),
            };
            out.push(endpoint(&rewritten, insecure, mirror));
        }
        Ok(out)
    }
}

fn endpoint(r: &Reference, insecure: bool, mirror: bool) -> Endpoint {
    let host = if r.domain == "docker.io" {
        "registry-1.docker.io".to_string()
    } else {
        r.domain.clone()
    };
    Endpoint {
        host,
        repository: r.path.clone(),
        insecure,
        mirror,
    }
}

/// Whether `host` (an [`Endpoint::host`]) is this machine by its literal
/// spelling: `localhost`, 127.0.0.0/8, `::1` (also IPv4-mapped), with or
/// without a port and brackets. No name resolution.
pub fn is_loopback(host: &str) -> bool {
    let bare = match host.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((addr, rest)) if rest.is_empty() || rest.starts_with(':') => addr,
            _ => return false,
        },
        None if host.matches(':').count() > 1 => host,
        None => host.split(':').next().unwrap_or(host),
    };
    if bare.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match bare.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(a)) => a.is_loopback(),
        Ok(std::net::IpAddr::V6(a)) => a.is_loopback() || a.to_ipv4_mapped().is_some_and(|m| m.is_loopback()),
        Err(_) => false,
    }
}

/// containers/image's `refMatchingPrefix`: the length of `r` the prefix
/// covers, when it ends at the end of `r` or before `:`, `/` or `@`; a
/// `*.example.com` prefix matches any subdomain of the first component.
fn matching_prefix(r: &str, prefix: &str) -> Option<usize> {
    let end = match prefix.strip_prefix('*') {
        Some(suffix) => {
            let at = r.find(suffix)?;
            if r.get(..at)?.contains('/') {
                return None;
            }
            at + suffix.len()
        }
        None if r.starts_with(prefix) => prefix.len(),
        None => return None,
    };
    match r.as_bytes().get(end) {
        None | Some(b':' | b'/' | b'@') => Some(end),
        Some(_) => None,
    }
}

/// A short name has no host as its first component (containers/image's
/// rule: a `.` or `:` in it, or `localhost`).
fn is_short(written: &str) -> bool {
    match written.split('@').next().unwrap_or("").split_once('/') {
        Some((first, _)) => !(first.contains(['.', ':']) || first == "localhost"),
        None => true,
    }
}

/// `name` and its `:tag`, `@digest` or `:tag@digest` suffix.
fn split_tag(written: &str) -> (&str, &str) {
    let before_at = written.find('@').unwrap_or(written.len());
    let last_slash = written.get(..before_at).and_then(|s| s.rfind('/')).unwrap_or(0);
    let tag = written
        .get(last_slash..before_at)
        .and_then(|s| s.find(':'))
        .map(|i| last_slash + i);
    let cut = tag.unwrap_or(before_at);
    (
        written.get(..cut).unwrap_or(written),
        written.get(cut..).unwrap_or(""),
    )
}

/// A location or prefix: trailing slashes dropped, no URL scheme.
fn location(s: &str, file: &Path) -> Result<String> {
    if s.starts_with("http://") || s.starts_with("https://") {
        bail!(
            "{}: invalid location {s:?}: write a host[/path], without a URL scheme",
            file.display()
        );
    }
    Ok(s.trim_end_matches('/').to_string())
}

fn parse_pull(s: &str, file: &Path, mirror: &str) -> Result<Pull> {
    Ok(match s {
        "" | "all" => Pull::All,
        "digest-only" => Pull::DigestOnly,
        "tag-only" => Pull::TagOnly,
        _ => bail!(
            "{}: pull-from-mirror = {s:?} for the mirror {mirror:?}: use \"all\", \"digest-only\" or \"tag-only\"",
            file.display()
        ),
    })
}

/// One file, checked as containers/image checks it; `drop_in` only changes
/// the message for a v1 file.
fn parse_file(text: &str, file: &Path, drop_in: bool) -> Result<Registries> {
    let f = file.display();
    let toml: FileToml =
        toml::from_str(text).with_context(|| format!("{f} is not a valid registries.conf"))?;
    if let Some(v1) = &toml.registries {
        if ["search", "insecure", "block"]
            .iter()
            .any(|k| v1.get(k).is_some())
        {
            bail!(
                "{f} is in the version 1 format ([registries.search], [registries.insecure], [registries.block]), which pod1 does not read{}: rewrite it as version 2 (unqualified-search-registries = [...] and [[registry]] tables, see containers-registries.conf(5))",
                if drop_in { " (and drop-ins must be version 2)" } else { "" }
            );
        }
    }
    let mut out = Registries {
        origin: Some(file.to_path_buf()),
        ..Registries::default()
    };
    for t in toml.registry {
        let loc = location(&t.location, file)?;
        let prefix = match location(&t.prefix, file)? {
            p if p.is_empty() && loc.is_empty() => {
                bail!("{f}: a [[registry]] has neither prefix nor location")
            }
            p if p.is_empty() => loc.clone(),
            p => p,
        };
        let wildcard = prefix.starts_with("*.");
        if wildcard && prefix.contains(['/', '@', ':']) {
            bail!("{f}: the wildcard prefix {prefix:?} must be of the form *.example.com");
        }
        // The man page: location defaults to the prefix (a wildcard has none).
        let loc = if loc.is_empty() && !wildcard {
            prefix.clone()
        } else {
            loc
        };
        if !t.pull_from_mirror.is_empty() {
            bail!("{f}: pull-from-mirror is set on the registry {prefix:?}; it belongs in its [[registry.mirror]] tables");
        }
        let mut mirrors = Vec::new();
        for m in t.mirror {
            let mloc = location(&m.location, file)?;
            if mloc.is_empty() {
                bail!("{f}: a mirror of {prefix:?} has no location");
            }
            if t.mirror_by_digest_only && !m.pull_from_mirror.is_empty() {
                bail!("{f}: {prefix:?} sets mirror-by-digest-only and its mirror {mloc:?} sets pull-from-mirror: use one of the two");
            }
            mirrors.push(Mirror {
                insecure: m.insecure,
                pull: parse_pull(&m.pull_from_mirror, file, &mloc)?,
                location: mloc,
            });
        }
        let reg = Registry {
            prefix: prefix.clone(),
            location: loc,
            insecure: t.insecure,
            blocked: t.blocked,
            mirror_by_digest_only: t.mirror_by_digest_only,
            mirrors,
            origin: file.to_path_buf(),
        };
        let key = |r: &Registry| {
            if r.location.is_empty() {
                r.prefix.clone()
            } else {
                r.location.clone()
            }
        };
        for other in out.registries.values().filter(|o| key(o) == key(&reg)) {
            if other.insecure != reg.insecure || other.blocked != reg.blocked {
                bail!("{f}: the registry {:?} is defined several times with different insecure or blocked settings", key(&reg));
            }
        }
        // The first table of a prefix wins within one file.
        out.registries.entry(prefix).or_insert(reg);
    }
    if let Some(search) = toml.unqualified_search_registries {
        let mut regs = Vec::new();
        for s in search {
            let reg = location(&s, file)?;
            let host_only = !reg.is_empty() && !reg.contains(['/', '@']);
            if !host_only || Reference::parse_normalized(&format!("{reg}/x")).is_err() {
                bail!("{f}: unqualified-search-registries entry {s:?} is not a host[:port]");
            }
            regs.push(reg);
        }
        out.search = Some((regs, file.to_path_buf()));
    }
    match toml.short_name_mode.as_deref() {
        None | Some("") => {}
        Some("permissive" | "disabled") => out.enforcing = Some((false, file.to_path_buf())),
        Some("enforcing") => out.enforcing = Some((true, file.to_path_buf())),
        Some(m) => bail!("{f}: short-name-mode = {m:?}: use \"enforcing\", \"permissive\" or \"disabled\""),
    }
    for (name, value) in toml.aliases {
        let valid_name =
            !name.contains([':', '@']) && is_short(&name) && Reference::parse_normalized(&name).is_ok();
        if !valid_name {
            bail!(
                "{f}: the alias name {name:?} must be a short name without tag or digest (e.g. \"busybox\")"
            );
        }
        if value.is_empty() {
            out.aliases.insert(name, (None, file.to_path_buf()));
            continue;
        }
        let (_, suffix) = split_tag(&value);
        let valid_value =
            suffix.is_empty() && !is_short(&value) && Reference::parse_normalized(&value).is_ok();
        if !valid_value {
            bail!("{f}: the alias {name:?} = {value:?} must name a registry and repository, without tag or digest");
        }
        out.aliases.insert(name, (Some(value), file.to_path_buf()));
    }
    Ok(out)
}

fn read_bounded(path: &Path) -> std::io::Result<String> {
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX_FILE + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > MAX_FILE {
        return Err(std::io::Error::other(format!("larger than {MAX_FILE} bytes")));
    }
    Ok(text)
}

/// The `*.conf` files of a drop-in directory, in name order; none when it
/// does not exist.
fn drop_ins(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let mut files = Vec::new();
    for e in entries {
        let e = e.with_context(|| format!("reading {}", dir.display()))?;
        let path = e.path();
        if e.file_name().to_string_lossy().ends_with(".conf") && path.is_file() {
            files.push(path);
        }
        if files.len() > MAX_DROP_INS {
            bail!("{} has more than {MAX_DROP_INS} drop-in files", dir.display());
        }
    }
    files.sort();
    Ok(files)
}

// Tables, one case a line.
#[rustfmt::skip]
#[cfg(test)]
mod tests;
