//! ConfigMaps and Secrets: the objects a pod's env and volumes read from.
//! Values are bytes (a Secret's `data` and a ConfigMap's `binaryData` are
//! base64; `stringData` merges over `data`, as the API server stores it).

use std::collections::BTreeMap;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use base64::Engine;
use serde::Deserialize;

use crate::error::Error;
use crate::pod::ObjectMeta;

/// The keys and values of one object.
pub type Data = BTreeMap<String, Vec<u8>>;

/// Every ConfigMap and Secret the pod can read, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sources {
    /// ConfigMaps' `data`: what env (`envFrom`, `configMapKeyRef`) reads.
    pub config_maps: BTreeMap<String, Data>,
    /// ConfigMaps' `binaryData`: volumes read it too, env does not (the
    /// kubelet's env reads `data` only).
    pub config_map_binary: BTreeMap<String, Data>,
    /// Secrets.
    pub secrets: BTreeMap<String, Data>,
}

/// Which kind of object a reference reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// A ConfigMap.
    ConfigMap,
    /// A Secret.
    Secret,
}

impl SourceKind {
    /// `ConfigMap` or `Secret`, for messages.
    pub fn name(self) -> &'static str {
        match self {
            SourceKind::ConfigMap => "ConfigMap",
            SourceKind::Secret => "Secret",
        }
    }
}

impl Sources {
    /// The keys of object `name` of `kind` that env reads.
    pub fn get(&self, kind: SourceKind, name: &str) -> Option<&Data> {
        match kind {
            SourceKind::ConfigMap => self.config_maps.get(name),
            SourceKind::Secret => self.secrets.get(name),
        }
    }

    /// Every key of object `name` of `kind`, as a volume shows them
    /// (a ConfigMap's `binaryData` too).
    pub fn files(&self, kind: SourceKind, name: &str) -> Option<Data> {
        let mut data = self.get(kind, name)?.clone();
        if kind == SourceKind::ConfigMap {
            if let Some(binary) = self.config_map_binary.get(name) {
                data.extend(binary.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        Some(data)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ConfigMap {
    #[allow(dead_code)]
    api_version: Option<String>,
    #[allow(dead_code)]
    kind: Option<String>,
    metadata: ObjectMeta,
    #[serde(default)]
    data: BTreeMap<String, String>,
    #[serde(default)]
    binary_data: BTreeMap<String, String>,
    #[allow(dead_code)]
    immutable: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Secret {
    #[allow(dead_code)]
    api_version: Option<String>,
    #[allow(dead_code)]
    kind: Option<String>,
    metadata: ObjectMeta,
    #[serde(default, rename = "type")]
    #[allow(dead_code)]
    kind_of_secret: Option<String>,
    #[serde(default)]
    data: BTreeMap<String, String>,
    #[serde(default)]
    string_data: BTreeMap<String, String>,
    #[allow(dead_code)]
    immutable: Option<bool>,
}

/// A ConfigMap or Secret key: `[-._a-zA-Z0-9]+`, at most 253 bytes, not
/// `.` and not starting with `..` (the API server's IsConfigMapKey: the
/// kubelet's own files in a volume start so).
pub fn is_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 253
        && key != "."
        && !key.starts_with("..")
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
}

fn base64(at: &str, text: &str) -> Result<Vec<u8>, Error> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| Error::new(at, format!("not valid base64: {e}")))
}

fn check_keys<'a>(at: &str, keys: impl Iterator<Item = &'a String>) -> Result<(), Error> {
    for key in keys {
        if !is_key(key) {
            return Err(Error::new(
                format!("{at}.{key}"),
                "a key is letters, digits, '-', '_' and '.' (at most 253)",
            ));
        }
    }
    Ok(())
}

impl Sources {
    /// Adds a ConfigMap or Secret object (`kind`), refusing a second one of
    /// the same name, one in another namespace, bad keys and bad base64.
    /// Paths in errors are relative to the object.
    pub fn add(&mut self, kind: SourceKind, value: serde_json::Value, namespace: &str) -> Result<(), Error> {
        let (meta, data, binary) = match kind {
            SourceKind::ConfigMap => {
                let cm: ConfigMap = crate::pod::deserialize(value)?;
                check_keys("data", cm.data.keys())?;
                check_keys("binaryData", cm.binary_data.keys())?;
                let data: Data = cm.data.into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
                let mut binary = Data::new();
                for (k, v) in &cm.binary_data {
                    if data.contains_key(k) {
                        return Err(Error::new(
                            format!("binaryData.{k}"),
                            "the key is also in data; a key may be in one of them",
                        ));
                    }
                    binary.insert(k.clone(), base64(&format!("binaryData.{k}"), v)?);
                }
                (cm.metadata, data, binary)
            }
            SourceKind::Secret => {
                let s: Secret = crate::pod::deserialize(value)?;
                check_keys("data", s.data.keys())?;
                check_keys("stringData", s.string_data.keys())?;
                let mut data = Data::new();
                for (k, v) in &s.data {
                    data.insert(k.clone(), base64(&format!("data.{k}"), v)?);
                }
                for (k, v) in s.string_data {
                    data.insert(k, v.into_bytes());
                }
                (s.metadata, data, Data::new())
            }
        };
        crate::validate::dns_subdomain("metadata.name", &meta.name)?;
        if let Some(ns) = meta.namespace.as_deref().filter(|ns| *ns != namespace) {
            return Err(Error::new(
                "metadata.namespace",
                format!("{ns:?}: the pod is in namespace {namespace:?} and can read only its own"),
            ));
        }
        let map = match kind {
            SourceKind::ConfigMap => &mut self.config_maps,
            SourceKind::Secret => &mut self.secrets,
        };
        if kind == SourceKind::ConfigMap {
            self.config_map_binary.insert(meta.name.clone(), binary);
        }
        if map.insert(meta.name.clone(), data).is_some() {
            return Err(Error::new(
                "metadata.name",
                format!("a second {} named {:?}", kind.name(), meta.name),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn config_maps_and_secrets() {
        let mut s = Sources::default();
        s.add(
            SourceKind::ConfigMap,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                   "data": {"a.txt": "x"}, "binaryData": {"b": "AAEC"}, "immutable": true}),
            "default",
        )
        .unwrap();
        s.add(
            SourceKind::Secret,
            json!({"kind": "Secret", "type": "Opaque", "metadata": {"name": "c", "namespace": "default"},
                   "data": {"k": "aGk=", "o": "b2xk"}, "stringData": {"o": "new"}}),
            "default",
        )
        .unwrap();
        let cm = s.get(SourceKind::ConfigMap, "c").unwrap();
        assert_eq!(cm["a.txt"], b"x");
        assert!(!cm.contains_key("b"), "env does not read binaryData");
        assert_eq!(s.files(SourceKind::ConfigMap, "c").unwrap()["b"], [0, 1, 2]);
        assert!(!is_key("..data") && is_key(".a..b"));
        let sec = s.get(SourceKind::Secret, "c").unwrap();
        assert_eq!(sec["k"], b"hi");
        assert_eq!(sec["o"], b"new");
        let err = |kind, v| s.clone().add(kind, v, "default").unwrap_err().to_string();
        assert!(err(SourceKind::ConfigMap, json!({"metadata": {"name": "c"}})).contains("a second ConfigMap"));
        assert!(err(
            SourceKind::Secret,
            json!({"metadata": {"name": "d"}, "data": {"k": "!!"}})
        )
        .starts_with("data.k: not valid base64"));
        assert!(err(
            SourceKind::ConfigMap,
            json!({"metadata": {"name": "d"}, "data": {"a/b": ""}})
        )
        .starts_with("data.a/b: a key is"));
        assert!(err(
            SourceKind::ConfigMap,
            json!({"metadata": {"name": "d", "namespace": "x"}})
        )
        .contains("can read only its own"));
        assert!(err(
            SourceKind::ConfigMap,
            json!({"metadata": {"name": "d"}, "date": {}})
        )
        .starts_with("date: unknown field"));
        assert!(err(
            SourceKind::ConfigMap,
            json!({"metadata": {"name": "d"}, "data": {"k": "1"}, "binaryData": {"k": "MQ=="}})
        )
        .contains("also in data"));
        assert!(!is_key("..") && !is_key("") && is_key(".hidden") && is_key("a-b_c.d"));
    }
}
