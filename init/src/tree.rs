//! Copying and removing directory trees without crossing into other mounts:
//! the fallback root filesystem when the kernel has no overlayfs.

use std::fs;
use std::io;
use std::os::unix::fs::{lchown, symlink, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::sys::stat::{mknod, Mode, SFlag};

/// A copy or removal step that failed.
#[derive(Debug, thiserror::Error)]
#[error("{step} {path}: {source}")]
pub struct Error {
    /// What was being done.
    pub step: &'static str,
    /// The file.
    pub path: PathBuf,
    /// The cause.
    pub source: io::Error,
}

fn err<'a>(step: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error {
        step,
        path: path.to_owned(),
        source,
    }
}

/// Copies the contents of `from` into the existing directory `to`,
/// keeping modes, owners, symlinks and device nodes. Entries on another
/// device than `from` (mount points) are created as empty directories.
/// `skip` names entries of `from` itself to leave out.
pub fn copy_contents(from: &Path, to: &Path, skip: &[&str]) -> Result<(), Error> {
    let dev = fs::symlink_metadata(from).map_err(err("stat", from))?.dev();
    copy_dir(from, to, dev, skip)
}

fn copy_dir(from: &Path, to: &Path, dev: u64, skip: &[&str]) -> Result<(), Error> {
    for entry in fs::read_dir(from).map_err(err("reading directory", from))? {
        let entry = entry.map_err(err("reading directory", from))?;
        let name = entry.file_name();
        if skip.iter().any(|s| name == *s) {
            continue;
        }
        let src = entry.path();
        let dst = to.join(&name);
        let meta = fs::symlink_metadata(&src).map_err(err("stat", &src))?;
        let ft = meta.file_type();
        if ft.is_dir() {
            fs::create_dir(&dst)
                .or_else(exists_ok)
                .map_err(err("creating directory", &dst))?;
            if meta.dev() == dev {
                copy_dir(&src, &dst, dev, &[])?;
            }
        } else if ft.is_symlink() {
            let target = fs::read_link(&src).map_err(err("reading link", &src))?;
            symlink(&target, &dst).map_err(err("creating link", &dst))?;
        } else if ft.is_file() {
            fs::copy(&src, &dst).map_err(err("copying file", &src))?;
        } else if ft.is_char_device() || ft.is_block_device() {
            let kind = if ft.is_char_device() {
                SFlag::S_IFCHR
            } else {
                SFlag::S_IFBLK
            };
            mknod(&dst, kind, Mode::from_bits_truncate(meta.mode()), meta.rdev()).map_err(|e| Error {
                step: "creating device node",
                path: dst.clone(),
                source: e.into(),
            })?;
        } else {
            // Sockets and fifos have no meaning in an image; leave them out.
            continue;
        }
        lchown(&dst, Some(meta.uid()), Some(meta.gid())).map_err(err("chown", &dst))?;
        if !ft.is_symlink() {
            fs::set_permissions(&dst, fs::Permissions::from_mode(meta.mode() & 0o7777))
                .map_err(err("chmod", &dst))?;
        }
    }
    Ok(())
}

fn exists_ok(e: io::Error) -> io::Result<()> {
    if e.kind() == io::ErrorKind::AlreadyExists {
        Ok(())
    } else {
        Err(e)
    }
}

/// `mkdir -p` that refuses to follow symlinks: used for paths inside a
/// container's root, where a symlink could point anywhere on the host.
pub fn create_dir_all_no_symlinks(root: &Path, rel: &Path) -> Result<PathBuf, Error> {
    let mut cur = root.to_path_buf();
    for comp in rel.components() {
        use std::path::Component;
        match comp {
            Component::Normal(c) => cur.push(c),
            Component::RootDir | Component::CurDir => continue,
            _ => {
                return Err(Error {
                    step: "refusing `..` in",
                    path: rel.to_owned(),
                    source: io::Error::from(io::ErrorKind::InvalidInput),
                })
            }
        }
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(Error {
                    step: "refusing to follow a symlink at",
                    path: cur,
                    source: io::Error::from(io::ErrorKind::InvalidInput),
                })
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&cur)
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
    use super::*;

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
        copy_contents(&a, &b, &["skipme"]).unwrap();
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
        assert!(create_dir_all_no_symlinks(&a, Path::new("/evil/x")).is_err());
        assert!(create_dir_all_no_symlinks(&a, Path::new("/../x")).is_err());
        let p = create_dir_all_no_symlinks(&a, Path::new("/data/d")).unwrap();
        assert!(p.is_dir());
        fs::remove_dir_all(&a).unwrap();
    }
}
