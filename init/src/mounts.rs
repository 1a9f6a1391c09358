//! Mounts: the VM's early filesystems (a const table walked by one loop),
//! the move off the initial rootfs, and the small mount helpers the
//! container root filesystem code is built from.

use alloc::ffi::CString;
use alloc::format;
use alloc::string::{String, ToString};
use core::fmt;

use rustix::fd::{AsRawFd, BorrowedFd};
use rustix::fs::CWD;
use rustix::mount::{MountFlags, MountPropagationFlags, MoveMountFlags, OpenTreeFlags, UnmountFlags};

use crate::sys::{self, Errno, IoError};
use crate::{console, tree};

/// mount(2) flags, printed as nix printed its `MsFlags` (error messages
/// name them). The calls themselves go through rustix.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct MsFlags(u64);

/// The flags' names, in bit order.
const MS_NAMES: &[(u64, &str)] = &[
    (libc::MS_RDONLY, "MS_RDONLY"),
    (libc::MS_NOSUID, "MS_NOSUID"),
    (libc::MS_NODEV, "MS_NODEV"),
    (libc::MS_NOEXEC, "MS_NOEXEC"),
    (libc::MS_REMOUNT, "MS_REMOUNT"),
    (libc::MS_BIND, "MS_BIND"),
    (libc::MS_MOVE, "MS_MOVE"),
    (libc::MS_REC, "MS_REC"),
    (libc::MS_PRIVATE, "MS_PRIVATE"),
    (libc::MS_STRICTATIME, "MS_STRICTATIME"),
];

impl MsFlags {
    pub const MS_RDONLY: MsFlags = MsFlags(libc::MS_RDONLY);
    pub const MS_NOSUID: MsFlags = MsFlags(libc::MS_NOSUID);
    pub const MS_NODEV: MsFlags = MsFlags(libc::MS_NODEV);
    pub const MS_NOEXEC: MsFlags = MsFlags(libc::MS_NOEXEC);
    pub const MS_REMOUNT: MsFlags = MsFlags(libc::MS_REMOUNT);
    pub const MS_BIND: MsFlags = MsFlags(libc::MS_BIND);
    pub const MS_MOVE: MsFlags = MsFlags(libc::MS_MOVE);
    pub const MS_REC: MsFlags = MsFlags(libc::MS_REC);
    pub const MS_PRIVATE: MsFlags = MsFlags(libc::MS_PRIVATE);
    pub const MS_STRICTATIME: MsFlags = MsFlags(libc::MS_STRICTATIME);

    /// No flags.
    pub const fn empty() -> MsFlags {
        MsFlags(0)
    }

    /// Both sets.
    pub const fn union(self, other: MsFlags) -> MsFlags {
        MsFlags(self.0 | other.0)
    }

    /// For rustix (which passes the bits through).
    fn mount_flags(self) -> MountFlags {
        MountFlags::from_bits_retain(self.0 as _)
    }
}

impl core::ops::BitOr for MsFlags {
    type Output = MsFlags;
    fn bitor(self, other: MsFlags) -> MsFlags {
        self.union(other)
    }
}

impl core::ops::BitOrAssign for MsFlags {
    fn bitor_assign(&mut self, other: MsFlags) {
        self.0 |= other.0;
    }
}

impl fmt::Debug for MsFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        sys::fmt_flags(f, "MsFlags", self.0, MS_NAMES)
    }
}

/// A mount step that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// mount(2) failed.
    #[error("mounting {fstype} on {target} ({flags:?}, {data:?}): {source}")]
    Mount {
        /// Filesystem type, or "bind"/"move"/"remount".
        fstype: String,
        /// Mount point.
        target: String,
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
        path: String,
        /// The cause.
        source: IoError,
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
        path: String,
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

/// The error of a mount(2) call, naming everything.
fn mount_error(
    fstype: &str,
    target: &str,
    flags: MsFlags,
    data: &str,
) -> impl FnOnce(rustix::io::Errno) -> Error {
    let (fstype, target, data) = (fstype.to_string(), target.to_string(), data.to_string());
    move |e| Error::Mount {
        fstype,
        target,
        flags,
        data,
        source: e.into(),
    }
}

/// Mounts a filesystem: mount(2) with an error naming everything.
pub fn mount_fs(
    source: &str,
    target: &str,
    fstype: &str,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<(), Error> {
    let fail = mount_error(fstype, target, flags, data.unwrap_or(""));
    let data = data
        .map(CString::new)
        .transpose()
        .map_err(|_| rustix::io::Errno::INVAL);
    let res =
        data.and_then(|d| rustix::mount::mount(source, target, fstype, flags.mount_flags(), d.as_deref()));
    res.map_err(fail)
}

/// Bind-mounts `src` on `dst`, then makes it read-only if asked (a bind
/// mount ignores MS_RDONLY until remounted).
pub fn bind(src: &str, dst: &str, read_only: bool) -> Result<(), Error> {
    let flags = match read_only {
        true => MsFlags::MS_RDONLY,
        false => MsFlags::empty(),
    };
    bind_with(src, dst, flags)
}

/// Bind-mounts `src` (recursively) on `dst`, then remounts it with `flags`
/// (MS_RDONLY, MS_NOSUID, ...: a bind mount takes them only on a remount).
pub fn bind_with(src: &str, dst: &str, flags: MsFlags) -> Result<(), Error> {
    rustix::mount::mount_bind_recursive(src, dst).map_err(mount_error(
        &format!("bind of {src}"),
        dst,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        "",
    ))?;
    if flags != MsFlags::empty() {
        remount_bind(dst, dst, flags)?;
    }
    Ok(())
}

/// Bind-mounts `src` (recursively) onto the mount point `target`, an open
/// descriptor (`shown` in messages), then remounts it with `flags` as
/// [`bind_with`] does. open_tree(2) clones `src`; move_mount(2) attaches
/// the clone on exactly what `target` refers to, resolving no path again;
/// the remount goes through the clone's own descriptor, so it reaches the
/// new mount rather than the one beneath it.
pub fn bind_onto(src: &str, target: BorrowedFd<'_>, shown: &str, flags: MsFlags) -> Result<(), Error> {
    let fail = || {
        mount_error(
            &format!("bind of {src}"),
            shown,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            "",
        )
    };
    let clone =
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC | OpenTreeFlags::AT_RECURSIVE;
    let tree = rustix::mount::open_tree(CWD, src, clone).map_err(fail())?;
    let onto = MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH;
    rustix::mount::move_mount(&tree, "", target, "", onto).map_err(fail())?;
    if flags != MsFlags::empty() {
        remount_bind(&format!("/proc/self/fd/{}", tree.as_raw_fd()), shown, flags)?;
    }
    Ok(())
}

/// Makes the mount at `path` read-only.
pub fn remount_ro(path: &str) -> Result<(), Error> {
    remount_bind(path, path, MsFlags::MS_RDONLY)
}

/// Remounts the bind mount at `path` (`shown` in messages) with `flags`.
fn remount_bind(path: &str, shown: &str, flags: MsFlags) -> Result<(), Error> {
    let remount = |flags: MsFlags| {
        // rustix adds MS_REMOUNT itself.
        rustix::mount::mount_remount(path, flags.mount_flags(), "").map_err(mount_error(
            "bind/remount",
            shown,
            flags | MsFlags::MS_REMOUNT,
            "",
        ))
    };
    let flags = flags | MsFlags::MS_BIND;
    match remount(flags) {
        // Locked flags (nosuid etc. inherited from the source) must be kept.
        Err(Error::Mount {
            source: Errno::EPERM, ..
        }) => remount(flags | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC),
        other => other,
    }
}

/// Makes every mount below `/` private so nothing propagates to or from the
/// parent mount namespace.
pub fn make_private_rec() -> Result<(), Error> {
    rustix::mount::mount_change("/", MountPropagationFlags::PRIVATE | MountPropagationFlags::REC).map_err(
        mount_error("bind/remount", "/", MsFlags::MS_REC | MsFlags::MS_PRIVATE, ""),
    )
}

/// Moves the mount at `from` to `to` (MS_MOVE).
fn move_mount(from: &str, to: &str) -> Result<(), rustix::io::Errno> {
    rustix::mount::mount_move(from, to)
}

/// Creates a directory mount point (and parents), mode 0755.
pub fn mkdir_p(path: &str) -> Result<(), Error> {
    sys::create_dir_all(path).map_err(|source| Error::MountPoint {
        path: path.to_string(),
        source,
    })
}

/// Walks [`EARLY`]: creates each mount point and mounts it. A filesystem
/// already there (the kernel auto-mounts devtmpfs with DEVTMPFS_MOUNT) is
/// fine; an optional one that fails is logged and skipped.
pub fn mount_early(table: &[Mount]) -> Result<(), Error> {
    walk(table, |m| {
        mkdir_p(m.target)?;
        mount_fs(m.source, m.target, m.fstype, m.flags, Some(m.data))
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
pub fn leave_initial_rootfs(new_root: &str) -> Result<(), Error> {
    let step = |step: &'static str| {
        let path = new_root.to_string();
        move |e: rustix::io::Errno| Error::SwitchRoot {
            step,
            path,
            source: e.into(),
        }
    };
    mkdir_p(new_root)?;
    rustix::mount::mount_bind("/", new_root).map_err(mount_error(
        "bind/remount",
        new_root,
        MsFlags::MS_BIND,
        "",
    ))?;
    // Order matters: the live mounts move onto the bind mount before it
    // becomes the root, or they would stay behind on the covered rootfs.
    for m in MOVED {
        let dst = sys::join(new_root, m.trim_start_matches('/'));
        mkdir_p(&dst)?;
        move_mount(m, &dst).map_err(mount_error("bind/remount", &dst, MsFlags::MS_MOVE, ""))?;
    }
    rustix::process::chdir(new_root).map_err(step("chdir"))?;
    move_mount(".", "/").map_err(step("move to /"))?;
    rustix::process::chroot(".").map_err(step("chroot"))?;
    rustix::process::chdir("/").map_err(step("chdir /"))?;
    // The empty mount point shows through the bind mount; it is no longer one.
    let _ = sys::remove_dir(&sys::join("/", new_root.strip_prefix('/').unwrap_or(new_root)));
    Ok(())
}

/// Detaches the mount at `path`, ignoring "not mounted".
pub fn detach(path: &str) {
    match rustix::mount::unmount(path, UnmountFlags::DETACH).map_err(Errno::from) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
        Err(e) => console::log(&format!("unmounting {path}: {e}")),
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
