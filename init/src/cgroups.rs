//! cgroup v2 limits: one cgroup per container under a pod cgroup. Limits are
//! best effort: without a cgroup2 hierarchy (a kernel without cgroups, or a
//! cgroup v1 host) the pod runs unlimited and the console says so once.

use alloc::format;
use alloc::string::{String, ToString};

use pod1_manifest::plan::Limits;

use crate::console;
use crate::sys;

/// statfs's f_type of a cgroup2 filesystem (linux/magic.h).
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// The pod's cgroup, if the system has cgroup v2.
#[derive(Debug)]
pub struct Cgroups {
    base: Option<String>,
}

fn write(path: &str, value: &str) -> Result<(), String> {
    sys::write(path, value).map_err(|e| format!("writing {value:?} to {path}: {e}"))
}

impl Cgroups {
    /// Creates `<mount>/<name>` and enables the memory, cpu and pids
    /// controllers for its children.
    pub fn setup(mount: &str, name: &str) -> Cgroups {
        match rustix::fs::statfs(mount) {
            Ok(s) if s.f_type == CGROUP2_SUPER_MAGIC => {}
            _ => {
                console::debug(&format!("no cgroup2 at {mount}: limits are not applied"));
                return Cgroups { base: None };
            }
        }
        let base = sys::join(mount, name);
        if let Err(e) = sys::create_dir_all(&base) {
            console::log(&format!("cannot create {base}: {e}; limits are not applied"));
            return Cgroups { base: None };
        }
        for dir in [mount, base.as_str()] {
            let available = sys::read_to_string(&sys::join(dir, "cgroup.controllers")).unwrap_or_default();
            for c in ["memory", "cpu", "pids"] {
                if available.split_whitespace().any(|a| a == c) {
                    if let Err(e) = write(&sys::join(dir, "cgroup.subtree_control"), &format!("+{c}")) {
                        console::debug(&e);
                    }
                }
            }
        }
        Cgroups { base: Some(base) }
    }

    /// Puts `pid` into the container's cgroup with its limits. Failures are
    /// logged: a limit the kernel cannot apply does not stop the pod.
    pub fn add(&self, container: &str, limits: &Limits, pid: i32) {
        let Some(base) = &self.base else { return };
        let dir = sys::join(base, container);
        let res = sys::create_dir_all(&dir)
            .map_err(|e| format!("creating {dir}: {e}"))
            .and_then(|()| {
                if let Some(m) = limits.memory_bytes {
                    write(&sys::join(&dir, "memory.max"), &m.to_string())?;
                }
                if let Some(c) = limits.cpu_millis {
                    write(
                        &sys::join(&dir, "cpu.max"),
                        &format!("{} 100000", (c * 100).max(1000)),
                    )?;
                }
                if let Some(p) = limits.pids {
                    write(&sys::join(&dir, "pids.max"), &p.to_string())?;
                }
                write(&sys::join(&dir, "cgroup.procs"), &pid.to_string())
            });
        if let Err(e) = res {
            console::log(&format!("cgroup of {container}: {e}"));
        }
    }

    /// Removes the (by now empty) cgroups.
    pub fn remove(&self) {
        let Some(base) = &self.base else { return };
        if let Ok(names) = sys::read_dir(base) {
            for name in names {
                let path = sys::join(base, &name);
                if sys::is_dir(&path) {
                    let _ = sys::remove_dir(&path);
                }
            }
        }
        let _ = sys::remove_dir(base);
    }
}
