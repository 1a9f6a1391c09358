//! A container's root filesystem, built inside its own mount namespace (the
//! caller has unshared it): overlayfs over the image (a copy when the kernel
//! has no overlayfs), /proc, /sys, /dev, volumes, the plan's files, runc's
//! masked and read-only paths, then `pivot_root` as runc does it. Volumes
//! and files go where their targets resolve in the root (`mountpoint`);
//! /proc, /sys and /dev go at those very paths.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use rustix::fs::{makedev, FileType, Mode, CWD};
use rustix::process::umask;

use crate::mounts::{self, bind, mkdir_p, mount_fs, remount_ro, MsFlags};
use crate::sys::{self, Errno};
use crate::{console, mountpoint, tree, volumes};

/// A step of building a container's root that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A mount, a mount point or the switch of root.
    #[error(transparent)]
    Mount(#[from] mounts::Error),
    /// A volume or a file mount.
    #[error(transparent)]
    Volume(#[from] volumes::Error),
    /// The root could not be held open to find mount points in.
    #[error(transparent)]
    MountPoint(#[from] mountpoint::Error),
}

impl From<tree::Error> for Error {
    fn from(e: tree::Error) -> Error {
        Error::Mount(e.into())
    }
}

/// Everything needed to build one container's root.
#[derive(Debug)]
pub struct Spec<'a> {
    /// The image's root filesystem (the overlay's lower layer).
    pub image: String,
    /// A fresh scratch directory for this run (upper, work, merged).
    pub scratch: String,
    /// The volumes, in the plan's order.
    pub volumes: Vec<volumes::Mount>,
    /// The files bound in after /dev, in the plan's order.
    pub files: Vec<volumes::FileBind>,
    /// `readOnlyRootFilesystem`.
    pub read_only: bool,
    /// No masked paths, writable /sys.
    pub privileged: bool,
    /// Created if missing, as runc does.
    pub working_dir: &'a str,
}

/// The devices every container gets: (name, major, minor).
const DEVICES: &[(&str, u32, u32)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// Links in /dev: (link, target).
const DEV_LINKS: &[(&str, &str)] = &[
    ("ptmx", "pts/ptmx"),
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("core", "/proc/kcore"),
];

/// runc's default masked paths (hidden under /dev/null or an empty tmpfs).
const MASKED: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// runc's default read-only paths.
const READ_ONLY: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

fn rel(p: &str) -> &str {
    p.trim_start_matches('/')
}

/// Mounts the writable layer: overlayfs where the kernel has it, else a
/// private copy of the image on a tmpfs. Either way the writes stay this
/// container's own.
fn mount_layers(spec: &Spec) -> Result<String, mounts::Error> {
    let merged = sys::join(&spec.scratch, "merged");
    let upper = sys::join(&spec.scratch, "upper");
    let work = sys::join(&spec.scratch, "work");
    for d in [&merged, &upper, &work] {
        mkdir_p(d)?;
    }
    let data = format!("lowerdir={},upperdir={upper},workdir={work}", spec.image);
    // A device node in the root filesystem (shipped in the image, or made
    // with CAP_MKNOD) cannot be opened; privileged containers keep them.
    let flags = match spec.privileged {
        true => MsFlags::empty(),
        false => MsFlags::MS_NODEV,
    };
    match mount_fs("overlay", &merged, "overlay", flags, Some(&data)) {
        Ok(()) => {}
        Err(e) => {
            console::debug(&format!("no overlayfs ({e}); copying the image instead"));
            mount_fs("tmpfs", &merged, "tmpfs", flags, Some("mode=0755"))?;
            tree::copy_contents(&spec.image, &merged, &[])?;
        }
    }
    Ok(merged)
}

/// The standard device nodes in `dev`: made with mknod, mode 0666 (the
/// caller clears the umask), or, with `bind` (a nodev /dev) or without
/// CAP_MKNOD, bind mounts of the init's own nodes (as runc does rootless):
/// a bind mount keeps its source's flags, so these open on a nodev /dev
/// where nothing else does.
fn make_devices(dev: &str, bind_nodes: bool) -> Result<(), mounts::Error> {
    for (name, major, minor) in DEVICES {
        let path = sys::join(dev, name);
        let made = match bind_nodes {
            true => Err(Errno::EPERM),
            false => rustix::fs::mknodat(
                CWD,
                path.as_str(),
                FileType::CharacterDevice,
                Mode::from_raw_mode(0o666),
                makedev(*major, *minor),
            )
            .map_err(Errno::from),
        };
        match made {
            Ok(()) => {}
            Err(Errno::EPERM) => {
                sys::write(&path, b"").map_err(|source| mounts::Error::MountPoint {
                    path: path.clone(),
                    source,
                })?;
                bind(&sys::join("/dev", name), &path, false)?;
            }
            Err(e) => {
                return Err(mounts::Error::MountPoint {
                    path,
                    source: e.into(),
                })
            }
        }
    }
    Ok(())
}

/// The container's /dev: a tmpfs with the standard nodes and links,
/// devpts, shm and mqueue. Unless privileged it is nodev, so a node made
/// there with CAP_MKNOD cannot be opened; the standard ones are bind mounts.
fn mount_dev(root: &str, privileged: bool) -> Result<(), mounts::Error> {
    let dev = tree::create_dir_all_no_symlinks(root, "/dev")?;
    let nodev = match privileged {
        true => MsFlags::empty(),
        false => MsFlags::MS_NODEV,
    };
    mount_fs(
        "tmpfs",
        &dev,
        "tmpfs",
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME | nodev,
        Some("mode=755,size=65536k"),
    )?;
    let umask_before = umask(Mode::empty());
    let made = make_devices(&dev, !privileged);
    umask(umask_before);
    made?;
    for (link, target) in DEV_LINKS {
        let path = sys::join(&dev, link);
        sys::symlink(target, &path).map_err(|source| mounts::Error::MountPoint { path, source })?;
    }
    let pts = sys::join(&dev, "pts");
    mkdir_p(&pts)?;
    mount_fs(
        "devpts",
        &pts,
        "devpts",
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
    )?;
    let shm = sys::join(&dev, "shm");
    mkdir_p(&shm)?;
    mount_fs(
        "shm",
        &shm,
        "tmpfs",
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=1777,size=65536k"),
    )?;
    let mq = sys::join(&dev, "mqueue");
    mkdir_p(&mq)?;
    // A kernel without POSIX message queues simply has no /dev/mqueue.
    if let Err(e) = mount_fs(
        "mqueue",
        &mq,
        "mqueue",
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None,
    ) {
        console::debug(&format!("skipping /dev/mqueue: {e}"));
    }
    Ok(())
}

/// Hides `path` (inside `root`) under /dev/null or an empty read-only tmpfs.
fn mask(root: &str, path: &str) -> Result<(), mounts::Error> {
    let target = sys::join(root, rel(path));
    match sys::lstat(&target) {
        Err(_) => Ok(()),
        Ok(m) if sys::file_type(&m) == FileType::Directory => {
            mount_fs("tmpfs", &target, "tmpfs", MsFlags::MS_RDONLY, Some("size=0"))
        }
        Ok(_) => bind(&sys::join(root, "dev/null"), &target, false),
    }
}

/// Builds the root and enters it. On return the process's root is the
/// container's and its working directory is `spec.working_dir`.
pub fn enter(spec: &Spec) -> Result<(), Error> {
    // Directories made for the container (its root's upper layer, volume
    // mount points, the working directory) are 0755, as Docker makes them;
    // device nodes get their exact modes in mount_dev.
    umask(Mode::from_raw_mode(0o022));
    // Order matters: nothing mounted below may propagate back to the init.
    mounts::make_private_rec()?;
    let root = mount_layers(spec)?;
    // The kernel's filesystems go on /proc, /sys and /dev: a symlink there
    // in the image would take them anywhere (as runc, refuse it).
    let proc = tree::create_dir_all_no_symlinks(&root, "/proc")?;
    let nsne = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount_fs("proc", &proc, "proc", nsne, None)?;
    let sysfs = tree::create_dir_all_no_symlinks(&root, "/sys")?;
    let sys_flags = if spec.privileged {
        nsne
    } else {
        nsne | MsFlags::MS_RDONLY
    };
    if let Err(e) = mount_fs("sysfs", &sysfs, "sysfs", sys_flags, None) {
        console::debug(&format!("sysfs: {e}; binding the host's /sys instead"));
        bind("/sys", &sysfs, !spec.privileged)?;
    }
    mount_dev(&root, spec.privileged)?;
    // Every mount point the image has a say in is found in the root as runc
    // finds it: through the image's symlinks, never out of the root.
    let in_root = mountpoint::Root::open(&root)?;
    // After /proc, /sys and /dev, as runc mounts the spec's own mounts
    // after the runtime's: a volume at /dev/shm is the volume, not hidden
    // under the /dev tmpfs.
    for m in &spec.volumes {
        volumes::mount(&in_root, m)?;
    }
    // After /dev, so that /dev/termination-log can be one; before the
    // masked paths, as runc applies them after the spec's mounts.
    for f in &spec.files {
        volumes::bind_file(&in_root, f)?;
    }
    if !spec.privileged {
        for p in MASKED {
            mask(&root, p)?;
        }
        for p in READ_ONLY {
            let target = sys::join(&root, rel(p));
            if sys::exists(&target) {
                bind(&target, &target, true)?;
            }
        }
    }
    pivot(&root)?;
    // Created inside the new root, so symlinks resolve within it.
    let wd = spec.working_dir;
    sys::create_dir_all(wd).map_err(|source| mounts::Error::MountPoint {
        path: wd.to_string(),
        source,
    })?;
    if spec.read_only {
        remount_ro("/")?;
    }
    rustix::process::chdir(wd).map_err(|e| mounts::Error::SwitchRoot {
        step: "chdir to the working directory",
        path: wd.to_string(),
        source: e.into(),
    })?;
    // A symlink on the way (in a volume another container wrote, say)
    // must not lead outside the root.
    sys::cwd_within_root().map_err(|why| mounts::Error::SwitchRoot {
        step: "chdir to the working directory",
        path: format!("{wd}: {why}"),
        source: Errno::EPERM,
    })?;
    umask(Mode::from_raw_mode(0o022));
    Ok(())
}

/// Mounts the container's own cgroup2 tree (its cgroup namespace's root)
/// on /sys/fs/cgroup, read-only unless privileged. Runs after pivot_root,
/// once the init has placed the process in its cgroup. Skipped quietly
/// without cgroup2 or without /sys/fs/cgroup in the container.
pub fn mount_cgroup_ro(privileged: bool) {
    let target = "/sys/fs/cgroup";
    if !sys::is_dir(target) {
        return;
    }
    let mut flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    if !privileged {
        flags |= MsFlags::MS_RDONLY;
    }
    if let Err(e) = mount_fs("cgroup2", target, "cgroup2", flags, None) {
        console::debug(&format!("no cgroup2 in the container: {e}"));
    }
}

/// runc's pivot: make `root` the root with `pivot_root(".", ".")`, then
/// detach the old root stacked on it, so nothing of the init's tree stays
/// reachable.
fn pivot(root: &str) -> Result<(), mounts::Error> {
    let step = |step: &'static str| {
        let path = root.to_string();
        move |e: rustix::io::Errno| mounts::Error::SwitchRoot {
            step,
            path,
            source: e.into(),
        }
    };
    rustix::process::chdir(root).map_err(step("chdir"))?;
    rustix::process::pivot_root(".", ".").map_err(step("pivot_root"))?;
    rustix::mount::unmount(".", rustix::mount::UnmountFlags::DETACH)
        .map_err(step("detaching the old root"))?;
    rustix::process::chdir("/").map_err(step("chdir /"))?;
    Ok(())
}
