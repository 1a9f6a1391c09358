//! The files of configMap, secret, downwardAPI and projected volumes, laid
//! out as the kubelet's atomic writer leaves them: the payload in a
//! `..<timestamp>` directory, `..data` pointing at it, and one symlink per
//! top-level name (`key -> ..data/key`), so tools that watch `..data` work
//! as on a node.

use std::collections::BTreeMap;

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::downward::{self, Node, Use};
use crate::env::missing;
use crate::error::Error;
use crate::objects::{SourceKind, Sources};
use crate::pod::{DownwardApiFile, KeyToPath, Pod, Volume};

/// The mode of a volume's files unless `defaultMode` or `mode` says otherwise.
pub const DEFAULT_MODE: u32 = 0o644;
/// The payload directory: the kubelet names it after the time it wrote
/// it; a fixed name keeps the initramfs reproducible.
pub const PAYLOAD_DIR: &str = "..2000_01_01_00_00_00.000000000";

/// A volume's files: relative path → (contents, mode).
pub type Payload = BTreeMap<String, (Vec<u8>, u32)>;

/// One entry of a volume's tree, relative to its root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A directory and its mode.
    Dir(u32),
    /// A file: contents and mode.
    File(Vec<u8>, u32),
    /// A symlink and its target.
    Symlink(String),
}

/// A volume's tree: paths relative to its root (`""` is the root) and
/// the group owning them (`fsGroup`, else 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    /// The entries, parents before children.
    pub entries: Vec<(String, Entry)>,
    /// Their group.
    pub gid: u32,
}

/// The files a volume holds (path → contents, mode), or `None` for an
/// emptyDir or a hostPath. `at` is the volume's JSON path.
pub fn payload<'a>(
    pod: &Pod,
    sources: &Sources,
    node: &Node,
    v: &'a Volume,
    at: &str,
) -> Result<Option<Payload>, Error> {
    let mut files = BTreeMap::new();
    let keys_of =
        |name: &'a str, name_field: &'static str, items: &'a [KeyToPath], optional: Option<bool>| KeysRef {
            name,
            name_field,
            items,
            optional: optional == Some(true),
        };
    if let Some(cm) = &v.config_map {
        let at = format!("{at}.configMap");
        let mode = default_mode(&at, cm.default_mode)?;
        let r = keys_of(&cm.name, "name", &cm.items, cm.optional);
        keys(sources, SourceKind::ConfigMap, &r, &at, mode, &mut files)?;
    } else if let Some(s) = &v.secret {
        let at = format!("{at}.secret");
        let mode = default_mode(&at, s.default_mode)?;
        let r = keys_of(&s.secret_name, "secretName", &s.items, s.optional);
        keys(sources, SourceKind::Secret, &r, &at, mode, &mut files)?;
    } else if let Some(d) = &v.downward_api {
        let at = format!("{at}.downwardAPI");
        let mode = default_mode(&at, d.default_mode)?;
        downward_files(pod, node, &d.items, &at, mode, &mut files)?;
    } else if let Some(p) = &v.projected {
        let at = format!("{at}.projected");
        let mode = default_mode(&at, p.default_mode)?;
        for (i, src) in p.sources.iter().enumerate() {
            let at = format!("{at}.sources[{i}]");
            let mut mine = BTreeMap::new();
            match src {
                s if s.service_account_token.is_some() => {
                    return Err(Error::new(
                        format!("{at}.serviceAccountToken"),
                        "a pod1 pod has no API server to issue service account tokens; remove this source (the kube-api-access-* volume the API server adds: remove it and its volumeMounts)",
                    ))
                }
                s if s.cluster_trust_bundle.is_some() => {
                    return Err(Error::new(
                        format!("{at}.clusterTrustBundle"),
                        "a pod1 pod has no API server to read trust bundles from; remove this source",
                    ))
                }
                s => match (&s.config_map, &s.secret, &s.downward_api) {
                    (Some(cm), None, None) => {
                        let r = keys_of(&cm.name, "name", &cm.items, cm.optional);
                        keys(
                            sources,
                            SourceKind::ConfigMap,
                            &r,
                            &format!("{at}.configMap"),
                            mode,
                            &mut mine,
                        )?
                    }
                    (None, Some(sec), None) => {
                        let r = keys_of(&sec.name, "name", &sec.items, sec.optional);
                        keys(
                            sources,
                            SourceKind::Secret,
                            &r,
                            &format!("{at}.secret"),
                            mode,
                            &mut mine,
                        )?
                    }
                    (None, None, Some(d)) => {
                        downward_files(pod, node, &d.items, &format!("{at}.downwardAPI"), mode, &mut mine)?
                    }
                    _ => return Err(Error::new(at, "set exactly one source")),
                },
            }
            for (path, file) in mine {
                if files.contains_key(&path) {
                    return Err(Error::new(at, format!("conflicting duplicate path {path:?}")));
                }
                files.insert(path, file);
            }
        }
    } else if v.empty_dir.is_some() || v.host_path.is_some() {
        return Ok(None);
    } else {
        return Err(Error::new(
            at,
            "a volume needs a source: emptyDir, configMap, secret, downwardAPI, projected or hostPath",
        ));
    }
    // One path cannot be both a file and a directory (`a` and `a/b`):
    // the kubelet's writer fails such a volume.
    for path in files.keys() {
        let mut parent = path.as_str();
        while let Some((dir, _)) = parent.rsplit_once('/') {
            if files.contains_key(dir) {
                return Err(Error::new(
                    at,
                    format!("{dir:?} is both a file and the directory of {path:?}"),
                ));
            }
            parent = dir;
        }
    }
    Ok(Some(files))
}

/// A reference to keys of a ConfigMap or Secret, whichever field named it.
struct KeysRef<'a> {
    name: &'a str,
    /// `name` or `secretName`, for errors.
    name_field: &'static str,
    items: &'a [KeyToPath],
    optional: bool,
}

fn default_mode(at: &str, mode: Option<i32>) -> Result<u32, Error> {
    file_mode(&format!("{at}.defaultMode"), mode).map(|m| m.unwrap_or(DEFAULT_MODE))
}

/// A `mode`: 0 to 0777 (YAML's `0644` is already 420 here).
fn file_mode(at: &str, mode: Option<i32>) -> Result<Option<u32>, Error> {
    match mode {
        None => Ok(None),
        Some(m) if (0..=0o777).contains(&m) => Ok(Some(m as u32)),
        Some(m) => Err(Error::new(
            at,
            format!("{m}: a mode is 0 to 0777 (octal), 511 in decimal"),
        )),
    }
}

/// A relative path in a volume: not absolute, no `..` element, not
/// starting with `..` (the kubelet's own files start so).
pub fn check_path(at: &str, path: &str) -> Result<String, Error> {
    let clean: Vec<&str> = path.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    if clean.is_empty()
        || path.starts_with('/')
        || path.starts_with("..")
        || path.split('/').any(|p| p == "..")
    {
        return Err(Error::new(
            at,
            format!("{path:?}: a relative path to a file, without '..' and not starting with '..'"),
        ));
    }
    Ok(clean.join("/"))
}

fn keys(
    sources: &Sources,
    kind: SourceKind,
    v: &KeysRef,
    at: &str,
    mode: u32,
    files: &mut Payload,
) -> Result<(), Error> {
    let optional = v.optional;
    let Some(data) = sources.files(kind, v.name) else {
        return if optional {
            Ok(())
        } else {
            Err(missing(&format!("{at}.{}", v.name_field), kind, v.name))
        };
    };
    if v.items.is_empty() {
        for (k, value) in &data {
            files.insert(k.clone(), (value.clone(), mode));
        }
    }
    for (i, KeyToPath { key, path, mode: m }) in v.items.iter().enumerate() {
        let at = format!("{at}.items[{i}]");
        let path = check_path(&format!("{at}.path"), path)?;
        let m = file_mode(&format!("{at}.mode"), *m)?.unwrap_or(mode);
        match data.get(key) {
            Some(value) => {
                files.insert(path, (value.clone(), m));
            }
            None if optional => {}
            None => {
                return Err(Error::new(
                    format!("{at}.key"),
                    format!(
                        "{} {:?} has no key {key:?}; set optional: true to run without it",
                        kind.name(),
                        v.name
                    ),
                ))
            }
        }
    }
    Ok(())
}

fn downward_files(
    pod: &Pod,
    node: &Node,
    items: &[DownwardApiFile],
    at: &str,
    mode: u32,
    files: &mut Payload,
) -> Result<(), Error> {
    for (i, item) in items.iter().enumerate() {
        let at = format!("{at}.items[{i}]");
        let path = check_path(&format!("{at}.path"), &item.path)?;
        let m = file_mode(&format!("{at}.mode"), item.mode)?.unwrap_or(mode);
        let value = match (&item.field_ref, &item.resource_field_ref) {
            (Some(f), None) => downward::field(pod, node, &f.field_path, Use::Volume)
                .map_err(|m| Error::new(format!("{at}.fieldRef.fieldPath"), m))?,
            (None, Some(r)) => {
                let name = r.container_name.as_deref().unwrap_or("");
                let c = pod
                    .spec
                    .all_containers()
                    .find(|c| c.name == name)
                    .ok_or_else(|| {
                        Error::new(
                            format!("{at}.resourceFieldRef.containerName"),
                            format!("{name:?}: name a container of the pod (a volume item needs one)"),
                        )
                    })?;
                downward::resource(c, r, node).map_err(|m| Error::new(format!("{at}.resourceFieldRef"), m))?
            }
            _ => return Err(Error::new(at, "set exactly one of fieldRef and resourceFieldRef")),
        };
        files.insert(path, (value.into_bytes(), m));
    }
    Ok(())
}

/// Lays out `files` as the atomic writer does. With `fs_group`, every
/// entry belongs to that group, files gain group read (0440) and
/// directories setgid, group read and search (02550), as the kubelet's
/// SetVolumeOwnership leaves a read-only volume. The root is 0777 (01777
/// for a Secret's tmpfs).
pub fn layout(files: &Payload, secret: bool, fs_group: Option<u32>) -> Tree {
    let (file_bits, dir_bits) = if fs_group.is_some() {
        (0o440, 0o2550)
    } else {
        (0, 0)
    };
    let root = if secret { 0o1777 } else { 0o777 };
    let mut entries = alloc::vec![
        (String::new(), Entry::Dir(root | dir_bits)),
        (PAYLOAD_DIR.to_string(), Entry::Dir(0o755 | dir_bits)),
    ];
    let mut dirs = alloc::collections::BTreeSet::new();
    let mut top = alloc::collections::BTreeSet::new();
    for (path, (data, mode)) in files {
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
        // Paths come cleaned and non-empty from check_path; keys are names.
        let Some(first) = parts.first() else { continue };
        for n in 1..parts.len() {
            let dir = parts[..n].join("/");
            if dirs.insert(dir.clone()) {
                entries.push((format!("{PAYLOAD_DIR}/{dir}"), Entry::Dir(0o755 | dir_bits)));
            }
        }
        entries.push((
            format!("{PAYLOAD_DIR}/{}", parts.join("/")),
            Entry::File(data.clone(), mode | file_bits),
        ));
        top.insert(first.to_string());
    }
    entries.push(("..data".to_string(), Entry::Symlink(PAYLOAD_DIR.to_string())));
    for name in top {
        entries.push((name.clone(), Entry::Symlink(format!("..data/{name}"))));
    }
    Tree {
        entries,
        gid: fs_group.unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn volume_files(volume: serde_json::Value) -> Result<Option<Payload>, Error> {
        let pod = json!({"metadata": {"name": "p", "namespace": "ns", "labels": {"b": "2", "a": "1"}},
            "spec": {"volumes": [volume], "containers": [{"name": "c", "image": "dir:x",
                "resources": {"limits": {"memory": "32Mi"}}}]}});
        let pod = Pod::parse(&pod.to_string())?;
        let mut sources = Sources::default();
        sources.add(
            SourceKind::ConfigMap,
            json!({"metadata": {"name": "cm"}, "data": {"a": "1", "b.conf": "x=y"}}),
            "ns",
        )?;
        sources.add(
            SourceKind::Secret,
            json!({"metadata": {"name": "s"}, "data": {"tls.key": "AAE="}}),
            "ns",
        )?;
        payload(
            &pod,
            &sources,
            &Node::new(512, 1),
            &pod.spec.volumes[0],
            "spec.volumes[0]",
        )
    }

    fn listing(files: &Payload) -> Vec<(String, String, u32)> {
        files
            .iter()
            .map(|(p, (d, m))| (p.clone(), String::from_utf8_lossy(d).into_owned(), *m))
            .collect()
    }

    #[test]
    fn config_map_with_items_and_modes() {
        let f = volume_files(
            json!({"name": "v", "configMap": {"name": "cm", "defaultMode": 0o600,
            "items": [{"key": "b.conf", "path": "etc/app.conf"}, {"key": "a", "path": "a", "mode": 0o755}]}}),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            listing(&f),
            [
                ("a".into(), "1".into(), 0o755),
                ("etc/app.conf".into(), "x=y".into(), 0o600)
            ]
        );
        let all = volume_files(json!({"name": "v", "configMap": {"name": "cm"}}))
            .unwrap()
            .unwrap();
        assert_eq!(all.keys().collect::<Vec<_>>(), ["a", "b.conf"]);
        assert!(all.values().all(|(_, m)| *m == DEFAULT_MODE));
    }

    #[test]
    fn secrets_optional_and_missing() {
        let f = volume_files(json!({"name": "v", "secret": {"secretName": "s"}}))
            .unwrap()
            .unwrap();
        assert_eq!(f["tls.key"].0, [0, 1]);
        let none = volume_files(json!({"name": "v", "secret": {"secretName": "absent", "optional": true}}));
        assert_eq!(none.unwrap().unwrap().len(), 0);
        let e = volume_files(json!({"name": "v", "secret": {"secretName": "absent"}})).unwrap_err();
        assert_eq!(e.path, "spec.volumes[0].secret.secretName");
        let e = volume_files(
            json!({"name": "v", "configMap": {"name": "cm", "items": [{"key": "zz", "path": "z"}]}}),
        )
        .unwrap_err();
        assert_eq!(e.path, "spec.volumes[0].configMap.items[0].key");
        let e = volume_files(
            json!({"name": "v", "configMap": {"name": "cm", "items": [{"key": "a", "path": "../x"}]}}),
        )
        .unwrap_err();
        assert_eq!(e.path, "spec.volumes[0].configMap.items[0].path");
        for bad in [".", "./", "a/../b", "..x"] {
            let e = volume_files(
                json!({"name": "v", "configMap": {"name": "cm", "items": [{"key": "a", "path": bad}]}}),
            )
            .unwrap_err();
            assert_eq!(e.path, "spec.volumes[0].configMap.items[0].path", "{bad}");
        }
        let f = volume_files(
            json!({"name": "v", "configMap": {"name": "cm", "items": [{"key": "a", "path": "./d//x/"}]}}),
        )
        .unwrap()
        .unwrap();
        assert_eq!(f.keys().collect::<Vec<_>>(), ["d/x"]);
        let e = volume_files(json!({"name": "v", "configMap": {"name": "cm", "items": [
            {"key": "a", "path": "x"}, {"key": "b.conf", "path": "x/y"}]}}))
        .unwrap_err();
        assert!(e.message.contains("both a file and the directory"), "{e}");
        let e =
            volume_files(json!({"name": "v", "configMap": {"name": "cm", "defaultMode": 512}})).unwrap_err();
        assert!(e.message.contains("0 to 0777"), "{e}");
    }

    #[test]
    fn downward_api_and_projected() {
        let f = volume_files(json!({"name": "v", "downwardAPI": {"items": [
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
            {"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}},
            {"path": "mem", "resourceFieldRef": {"containerName": "c", "resource": "limits.memory", "divisor": "1Mi"}}]}}))
        .unwrap()
        .unwrap();
        assert_eq!(
            listing(&f),
            [
                ("labels".into(), "a=\"1\"\nb=\"2\"".into(), 0o644),
                ("mem".into(), "32".into(), 0o644),
                ("ns".into(), "ns".into(), 0o644)
            ]
        );
        let e = volume_files(json!({"name": "v", "downwardAPI": {"items": [
            {"path": "m", "resourceFieldRef": {"resource": "limits.memory"}}]}}))
        .unwrap_err();
        assert!(e.path.ends_with("resourceFieldRef.containerName"), "{e}");
        let p = volume_files(
            json!({"name": "v", "projected": {"defaultMode": 0o400, "sources": [
            {"configMap": {"name": "cm", "items": [{"key": "a", "path": "cm/a"}]}},
            {"secret": {"name": "s"}},
            {"downwardAPI": {"items": [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}}]}}),
        )
        .unwrap()
        .unwrap();
        assert_eq!(p.keys().collect::<Vec<_>>(), ["cm/a", "name", "tls.key"]);
        assert!(p.values().all(|(_, m)| *m == 0o400));
        // Each source spells its object's name its own way.
        assert!(volume_files(json!({"name": "v", "projected": {"sources": [
            {"secret": {"secretName": "s"}}]}}))
        .is_err());
        assert!(volume_files(json!({"name": "v", "secret": {"name": "s"}})).is_err());
        let e = volume_files(json!({"name": "v", "projected": {"sources": [
            {"serviceAccountToken": {"path": "token"}}]}}))
        .unwrap_err();
        assert!(e.message.contains("no API server"), "{e}");
        let e = volume_files(json!({"name": "v", "projected": {"sources": [
            {"configMap": {"name": "cm"}}, {"configMap": {"name": "cm", "items": [{"key": "a", "path": "a"}]}}]}}))
        .unwrap_err();
        assert!(e.message.contains("conflicting duplicate path"), "{e}");
        assert_eq!(volume_files(json!({"name": "v", "emptyDir": {}})).unwrap(), None);
    }

    #[test]
    fn atomic_writer_layout() {
        let mut files = BTreeMap::new();
        files.insert("etc/app.conf".to_string(), (b"x".to_vec(), 0o600));
        files.insert("key".to_string(), (b"k".to_vec(), 0o644));
        let t = layout(&files, true, Some(2000));
        let d = PAYLOAD_DIR;
        assert_eq!(
            t.entries,
            [
                ("".into(), Entry::Dir(0o3777)),
                (d.into(), Entry::Dir(0o2755)),
                (format!("{d}/etc"), Entry::Dir(0o2755)),
                (format!("{d}/etc/app.conf"), Entry::File(b"x".to_vec(), 0o640)),
                (format!("{d}/key"), Entry::File(b"k".to_vec(), 0o644)),
                ("..data".into(), Entry::Symlink(d.into())),
                ("etc".into(), Entry::Symlink("..data/etc".into())),
                ("key".into(), Entry::Symlink("..data/key".into())),
            ]
        );
        assert_eq!(t.gid, 2000);
        assert_eq!(
            layout(&files, false, None).entries[0],
            ("".into(), Entry::Dir(0o777))
        );
    }
}
