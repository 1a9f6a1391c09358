//! A pod's volumes and the files the kubelet manages, as a container sees
//! them:
//! - emptyDirs, made once in the pod's state directory (with fsGroup, owned
//!   by that group and setgid, as the kubelet's SetVolumeOwnership leaves
//!   a fresh one);
//! - prepared volumes (configMap, secret, downwardAPI, projected), whose
//!   files the builder wrote into the initramfs: never written, nothing
//!   made for them in the state directory;
//! - hostPath volumes, mounted once in the state directory (`hostpath`);
//! - each container's mounts of them: the volume's root or its subPath,
//!   resolved beneath the volume (`tree::open_beneath`) and bound from its
//!   descriptor;
//! - the files bound in after /dev: /etc/hosts, /etc/hostname,
//!   /etc/resolv.conf, the termination log.
//!
//! Every target is resolved in the container's root as runc resolves it
//! (`mountpoint`): through the image's symlinks, never out of the root.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use pod1_manifest::plan::{FileMount, MountPlan, VolumePlan};
use rustix::fd::{AsRawFd, OwnedFd};
use rustix::fs::FileType;

use crate::mountpoint::{self, Kind, Root};
use crate::mounts::{self, MsFlags};
use crate::sys::{self, IoError};
use crate::tree;

/// A volume step that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An emptyDir could not be made.
    #[error("creating volume {name}: {source}")]
    Create {
        /// Volume name.
        name: String,
        /// The cause.
        source: mounts::Error,
    },
    /// fsGroup's ownership or mode could not be set.
    #[error("volume {name}: giving {path} to fsGroup {gid}: {source}")]
    Ownership {
        /// Volume name.
        name: String,
        /// The group.
        gid: u32,
        /// The directory.
        path: String,
        /// The cause.
        source: IoError,
    },
    /// Its mode could not be set.
    #[error("volume {name}: setting the mode of {path}: {source}")]
    Mode {
        /// Volume name.
        name: String,
        /// The directory.
        path: String,
        /// The cause.
        source: IoError,
    },
    /// The subPath leads outside its volume.
    #[error(
        "volume {volume}: subPath {sub_path:?} leads outside the volume (through `..` or a symlink): refused"
    )]
    Escapes {
        /// Volume name.
        volume: String,
        /// The subPath.
        sub_path: String,
    },
    /// The subPath does not exist in a volume that cannot be written.
    #[error(
        "volume {volume}: subPath {sub_path:?} does not exist, and the volume is read-only (it holds only the files the pod gives it): name one of its files or directories"
    )]
    Missing {
        /// Volume name.
        volume: String,
        /// The subPath.
        sub_path: String,
    },
    /// Resolving or making the subPath failed otherwise.
    #[error("volume {volume}: subPath {sub_path:?}: {source}")]
    SubPath {
        /// Volume name.
        volume: String,
        /// The subPath.
        sub_path: String,
        /// The cause.
        source: tree::Error,
    },
    /// A mount point could not be found or made.
    #[error(transparent)]
    MountPoint(#[from] mountpoint::Error),
    /// A bind mount failed.
    #[error(transparent)]
    Mount(#[from] mounts::Error),
}

/// Where an emptyDir lives in the pod's state directory.
fn empty_dir(state: &str, name: &str) -> String {
    sys::join(state, &format!("volumes/{name}"))
}

/// The mode a fresh emptyDir gets: everyone may write (the kubelet's
/// 0777), plus setgid with fsGroup, so that what is made in it belongs to
/// that group (SetVolumeOwnership).
fn empty_dir_mode(fs_group: Option<u32>) -> u32 {
    match fs_group {
        Some(_) => 0o2777,
        None => 0o777,
    }
}

/// Makes every emptyDir of the pod under `state/volumes/`: a directory on
/// the state tmpfs, or a tmpfs of its own when size-limited. Prepared
/// volumes need nothing here.
pub fn create(volumes: &[VolumePlan], state: &str) -> Result<(), Error> {
    for v in volumes
        .iter()
        .filter(|v| v.source.is_none() && v.host_path.is_none())
    {
        let dir = empty_dir(state, &v.name);
        let fail = |source| Error::Create {
            name: v.name.clone(),
            source,
        };
        mounts::mkdir_p(&dir).map_err(fail)?;
        let mode = empty_dir_mode(v.fs_group);
        if let Some(size) = v.size_limit_bytes {
            let data = format!("mode={mode:o},size={size}");
            // No device node in a volume can be opened (the state tmpfs
            // the others live on is nodev too).
            mounts::mount_fs("tmpfs", &dir, "tmpfs", MsFlags::MS_NODEV, Some(&data)).map_err(fail)?;
        }
        if let Some(gid) = v.fs_group {
            let group = rustix::fs::Gid::from_raw(gid);
            rustix::fs::chown(dir.as_str(), None, Some(group)).map_err(|e| Error::Ownership {
                name: v.name.clone(),
                gid,
                path: dir.clone(),
                source: e.into(),
            })?;
        }
        // After the chown, which may clear the setgid bit; and the umask
        // must not decide.
        sys::chmod(&dir, mode).map_err(|source| Error::Mode {
            name: v.name.clone(),
            path: dir.clone(),
            source,
        })?;
    }
    Ok(())
}

/// One volume as one container mounts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The volume's name, for messages.
    pub volume: String,
    /// The volume's directory: in the state directory (an emptyDir) or in
    /// the pod's root (a prepared volume).
    pub dir: String,
    /// A prepared volume: never written, always read-only.
    pub prepared: bool,
    /// A hostPath volume: nosuid and nodev as its share is.
    pub host: bool,
    /// `dir` is one file (a hostPath of a file), bound onto a file.
    pub file: bool,
    /// The path inside the volume to mount instead of its root.
    pub sub_path: Option<String>,
    /// Absolute path in the container.
    pub target: String,
    /// `readOnly`.
    pub read_only: bool,
}

impl Mount {
    /// The flags the bind is remounted with. A prepared volume is
    /// read-only whatever the mount says (the kubelet mounts configMaps,
    /// secrets, downwardAPI and projected volumes read-only), nosuid and
    /// nodev, but not noexec: users run scripts from configMaps.
    pub fn flags(&self) -> MsFlags {
        match (self.prepared, self.read_only) {
            _ if self.host => crate::hostpath::flags(self.read_only),
            (true, _) => MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            (false, true) => MsFlags::MS_RDONLY,
            (false, false) => MsFlags::empty(),
        }
    }
}

/// The mounts of a container (`mounts`) of the pod's `volumes`: a
/// prepared volume's directory is joined with the pod's `root` as the
/// images' are, an emptyDir's is in `state`. A mount naming no volume of
/// the plan (the builder does not write such plans) is taken for an
/// emptyDir; its bind then fails, naming the path.
pub fn mounts_of(volumes: &[VolumePlan], mounts: &[MountPlan], root: &str, state: &str) -> Vec<Mount> {
    mounts
        .iter()
        .map(|m| {
            let volume = volumes.iter().find(|v| v.name == m.name);
            let source = volume.and_then(|v| v.source.as_deref());
            let host = volume.and_then(|v| v.host_path.as_ref());
            let dir = match (source, host) {
                (Some(s), _) => sys::join(root, s.trim_start_matches('/')),
                (None, Some(h)) => crate::hostpath::source(state, &m.name, h),
                (None, None) => empty_dir(state, &m.name),
            };
            Mount {
                volume: m.name.clone(),
                dir,
                prepared: source.is_some(),
                host: host.is_some(),
                file: host.is_some_and(|h| h.file),
                sub_path: m.sub_path.clone(),
                target: m.mount_path.clone(),
                // A read-only share stays so in every container (a bind
                // remounted without MS_RDONLY would not be).
                read_only: m.read_only || host.is_some_and(|h| h.read_only),
            }
        })
        .collect()
}

/// Mounts `m` into the container's root (before pivot_root), at its
/// target as resolved in the root ([`Root::mount_point`]).
pub fn mount(root: &Root, m: &Mount) -> Result<(), Error> {
    let sub = m
        .sub_path
        .as_deref()
        .filter(|s| tree::components_beneath(s).map_or(true, |c| !c.is_empty()));
    let Some(sub) = sub else {
        let kind = match m.file {
            true => Kind::File,
            false => Kind::Dir,
        };
        let dst = root.mount_point(&m.target, kind)?;
        return Ok(mounts::bind_onto(&m.dir, dst.fd(), &dst.path, m.flags())?);
    };
    let fd = resolve(m, sub)?;
    let is_dir = rustix::fs::fstat(&fd).is_ok_and(|st| sys::file_type(&st) == FileType::Directory);
    // A file binds onto a file (runc makes the mount point the same way).
    let kind = match is_dir {
        true => Kind::Dir,
        false => Kind::File,
    };
    let dst = root.mount_point(&m.target, kind)?;
    // From the descriptor: the kernel binds what was resolved, and nothing
    // (a container rewriting the volume meanwhile) can redirect it.
    let src = format!("/proc/self/fd/{}", fd.as_raw_fd());
    mounts::bind_onto(&src, dst.fd(), &dst.path, m.flags())?;
    Ok(())
}

/// Opens `m`'s subPath `sub` beneath its volume. In an emptyDir missing
/// directories are made with the mode of the volume's root, as the
/// kubelet's SafeMakeDir makes them (0777, 02777 with fsGroup: a non-root
/// container can write in them), and so they are in a hostPath (on the
/// host, owned by root, as the kubelet makes them); a prepared volume is
/// never written.
fn resolve(m: &Mount, sub: &str) -> Result<OwnedFd, Error> {
    let (volume, sub_path) = (m.volume.clone(), sub.to_string());
    let make_dirs = match m.prepared {
        true => None,
        false => Some(
            sys::stat(&m.dir)
                .map(|st| st.st_mode & 0o7777)
                .unwrap_or(empty_dir_mode(None)),
        ),
    };
    tree::open_beneath(&m.dir, sub, make_dirs).map_err(|source| match source.source {
        IoError::Os(libc::EXDEV) => Error::Escapes { volume, sub_path },
        e if e == IoError::INVALID_INPUT => Error::Escapes { volume, sub_path },
        e if e.is_not_found() && m.prepared => Error::Missing { volume, sub_path },
        _ => Error::SubPath {
            volume,
            sub_path,
            source,
        },
    })
}

/// A file bound into a container after its /dev is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileBind {
    /// The file, joined with the pod's root.
    pub source: String,
    /// Absolute path in the container.
    pub target: String,
    /// Read-only.
    pub read_only: bool,
}

/// The plan's `files` of a container, their sources joined with the pod's
/// `root` as the images' are.
pub fn files_of(files: &[FileMount], root: &str) -> Vec<FileBind> {
    files
        .iter()
        .map(|f| FileBind {
            source: sys::join(root, f.source.trim_start_matches('/')),
            target: f.target.clone(),
            read_only: f.read_only,
        })
        .collect()
}

/// Binds `f` into the container's root, at its target as resolved in the
/// root ([`Root::mount_point`]: an empty file is made where it leads if
/// missing). The source itself is bound, so a writable one is shared by
/// every container that binds it (as on a node).
pub fn bind_file(root: &Root, f: &FileBind) -> Result<(), Error> {
    let dst = root.mount_point(&f.target, Kind::File)?;
    let flags = match f.read_only {
        true => MsFlags::MS_RDONLY,
        false => MsFlags::empty(),
    };
    mounts::bind_onto(&f.source, dst.fd(), &dst.path, flags)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn volume(name: &str, source: Option<&str>) -> VolumePlan {
        VolumePlan {
            name: name.into(),
            size_limit_bytes: None,
            source: source.map(Into::into),
            fs_group: None,
            host_path: None,
        }
    }

    fn mount_plan(name: &str, path: &str, read_only: bool, sub_path: Option<&str>) -> MountPlan {
        MountPlan {
            name: name.into(),
            mount_path: path.into(),
            read_only,
            sub_path: sub_path.map(Into::into),
        }
    }

    #[test]
    fn prepared_volumes_come_from_the_root_and_are_always_read_only() {
        let volumes = [volume("cache", None), volume("cfg", Some("/pod1/volumes/cfg"))];
        let mounts = [
            mount_plan("cache", "/cache", false, None),
            mount_plan("cfg", "/etc/app", false, None),
            mount_plan("cfg", "/etc/app.conf", true, Some("app.conf")),
            mount_plan("cache", "/ro", true, Some("sub/dir")),
        ];
        let got = mounts_of(&volumes, &mounts, "/tree", "/run/pod1");
        let dirs: Vec<_> = got.iter().map(|m| (m.dir.as_str(), m.prepared)).collect();
        assert_eq!(
            dirs,
            [
                ("/run/pod1/volumes/cache", false),
                ("/tree/pod1/volumes/cfg", true),
                ("/tree/pod1/volumes/cfg", true),
                ("/run/pod1/volumes/cache", false),
            ]
        );
        let prepared = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
        let flags: Vec<_> = got.iter().map(Mount::flags).collect();
        assert_eq!(flags, [MsFlags::empty(), prepared, prepared, MsFlags::MS_RDONLY]);
        assert_eq!(got[3].sub_path.as_deref(), Some("sub/dir"));
        assert_eq!(got[3].target, "/ro");
        // In the VM the root is `/`.
        assert_eq!(
            mounts_of(&volumes, &mounts[1..2], "/", "/run/pod1")[0].dir,
            "/pod1/volumes/cfg"
        );
    }

    #[test]
    fn host_paths_come_from_their_share_in_the_state_directory() {
        use pod1_manifest::hostpath::{HostPathPlan, HostPathType};
        let host = |name: &str, file: bool| VolumePlan {
            host_path: Some(HostPathPlan {
                path: "/h".into(),
                kind: HostPathType::Unset,
                tag: "pod1-vol0".into(),
                file,
                read_only: false,
            }),
            ..volume(name, None)
        };
        let volumes = [host("src", false), host("cfg", true)];
        let mounts = [
            mount_plan("src", "/w", false, None),
            mount_plan("cfg", "/etc/a.conf", true, None),
        ];
        let got = mounts_of(&volumes, &mounts, "/tree", "/run/pod1");
        let dirs: Vec<_> = got.iter().map(|m| (m.dir.as_str(), m.host, m.file)).collect();
        assert_eq!(
            dirs,
            [
                ("/run/pod1/hostpath/src", true, false),
                ("/run/pod1/hostpath/cfg/file", true, true)
            ]
        );
        let nosuid_nodev = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
        assert_eq!(got[0].flags(), nosuid_nodev);
        assert_eq!(got[1].flags(), nosuid_nodev | MsFlags::MS_RDONLY);
    }

    #[test]
    fn file_sources_are_joined_with_the_root() {
        let files = [FileMount {
            source: "/pod1/files/hosts".into(),
            target: "/etc/hosts".into(),
            read_only: true,
        }];
        let got = files_of(&files, "/tree");
        assert_eq!(got[0].source, "/tree/pod1/files/hosts");
        assert_eq!(files_of(&files, "/")[0].source, "/pod1/files/hosts");
    }

    #[test]
    fn only_empty_dirs_are_made_in_the_state_directory() {
        use std::os::unix::fs::PermissionsExt;
        let state = std::env::temp_dir().join(format!("pod1-volumes-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&state);
        std::fs::create_dir_all(&state).unwrap();
        let volumes = [volume("scratch", None), volume("cfg", Some("/pod1/volumes/cfg"))];
        create(&volumes, state.to_str().unwrap()).unwrap();
        let made = state.join("volumes/scratch");
        assert_eq!(
            std::fs::metadata(&made).unwrap().permissions().mode() & 0o7777,
            0o777
        );
        assert!(!state.join("volumes/cfg").exists());
        std::fs::remove_dir_all(&state).unwrap();
        assert_eq!(empty_dir_mode(Some(5)), 0o2777);
    }
}
