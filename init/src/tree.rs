//! Copying and removing directory trees without crossing into other mounts:
//! the fallback root filesystem when the kernel has no overlayfs.

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

/// `mkdir -p` that refuses to follow symlinks: used for paths inside a
/// container's root, where a symlink could point anywhere on the host.
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
