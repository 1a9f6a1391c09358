//! cgroup v2 limits: one cgroup per container under a pod cgroup. Limits are
//! best effort: without a cgroup2 hierarchy (a kernel without cgroups, or a
//! cgroup v1 host) the pod runs unlimited and the console says so once.

use std::fs;
use std::path::{Path, PathBuf};

use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC};
use nix::unistd::Pid;
use pod1_manifest::plan::Limits;

use crate::console;

/// The pod's cgroup, if the system has cgroup v2.
#[derive(Debug)]
pub struct Cgroups {
    base: Option<PathBuf>,
}

fn write(path: &Path, value: &str) -> Result<(), String> {
    fs::write(path, value).map_err(|e| format!("writing {value:?} to {}: {e}", path.display()))
}

impl Cgroups {
    /// Creates `<mount>/<name>` and enables the memory, cpu and pids
    /// controllers for its children.
    pub fn setup(mount: &Path, name: &str) -> Cgroups {
        match statfs(mount) {
            Ok(s) if s.filesystem_type() == CGROUP2_SUPER_MAGIC => {}
            _ => {
                console::debug(&format!(
                    "no cgroup2 at {}: limits are not applied",
                    mount.display()
                ));
                return Cgroups { base: None };
            }
        }
        let base = mount.join(name);
        if let Err(e) = fs::create_dir_all(&base) {
            console::log(&format!(
                "cannot create {}: {e}; limits are not applied",
                base.display()
            ));
            return Cgroups { base: None };
        }
        for dir in [mount, base.as_path()] {
            let available = fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
            for c in ["memory", "cpu", "pids"] {
                if available.split_whitespace().any(|a| a == c) {
                    if let Err(e) = write(&dir.join("cgroup.subtree_control"), &format!("+{c}")) {
                        console::debug(&e);
                    }
                }
            }
        }
        Cgroups { base: Some(base) }
    }

    /// Puts `pid` into the container's cgroup with its limits. Failures are
    /// logged: a limit the kernel cannot apply does not stop the pod.
    pub fn add(&self, container: &str, limits: &Limits, pid: Pid) {
        let Some(base) = &self.base else { return };
        let dir = base.join(container);
        let res = fs::create_dir_all(&dir)
            .map_err(|e| format!("creating {}: {e}", dir.display()))
            .and_then(|()| {
                if let Some(m) = limits.memory_bytes {
                    write(&dir.join("memory.max"), &m.to_string())?;
                }
                if let Some(c) = limits.cpu_millis {
                    write(&dir.join("cpu.max"), &format!("{} 100000", (c * 100).max(1000)))?;
                }
                if let Some(p) = limits.pids {
                    write(&dir.join("pids.max"), &p.to_string())?;
                }
                write(&dir.join("cgroup.procs"), &pid.to_string())
            });
        if let Err(e) = res {
            console::log(&format!("cgroup of {container}: {e}"));
        }
    }

    /// Removes the (by now empty) cgroups.
    pub fn remove(&self) {
        let Some(base) = &self.base else { return };
        if let Ok(entries) = fs::read_dir(base) {
            for e in entries.flatten() {
                if e.path().is_dir() {
                    let _ = fs::remove_dir(e.path());
                }
            }
        }
        let _ = fs::remove_dir(base);
    }
}
