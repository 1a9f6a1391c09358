//! hostPath volumes: each one mounted once under the pod's state
//! directory (`hostpath/<name>`), from where `volumes` binds it into the
//! containers that mount it, as it binds an emptyDir.
//!
//! In the VM the host shares each volume through its own virtio-fs device
//! (tag [`HostPathPlan::tag`]); `pod1 run` has checked the host path, made
//! it if the type asks, and started the daemon serving it. A single file is
//! shared as the one entry ([`FILE_NAME`]) of a directory made for it on
//! the host, so its siblings never reach the guest.
//!
//! In host mode (`pod1-init --root DIR`) the init runs on the host itself:
//! the host path is bound directly, with the same layout. It must exist
//! there (host mode makes nothing on the host; `pod1 run` does).
//!
//! Either way the mount is nosuid and nodev, as the state tmpfs the
//! emptyDirs live on: a file a container finds in a host directory never
//! gains privileges or opens a device of the VM. Read-only when every
//! container's mount of it is.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;

use pod1_manifest::hostpath::{HostPathPlan, FILE_NAME};
use pod1_manifest::plan::VolumePlan;

use crate::console;
use crate::mounts::{self, MsFlags};
use crate::sys::{self, IoError};

/// A hostPath step that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The virtio-fs share could not be mounted.
    #[error(
        "volume {name}: mounting the host's share (virtio-fs tag {tag}): {source} (does the kernel have virtiofs, and did pod1 run start its daemon?)"
    )]
    Share {
        /// Volume name.
        name: String,
        /// The tag.
        tag: String,
        /// The cause.
        source: Box<mounts::Error>,
    },
    /// Host mode: the host path is missing or of the wrong kind.
    #[error("volume {name}: host path {path}: {why} (host mode binds the path as it is; pod1 run makes it)")]
    HostPath {
        /// Volume name.
        name: String,
        /// The host path.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// Host mode: the mount point for a file could not be made.
    #[error("volume {name}: making {path}: {source}")]
    MountPoint {
        /// Volume name.
        name: String,
        /// The mount point.
        path: String,
        /// The cause.
        source: IoError,
    },
    /// A bind or a directory failed.
    #[error(transparent)]
    Mount(#[from] mounts::Error),
}

/// Where volume `name`'s share is mounted.
fn share_dir(state: &str, name: &str) -> String {
    sys::join(state, &format!("hostpath/{name}"))
}

/// What containers bind: the share's root, or its one file.
pub fn source(state: &str, name: &str, h: &HostPathPlan) -> String {
    match h.file {
        true => sys::join(&share_dir(state, name), FILE_NAME),
        false => share_dir(state, name),
    }
}

/// The flags of a volume's mounts, the share's and the containers' binds
/// alike (a bind remounted without nosuid/nodev would lose them).
pub fn flags(read_only: bool) -> MsFlags {
    let base = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    match read_only {
        true => base | MsFlags::MS_RDONLY,
        false => base,
    }
}

/// Mounts every hostPath volume of the plan under `state`: from its
/// virtio-fs device in the VM (`vm`), from the host path itself otherwise.
pub fn mount_all(volumes: &[VolumePlan], state: &str, vm: bool) -> Result<(), Error> {
    for v in volumes {
        let Some(h) = &v.host_path else { continue };
        let dir = share_dir(state, &v.name);
        mounts::mkdir_p(&dir)?;
        if vm {
            mounts::mount_fs(&h.tag, &dir, "virtiofs", flags(h.read_only), None).map_err(|source| {
                Error::Share {
                    name: v.name.clone(),
                    tag: h.tag.clone(),
                    source: Box::new(source),
                }
            })?;
        } else {
            bind_host(&v.name, h, &dir)?;
        }
        console::debug(&format!("volume {}: host path {} mounted", v.name, h.path));
    }
    Ok(())
}

/// Host mode: binds the host path at `dir` (a file at `dir/FILE_NAME`).
fn bind_host(name: &str, h: &HostPathPlan, dir: &str) -> Result<(), Error> {
    let fail = |why: String| Error::HostPath {
        name: name.into(),
        path: h.path.clone(),
        why,
    };
    let st = sys::stat(&h.path).map_err(|e| fail(format!("{e}")))?;
    let is_dir = sys::file_type(&st) == rustix::fs::FileType::Directory;
    if is_dir == h.file {
        return Err(fail(String::from(match h.file {
            true => "not a file, as the plan says it is",
            false => "not a directory, as the plan says it is",
        })));
    }
    let target = match h.file {
        true => {
            let file = sys::join(dir, FILE_NAME);
            sys::write(&file, "").map_err(|source| Error::MountPoint {
                name: name.into(),
                path: file.clone(),
                source,
            })?;
            file
        }
        false => String::from(dir),
    };
    mounts::bind_with(&h.path, &target, flags(h.read_only))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pod1_manifest::hostpath::HostPathType;

    fn plan(file: bool) -> HostPathPlan {
        HostPathPlan {
            path: "/srv/x".into(),
            kind: HostPathType::Unset,
            tag: "pod1-vol0".into(),
            file,
            read_only: false,
        }
    }

    #[test]
    fn a_file_is_bound_from_inside_its_share() {
        assert_eq!(source("/run/pod1", "v", &plan(false)), "/run/pod1/hostpath/v");
        assert_eq!(source("/run/pod1", "v", &plan(true)), "/run/pod1/hostpath/v/file");
        assert_eq!(
            flags(true),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_RDONLY
        );
    }
}
