//! `pod1 run --image REF [options] -- CMD [ARGS...]`: a pod of one
//! container from the command line, as `kubectl run` makes one, written as
//! a manifest and then run as any manifest is.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use pod1_manifest::image::Source;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::tree::hex;

/// The options of `pod1 run --image`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct QuickArgs {
    /// Run one container of this image instead of a manifest (a registry
    /// reference, or oci:DIR[:TAG] and the other local transports); the
    /// command and its arguments follow `--`.
    #[arg(long, value_name = "REF", conflicts_with_all = ["input", "files"])]
    pub image: Option<String>,
    /// The pod's and the container's name [default: from the image's name].
    #[arg(long, requires = "image")]
    pub name: Option<String>,
    /// An environment variable of the container, KEY=VALUE, or KEY for the
    /// value it has here (repeatable).
    #[arg(short = 'e', long = "env", value_name = "KEY[=VALUE]", requires = "image")]
    pub env: Vec<String>,
    /// The container's working directory.
    #[arg(short = 'w', long = "workdir", value_name = "DIR", requires = "image")]
    pub workdir: Option<String>,
    /// The container's user: UID or UID:GID (numbers, as Kubernetes takes them).
    #[arg(long, value_name = "UID[:GID]", requires = "image")]
    pub user: Option<String>,
    /// A host directory or file shared with the container, read-write or
    /// read-only (`:ro`), as `docker run -v` takes it: a hostPath volume
    /// and its volumeMount; a relative HOSTPATH is taken from here (repeatable).
    #[arg(
        short = 'v',
        long = "volume",
        value_name = "HOSTPATH:CTRPATH[:ro]",
        requires = "image"
    )]
    pub volume: Vec<String>,
    /// Print the Pod instead of running it (as `kubectl run --dry-run=client`).
    #[arg(long, requires = "image")]
    pub dry_run: bool,
    /// The format --dry-run prints.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Yaml, requires = "dry_run")]
    pub output: Format,
    /// The command and its arguments (the image's Cmd when absent; its
    /// Entrypoint still runs them, as `kubectl run IMAGE -- ARGS` does).
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// `--output`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    #[default]
    Yaml,
    Json,
}

/// The Pod the options describe; `memory_mib` and `cpus` (when given on
/// the command line) become the container's limits as well as the VM's.
pub fn pod(q: &QuickArgs, memory_mib: Option<u32>, cpus: Option<u32>) -> Result<Value> {
    let image = q.image.as_deref().context("--image names no image")?;
    let image = match Source::parse(image).map_err(anyhow::Error::msg)? {
        // A local image's path is taken from here, not from the cache
        // directory the manifest is written to.
        Source::Local(r) if !r.path.starts_with('/') => {
            let cwd = std::env::current_dir().context("reading the current directory")?;
            image.replacen(&r.path, &cwd.join(&r.path).to_string_lossy(), 1)
        }
        _ => image.to_string(),
    };
    let name = match &q.name {
        Some(n) => n.clone(),
        None => default_name(&image),
    };
    let mut c = Map::new();
    c.insert("name".into(), json!(name));
    c.insert("image".into(), json!(image));
    if !q.command.is_empty() {
        c.insert("args".into(), json!(q.command));
    }
    if !q.env.is_empty() {
        let env = q.env.iter().map(|e| env_var(e)).collect::<Result<Vec<_>>>()?;
        c.insert("env".into(), Value::Array(env));
    }
    if let Some(w) = &q.workdir {
        c.insert("workingDir".into(), json!(w));
    }
    if let Some(u) = &q.user {
        c.insert("securityContext".into(), user(u)?);
    }
    let mut limits = Map::new();
    if let Some(m) = memory_mib {
        limits.insert("memory".into(), json!(format!("{m}Mi")));
    }
    if let Some(n) = cpus {
        limits.insert("cpu".into(), json!(n.to_string()));
    }
    if !limits.is_empty() {
        c.insert("resources".into(), json!({ "limits": limits }));
    }
    let mut spec = json!({"restartPolicy": "Never"});
    if !q.volume.is_empty() {
        let cwd = std::env::current_dir().context("reading the current directory")?;
        let (volumes, mounts) = volumes(&q.volume, &cwd)?;
        c.insert("volumeMounts".into(), Value::Array(mounts));
        spec["volumes"] = Value::Array(volumes);
    }
    spec["containers"] = json!([Value::Object(c)]);
    Ok(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"run": name}},
        "spec": spec,
    }))
}

/// Writes the Pod as a manifest under the cache (its path stays the same
/// for the same Pod, so an unchanged one reuses its build).
pub fn write_manifest(pod: &Value) -> Result<PathBuf> {
    let text = yaml(pod);
    let key = hex(&Sha256::digest(text.as_bytes()))[..16].to_string();
    let dir = crate::kernel::cache_dir().join("runs").join(key);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("pod.yaml");
    if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
        crate::cmd::build::write_atomically_mode(&path, 0o600, |f| {
            use std::io::Write;
            f.write_all(text.as_bytes())?;
            Ok(())
        })?;
    }
    Ok(path)
}

/// `--dry-run`'s output.
pub fn show(pod: &Value, format: Format) -> Result<String> {
    Ok(match format {
        Format::Yaml => yaml(pod),
        Format::Json => format!("{}\n", serde_json::to_string_pretty(pod)?),
    })
}

/// The last component of the image's repository, as a DNS label (what
/// `kubectl run` would be given by hand).
fn default_name(image: &str) -> String {
    let repo = match Source::parse(image) {
        Ok(Source::Registry(r)) => r.path,
        Ok(Source::Local(r)) => r.path,
        Err(_) => image.to_string(),
    };
    let base = repo.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    let mut name: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    name.truncate(63);
    let name = name.trim_matches('-').to_string();
    if name.is_empty() {
        "pod".to_string()
    } else {
        name
    }
}

/// `KEY=VALUE`, or `KEY` for this process's value of it (as `docker run -e`).
fn env_var(e: &str) -> Result<Value> {
    match e.split_once('=') {
        Some((k, v)) => Ok(json!({"name": k, "value": v})),
        None => match std::env::var(e) {
            Ok(v) => Ok(json!({"name": e, "value": v})),
            Err(_) => bail!("-e {e}: {e} is not set here; give its value as -e {e}=VALUE"),
        },
    }
}

/// `-v HOSTPATH:CTRPATH[:ro|:rw]` options as hostPath volumes (`volume-N`,
/// type `""`: a missing path becomes a directory, as `docker run -v` makes
/// it) and their mounts; a relative HOSTPATH is taken from `cwd` (the
/// manifest is written under the cache, so it must not be left relative).
fn volumes(specs: &[String], cwd: &std::path::Path) -> Result<(Vec<Value>, Vec<Value>)> {
    let (mut volumes, mut mounts) = (Vec::new(), Vec::new());
    for (i, spec) in specs.iter().enumerate() {
        let (rest, read_only) = match spec.rsplit_once(':') {
            Some((rest, "ro")) => (rest, true),
            Some((rest, "rw")) => (rest, false),
            _ => (spec.as_str(), false),
        };
        let Some((host, ctr)) = rest
            .rsplit_once(':')
            .filter(|(h, c)| !h.is_empty() && c.starts_with('/'))
        else {
            bail!("-v {spec}: give HOSTPATH:CTRPATH or HOSTPATH:CTRPATH:ro, CTRPATH absolute");
        };
        let host = match host.starts_with('/') {
            true => host.to_string(),
            false => cwd
                .join(host)
                .to_str()
                .with_context(|| {
                    format!("-v {spec}: the current directory is not UTF-8; give an absolute path")
                })?
                .to_string(),
        };
        let name = format!("volume-{i}");
        volumes.push(json!({"name": name, "hostPath": {"path": host}}));
        let mut m = json!({"name": name, "mountPath": ctr});
        if read_only {
            m["readOnly"] = json!(true);
        }
        mounts.push(m);
    }
    Ok((volumes, mounts))
}

/// `UID[:GID]` as a container securityContext.
fn user(u: &str) -> Result<Value> {
    let number = |s: &str| {
        s.parse::<u32>().with_context(|| {
            format!("--user {u}: {s:?} is not a number (Kubernetes takes numeric ids: runAsUser, runAsGroup)")
        })
    };
    Ok(match u.split_once(':') {
        Some((uid, gid)) => json!({"runAsUser": number(uid)?, "runAsGroup": number(gid)?}),
        None => json!({"runAsUser": number(u)?}),
    })
}

/// A JSON value as block YAML, as `kubectl ... -o yaml` prints objects.
/// Hand-written: the YAML crate pod1 reads with only deserializes, and a
/// Pod needs maps, lists, strings and numbers; strings that YAML would
/// read as anything else are written as JSON strings, which YAML reads back
/// as the same string.
pub fn yaml(v: &Value) -> String {
    let mut out = String::new();
    emit(v, 0, &mut out);
    out
}

fn emit(v: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                out.push_str(&format!("{pad}{}:", scalar(&Value::String(k.clone()))));
                block(v, indent + 2, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                out.push_str(&format!("{pad}-"));
                match item {
                    // A map's first key on the dash's line, the rest below it.
                    Value::Object(m) if !m.is_empty() => {
                        let mut inner = String::new();
                        emit(item, indent + 2, &mut inner);
                        out.push(' ');
                        out.push_str(inner.trim_start());
                    }
                    _ => block(item, indent + 2, out),
                }
            }
        }
        other => out.push_str(&format!("{pad}{}\n", scalar(other))),
    }
}

/// After `key:` or `-`: a scalar on the same line, a collection below.
fn block(v: &Value, indent: usize, out: &mut String) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            emit(v, indent, out);
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            // Lists under a key sit at the key's indentation, as kubectl prints them.
            emit(v, indent.saturating_sub(2), out);
        }
        Value::Object(_) => out.push_str(" {}\n"),
        Value::Array(_) => out.push_str(" []\n"),
        other => out.push_str(&format!(" {}\n", scalar(other))),
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => {
            // Letters first (or `/`, or `-` before a letter), then no
            // character YAML gives a meaning to, a `:` never last.
            let plain = s
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./@:".contains(c))
                && (s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '/')
                    || (s.starts_with('-') && s[1..].starts_with(|c: char| c.is_ascii_alphabetic())))
                && !s.ends_with(':')
                && !matches!(
                    s.to_ascii_lowercase().as_str(),
                    "true"
                        | "false"
                        | "yes"
                        | "no"
                        | "on"
                        | "off"
                        | "y"
                        | "n"
                        | "null"
                        | "nan"
                        | ".nan"
                        | ".inf"
                );
            if plain {
                s.clone()
            } else {
                Value::String(s.clone()).to_string()
            }
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick(image: &str) -> QuickArgs {
        QuickArgs {
            image: Some(image.into()),
            ..QuickArgs::default()
        }
    }

    #[test]
    fn the_pod_kubectl_run_would_make() {
        let mut q = quick("registry.example.com:5000/team/web-app:v2");
        q.env = vec!["A=1".into(), "B=x=y".into()];
        q.workdir = Some("/src".into());
        q.user = Some("1000:100".into());
        q.command = vec!["sh".into(), "-c".into(), "echo hi; exit 3".into()];
        let pod = pod(&q, Some(256), None).unwrap();
        assert_eq!(pod["metadata"]["name"], "web-app");
        let c = &pod["spec"]["containers"][0];
        assert_eq!(c["args"], json!(["sh", "-c", "echo hi; exit 3"]));
        assert_eq!(c["env"][1], json!({"name": "B", "value": "x=y"}));
        assert_eq!(
            c["securityContext"],
            json!({"runAsUser": 1000, "runAsGroup": 100})
        );
        assert_eq!(c["resources"], json!({"limits": {"memory": "256Mi"}}));
        assert_eq!(pod["spec"]["restartPolicy"], "Never");
        assert!(super::pod(
            &QuickArgs {
                user: Some("www".into()),
                ..quick("busybox")
            },
            None,
            None
        )
        .is_err());
        assert_eq!(default_name("busybox"), "busybox");
        assert_eq!(default_name("oci:/x/My_Image:1"), "my-image");
    }

    #[test]
    fn volumes_as_docker_takes_them() {
        let cwd = std::path::Path::new("/work/repo");
        let specs = [
            "src:/workspace".to_string(),
            "/etc/app.conf:/etc/app.conf:ro".into(),
            "a:b:/c:rw".into(),
        ];
        let (v, m) = volumes(&specs, cwd).unwrap();
        assert_eq!(
            v[0],
            json!({"name": "volume-0", "hostPath": {"path": "/work/repo/src"}})
        );
        assert_eq!(v[1]["hostPath"]["path"], "/etc/app.conf");
        assert_eq!(v[2]["hostPath"]["path"], "/work/repo/a:b");
        assert_eq!(m[0], json!({"name": "volume-0", "mountPath": "/workspace"}));
        assert_eq!(
            m[1],
            json!({"name": "volume-1", "mountPath": "/etc/app.conf", "readOnly": true})
        );
        assert!(m[2].get("readOnly").is_none());
        for bad in ["/x", "/x:rel", ":/c", "/x:/y:rx"] {
            assert!(volumes(&[bad.to_string()], cwd).is_err(), "{bad}");
        }
        // --dry-run's YAML reads back as the same volumes.
        let mut q = quick("busybox");
        q.volume = vec!["/data:/data:ro".into()];
        let back = pod1_manifest::workload::read(&yaml(&pod(&q, None, None).unwrap())).unwrap();
        assert_eq!(back.pod.spec.volumes[0].host_path.as_ref().unwrap().path, "/data");
        assert!(back.pod.spec.containers[0].volume_mounts[0].read_only);
    }

    #[test]
    fn yaml_reads_back_as_the_same_pod() {
        let mut q = quick("busybox:1.36");
        q.command = vec![
            "sh".into(),
            "-c".into(),
            "echo 'yes': \"no\" # not a comment".into(),
            "true".into(),
            "007".into(),
        ];
        q.env = vec!["EMPTY=".into(), "N=null".into()];
        let pod = pod(&q, None, Some(2)).unwrap();
        let text = yaml(&pod);
        assert!(
            text.starts_with("apiVersion: v1\nkind: Pod\nmetadata:\n  labels:\n    run: busybox\n"),
            "{text}"
        );
        let back = pod1_manifest::workload::read(&text).unwrap();
        let c = &back.pod.spec.containers[0];
        let want = ["sh", "-c", "echo 'yes': \"no\" # not a comment", "true", "007"];
        assert_eq!(c.args, Some(want.iter().map(|s| s.to_string()).collect()));
        assert_eq!(c.image, "busybox:1.36");
        assert_eq!(back.pod.metadata.name, "busybox");
    }
}
