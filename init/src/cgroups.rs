//! cgroup v2 limits: one cgroup per container under a pod cgroup. Limits are
//! best effort: without a cgroup2 hierarchy (a kernel without cgroups, or a
//! cgroup v1 host) the pod runs unlimited and the console says so once.

use alloc::format;
use alloc::string::{String, ToString};

use pod1_manifest::plan::Limits;

use alloc::vec::Vec;
use rustix::fd::OwnedFd;
use rustix::fs::OFlags;

use crate::sys;
use crate::{bpf, console};

/// Attaches a loaded device program to the cgroup `dir`.
fn attach_devices(dir: &str, prog: &OwnedFd) -> Result<(), String> {
    let cgroup =
        sys::open(dir, OFlags::RDONLY | OFlags::DIRECTORY, 0).map_err(|e| format!("opening: {e}"))?;
    bpf::attach_device_program(&cgroup, prog).map_err(|e| format!("attaching: {e}"))
}

/// statfs's f_type of a cgroup2 filesystem (linux/magic.h).
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// The pod's cgroup, if the system has cgroup v2.
#[derive(Debug)]
pub struct Cgroups {
    base: Option<String>,
    /// Device programs loaded so far, by their index in the plan: loaded
    /// (and verified by the kernel) once, attached to each container's cgroup.
    loaded: Vec<(usize, OwnedFd)>,
    /// The containers' cgroups a device program is attached to. A cgroup
    /// outlives its container's runs (restarts reuse it), and the kernel
    /// refuses the same program attached twice (EINVAL).
    attached: Vec<String>,
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
                return Cgroups {
                    base: None,
                    loaded: Vec::new(),
                    attached: Vec::new(),
                };
            }
        }
        let base = sys::join(mount, name);
        if let Err(e) = sys::create_dir_all(&base) {
            console::log(&format!("cannot create {base}: {e}; limits are not applied"));
            return Cgroups {
                base: None,
                loaded: Vec::new(),
                attached: Vec::new(),
            };
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
        Cgroups {
            base: Some(base),
            loaded: Vec::new(),
            attached: Vec::new(),
        }
    }

    /// Puts `pid` into the container's cgroup with its limits and, unless
    /// `devices` is `None` (privileged), its device program. A limit the
    /// kernel cannot apply is logged and the pod goes on; a device program
    /// that cannot be attached is an error: the container must not start
    /// with every device open to it. Without cgroup v2 (a host-mode run on a
    /// v1 host) there is no device program; the nodev mounts still hold.
    pub fn add(
        &mut self,
        container: &str,
        limits: &Limits,
        devices: Option<(usize, &str)>,
        pid: i32,
    ) -> Result<(), String> {
        let Some(base) = &self.base else { return Ok(()) };
        let dir = sys::join(base, container);
        sys::create_dir_all(&dir).map_err(|e| format!("creating {dir}: {e}"))?;
        let res = (|| {
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
            Ok::<(), String>(())
        })()
        // One process's OOM kills the whole container, as the kubelet sets
        // it on cgroup v2 (1.28 on): no half-dead container. Whatever
        // became of the limits above.
        .and(write(&sys::join(&dir, "memory.oom.group"), "1"));
        if let Err(e) = res {
            console::log(&format!("cgroup of {container}: {e}"));
        }
        if let Some((index, program)) = devices.filter(|_| !self.attached.contains(&dir)) {
            let prog = self
                .load(index, program)
                .map_err(|e| format!("the device program: {e}"))?;
            attach_devices(&dir, prog).map_err(|e| format!("the device program of {dir}: {e}"))?;
            self.attached.push(dir.clone());
        }
        write(&sys::join(&dir, "cgroup.procs"), &pid.to_string())
    }

    /// The `cgroup.procs` of a container's cgroup (made by [`Cgroups::add`]),
    /// if the pod has cgroups.
    pub fn procs(&self, container: &str) -> Option<String> {
        let base = self.base.as_ref()?;
        Some(sys::join(&sys::join(base, container), "cgroup.procs"))
    }

    /// The loaded device program `index` (its hex text is `program`).
    fn load(&mut self, index: usize, program: &str) -> Result<&OwnedFd, String> {
        if let Some(at) = self.loaded.iter().position(|(i, _)| *i == index) {
            return Ok(&self.loaded[at].1);
        }
        let insns = pod1_manifest::plan::unhex(program).ok_or("the plan's program is not hex; rebuild")?;
        let prog = bpf::load_device_program(&insns).map_err(|e| format!("loading: {e}"))?;
        self.loaded.push((index, prog));
        Ok(&self.loaded[self.loaded.len() - 1].1)
    }

    /// How many processes the OOM killer has killed in `container`'s
    /// cgroup so far (`oom_kill` of its memory.events; 0 without one).
    pub fn oom_kills(&self, container: &str) -> u64 {
        let Some(base) = &self.base else { return 0 };
        let events = sys::read_to_string(&sys::join(base, &format!("{container}/memory.events")));
        events
            .ok()
            .and_then(|text| {
                text.lines()
                    .find_map(|l| l.strip_prefix("oom_kill "))
                    .and_then(|n| n.trim().parse().ok())
            })
            .unwrap_or(0)
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
