//! Copying and removing directory trees without crossing into other mounts:
//! the fallback root filesystem when the kernel has no overlayfs.

use alloc::string::{String, ToString};

use rustix::fs::{FileType, Mode, CWD};

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
/// `skip` names entries of `from` itself to leave out.
pub fn copy_contents(from: &str, to: &str, skip: &[&str]) -> Result<(), Error> {
    let dev = sys::lstat(from).map_err(err("stat", from))?.st_dev;
    copy_dir(from, to, dev, skip)
}

fn copy_dir(from: &str, to: &str, dev: u64, skip: &[&str]) -> Result<(), Error> {
    for name in sys::read_dir(from).map_err(err("reading directory", from))? {
        if skip.contains(&name.as_str()) {
            continue;
        }
        let src = sys::join(from, &name);
        let dst = sys::join(to, &name);
        let meta = sys::lstat(&src).map_err(err("stat", &src))?;
        let ft = sys::file_type(&meta);
        match ft {
            FileType::Directory => {
                sys::create_dir(&dst)
                    .or_else(exists_ok)
                    .map_err(err("creating directory", &dst))?;
                if meta.st_dev == dev {
                    copy_dir(&src, &dst, dev, &[])?;
                }
            }
            FileType::Symlink => {
                let target = sys::read_link(&src).map_err(err("reading link", &src))?;
                sys::symlink(&target, &dst).map_err(err("creating link", &dst))?;
            }
            FileType::RegularFile => sys::copy_file(&src, &dst).map_err(err("copying file", &src))?,
            FileType::CharacterDevice | FileType::BlockDevice => {
                rustix::fs::mknodat(
                    CWD,
                    dst.as_str(),
                    ft,
                    Mode::from_raw_mode(meta.st_mode & 0o7777),
                    meta.st_rdev,
                )
                .map_err(|e| err("creating device node", &dst)(e.into()))?;
            }
            // Sockets and fifos have no meaning in an image; leave them out.
            _ => continue,
        }
        sys::lchown(&dst, meta.st_uid, meta.st_gid).map_err(err("chown", &dst))?;
        if ft != FileType::Symlink {
            sys::chmod(&dst, meta.st_mode & 0o7777).map_err(err("chmod", &dst))?;
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
