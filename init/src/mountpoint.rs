//! Mount points in a container's root, found as runc finds them
//! (filepath-securejoin's rules): the destination is resolved inside the
//! root, following the image's symlinks, an absolute one from the root
//! and `..` stopping at it, so the mount lands inside the root whatever
//! symlinks the image holds (`/var/run/app` on `/run/app` where
//! `/var/run -> /run`). What is missing is made where the resolution
//! leads, one component at a time on the descriptor of its resolved
//! parent: directories, and an empty file last when a file is bound. The
//! mount then goes onto the final descriptor, never onto a path resolved
//! again ([`crate::mounts::bind_onto`]).
//!
//! /proc, /sys and /dev themselves are not found this way: the kernel's
//! filesystems must be at those very paths, and a symlink there is refused
//! (`tree::create_dir_all_no_symlinks`), as runc refuses it.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use rustix::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use rustix::fs::{self as rfs, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::sys::{self, IoError};

/// Symlinks followed in one resolution before giving up (the kernel's
/// MAXSYMLINKS).
const MAX_LINKS: usize = 40;

/// A mount point that could not be found, made or used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A step of resolving or making it failed.
    #[error("mount point {dest}: {step} {path}: {source}")]
    Step {
        /// The destination asked for.
        dest: String,
        /// What was being done.
        step: &'static str,
        /// Where, in the container, as resolved so far.
        path: String,
        /// The cause.
        source: IoError,
    },
    /// It resolves somewhere nothing may be mounted.
    #[error("mount point {dest} resolves to {path}, {why}: refused")]
    Refused {
        /// The destination asked for.
        dest: String,
        /// Where it resolves, in the container.
        path: String,
        /// Why nothing goes there.
        why: &'static str,
    },
}

/// What is mounted: it decides what is made where the mount point is
/// missing, and what an existing one must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A directory: missing components are made as directories (0755).
    Dir,
    /// A file: the last component is made as an empty file (0644).
    File,
}

/// A container's root, held open (O_PATH) while mount points are found in it.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    /// Where the descriptor is (its /proc/self/fd link), to tell where a
    /// resolved one lies inside the root.
    real: Vec<u8>,
}

/// A mount point found in a [`Root`]: what the mount goes on.
#[derive(Debug)]
pub struct MountPoint {
    fd: OwnedFd,
    /// Where it is in the container (`/run/app` for `/var/run/app`).
    pub path: String,
}

impl MountPoint {
    /// Its descriptor (O_PATH, or the file made for it).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Where `fd` is, read from its /proc/self/fd link.
fn fd_path(fd: BorrowedFd) -> Result<Vec<u8>, Errno> {
    let link = format!("/proc/self/fd/{}", fd.as_raw_fd());
    Ok(rfs::readlink(link.as_str(), Vec::new())?.into_bytes())
}

/// The components of `path` to resolve, the next one last (a stack);
/// empty and `.` components dropped.
fn pending(path: &[u8]) -> Vec<Vec<u8>> {
    path.split(|b| *b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .rev()
        .map(<[u8]>::to_vec)
        .collect()
}

/// `/a/b` from the resolved directories' names.
fn shown(dirs: &[(OwnedFd, Vec<u8>)], name: Option<&[u8]>) -> String {
    let mut s = String::new();
    for n in dirs.iter().map(|(_, n)| n.as_slice()).chain(name) {
        s.push('/');
        s.push_str(&String::from_utf8_lossy(n));
    }
    if s.is_empty() {
        s.push('/');
    }
    s
}

/// The error of `step` at `path`, finding the mount point `dest`.
fn failed<'a>(dest: &'a str, step: &'static str, path: &'a str) -> impl FnOnce(IoError) -> Error + 'a {
    move |source| Error::Step {
        dest: dest.to_string(),
        step,
        path: path.to_string(),
        source,
    }
}

/// Makes the missing `name` in `parent` and opens it, never following a
/// symlink: a directory (0755), or an empty file (0644, O_EXCL).
fn make(parent: BorrowedFd, name: &[u8], kind: Kind) -> Result<OwnedFd, Errno> {
    match kind {
        Kind::Dir => {
            match rfs::mkdirat(parent, name, Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(e),
            }
            // O_NOFOLLOW | O_DIRECTORY: what is there now is a directory,
            // not a symlink put there in between.
            let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            rfs::openat(parent, name, flags, Mode::empty())
        }
        Kind::File => {
            let flags = OFlags::RDONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            rfs::openat(parent, name, flags, Mode::from_raw_mode(0o644))
        }
    }
}

impl Root {
    /// Opens the container's root at `path` (its overlay, already mounted).
    pub fn open(path: &str) -> Result<Root, Error> {
        let fail = |source: IoError| Error::Step {
            dest: "/".into(),
            step: "opening the container's root",
            path: path.to_string(),
            source,
        };
        let fd = sys::open(path, OFlags::PATH | OFlags::DIRECTORY, 0).map_err(fail)?;
        let real = fd_path(fd.as_fd()).map_err(|e| fail(e.into()))?;
        Ok(Root { fd, real })
    }

    /// Finds the mount point `dest` (absolute, in the container) as runc
    /// does: the kernel resolves it in the root (openat2(2) with
    /// RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS); when something on the way
    /// is missing, [`Root::walk`] makes it. It must end up a directory for
    /// [`Kind::Dir`], anything but one for [`Kind::File`], and neither the
    /// root itself nor inside /proc (runc's checkProcMount).
    pub fn mount_point(&self, dest: &str, kind: Kind) -> Result<MountPoint, Error> {
        let how = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
        let mut tries = 0;
        let fd = loop {
            match rfs::openat2(&self.fd, dest, OFlags::PATH | OFlags::CLOEXEC, Mode::empty(), how) {
                Ok(fd) => break fd,
                Err(Errno::NOENT) => break self.walk(dest, kind)?,
                // A rename or mount raced the lookup of `..`: look again.
                Err(Errno::AGAIN) if tries < 16 => tries += 1,
                Err(e) => return Err(failed(dest, "resolving", dest)(e.into())),
            }
        };
        self.check(dest, fd, kind)
    }

    /// Resolves `dest` component by component from the root, making what
    /// is missing: each component is opened on its resolved parent's
    /// descriptor without following it; a symlink's target (a dangling
    /// one too) is resolved in its stead, from the root when absolute;
    /// `..` goes back to the resolved parent, never above the root.
    fn walk(&self, dest: &str, kind: Kind) -> Result<OwnedFd, Error> {
        let mut todo = pending(dest.as_bytes());
        // The directories resolved so far below the root, with their names.
        let mut dirs: Vec<(OwnedFd, Vec<u8>)> = Vec::new();
        let mut links = 0;
        while let Some(name) = todo.pop() {
            if name == b".." {
                dirs.pop();
                continue;
            }
            let last = todo.is_empty();
            let path = shown(&dirs, Some(&name));
            let fail = |step| failed(dest, step, &path);
            let parent = dirs.last().map_or(self.fd.as_fd(), |(fd, _)| fd.as_fd());
            let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let fd = match rfs::openat(parent, name.as_slice(), flags, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => {
                    let made = if last { kind } else { Kind::Dir };
                    make(parent, &name, made).map_err(|e| fail("making")(e.into()))?
                }
                Err(e) => return Err(fail("opening")(e.into())),
            };
            let st = rfs::fstat(&fd).map_err(|e| fail("stat")(e.into()))?;
            match sys::file_type(&st) {
                FileType::Symlink => {
                    links += 1;
                    // procfs's links (/proc/self/fd/N) are never followed,
                    // as RESOLVE_NO_MAGICLINKS refuses them.
                    let proc_link = rfs::fstatfs(&fd).is_ok_and(|s| s.f_type == rfs::PROC_SUPER_MAGIC);
                    if links > MAX_LINKS || proc_link {
                        return Err(fail("following the symlink")(IoError::Os(libc::ELOOP)));
                    }
                    let target = rfs::readlinkat(&fd, c"", Vec::new())
                        .map_err(|e| fail("reading the symlink")(e.into()))?
                        .into_bytes();
                    if target.starts_with(b"/") {
                        dirs.clear();
                    }
                    todo.extend(pending(&target));
                }
                FileType::Directory => dirs.push((fd, name)),
                _ if last => return Ok(fd),
                _ => return Err(fail("resolving through")(IoError::Os(libc::ENOTDIR))),
            }
        }
        match dirs.pop() {
            Some((fd, _)) => Ok(fd),
            // The root itself (refused by the check).
            None => rfs::openat(&self.fd, ".", OFlags::PATH | OFlags::CLOEXEC, Mode::empty())
                .map_err(|e| failed(dest, "opening", "/")(e.into())),
        }
    }

    /// Where `fd` lies in the container (`/run/app`), checked as runc does
    /// before mounting: inside the root, not the root, not in /proc, and of
    /// the kind the mount needs.
    fn check(&self, dest: &str, fd: OwnedFd, kind: Kind) -> Result<MountPoint, Error> {
        let refused = |path: &str, why| Error::Refused {
            dest: dest.to_string(),
            path: path.to_string(),
            why,
        };
        let real = fd_path(fd.as_fd())
            .map_err(|e| failed(dest, "reading the /proc/self/fd link of", dest)(e.into()))?;
        let rel = match self.real.as_slice() {
            b"/" => Some(real.as_slice()),
            root => real.strip_prefix(root),
        };
        let path = match rel {
            Some(b"") => "/".to_string(),
            Some(r) if r.starts_with(b"/") => String::from_utf8_lossy(r).into_owned(),
            _ => {
                let outside = String::from_utf8_lossy(&real).into_owned();
                return Err(refused(&outside, "outside the container's root"));
            }
        };
        if path == "/" {
            return Err(refused(&path, "the container's root itself"));
        }
        if path == "/proc" || path.starts_with("/proc/") {
            return Err(refused(&path, "inside /proc, where only the kernel's proc goes"));
        }
        let st = rfs::fstat(&fd).map_err(|e| failed(dest, "stat", &path)(e.into()))?;
        let is_dir = sys::file_type(&st) == FileType::Directory;
        match (kind, is_dir) {
            (Kind::Dir, false) => Err(failed(dest, "a directory cannot be mounted on the file", &path)(
                IoError::Os(libc::ENOTDIR),
            )),
            (Kind::File, true) => Err(failed(dest, "a file cannot be mounted on the directory", &path)(
                IoError::Os(libc::EISDIR),
            )),
            _ => Ok(MountPoint { fd, path }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::symlink;
    use std::path::{Path, PathBuf};

    use super::*;

    /// A fresh directory with an empty `root` in it (and nothing else: the
    /// place tests check nothing leaks to).
    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pod1-mountpoint-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(d.join("root")).unwrap();
        d
    }

    fn open(t: &Path) -> Root {
        Root::open(t.join("root").to_str().unwrap()).unwrap()
    }

    fn errno(e: &Error) -> Option<i32> {
        match e {
            Error::Step {
                source: IoError::Os(n),
                ..
            } => Some(*n),
            _ => None,
        }
    }

    #[test]
    fn symlinks_are_followed_inside_the_root_and_what_is_missing_is_made_there() {
        let t = tmp("follow");
        let r = t.join("root");
        fs::create_dir_all(r.join("run")).unwrap();
        fs::create_dir_all(r.join("var")).unwrap();
        fs::create_dir_all(r.join("etc")).unwrap();
        // Debian's /var/run, absolute, and the same relative.
        symlink("/run", r.join("var/run")).unwrap();
        symlink("../run", r.join("var/rel")).unwrap();
        let root = open(&t);
        let mp = root.mount_point("/var/run/app", Kind::Dir).unwrap();
        assert_eq!(mp.path, "/run/app");
        assert!(r.join("run/app").is_dir());
        // Now there: the kernel's resolution finds the same place.
        assert_eq!(
            root.mount_point("/var/rel/app", Kind::Dir).unwrap().path,
            "/run/app"
        );
        // systemd-resolved's link, dangling: made where it leads.
        symlink("/run/systemd/resolve/stub-resolv.conf", r.join("etc/resolv.conf")).unwrap();
        let mp = root.mount_point("/etc/resolv.conf", Kind::File).unwrap();
        assert_eq!(mp.path, "/run/systemd/resolve/stub-resolv.conf");
        let made = r.join("run/systemd/resolve/stub-resolv.conf");
        assert!(made.is_file() && fs::metadata(&made).unwrap().len() == 0);
        assert!(fs::symlink_metadata(r.join("etc/resolv.conf"))
            .unwrap()
            .is_symlink());
        // An existing file is kept.
        fs::write(&made, "kept").unwrap();
        root.mount_point("/etc/resolv.conf", Kind::File).unwrap();
        assert_eq!(fs::read_to_string(&made).unwrap(), "kept");
        // `..` after what is made goes back to its resolved parent.
        symlink("a/b/../c", r.join("chain")).unwrap();
        assert_eq!(root.mount_point("/chain/d", Kind::Dir).unwrap().path, "/a/c/d");
        assert!(r.join("a/b").is_dir() && r.join("a/c/d").is_dir());
        fs::remove_dir_all(&t).unwrap();
    }

    #[test]
    fn nothing_leads_out_of_the_root() {
        let t = tmp("escape");
        let r = t.join("root");
        let host = t.to_str().unwrap();
        // Followed from the host's `/`, these would reach `t/out-*`.
        // Odd numbers of `..`: one that went above the root would not be
        // undone by the next.
        symlink(format!("/../../..{host}/out-abs"), r.join("abs")).unwrap();
        symlink(format!("../../../../../../../../..{host}/out-rel"), r.join("rel")).unwrap();
        let root = open(&t);
        let mp = root.mount_point("/abs/x", Kind::Dir).unwrap();
        assert_eq!(mp.path, format!("{host}/out-abs/x"));
        let mp = root.mount_point("/rel", Kind::File).unwrap();
        assert_eq!(mp.path, format!("{host}/out-rel"));
        let inside = r.join(host.trim_start_matches('/'));
        assert!(inside.join("out-abs/x").is_dir() && inside.join("out-rel").is_file());
        assert!(!t.join("out-abs").exists() && !t.join("out-rel").exists());
        // `..` in the destination itself stops at the root too.
        assert_eq!(root.mount_point("/../x", Kind::Dir).unwrap().path, "/x");
        assert!(!t.join("x").exists());
        fs::remove_dir_all(&t).unwrap();
    }

    #[test]
    fn the_root_itself_and_proc_are_refused() {
        let t = tmp("refused");
        let r = t.join("root");
        fs::create_dir_all(r.join("proc/sys")).unwrap();
        symlink("../../..", r.join("up")).unwrap();
        symlink("/proc/sys", r.join("sys-link")).unwrap();
        let root = open(&t);
        for (dest, path) in [
            ("/", "/"),
            ("/up", "/"),
            ("/proc", "/proc"),
            ("/sys-link/new", "/proc/sys/new"),
        ] {
            match root.mount_point(dest, Kind::Dir) {
                Err(Error::Refused { path: p, .. }) => assert_eq!(p, path, "{dest}"),
                other => panic!("{dest}: {other:?}"),
            }
        }
        fs::remove_dir_all(&t).unwrap();
    }

    #[test]
    fn an_existing_mount_point_of_the_wrong_kind_is_an_error() {
        let t = tmp("kind");
        let r = t.join("root");
        fs::create_dir_all(r.join("etc/dir")).unwrap();
        fs::write(r.join("etc/hosts"), "").unwrap();
        symlink("hosts", r.join("etc/link")).unwrap();
        symlink("loop2", r.join("loop1")).unwrap();
        symlink("loop1", r.join("loop2")).unwrap();
        let root = open(&t);
        let cases = [
            ("/etc/hosts", Kind::Dir, libc::ENOTDIR),
            ("/etc/link", Kind::Dir, libc::ENOTDIR),
            ("/etc/dir", Kind::File, libc::EISDIR),
            ("/etc/hosts/x", Kind::File, libc::ENOTDIR),
            ("/loop1", Kind::Dir, libc::ELOOP),
            // Missing first: the walk meets the loop and gives up.
            ("/missing/../loop1", Kind::Dir, libc::ELOOP),
        ];
        for (dest, kind, want) in cases {
            let e = root.mount_point(dest, kind).unwrap_err();
            assert_eq!(errno(&e), Some(want), "{dest}: {e}");
        }
        assert!(root.mount_point("/etc/link", Kind::File).is_ok());
        fs::remove_dir_all(&t).unwrap();
    }
}
