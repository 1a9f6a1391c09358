//! Where the pod's status goes: the `--status` file, checked before
//! anything runs and written atomically at the end, and the plan the
//! status is made from, read from the initramfs.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};
use pod1_manifest::plan::{Plan, PLAN_PATH};

use super::status::{self, PodStatus};

/// Refuses a `--status` path pod1 could not write, before anything runs:
/// the status is written at the end through a temporary file in the same
/// directory, renamed over FILE.
pub fn check(file: &Path) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    if file.is_dir() || file.as_os_str().as_bytes().ends_with(b"/") {
        bail!(
            "--status {}: is a directory; name the file to write the pod's status to",
            file.display()
        );
    }
    let dir = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    tempfile::Builder::new()
        .prefix(".pod1-status-")
        .tempfile_in(dir)
        .with_context(|| {
            format!(
                "--status {}: cannot create a file in {}; name a file in an existing, writable directory",
                file.display(),
                dir.display()
            )
        })?;
    Ok(())
}

/// Writes `status` to `file` atomically, as kubectl prints an object.
pub fn write(file: &Path, status: &PodStatus) -> Result<()> {
    crate::cmd::build::write_atomically(file, |f| Ok(f.write_all(&status::to_kubectl_json(status))?))
        .with_context(|| format!("writing the pod's status to {}", file.display()))
}

/// The plan an initramfs carries, which the pod's status is made from.
pub fn read_plan(initrd: &Path) -> Result<Plan> {
    let file = std::fs::File::open(initrd).with_context(|| format!("cannot open {}", initrd.display()))?;
    let data = crate::initramfs::find(file, PLAN_PATH.as_bytes())
        .with_context(|| format!("{} is not an initramfs", initrd.display()))?
        .with_context(|| format!("{} has no {PLAN_PATH}: not built by pod1", initrd.display()))?;
    serde_json::from_slice(&data).with_context(|| {
        format!(
            "{}: its {PLAN_PATH} is not one this pod1 reads; rebuild it with this pod1",
            initrd.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::{Node, Tree};

    #[test]
    fn a_status_path_pod1_cannot_write_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = |p: &Path| format!("{:#}", check(p).unwrap_err());
        assert!(err(dir.path()).contains("is a directory"));
        assert!(err(&dir.path().join("new/")).contains("is a directory"));
        let missing = dir.path().join("missing/status.json");
        assert!(
            err(&missing).contains("cannot create a file in"),
            "{}",
            err(&missing)
        );
        check(&dir.path().join("status.json")).unwrap();
        // The check leaves nothing behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn the_status_replaces_the_file_whole() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("status.json");
        std::fs::write(&file, "an earlier run's status").unwrap();
        let s = status::unread("x", std::time::SystemTime::UNIX_EPOCH);
        write(&file, &s).unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), status::to_kubectl_json(&s));
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o644
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn an_initramfs_without_a_readable_plan_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("pod.img");
        let write_tree = |plan: Option<&[u8]>| {
            let mut t = Tree::default();
            t.insert("sbin/init", Node::file(b"ELF".to_vec(), 0o755)).unwrap();
            if let Some(p) = plan {
                t.insert(PLAN_PATH, Node::file(p.to_vec(), 0o644)).unwrap();
            }
            crate::initramfs::write(&t, std::fs::File::create(&img).unwrap()).unwrap();
        };
        write_tree(None);
        let err = format!("{:#}", read_plan(&img).unwrap_err());
        assert!(err.contains("has no etc/pod1/plan.json"), "{err}");
        write_tree(Some(br#"{"pod": "from another pod1"}"#));
        let err = format!("{:#}", read_plan(&img).unwrap_err());
        assert!(err.contains("rebuild it"), "{err}");
    }
}
