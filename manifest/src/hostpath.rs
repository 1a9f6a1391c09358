//! hostPath volumes: a host file or directory shared live with the pod
//! through virtio-fs (a virtiofsd on the host per volume, the guest's
//! virtiofs driver).
//!
//! The plan carries, per volume, what `pod1 run` needs before the VM boots
//! (the absolute host path, the type to check it against, the virtio-fs
//! tag to give the device) and what the init needs (the tag, whether the
//! share is one file, whether every mount is read-only). The type checks
//! themselves are pure ([`check`]); `pod1 run` feeds them what it found on
//! the host.

use alloc::format;
use alloc::string::{String, ToString};
use serde::{Deserialize, Serialize};

/// A virtio-fs share holds a directory. A single file is shared as the one
/// entry of a directory made for it, under this name: the init binds
/// `<mount>/FILE_NAME` where the file is mounted.
pub const FILE_NAME: &str = "file";

/// `hostPath.type`: what must be at the path before the pod starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HostPathType {
    /// `""`: no check; a missing path is made a directory (0755), as
    /// containerd makes a missing bind source.
    Unset,
    /// A directory is made (0755) if nothing is there.
    DirectoryOrCreate,
    /// A directory must be there.
    Directory,
    /// An empty file is made (0644) if nothing is there; its directory
    /// must exist.
    FileOrCreate,
    /// A regular file must be there.
    File,
}

impl HostPathType {
    /// Reads `hostPath.type`; `Err` says why a type is refused.
    pub fn parse(text: &str) -> Result<HostPathType, String> {
        Ok(match text {
            "" => HostPathType::Unset,
            "DirectoryOrCreate" => HostPathType::DirectoryOrCreate,
            "Directory" => HostPathType::Directory,
            "FileOrCreate" => HostPathType::FileOrCreate,
            "File" => HostPathType::File,
            "Socket" | "CharDevice" | "BlockDevice" => {
                return Err(format!(
                    "{text:?}: a pod1 pod runs in a VM with its own kernel, which cannot reach the host's \
                     sockets or devices through a shared filesystem; share a directory or a regular file"
                ))
            }
            other => {
                return Err(format!(
                    "{other:?}: use \"\", DirectoryOrCreate, Directory, FileOrCreate or File"
                ))
            }
        })
    }

    /// The name as a manifest spells it.
    pub fn name(self) -> &'static str {
        match self {
            HostPathType::Unset => "\"\"",
            HostPathType::DirectoryOrCreate => "DirectoryOrCreate",
            HostPathType::Directory => "Directory",
            HostPathType::FileOrCreate => "FileOrCreate",
            HostPathType::File => "File",
        }
    }

    /// Whether the type alone says the volume is one file.
    pub fn is_file(self) -> bool {
        matches!(self, HostPathType::File | HostPathType::FileOrCreate)
    }
}

/// A hostPath volume in the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HostPathPlan {
    /// The host path, absolute (the builder resolves a relative one
    /// against the manifest's directory).
    pub path: String,
    /// `hostPath.type`.
    #[serde(rename = "type")]
    pub kind: HostPathType,
    /// The virtio-fs tag of its device: the guest mounts the share by it.
    pub tag: String,
    /// One file rather than a directory: the share holds it as
    /// [`FILE_NAME`]. From the type, or for `""` from what was at the path
    /// when the pod was built.
    pub file: bool,
    /// Every container's mount of it is read-only: the share itself is
    /// then read-only too.
    pub read_only: bool,
}

/// The tag of the `index`th volume: at most 36 bytes, as virtio-fs allows,
/// whatever the volume's name (a DNS label of up to 63).
pub fn tag(index: usize) -> String {
    format!("pod1-vol{index}")
}

/// What is at a host path, as `pod1 run` found it (symlinks followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// Nothing.
    Missing,
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A socket, a device, a FIFO.
    Other,
}

/// What `pod1 run` must do before the VM boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing: the path is as the type wants.
    Use,
    /// Make the directory (0755, with its parents).
    MakeDir,
    /// Make an empty file (0644).
    MakeFile,
}

/// The kubelet's hostPath type check (`file`: the plan's [`HostPathPlan::file`]):
/// what to do, or why the pod cannot start (the kubelet's "hostPath type
/// check failed" words, and what to do about it).
pub fn check(kind: HostPathType, file: bool, found: Found, path: &str) -> Result<Action, String> {
    let failed = |what: &str| format!("hostPath type check failed: {path} is not {what}");
    match (kind, found) {
        (_, Found::Other) => Err(format!(
            "{path} is neither a directory nor a regular file: a pod1 VM can share only those"
        )),
        (HostPathType::Unset, Found::Missing) if !file => Ok(Action::MakeDir),
        (HostPathType::Unset, Found::Dir) if !file => Ok(Action::Use),
        (HostPathType::Unset, Found::File) if file => Ok(Action::Use),
        (HostPathType::Unset, _) => Err(format!(
            "{path} was {} when the pod was built and is not now: run the manifest again so that it is rebuilt",
            if file { "a file" } else { "a directory (or missing)" }
        )),
        (HostPathType::DirectoryOrCreate, Found::Missing) => Ok(Action::MakeDir),
        (HostPathType::FileOrCreate, Found::Missing) => Ok(Action::MakeFile),
        (HostPathType::DirectoryOrCreate | HostPathType::Directory, Found::Dir) => Ok(Action::Use),
        (HostPathType::FileOrCreate | HostPathType::File, Found::File) => Ok(Action::Use),
        (HostPathType::Directory, Found::Missing) => Err(format!(
            "{} (it does not exist; create it, or use type DirectoryOrCreate)",
            failed("a directory")
        )),
        (HostPathType::File, Found::Missing) => Err(format!(
            "{} (it does not exist; create it, or use type FileOrCreate)",
            failed("a file")
        )),
        (HostPathType::DirectoryOrCreate | HostPathType::Directory, Found::File) => {
            Err(failed("a directory"))
        }
        (HostPathType::FileOrCreate | HostPathType::File, Found::Dir) => Err(failed("a file")),
    }
}

/// `path` made absolute against `base` (an absolute directory): `.`
/// components dropped, `..` kept for the host to resolve. Kubernetes wants
/// an absolute `hostPath.path`; pod1 also takes one relative to the
/// manifest's directory.
pub fn absolute(base: &str, path: &str) -> String {
    let joined = match path.starts_with('/') {
        true => path.to_string(),
        false => format!("{}/{path}", base.trim_end_matches('/')),
    };
    let parts: alloc::vec::Vec<&str> = joined.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_parse_and_the_vm_ones_are_refused_with_a_reason() {
        assert_eq!(HostPathType::parse(""), Ok(HostPathType::Unset));
        assert_eq!(HostPathType::parse("File"), Ok(HostPathType::File));
        for t in ["Socket", "CharDevice", "BlockDevice"] {
            assert!(HostPathType::parse(t).unwrap_err().contains("own kernel"), "{t}");
        }
        assert!(HostPathType::parse("directory")
            .unwrap_err()
            .contains("DirectoryOrCreate"));
        assert!(HostPathType::FileOrCreate.is_file() && !HostPathType::Unset.is_file());
    }

    #[test]
    fn checks_follow_the_kubelet() {
        use HostPathType::*;
        let (missing, dir, file, other) = (Found::Missing, Found::Dir, Found::File, Found::Other);
        let ok = |k: HostPathType, is_file: bool, f: Found| check(k, is_file, f, "/p");
        assert_eq!(ok(DirectoryOrCreate, false, missing), Ok(Action::MakeDir));
        assert_eq!(ok(DirectoryOrCreate, false, dir), Ok(Action::Use));
        assert_eq!(ok(FileOrCreate, true, missing), Ok(Action::MakeFile));
        assert_eq!(ok(File, true, file), Ok(Action::Use));
        assert_eq!(ok(Unset, false, missing), Ok(Action::MakeDir));
        assert_eq!(ok(Unset, true, file), Ok(Action::Use));
        let e = ok(Directory, false, missing).unwrap_err();
        assert!(
            e.contains("/p is not a directory") && e.contains("DirectoryOrCreate"),
            "{e}"
        );
        assert!(ok(File, true, dir).unwrap_err().contains("is not a file"));
        assert!(ok(Directory, false, file)
            .unwrap_err()
            .contains("is not a directory"));
        assert!(ok(File, true, missing).unwrap_err().contains("FileOrCreate"));
        assert!(ok(Unset, false, file).unwrap_err().contains("rebuilt"));
        assert!(ok(Unset, false, other).unwrap_err().contains("neither"));
    }

    #[test]
    fn relative_paths_resolve_against_the_base() {
        assert_eq!(absolute("/m/dir/", "data"), "/m/dir/data");
        assert_eq!(absolute("/m", "./a//b/."), "/m/a/b");
        assert_eq!(absolute("/m", "/abs/x/"), "/abs/x");
        assert_eq!(absolute("/m", "../up"), "/m/../up");
        assert_eq!(absolute("/", "x"), "/x");
        assert!(tag(999).len() <= 36);
    }
}
