//! From a manifest to the initramfs contents: validate, import images,
//! resolve the plan, lay out the tree.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use pod1_manifest::downward::Node as VmSize;
use pod1_manifest::objects::Sources;
use pod1_manifest::plan::{self, ImageInfo, PLAN_PATH};
use pod1_manifest::volumes::Entry;
use pod1_manifest::workload::{self, Kind as WorkloadKind};
use pod1_manifest::{Plan, Pod};

use crate::image;
use crate::image::policy::PullFlag;
use crate::tree::{Kind, Node, Tree};

/// Where the init binary sits; `/init` and `/sbin/init` resolve to it.
pub const INIT_PATH: &str = "sbin/init";
/// Where image root filesystems go, one directory per distinct image.
pub const IMAGES_DIR: &str = "pod1/images";

/// A manifest, read and validated.
pub struct Manifest {
    /// Its path.
    pub path: PathBuf,
    /// Its directory, against which image paths resolve.
    pub dir: PathBuf,
    /// The extra files (`-f`) its ConfigMaps and Secrets came from too.
    pub extra: Vec<PathBuf>,
    /// The pod.
    pub pod: Pod,
    /// What the file runs: a Pod, a Job's pod or a Deployment's.
    pub kind: WorkloadKind,
    /// The ConfigMaps and Secrets the pod reads.
    pub sources: Sources,
    /// Where its registry images are in the store, by the name written.
    pub located: BTreeMap<String, image::pull::Located>,
    /// Held while the manifest lives: no `pod1 rmi` collects those images
    /// before the build has read them.
    images_in_use: Option<image::store::UseGuard>,
}

/// One distinct image in the initramfs.
#[derive(Debug)]
pub struct StoredImage {
    /// Content digest of its tree; its directory is `pod1/images/<id>`.
    pub id: String,
    /// The manifest's names for it.
    pub names: Vec<String>,
    /// Its file data in bytes.
    pub bytes: u64,
    /// Its entries.
    pub entries: usize,
}

/// A pod, resolved and laid out, ready to be written.
pub struct Assembled {
    /// The plan the init will run.
    pub plan: Plan,
    /// The images, each once.
    pub images: Vec<StoredImage>,
    /// Everything but the init binary.
    pub tree: Tree,
    /// Per container, the env variables holding a Secret's value.
    pub secret_env: BTreeMap<String, Vec<String>>,
}

impl Manifest {
    /// Reads and validates a manifest file and the ConfigMaps and Secrets
    /// of `extra` files. Each field taken out because it has no meaning in
    /// a pod1 VM gets a warning line on stderr; with `strict`, the first
    /// one is an error instead.
    /// Registry images are then pulled as their `imagePullPolicy` (or `pull`) asks.
    pub fn load(path: &Path, extra: &[PathBuf], strict: bool, pull: Option<PullFlag>) -> Result<Manifest> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).with_context(|| format!("cannot read manifest {}", p.display()))
        };
        let mut w =
            workload::read(&read(path)?).with_context(|| format!("invalid manifest {}", path.display()))?;
        for file in extra {
            workload::add_sources(&mut w, &read(file)?)
                .with_context(|| format!("invalid manifest {} (-f)", file.display()))?;
        }
        if let (true, Some(first)) = (strict, w.ignored.first()) {
            anyhow::bail!(
                "invalid manifest {}: {}: pod1 would ignore it ({}); --strict refuses it",
                path.display(),
                first.path,
                first.reason
            );
        }
        for i in &w.ignored {
            eprintln!("pod1: warning: {} is ignored: {}", i.path, i.reason);
        }
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        let mut m = Manifest {
            path: path.to_path_buf(),
            dir,
            extra: extra.to_vec(),
            pod: w.pod,
            kind: w.kind,
            sources: w.sources,
            located: BTreeMap::new(),
            images_in_use: None,
        };
        (m.located, m.images_in_use) = image::policy::ensure(&m.wanted_images(), pull, &m.pull_secrets())?;
        Ok(m)
    }

    /// The credentials of `imagePullSecrets`: each Secret's
    /// `.dockerconfigjson` (or legacy `.dockercfg`). One the files do not
    /// hold is skipped with a warning, as the kubelet goes on without it.
    fn pull_secrets(&self) -> Vec<image::registry::auth::PullSecret> {
        let mut out = Vec::new();
        for (i, r) in self.pod.spec.image_pull_secrets.iter().enumerate() {
            let name = r.name.clone().unwrap_or_default();
            let data = self.sources.secrets.get(&name);
            let found = data.and_then(|d| {
                d.get(".dockerconfigjson")
                    .map(|j| (j, false))
                    .or_else(|| d.get(".dockercfg").map(|j| (j, true)))
            });
            match found {
                Some((json, legacy)) => out.push(image::registry::auth::PullSecret {
                    name,
                    json: json.clone(),
                    legacy,
                }),
                None => eprintln!(
                    "pod1: warning: spec.imagePullSecrets[{i}]: {}; pulling with the host's credentials only",
                    match data {
                        None => format!("no Secret {name:?} in the manifest's files (add it, or -f FILE)"),
                        Some(_) =>
                            format!("the Secret {name:?} has neither .dockerconfigjson nor .dockercfg"),
                    }
                ),
            }
        }
        out
    }

    /// The pod's registry images, each with the strongest pull policy of
    /// the containers naming it.
    fn wanted_images(&self) -> Vec<image::policy::Wanted> {
        let spec = &self.pod.spec;
        let init = spec
            .init_containers
            .iter()
            .enumerate()
            .map(|(i, c)| (c, format!("spec.initContainers[{i}].image")));
        let app = spec
            .containers
            .iter()
            .enumerate()
            .map(|(i, c)| (c, format!("spec.containers[{i}].image")));
        image::policy::wanted(
            init.chain(app)
                .map(|(c, at)| (c.image.as_str(), c.image_pull_policy.as_deref(), at)),
        )
    }

    /// The `Localhost` seccomp profiles the pod names, as written.
    pub fn seccomp_profiles(&self) -> Vec<&str> {
        let spec = &self.pod.spec;
        let pod_level = spec
            .security_context
            .as_ref()
            .and_then(|s| s.seccomp_profile.as_ref());
        let containers = spec.init_containers.iter().chain(&spec.containers);
        let levels = containers.filter_map(|c| c.security_context.as_ref()?.seccomp_profile.as_ref());
        pod_level
            .into_iter()
            .chain(levels)
            .filter_map(|p| p.localhost_profile.as_deref())
            .collect()
    }

    /// Every distinct `image` the pod names, with the JSON path of its first use.
    pub fn image_names(&self) -> BTreeMap<String, String> {
        let mut names = BTreeMap::new();
        let spec = &self.pod.spec;
        for (field, list) in [
            ("initContainers", &spec.init_containers),
            ("containers", &spec.containers),
        ] {
            for (i, c) in list.iter().enumerate() {
                names
                    .entry(c.image.clone())
                    .or_insert_with(|| format!("spec.{field}[{i}].image"));
            }
        }
        names
    }

    /// Imports the images and resolves the plan for a VM of `vm`'s size
    /// (the downward API's node capacity); the tree holds the plan, the
    /// files it refers to and the images' root filesystems.
    pub fn assemble(&self, vm: VmSize) -> Result<Assembled> {
        let mut infos = BTreeMap::new();
        let mut stored: BTreeMap<String, (Tree, Vec<String>)> = BTreeMap::new();
        for (name, at) in self.image_names() {
            let img = image::import(&name, &self.dir, &self.located)
                .with_context(|| format!("{at}: image {name:?}"))?;
            let id = img.tree.digest()[..16].to_string();
            let text = |p: &str| img.tree.read(p).map(|d| String::from_utf8_lossy(d).into_owned());
            infos.insert(
                name.clone(),
                ImageInfo {
                    config: img.config.clone(),
                    rootfs: format!("/{IMAGES_DIR}/{id}"),
                    passwd: text("etc/passwd"),
                    group: text("etc/group"),
                    id: img.id.clone(),
                },
            );
            stored
                .entry(id)
                .or_insert_with(|| (img.tree, Vec::new()))
                .1
                .push(name);
        }
        let inputs = plan::Inputs {
            pod: &self.pod,
            sources: &self.sources,
            node: vm,
            images: &infos,
            backoff_limit: match self.kind {
                WorkloadKind::Job { backoff_limit } => Some(backoff_limit),
                _ => None,
            },
        };
        let resolved = plan::resolve_all(&inputs)
            .with_context(|| format!("invalid manifest {}", self.path.display()))?;
        for w in &resolved.warnings {
            eprintln!("pod1: warning: {w}");
        }
        let mut plan = resolved.plan;
        crate::seccomp::compile_plan(&mut plan, &self.dir)
            .with_context(|| format!("invalid manifest {}", self.path.display()))?;
        crate::virtiofs::resolve_plan(&mut plan, &self.dir)?;
        let mut tree = Tree::default();
        for dir in ["dev", "proc", "sys", "run", "etc/pod1", "sbin", IMAGES_DIR] {
            tree.insert(dir, Node::dir(0o755))?;
        }
        tree.insert("tmp", Node::dir(0o1777))?;
        // The kernel opens /dev/console for init's stdio before init runs,
        // and no devtmpfs is mounted yet at that point.
        tree.insert(
            "dev/console",
            Node {
                kind: Kind::Char(5, 1),
                mode: 0o600,
                uid: 0,
                gid: 0,
            },
        )?;
        for f in resolved.files {
            let mut node = match f.entry {
                Entry::Dir(mode) => Node::dir(mode),
                Entry::File(data, mode) => Node::file(data, mode),
                Entry::Symlink(target) => Node::symlink(&target),
            };
            node.gid = f.gid;
            tree.insert(&f.path, node)?;
        }
        let json = serde_json::to_vec_pretty(&plan)?;
        tree.insert(PLAN_PATH, Node::file(json, 0o644))?;
        let mut images = Vec::new();
        for (id, (img, names)) in stored {
            tree.graft(&format!("{IMAGES_DIR}/{id}"), &img)?;
            images.push(StoredImage {
                id,
                names,
                bytes: img.data_size(),
                entries: img.len(),
            });
        }
        Ok(Assembled {
            plan,
            images,
            tree,
            secret_env: resolved.secret_env,
        })
    }
}

/// The VM `pod1 build` and `pod1 plan` resolve for: `pod1 run`'s default
/// size (512 MiB, 1 CPU). `pod1 run` resolves for the size it boots.
pub fn default_vm() -> VmSize {
    VmSize::new(512, 1)
}

/// Adds the init binary at [`INIT_PATH`] with `/init` linking to it.
pub fn add_init(tree: &mut Tree, init: &Path) -> Result<()> {
    let bin =
        std::fs::read(init).with_context(|| format!("cannot read the init binary {}", init.display()))?;
    crate::elf::check_static(&bin).with_context(|| format!("cannot use {} as the init", init.display()))?;
    tree.insert(INIT_PATH, Node::file(bin, 0o755))?;
    tree.insert("init", Node::symlink(INIT_PATH))?;
    Ok(())
}

/// The init binary: `--init`, else `pod1-init` next to this executable.
pub fn find_init(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    let exe = std::env::current_exe().context("cannot find the pod1 executable")?;
    let candidate = exe.with_file_name("pod1-init");
    if candidate.exists() {
        Ok(candidate)
    } else {
        anyhow::bail!(
            "no pod1-init next to {} : build it (`cargo build --release --manifest-path init/Cargo.toml`) or pass --init PATH",
            exe.display()
        )
    }
}
