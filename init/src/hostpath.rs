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
use crate::sys;

/// A hostPath volume that could not be mounted (one type: the init's
/// size is kept small, and the mount error already names the step).
#[derive(Debug, thiserror::Error)]
#[error("volume {name}: sharing host path {path} (virtio-fs tag {tag} in the VM): {source}")]
pub struct Error {
    /// Volume name.
    name: String,
    /// The host path.
    path: String,
    /// Its tag.
    tag: String,
    /// The failed mount.
    source: Box<mounts::Error>,
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
        mount_one(&share_dir(state, &v.name), h, vm).map_err(|source| Error {
            name: v.name.clone(),
            path: h.path.clone(),
            tag: h.tag.clone(),
            source: Box::new(source),
        })?;
        console::debug(&format!("volume {}: host path {} mounted", v.name, h.path));
    }
    Ok(())
}

/// One share at `dir`. In host mode the host path is bound as it is (a
/// missing one, or one of the wrong kind, fails the bind, naming it), a
/// file onto `dir/FILE_NAME`.
fn mount_one(dir: &str, h: &HostPathPlan, vm: bool) -> Result<(), mounts::Error> {
    mounts::mkdir_p(dir)?;
    if vm {
        return mounts::mount_fs(&h.tag, dir, "virtiofs", flags(h.read_only), None);
    }
    let target = match h.file {
        true => {
            let file = sys::join(dir, FILE_NAME);
            sys::write(&file, "").map_err(|source| mounts::Error::MountPoint {
                path: file.clone(),
                source,
            })?;
            file
        }
        false => String::from(dir),
    };
    mounts::bind_with(&h.path, &target, flags(h.read_only))
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
