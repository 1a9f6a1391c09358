//! Mounts: the VM's early filesystems (a const table walked by one loop),
//! the move off the initial rootfs, and the small mount helpers the
//! container root filesystem code is built from.

use std::fs;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::{console, tree};

/// A mount step that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// mount(2) failed.
    #[error("mounting {fstype} on {target} ({flags:?}, {data:?}): {source}")]
    Mount {
        /// Filesystem type, or "bind"/"move"/"remount".
        fstype: String,
        /// Mount point.
        target: PathBuf,
        /// Flags.
        flags: MsFlags,
        /// Options.
        data: String,
        /// The cause.
        source: Errno,
    },
    /// A mount point could not be created.
    #[error("creating mount point {path}: {source}")]
    MountPoint {
        /// The directory or file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Copying or removing a tree failed.
    #[error(transparent)]
    Tree(#[from] tree::Error),
    /// A step of switching the root failed.
    #[error("switching root to {path}: {step}: {source}")]
    SwitchRoot {
        /// The step.
        step: &'static str,
        /// The new root.
        path: PathBuf,
        /// The cause.
        source: Errno,
    },
}

/// One mount: what to mount where, with which flags and options.
#[derive(Debug)]
pub struct Mount {
    /// Source (device or filesystem name).
    pub source: &'static str,
    /// Absolute mount point.
    pub target: &'static str,
    /// Filesystem type.
    pub fstype: &'static str,
    /// Flags.
    pub flags: MsFlags,
    /// Options.
    pub data: &'static str,
    /// Whether the init can live without it (e.g. cgroup2 on a kernel without cgroups).
    pub optional: bool,
}

const NOSUID_NODEV_NOEXEC: MsFlags = MsFlags::MS_NOSUID
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC);

/// The VM's early mounts, parents before children.
#[rustfmt::skip]
pub const EARLY: &[Mount] = &[
    Mount { source: "proc", target: "/proc", fstype: "proc", flags: NOSUID_NODEV_NOEXEC, data: "", optional: false },
    Mount { source: "sysfs", target: "/sys", fstype: "sysfs", flags: NOSUID_NODEV_NOEXEC, data: "", optional: false },
    Mount { source: "devtmpfs", target: "/dev", fstype: "devtmpfs", flags: MsFlags::MS_NOSUID, data: "mode=0755", optional: false },
    Mount { source: "devpts", target: "/dev/pts", fstype: "devpts", flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NOEXEC), data: "gid=5,mode=0620,ptmxmode=0666", optional: true },
    Mount { source: "shm", target: "/dev/shm", fstype: "tmpfs", flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV), data: "mode=1777", optional: true },
    Mount { source: "tmpfs", target: "/run", fstype: "tmpfs", flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV), data: "mode=0755", optional: false },
    Mount { source: "cgroup2", target: "/sys/fs/cgroup", fstype: "cgroup2", flags: NOSUID_NODEV_NOEXEC, data: "", optional: true },
];

/// The early mounts that are moved along when the root switches (their
/// children move with them).
const MOVED: &[&str] = &["/proc", "/sys", "/dev", "/run"];

/// mount(2) with an error naming everything.
pub fn mount_fs(
    source: Option<&str>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<(), Error> {
    mount(source, target, fstype, flags, data).map_err(|source| Error::Mount {
        fstype: fstype.unwrap_or("bind/remount").to_string(),
        target: target.to_owned(),
        flags,
        data: data.unwrap_or("").to_string(),
        source,
    })
}

/// Bind-mounts `src` on `dst`, then makes it read-only if asked (a bind
/// mount ignores MS_RDONLY until remounted).
pub fn bind(src: &Path, dst: &Path, read_only: bool) -> Result<(), Error> {
    mount(
        Some(src),
        dst,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|source| Error::Mount {
        fstype: format!("bind of {}", src.display()),
        target: dst.to_owned(),
        flags: MsFlags::MS_BIND | MsFlags::MS_REC,
        data: String::new(),
        source,
    })?;
    if read_only {
        remount_ro(dst)?;
    }
    Ok(())
}

/// Makes the mount at `path` read-only.
pub fn remount_ro(path: &Path) -> Result<(), Error> {
    let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    match mount_fs(None, path, None, flags, None) {
        // Locked flags (nosuid etc. inherited from the source) must be kept.
        Err(Error::Mount {
            source: Errno::EPERM, ..
        }) => mount_fs(
            None,
            path,
            None,
            flags | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            None,
        ),
        other => other,
    }
}

/// Makes every mount below `/` private so nothing propagates to or from the
/// parent mount namespace.
pub fn make_private_rec() -> Result<(), Error> {
    mount_fs(
        None,
        Path::new("/"),
        None,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None,
    )
}

/// Creates a directory mount point (and parents), mode 0755.
pub fn mkdir_p(path: &Path) -> Result<(), Error> {
    fs::create_dir_all(path).map_err(|source| Error::MountPoint {
        path: path.to_owned(),
        source,
    })
}

/// Walks [`EARLY`]: creates each mount point and mounts it. A filesystem
/// already there (the kernel auto-mounts devtmpfs with DEVTMPFS_MOUNT) is
/// fine; an optional one that fails is logged and skipped.
pub fn mount_early(table: &[Mount]) -> Result<(), Error> {
    walk(table, |m| {
        let target = Path::new(m.target);
        mkdir_p(target)?;
        mount_fs(Some(m.source), target, Some(m.fstype), m.flags, Some(m.data))
    })
}

/// The loop of [`mount_early`], with the kernel call passed in (so its
/// rules are tested without root).
fn walk(table: &[Mount], mut mount_one: impl FnMut(&Mount) -> Result<(), Error>) -> Result<(), Error> {
    for m in table {
        match mount_one(m) {
            Ok(()) => {}
            Err(Error::Mount {
                source: Errno::EBUSY, ..
            }) => {}
            Err(e) if m.optional => console::log(&format!("skipping {}: {e}", m.target)),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Leaves the initial rootfs, as `pivot_root` needs: it fails with EINVAL
/// while the root is the initial rootfs (a mount with no parent), and every
/// container needs `pivot_root`. A bind mount of the rootfs moved onto `/`
/// is a mount with a parent, so containers can pivot away from it; unlike
/// copying the initramfs into a tmpfs (as LinuxKit does), nothing is copied
/// and the images are not held in memory twice.
pub fn leave_initial_rootfs(new_root: &Path) -> Result<(), Error> {
    let step = |step: &'static str| {
        let path = new_root.to_owned();
        move |source| Error::SwitchRoot { step, path, source }
    };
    mkdir_p(new_root)?;
    mount_fs(Some("/"), new_root, None, MsFlags::MS_BIND, None)?;
    // Order matters: the live mounts move onto the bind mount before it
    // becomes the root, or they would stay behind on the covered rootfs.
    for m in MOVED {
        let dst = new_root.join(m.trim_start_matches('/'));
        mkdir_p(&dst)?;
        mount_fs(Some(m), &dst, None, MsFlags::MS_MOVE, None)?;
    }
    nix::unistd::chdir(new_root).map_err(step("chdir"))?;
    mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>).map_err(step("move to /"))?;
    nix::unistd::chroot(".").map_err(step("chroot"))?;
    nix::unistd::chdir("/").map_err(step("chdir /"))?;
    // The empty mount point shows through the bind mount; it is no longer one.
    let _ = fs::remove_dir(Path::new("/").join(new_root.strip_prefix("/").unwrap_or(new_root)));
    Ok(())
}

/// Detaches the mount at `path`, ignoring "not mounted".
pub fn detach(path: &Path) {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
        Err(e) => console::log(&format!("unmounting {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail(m: &Mount, e: Errno) -> Result<(), Error> {
        Err(Error::Mount {
            fstype: m.fstype.into(),
            target: m.target.into(),
            flags: m.flags,
            data: m.data.into(),
            source: e,
        })
    }

    #[test]
    fn early_table_mounts_parents_first() {
        for (i, m) in EARLY.iter().enumerate() {
            for parent in &EARLY[i + 1..] {
                assert!(
                    !m.target.starts_with(&format!("{}/", parent.target)),
                    "{} is mounted before its parent {}",
                    m.target,
                    parent.target
                );
            }
        }
        for needed in ["/proc", "/sys", "/dev", "/run"] {
            assert!(EARLY.iter().any(|m| m.target == needed && !m.optional));
        }
        for moved in MOVED {
            assert!(EARLY.iter().any(|m| m.target == *moved));
        }
    }

    #[test]
    fn busy_and_optional_mounts_are_tolerated() {
        let mut seen = Vec::new();
        let res = walk(EARLY, |m| {
            seen.push(m.target);
            match m.target {
                "/dev" => fail(m, Errno::EBUSY),
                "/sys/fs/cgroup" => fail(m, Errno::ENODEV),
                _ => Ok(()),
            }
        });
        assert!(res.is_ok());
        assert_eq!(seen.len(), EARLY.len());
        let res = walk(EARLY, |m| {
            if m.target == "/proc" {
                fail(m, Errno::ENODEV)
            } else {
                Ok(())
            }
        });
        assert!(matches!(
            res,
            Err(Error::Mount {
                source: Errno::ENODEV,
                ..
            })
        ));
    }
}
