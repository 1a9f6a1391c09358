//! `imagePullPolicy` as the kubelet reads it, and `--pull` over it: which
//! of a pod's registry images are pulled before a build, and which are
//! taken from the store as they are.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use pod1_manifest::image::Source;
use pod1_manifest::reference::Reference;

use super::pull::{find, Located, Puller};
use super::registry::auth::PullSecret;
use super::registry::client::Client;
use super::registry::config::Registries;
use super::store::{ImageStore, UseGuard};

/// `--pull`: one policy for every container, over the manifest's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PullFlag {
    /// Pull every image (a digest-pinned one only if absent).
    Always,
    /// Pull what the store does not have.
    Missing,
    /// Pull nothing: an image the store lacks is an error.
    Never,
}

/// A container's pull policy, weakest first: several containers naming
/// one image pull it as the strongest asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Policy {
    Never,
    IfNotPresent,
    Always,
}

impl Policy {
    /// The field's value, else the API server's default: `Always` for
    /// `:latest` or no tag (and no digest), else `IfNotPresent`.
    pub fn of(field: Option<&str>, r: &Reference) -> Policy {
        match field {
            Some("Always") => Policy::Always,
            Some("Never") => Policy::Never,
            Some("IfNotPresent") => Policy::IfNotPresent,
            // Validation refused other values; the default otherwise.
            _ if r.tag.as_deref() == Some("latest") => Policy::Always,
            _ => Policy::IfNotPresent,
        }
    }

    /// `--pull` in place of the manifest's policies.
    pub fn with_flag(self, flag: Option<PullFlag>) -> Policy {
        match flag {
            None => self,
            Some(PullFlag::Always) => Policy::Always,
            Some(PullFlag::Missing) => Policy::IfNotPresent,
            Some(PullFlag::Never) => Policy::Never,
        }
    }
}

/// What to do for one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Take it from the store.
    Use,
    /// Pull it (a pull of an unchanged image fetches the manifest only).
    Pull,
    /// `Never` and absent.
    Refuse,
}

/// The kubelet's decision: `Always` pulls (a digest names content that
/// cannot change, so a present pinned image needs no network),
/// `IfNotPresent` pulls what is absent, `Never` never pulls.
pub fn decide(policy: Policy, present: bool, pinned: bool) -> Action {
    match (policy, present) {
        (_, true) if policy != Policy::Always || pinned => Action::Use,
        (Policy::Never, false) => Action::Refuse,
        _ => Action::Pull,
    }
}

/// One registry image a pod names.
#[derive(Debug, Clone)]
pub struct Wanted {
    /// As written in the manifest.
    pub written: String,
    /// The strongest policy among the containers naming it.
    pub policy: Policy,
    /// The JSON path of its first use, for messages.
    pub at: String,
}

/// The registry images of `(image, imagePullPolicy, path)` triples, each
/// once with the strongest policy; local transports are left out.
pub fn wanted<'a>(images: impl IntoIterator<Item = (&'a str, Option<&'a str>, String)>) -> Vec<Wanted> {
    let mut by_name: BTreeMap<String, Wanted> = BTreeMap::new();
    for (written, field, at) in images {
        let Ok(Source::Registry(r)) = Source::parse(written) else {
            continue;
        };
        let policy = Policy::of(field, &r);
        by_name
            .entry(written.to_string())
            .and_modify(|w| w.policy = w.policy.max(policy))
            .or_insert(Wanted {
                written: written.to_string(),
                policy,
                at,
            });
    }
    by_name.into_values().collect()
}

/// Makes every wanted image present per its policy (or `flag`) and says
/// where each is in the store. Pulls print a line each on stderr.
/// The store's hold comes back with them: held until the build has read
/// the images, it keeps a concurrent `pod1 rmi` from collecting them.
pub fn ensure(
    wanted: &[Wanted],
    flag: Option<PullFlag>,
    pull_secrets: &[PullSecret],
) -> Result<(BTreeMap<String, Located>, Option<UseGuard>)> {
    let mut located = BTreeMap::new();
    if wanted.is_empty() {
        return Ok((located, None));
    }
    let registries = Registries::load()?;
    let store = ImageStore::open_default()?;
    let in_use = store.in_use()?;
    // The client reads the trust store: only made when something is pulled.
    let mut client: Option<Client> = None;
    for w in wanted {
        let policy = w.policy.with_flag(flag);
        let pinned = Reference::parse_normalized(&w.written).is_ok_and(|r| r.digest.is_some());
        let found = find(&registries, &store, &w.written)
            .with_context(|| format!("{}: image {:?}", w.at, w.written))?;
        let l = match decide(policy, found.is_some(), pinned) {
            Action::Use => found.context("a present image")?,
            Action::Refuse => bail!(
                "{}: image {:?} is not in the local store and {}: pull it first (pod1 pull {}), load it (pod1 load), or run with --pull=missing",
                w.at,
                w.written,
                match flag {
                    Some(PullFlag::Never) => "--pull=never was given",
                    _ => "its pull policy is Never",
                },
                w.written
            ),
            Action::Pull => {
                if client.is_none() {
                    client = Some(Client::new()?.with_pull_secrets(pull_secrets.to_vec()));
                }
                let puller = Puller {
                    registries: &registries,
                    client: client.as_ref().context("a registry client")?,
                    store: &store,
                    limit: super::max_image_bytes()?,
                };
                let l = puller.pull(&w.written).with_context(|| format!("{}: image {:?}", w.at, w.written))?;
                eprintln!("pod1: pulled {} ({})", l.name, l.target.digest());
                l
            }
        };
        located.insert(w.written.clone(), l);
    }
    Ok((located, Some(in_use)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Reference {
        Reference::parse_normalized(s).unwrap()
    }

    #[test]
    fn defaults_as_the_api_server() {
        assert_eq!(Policy::of(None, &r("busybox")), Policy::Always);
        assert_eq!(Policy::of(None, &r("busybox:latest")), Policy::Always);
        assert_eq!(Policy::of(None, &r("busybox:1.36")), Policy::IfNotPresent);
        let pinned = format!("busybox@sha256:{}", "a".repeat(64));
        assert_eq!(Policy::of(None, &r(&pinned)), Policy::IfNotPresent);
        let latest_pinned = format!("busybox:latest@sha256:{}", "a".repeat(64));
        assert_eq!(Policy::of(None, &r(&latest_pinned)), Policy::Always);
        assert_eq!(Policy::of(Some("Never"), &r("busybox")), Policy::Never);
        assert_eq!(
            Policy::of(Some("IfNotPresent"), &r("busybox")),
            Policy::IfNotPresent
        );
        assert_eq!(Policy::of(Some("Always"), &r("busybox:1")), Policy::Always);
    }

    #[test]
    fn decisions() {
        use Action::*;
        use Policy::*;
        let table = [
            // policy, present, pinned → action
            (Always, true, false, Pull),
            (Always, true, true, Use),
            (Always, false, true, Pull),
            (IfNotPresent, true, false, Use),
            (IfNotPresent, false, false, Pull),
            (Never, true, false, Use),
            (Never, false, false, Refuse),
            (Never, false, true, Refuse),
        ];
        for (policy, present, pinned, want) in table {
            assert_eq!(
                decide(policy, present, pinned),
                want,
                "{policy:?} {present} {pinned}"
            );
        }
        assert_eq!(Always.with_flag(Some(PullFlag::Never)), Never);
        assert_eq!(Never.with_flag(Some(PullFlag::Missing)), IfNotPresent);
        assert_eq!(Never.with_flag(None), Never);
    }

    #[test]
    fn one_entry_per_image_with_the_strongest_policy() {
        let w = wanted([
            (
                "busybox:1.36",
                Some("Never"),
                "spec.initContainers[0].image".to_string(),
            ),
            ("oci:x:1", Some("Always"), "spec.containers[0].image".to_string()),
            (
                "busybox:1.36",
                Some("Always"),
                "spec.containers[1].image".to_string(),
            ),
            ("busybox:1.36", None, "spec.containers[2].image".to_string()),
        ]);
        assert_eq!(w.len(), 1);
        assert_eq!(
            (w[0].policy, w[0].at.as_str()),
            (Policy::Always, "spec.initContainers[0].image")
        );
    }
}
