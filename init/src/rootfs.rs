//! A container's root filesystem, built inside its own mount namespace (the
//! caller has unshared it): overlayfs over the image (a copy when the kernel
//! has no overlayfs), volumes, /proc, /sys, /dev, runc's masked and
//! read-only paths, then `pivot_root` as runc does it.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::MsFlags;
use nix::sys::stat::{makedev, mknod, umask, Mode, SFlag};

use crate::mounts::{self, bind, mkdir_p, mount_fs, remount_ro, Error};
use crate::{console, tree};

/// Everything needed to build one container's root.
#[derive(Debug)]
pub struct Spec<'a> {
    /// The image's root filesystem (the overlay's lower layer).
    pub image: PathBuf,
    /// A fresh scratch directory for this run (upper, work, merged).
    pub scratch: PathBuf,
    /// (volume directory, path in the container, read-only).
    pub volumes: Vec<(PathBuf, &'a str, bool)>,
    /// `readOnlyRootFilesystem`.
    pub read_only: bool,
    /// No masked paths, writable /sys.
    pub privileged: bool,
    /// Created if missing, as runc does.
    pub working_dir: &'a str,
}

/// The devices every container gets: (name, major, minor).
const DEVICES: &[(&str, u64, u64)] = &[
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
fn mount_layers(spec: &Spec) -> Result<PathBuf, Error> {
    let merged = spec.scratch.join("merged");
    let upper = spec.scratch.join("upper");
    let work = spec.scratch.join("work");
    for d in [&merged, &upper, &work] {
        mkdir_p(d)?;
    }
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        spec.image.display(),
        upper.display(),
        work.display()
    );
    match mount_fs(
        Some("overlay"),
        &merged,
        Some("overlay"),
        MsFlags::empty(),
        Some(&data),
    ) {
        Ok(()) => {}
        Err(e) => {
            console::debug(&format!("no overlayfs ({e}); copying the image instead"));
            mount_fs(
                Some("tmpfs"),
                &merged,
                Some("tmpfs"),
                MsFlags::empty(),
                Some("mode=0755"),
            )?;
            tree::copy_contents(&spec.image, &merged, &[])?;
        }
    }
    Ok(merged)
}

fn mount_dev(root: &Path) -> Result<(), Error> {
    let dev = root.join("dev");
    mkdir_p(&dev)?;
    mount_fs(
        Some("tmpfs"),
        &dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )?;
    for (name, major, minor) in DEVICES {
        let path = dev.join(name);
        match mknod(
            &path,
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o666),
            makedev(*major, *minor),
        ) {
            Ok(()) => {}
            // Without CAP_MKNOD, bind the host's node instead (as runc does).
            Err(Errno::EPERM) => {
                fs::write(&path, b"").map_err(|source| Error::MountPoint {
                    path: path.clone(),
                    source,
                })?;
                bind(&Path::new("/dev").join(name), &path, false)?;
            }
            Err(e) => {
                return Err(Error::MountPoint {
                    path,
                    source: e.into(),
                })
            }
        }
    }
    for (link, target) in DEV_LINKS {
        let path = dev.join(link);
        symlink(target, &path).map_err(|source| Error::MountPoint { path, source })?;
    }
    let pts = dev.join("pts");
    mkdir_p(&pts)?;
    mount_fs(
        Some("devpts"),
        &pts,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
    )?;
    let shm = dev.join("shm");
    mkdir_p(&shm)?;
    mount_fs(
        Some("shm"),
        &shm,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=1777,size=65536k"),
    )?;
    let mq = dev.join("mqueue");
    mkdir_p(&mq)?;
    // A kernel without POSIX message queues simply has no /dev/mqueue.
    if let Err(e) = mount_fs(
        Some("mqueue"),
        &mq,
        Some("mqueue"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None,
    ) {
        console::debug(&format!("skipping /dev/mqueue: {e}"));
    }
    Ok(())
}

/// Hides `path` (inside `root`) under /dev/null or an empty read-only tmpfs.
fn mask(root: &Path, path: &str) -> Result<(), Error> {
    let target = root.join(rel(path));
    match fs::symlink_metadata(&target) {
        Err(_) => Ok(()),
        Ok(m) if m.is_dir() => mount_fs(
            Some("tmpfs"),
            &target,
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            Some("size=0"),
        ),
        Ok(_) => bind(&root.join("dev/null"), &target, false),
    }
}

/// Builds the root and enters it. On return the process's root is the
/// container's and its working directory is `spec.working_dir`.
pub fn enter(spec: &Spec) -> Result<(), Error> {
    // Device nodes and directories get exactly the modes we ask for.
    umask(Mode::empty());
    // Order matters: nothing mounted below may propagate back to the init.
    mounts::make_private_rec()?;
    let root = mount_layers(spec)?;
    for (src, path, ro) in &spec.volumes {
        let dst = tree::create_dir_all_no_symlinks(&root, Path::new(path))?;
        bind(src, &dst, *ro)?;
    }
    let proc = root.join("proc");
    mkdir_p(&proc)?;
    let nsne = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount_fs(Some("proc"), &proc, Some("proc"), nsne, None)?;
    let sys = root.join("sys");
    mkdir_p(&sys)?;
    let sys_flags = if spec.privileged {
        nsne
    } else {
        nsne | MsFlags::MS_RDONLY
    };
    if let Err(e) = mount_fs(Some("sysfs"), &sys, Some("sysfs"), sys_flags, None) {
        console::debug(&format!("sysfs: {e}; binding the host's /sys instead"));
        bind(Path::new("/sys"), &sys, !spec.privileged)?;
    }
    mount_dev(&root)?;
    if !spec.privileged {
        for p in MASKED {
            mask(&root, p)?;
        }
        for p in READ_ONLY {
            let target = root.join(rel(p));
            if target.exists() {
                bind(&target, &target, true)?;
            }
        }
    }
    pivot(&root)?;
    // Created inside the new root, so symlinks resolve within it.
    let wd = Path::new(spec.working_dir);
    fs::create_dir_all(wd).map_err(|source| Error::MountPoint {
        path: wd.to_owned(),
        source,
    })?;
    if spec.read_only {
        remount_ro(Path::new("/"))?;
    }
    nix::unistd::chdir(wd).map_err(|source| Error::SwitchRoot {
        step: "chdir to the working directory",
        path: wd.to_owned(),
        source,
    })?;
    umask(Mode::from_bits_truncate(0o022));
    Ok(())
}

/// Mounts the container's own cgroup2 tree (its cgroup namespace's root)
/// on /sys/fs/cgroup, read-only unless privileged. Runs after pivot_root,
/// once the init has placed the process in its cgroup. Skipped quietly
/// without cgroup2 or without /sys/fs/cgroup in the container.
pub fn mount_cgroup_ro(privileged: bool) {
    let target = Path::new("/sys/fs/cgroup");
    if !target.is_dir() {
        return;
    }
    let mut flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    if !privileged {
        flags |= MsFlags::MS_RDONLY;
    }
    if let Err(e) = mount_fs(Some("cgroup2"), target, Some("cgroup2"), flags, None) {
        console::debug(&format!("no cgroup2 in the container: {e}"));
    }
}

/// runc's pivot: make `root` the root with `pivot_root(".", ".")`, then
/// detach the old root stacked on it, so nothing of the init's tree stays
/// reachable.
fn pivot(root: &Path) -> Result<(), Error> {
    let step = |step: &'static str| {
        let path = root.to_owned();
        move |source| Error::SwitchRoot { step, path, source }
    };
    nix::unistd::chdir(root).map_err(step("chdir"))?;
    nix::unistd::pivot_root(".", ".").map_err(step("pivot_root"))?;
    nix::mount::umount2(".", nix::mount::MntFlags::MNT_DETACH).map_err(step("detaching the old root"))?;
    nix::unistd::chdir("/").map_err(step("chdir /"))?;
    Ok(())
}
