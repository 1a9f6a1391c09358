//! Paths inside trees a container controls, handled without being led
//! outside them: copying and removing trees without crossing into other
//! mounts (the fallback root filesystem when the kernel has no overlayfs),
//! making the mount points of /proc, /sys and /dev without following
//! symlinks, and opening a path beneath a directory with openat2(2) (a
//! volume's subPath). Other mount points are found in `mountpoint`.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use rustix::fd::OwnedFd;
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};

use crate::sys::{self, IoError};

/// A copy or removal step that failed.
#[derive(Debug, thiserror::Error)]
#[error("{step} {path}: {source}")]
pub struct Error {
    /// What was being done.
    pub step: &'static str,
    /// The file.
    pub path: String,
    /// The cause.
    pub source: IoError,
}

fn err<'a>(step: &'static str, path: &'a str) -> impl FnOnce(IoError) -> Error + 'a {
    move |source| Error {
        step,
        path: path.to_string(),
        source,
    }
}

/// Copies the contents of `from` into the existing directory `to`,
/// keeping modes, owners, symlinks and device nodes. Entries on another
/// device than `from` (mount points) are created as empty directories.
/// `skip` names entries of `from` itself to leave out. It works relative to
/// open directories: names need not be UTF-8, and no symlink is followed.
pub fn copy_contents(from: &str, to: &str, skip: &[&str]) -> Result<(), Error> {
    let open =
        |p: &str| sys::open(p, OFlags::RDONLY | OFlags::DIRECTORY, 0).map_err(err("opening directory", p));
    let (src, dst) = (open(from)?, open(to)?);
    let dev = rfs::fstat(&src).map_err(|e| err("stat", from)(e.into()))?.st_dev;
    copy_dir(&src, &dst, from, dev, skip)
}

/// Copies the contents of directory `src` (shown as `at` in errors) into `dst`.
fn copy_dir(src: &OwnedFd, dst: &OwnedFd, at: &str, dev: u64, skip: &[&str]) -> Result<(), Error> {
    for name in sys::entries(src).map_err(err("reading directory", at))? {
        if skip.iter().any(|s| s.as_bytes() == name.to_bytes()) {
            continue;
        }
        let shown = sys::join(at, &String::from_utf8_lossy(name.to_bytes()));
        let failed = |step: &'static str| {
            let path = shown.clone();
            move |e: rustix::io::Errno| Error {
                step,
                path,
                source: e.into(),
            }
        };
        let name = name.as_c_str();
        let meta = rfs::statat(src, name, AtFlags::SYMLINK_NOFOLLOW).map_err(failed("stat"))?;
        let ft = sys::file_type(&meta);
        let mode = Mode::from_raw_mode(meta.st_mode & 0o7777);
        match ft {
            FileType::Directory => {
                match rfs::mkdirat(dst, name, Mode::from_raw_mode(0o700)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(failed("creating directory")(e)),
                }
                if meta.st_dev == dev {
                    let s = sys::open_dir_at(src, name).map_err(err("opening directory", &shown))?;
                    let d = sys::open_dir_at(dst, name).map_err(err("opening directory", &shown))?;
                    copy_dir(&s, &d, &shown, dev, &[])?;
                }
            }
            FileType::Symlink => {
                let target = rfs::readlinkat(src, name, Vec::new()).map_err(failed("reading link"))?;
                rfs::symlinkat(target.as_c_str(), dst, name).map_err(failed("creating link"))?;
            }
            FileType::RegularFile => {
                sys::copy_file_at(src, dst, name).map_err(err("copying file", &shown))?
            }
            FileType::CharacterDevice | FileType::BlockDevice => {
                rfs::mknodat(dst, name, ft, mode, meta.st_rdev).map_err(failed("creating device node"))?;
            }
            // Sockets and fifos have no meaning in an image; leave them out.
            _ => continue,
        }
        let (uid, gid) = (rfs::Uid::from_raw(meta.st_uid), rfs::Gid::from_raw(meta.st_gid));
        rfs::chownat(dst, name, Some(uid), Some(gid), AtFlags::SYMLINK_NOFOLLOW).map_err(failed("chown"))?;
        if ft != FileType::Symlink {
            rfs::chmodat(dst, name, mode, AtFlags::empty()).map_err(failed("chmod"))?;
        }
    }
    Ok(())
}

fn exists_ok(e: IoError) -> Result<(), IoError> {
    if e == IoError::Os(libc::EEXIST) {
        Ok(())
    } else {
        Err(e)
    }
}

/// `mkdir -p` that refuses to follow symlinks: the mount points of the
/// kernel's filesystems in a container's root (/proc, /sys, /dev), which
/// must be at those very paths (as runc, a symlink there is refused).
pub fn create_dir_all_no_symlinks(root: &str, rel: &str) -> Result<String, Error> {
    let mut cur = root.to_string();
    for comp in rel.split('/') {
        match comp {
            "" | "." => continue,
            ".." => {
                return Err(Error {
                    step: "refusing `..` in",
                    path: rel.to_string(),
                    source: IoError::INVALID_INPUT,
                })
            }
            c => cur = sys::join(&cur, c),
        }
        match sys::lstat(&cur) {
            Ok(m) if sys::file_type(&m) == FileType::Symlink => {
                return Err(Error {
                    step: "refusing to follow a symlink at",
                    path: cur,
                    source: IoError::INVALID_INPUT,
                })
            }
            Ok(_) => {}
            Err(e) if e.is_not_found() => {
                sys::create_dir(&cur)
                    .or_else(exists_ok)
                    .map_err(err("creating directory", &cur))?;
            }
            Err(e) => return Err(err("stat", &cur)(e)),
        }
    }
    Ok(cur)
}

/// The components of a relative path that stays beneath its directory:
/// empty and `.` components dropped; `..` and absolute paths refused.
pub fn components_beneath(rel: &str) -> Option<Vec<&str>> {
    if rel.starts_with('/') {
        return None;
    }
    let mut comps = Vec::new();
    for c in rel.split('/') {
        match c {
            "" | "." => {}
            ".." => return None,
            c => comps.push(c),
        }
    }
    Some(comps)
}

/// Opens `rel` beneath the directory `base` as an O_PATH descriptor, with
/// openat2(2)'s RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS: symlinks inside
/// `base` are followed (a configMap's `key -> ..data/key`), anything that
/// would lead outside it (`..` above it, an absolute symlink, a
/// /proc/*/fd link) fails with EXDEV or ELOOP, whatever a container put
/// there. The kernel resolves it in one call, so nothing can be swapped
/// between a check and the use.
///
/// With `make_dirs`, missing components are made as directories of that
/// mode (chmod'ed, so the umask does not decide), each opened without
/// following a symlink before the next is made in it, as the kubelet's
/// SafeMakeDir does. `rel` with no components opens `base` itself.
pub fn open_beneath(base: &str, rel: &str, make_dirs: Option<u32>) -> Result<OwnedFd, Error> {
    use rustix::fs::ResolveFlags;
    let comps = components_beneath(rel).ok_or_else(|| Error {
        step: "refusing a path that leaves its directory:",
        path: rel.to_string(),
        source: IoError::INVALID_INPUT,
    })?;
    let root = sys::open(base, OFlags::PATH | OFlags::DIRECTORY, 0).map_err(err("opening", base))?;
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
    let beneath = |prefix: &str| {
        rfs::openat2(
            &root,
            prefix,
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            resolve,
        )
        .map_err(|e| err("resolving", &sys::join(base, prefix))(e.into()))
    };
    let Some(mode) = make_dirs else {
        return match comps.is_empty() {
            true => Ok(root),
            false => beneath(&comps.join("/")),
        };
    };
    // Resolve prefix by prefix from `base` (not from the last descriptor):
    // a relative symlink may climb back up as long as it stays beneath.
    let mut cur: Option<OwnedFd> = None;
    for i in 0..comps.len() {
        let prefix = comps[..=i].join("/");
        match beneath(&prefix) {
            Ok(fd) => cur = Some(fd),
            Err(e) if e.source.is_not_found() => {
                let shown = sys::join(base, &prefix);
                let parent = cur.as_ref().unwrap_or(&root);
                match rfs::mkdirat(parent, comps[i], Mode::from_raw_mode(mode)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(err("creating directory", &shown)(e.into())),
                }
                // O_NOFOLLOW: what was just made cannot have become a
                // symlink in between (a file would fail O_DIRECTORY).
                let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                let dir = rfs::openat(parent, comps[i], flags, Mode::empty())
                    .map_err(|e| err("opening directory", &shown)(e.into()))?;
                rfs::fchmod(&dir, Mode::from_raw_mode(mode)).map_err(|e| err("chmod", &shown)(e.into()))?;
                cur = Some(dir);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(cur.unwrap_or(root))
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
    use std::path::{Path, PathBuf};

    use super::*;

    fn s(p: &Path) -> &str {
        p.to_str().unwrap()
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pod1-tree-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn names_need_not_be_utf8() {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        let a = tmp("utf8-a");
        let b = tmp("utf8-b");
        let odd = OsStr::from_bytes(b"bad\xff");
        fs::create_dir_all(a.join(odd).join(odd)).unwrap();
        fs::write(a.join(odd).join(odd).join(odd), "x").unwrap();
        symlink(odd, a.join("link")).unwrap();
        copy_contents(s(&a), s(&b), &[]).unwrap();
        assert_eq!(fs::read_to_string(b.join(odd).join(odd).join(odd)).unwrap(), "x");
        assert_eq!(fs::read_link(b.join("link")).unwrap().as_os_str(), odd);
        // Removal too (a container's writable layer after it exits).
        sys::remove_dir_all(s(&b)).unwrap();
        assert!(!b.exists());
        fs::remove_dir_all(&a).unwrap();
    }

    #[test]
    fn removal_does_not_follow_symlinks() {
        let a = tmp("nofollow-a");
        let outside = tmp("nofollow-outside");
        fs::write(outside.join("keep"), "").unwrap();
        symlink(&outside, a.join("out")).unwrap();
        sys::remove_dir_all(s(&a)).unwrap();
        assert!(!a.exists());
        assert!(outside.join("keep").exists());
        fs::remove_dir_all(&outside).unwrap();
    }

    #[test]
    fn copies_keeping_modes_and_links() {
        let a = tmp("a");
        let b = tmp("b");
        fs::create_dir_all(a.join("x/y")).unwrap();
        fs::write(a.join("x/y/f"), "hi").unwrap();
        fs::set_permissions(a.join("x/y/f"), fs::Permissions::from_mode(0o751)).unwrap();
        symlink("y/f", a.join("x/l")).unwrap();
        fs::write(a.join("skipme"), "").unwrap();
        copy_contents(s(&a), s(&b), &["skipme"]).unwrap();
        assert_eq!(fs::read_to_string(b.join("x/l")).unwrap(), "hi");
        assert_eq!(fs::metadata(b.join("x/y/f")).unwrap().mode() & 0o777, 0o751);
        assert!(!b.join("skipme").exists());
        fs::remove_dir_all(&a).unwrap();
        fs::remove_dir_all(&b).unwrap();
    }

    /// What an O_PATH descriptor refers to, read through /proc/self/fd.
    fn read_fd(fd: &OwnedFd) -> String {
        use rustix::fd::AsRawFd;
        fs::read_to_string(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap()
    }

    fn errno(e: &Error) -> Option<i32> {
        match e.source {
            IoError::Os(n) => Some(n),
            IoError::Other(_) => None,
        }
    }

    #[test]
    fn open_beneath_follows_links_inside_and_refuses_the_way_out() {
        let t = tmp("beneath");
        let vol = t.join("vol");
        // A configMap volume as the kubelet (and the builder) lays it out.
        fs::create_dir_all(vol.join("..2024_01_01")).unwrap();
        fs::write(vol.join("..2024_01_01/key"), "value").unwrap();
        symlink("..2024_01_01", vol.join("..data")).unwrap();
        symlink("..data/key", vol.join("key")).unwrap();
        fs::create_dir(t.join("outside")).unwrap();
        fs::write(t.join("outside/secret"), "host").unwrap();
        symlink("../outside", vol.join("up")).unwrap();
        symlink(t.join("outside"), vol.join("abs")).unwrap();
        symlink("/proc/self/root", vol.join("proc")).unwrap();
        let v = s(&vol);
        assert_eq!(read_fd(&open_beneath(v, "key", None).unwrap()), "value");
        assert_eq!(read_fd(&open_beneath(v, "./..data//key", None).unwrap()), "value");
        for escape in ["up/secret", "abs/secret", "proc/etc"] {
            let e = open_beneath(v, escape, None).unwrap_err();
            assert_eq!(errno(&e), Some(libc::EXDEV), "{escape}: {e}");
        }
        for refused in ["../outside/secret", "/etc", "a/../../x"] {
            assert_eq!(
                open_beneath(v, refused, None).unwrap_err().source,
                IoError::INVALID_INPUT
            );
        }
        // No subPath: the volume itself.
        open_beneath(v, "", None).unwrap();
        // Without make_dirs a missing path is an error, and nothing is made.
        assert!(open_beneath(v, "missing/dir", None)
            .unwrap_err()
            .source
            .is_not_found());
        assert!(!vol.join("missing").exists());
        fs::remove_dir_all(&t).unwrap();
    }

    #[test]
    fn open_beneath_makes_missing_directories_with_the_mode_asked() {
        let t = tmp("beneath-mkdir");
        let vol = t.join("vol");
        fs::create_dir_all(vol.join("real")).unwrap();
        fs::create_dir(t.join("outside")).unwrap();
        symlink("real", vol.join("inside")).unwrap();
        symlink("../outside", vol.join("up")).unwrap();
        let v = s(&vol);
        // Modes wider than the umask allows: chmod'ed after mkdir.
        open_beneath(v, "a/b/c", Some(0o2777)).unwrap();
        for d in ["a", "a/b", "a/b/c"] {
            let m = fs::metadata(vol.join(d)).unwrap();
            assert!(m.is_dir());
            assert_eq!(m.mode() & 0o7777, 0o2777, "{d}");
        }
        // Through a symlink that stays inside: made where it points.
        open_beneath(v, "inside/new", Some(0o755)).unwrap();
        assert!(vol.join("real/new").is_dir());
        // Through one that leads out: refused, nothing made outside.
        let e = open_beneath(v, "up/new", Some(0o755)).unwrap_err();
        assert_eq!(errno(&e), Some(libc::EXDEV), "{e}");
        assert!(!t.join("outside/new").exists());
        // An existing file is opened as it is.
        fs::write(vol.join("a/f"), "x").unwrap();
        assert_eq!(read_fd(&open_beneath(v, "a/f", Some(0o755)).unwrap()), "x");
        fs::remove_dir_all(&t).unwrap();
    }

    #[test]
    fn mkdir_refuses_symlinks_and_dotdot() {
        let a = tmp("c");
        symlink("/etc", a.join("evil")).unwrap();
        assert!(create_dir_all_no_symlinks(s(&a), "/evil/x").is_err());
        assert!(create_dir_all_no_symlinks(s(&a), "/../x").is_err());
        let p = create_dir_all_no_symlinks(s(&a), "/data/d").unwrap();
        assert!(Path::new(&p).is_dir());
        fs::remove_dir_all(&a).unwrap();
    }
}
