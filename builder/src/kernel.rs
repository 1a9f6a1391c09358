//! Finding a guest kernel, reading its release, and packing the modules the
//! init needs from a distribution kernel.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::tree::{Node, Tree};

/// Modules the init loads when the kernel has them as modules rather than
/// built in: overlayfs gives each container a private writable layer
/// (without it the init copies each image instead, so it may be missing).
pub const OPTIONAL_MODULES: &[&str] = &["overlay"];
/// The channel's virtio-serial port: the transport (PCI, or MMIO on
/// `microvm`) and the driver.
pub fn channel_modules(machine: &str) -> &'static [&'static str] {
    match machine.starts_with("microvm") {
        true => &["virtio_mmio", "virtio_console"],
        false => &["virtio_pci", "virtio_console"],
    }
}
/// The NIC: the transport and virtio-net (Debian's pulls in
/// `net_failover` and `failover` through modules.dep).
pub fn net_modules(machine: &str) -> &'static [&'static str] {
    match machine.starts_with("microvm") {
        true => &["virtio_mmio", "virtio_net"],
        false => &["virtio_pci", "virtio_net"],
    }
}
/// hostPath volumes' virtio-fs: FUSE, the virtiofs driver and the PCI
/// transport (what they need comes from `modules.dep`). Only for a pod
/// that has one.
pub const FS_MODULES: &[&str] = &["virtio_pci", "fuse", "virtiofs"];
/// Where the modules go in the initramfs, and the file listing their load order.
pub const MODULES_DIR: &str = "pod1/modules";

/// The cache root: `$POD1_CACHE`, else `~/.cache/pod1`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("POD1_CACHE") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".cache/pod1")
}

/// The newest `kernel/<prefix>*/<file>` in the cache.
fn newest_cached(prefix: &str, file: &str) -> Option<PathBuf> {
    let dir = cache_dir().join("kernel");
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| e.path().join(file))
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .collect();
    found.sort();
    found.pop().map(|(_, p)| p)
}

/// The kernel to boot: `--kernel`, then `$POD1_KERNEL`, then the cached
/// minimal kernel, then the fetched Debian kernel.
pub fn find(explicit: Option<&Path>) -> Result<PathBuf> {
    let chosen = explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("POD1_KERNEL").map(PathBuf::from))
        .or_else(|| newest_cached("minimal-", "bzImage"))
        .or_else(|| newest_cached("debian-", "vmlinuz"));
    match chosen {
        Some(k) if k.is_file() => Ok(k),
        Some(k) => bail!("kernel {} does not exist", k.display()),
        None => bail!(
            "no guest kernel found: run scripts/build-kernel.sh (a minimal kernel, about 7 minutes) \
             or scripts/fetch-kernel.sh (Debian's cloud kernel), or pass --kernel"
        ),
    }
}

/// The release string (`uname -r`) of a bzImage, from its setup header.
pub fn release(kernel: &[u8]) -> Result<String> {
    // boot protocol: "HdrS" at 0x202; kernel_version (u16) at 0x20e points
    // to a NUL-terminated string at its value + 0x200.
    if kernel.get(0x202..0x206) != Some(b"HdrS") {
        bail!("not a bzImage (no Linux boot protocol header)");
    }
    let ptr = u16::from_le_bytes([kernel[0x20e], kernel[0x20f]]) as usize + 0x200;
    let text = kernel
        .get(ptr..)
        .context("bzImage version pointer out of range")?;
    let end = text.iter().position(|&b| b == 0 || b == b' ').unwrap_or(0);
    let release = std::str::from_utf8(&text[..end]).context("bzImage version is not text")?;
    if release.is_empty() {
        bail!("bzImage has an empty version string");
    }
    Ok(release.to_string())
}

/// The modules directory that belongs to `kernel`: `lib/modules/<release>`
/// next to it (as scripts/fetch-kernel.sh lays it out), else the host's.
pub fn modules_dir(kernel: &Path, release: &str) -> Option<PathBuf> {
    let beside = kernel.parent()?.join("lib/modules").join(release);
    let host = Path::new("/lib/modules").join(release);
    [beside, host]
        .into_iter()
        .find(|d| d.join("modules.dep").is_file())
}

/// Resolves `wanted` with their dependencies from `modules.dep`, in load
/// order (dependencies first); built-in modules (`modules.builtin`) are
/// skipped. Names the kernel has neither built in nor as a module are
/// returned apart.
pub fn load_order(modules_dep: &str, builtin: &str, wanted: &[&str]) -> (Vec<String>, Vec<String>) {
    let name_of = |path: &str| {
        let base = path.rsplit('/').next().unwrap_or(path);
        base.split(".ko").next().unwrap_or(base).replace('-', "_")
    };
    let builtin: Vec<String> = builtin.lines().map(name_of).collect();
    let deps: Vec<(String, String, Vec<String>)> = modules_dep
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(m, d)| {
            (
                name_of(m),
                m.to_string(),
                d.split_whitespace().map(str::to_string).collect(),
            )
        })
        .collect();
    let mut order: Vec<String> = Vec::new();
    let mut missing = Vec::new();
    for want in wanted {
        let want = want.replace('-', "_");
        if builtin.contains(&want) {
            continue;
        }
        let Some((_, path, list)) = deps.iter().find(|(n, _, _)| *n == want) else {
            missing.push(want);
            continue;
        };
        // modules.dep lists every (transitive) dependency; modprobe loads
        // them from the end of the list backwards.
        for p in list.iter().rev().chain(std::iter::once(path)) {
            if !order.contains(p) {
                order.push(p.clone());
            }
        }
    }
    (order, missing)
}

/// A tree with the `required` and `optional` modules (and what they need)
/// for the init to load, or `None` when the kernel needs none (all built
/// in, or a kernel without a modules directory, such as the minimal one).
/// A required module this kernel has neither built in nor in its modules
/// directory is an error naming it.
pub fn modules_tree(kernel: &Path, required: &[&str], optional: &[&str]) -> Result<Option<Tree>> {
    // The version string lies in the real-mode setup code (at most 64
    // sectors): no need to read a 14 MB kernel to find it.
    let mut head = Vec::with_capacity(64 << 10);
    std::fs::File::open(kernel)
        .and_then(|f| std::io::Read::read_to_end(&mut std::io::Read::take(f, 64 << 10), &mut head))
        .with_context(|| format!("cannot read kernel {}", kernel.display()))?;
    let release = release(&head).with_context(|| format!("kernel {}", kernel.display()))?;
    let Some(dir) = modules_dir(kernel, &release) else {
        return Ok(None);
    };
    let dep = std::fs::read_to_string(dir.join("modules.dep"))?;
    let builtin = std::fs::read_to_string(dir.join("modules.builtin")).unwrap_or_default();
    let wanted: Vec<&str> = optional.iter().chain(required).copied().collect();
    let (order, mut missing) = load_order(&dep, &builtin, &wanted);
    missing.retain(|m| required.iter().any(|r| r.replace('-', "_") == *m));
    if !missing.is_empty() {
        bail!(
            "kernel {} has no module {} (neither built in nor in {}): use a kernel that has it{}",
            kernel.display(),
            missing.join(", "),
            dir.display(),
            if missing.iter().any(|m| m.starts_with("virtio")) {
                ", or --channel serial"
            } else {
                ""
            }
        );
    }
    if order.is_empty() {
        return Ok(None);
    }
    let mut tree = Tree::default();
    let mut list = String::new();
    for rel in &order {
        let data = std::fs::read(dir.join(rel)).with_context(|| format!("reading module {rel}"))?;
        let name = rel.rsplit('/').next().unwrap_or(rel);
        tree.insert(format!("{MODULES_DIR}/{name}"), Node::file(data, 0o644))?;
        list.push_str(&format!("/{MODULES_DIR}/{name}\n"));
    }
    tree.insert(
        format!("{MODULES_DIR}/load"),
        Node::file(list.into_bytes(), 0o644),
    )?;
    Ok(Some(tree))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_order_puts_dependencies_first() {
        let dep = "kernel/fs/overlayfs/overlay.ko:\n\
                   kernel/a/top.ko.xz: kernel/b/mid.ko.xz kernel/c/low.ko.xz\n\
                   kernel/b/mid.ko.xz: kernel/c/low.ko.xz\n\
                   kernel/c/low.ko.xz:\n";
        let order = |builtin: &str, wanted: &[&str]| load_order(dep, builtin, wanted);
        assert_eq!(order("", &["overlay"]).0, ["kernel/fs/overlayfs/overlay.ko"]);
        assert_eq!(
            order("", &["top", "mid"]).0,
            ["kernel/c/low.ko.xz", "kernel/b/mid.ko.xz", "kernel/a/top.ko.xz"]
        );
        let none: (Vec<String>, Vec<String>) = (vec![], vec![]);
        assert_eq!(order("kernel/fs/overlayfs/overlay.ko\n", &["overlay"]), none);
        assert_eq!(
            order("", &["overlay", "virtio-console"]),
            (
                vec!["kernel/fs/overlayfs/overlay.ko".to_string()],
                vec!["virtio_console".to_string()]
            )
        );
    }

    #[test]
    fn a_module_the_kernel_lacks_is_an_error_naming_it() {
        // A kernel laid out as scripts/fetch-kernel.sh lays it out: a
        // bzImage header naming its release, lib/modules/<release> beside it.
        let dir = tempfile::tempdir().unwrap();
        let mut img = vec![0u8; 0x400];
        img[0x202..0x206].copy_from_slice(b"HdrS");
        img[0x20e..0x210].copy_from_slice(&0x100u16.to_le_bytes());
        img[0x300..0x30a].copy_from_slice(b"6.1.0-test");
        let kernel = dir.path().join("vmlinuz");
        std::fs::write(&kernel, &img).unwrap();
        let mods = dir.path().join("lib/modules/6.1.0-test");
        std::fs::create_dir_all(mods.join("kernel/fs")).unwrap();
        std::fs::write(mods.join("kernel/fs/overlay.ko"), b"\x7fELF").unwrap();
        std::fs::write(mods.join("modules.dep"), "kernel/fs/overlay.ko:\n").unwrap();
        std::fs::write(
            mods.join("modules.builtin"),
            "kernel/drivers/virtio/virtio_pci.ko\n",
        )
        .unwrap();
        let err = modules_tree(&kernel, channel_modules("pc"), &["overlay"]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("has no module virtio_console ("), "{msg}");
        assert!(msg.contains("--channel serial"), "{msg}");
        // An optional module may be missing (the init copies images instead).
        let tree = modules_tree(&kernel, &["virtio_pci"], &["overlay", "fuse"])
            .unwrap()
            .unwrap();
        let load = tree.get(format!("{MODULES_DIR}/load")).unwrap();
        assert!(
            matches!(&load.kind, crate::tree::Kind::File(data) if data.as_slice() == b"/pod1/modules/overlay.ko\n")
        );
    }

    #[test]
    fn release_from_a_bzimage_header() {
        let mut img = vec![0u8; 0x400];
        img[0x202..0x206].copy_from_slice(b"HdrS");
        img[0x20e..0x210].copy_from_slice(&0x100u16.to_le_bytes());
        img[0x300..0x300 + 30].copy_from_slice(b"6.1.0-9-cloud-amd64 (debian) #");
        assert_eq!(release(&img).unwrap(), "6.1.0-9-cloud-amd64");
        assert!(release(&[0u8; 0x300]).is_err());
    }
}
