//! The pod sandbox, as pause + cri-o's pinns make it: new network, IPC and
//! UTS namespaces, pinned by bind-mounting `/proc/self/ns/X` onto files
//! under `/run/pod1/ns/` so they live with no process in them, configured
//! (hostname, sysctls, `lo` up), then joined by each container with setns.
//!
//! The pod's init is the pause process, so it unshares into the sandbox
//! itself, as the pause container sits in the pod's namespaces (pinns,
//! with no pause process to hold them, does this in a child that exits).
//! In the VM it is not the VM's PID 1, which keeps the first namespaces.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use pod1_manifest::Plan;
use rustix::fd::{AsRawFd, FromRawFd, OwnedFd};
use rustix::fs::OFlags;
use rustix::thread::{LinkNameSpaceType, UnshareFlags};

use crate::mounts;
use crate::net;
use crate::power::{self, Role};
use crate::sys::{self, Errno, Sig, WaitStatus};

/// Namespace flags of clone(2)/unshare(2), printed as nix printed its
/// `CloneFlags` (error messages name them).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CloneFlags(pub i32);

/// The flags' names, in bit order.
const CLONE_NAMES: &[(u64, &str)] = &[
    (libc::CLONE_NEWNS as u64, "CLONE_NEWNS"),
    (libc::CLONE_NEWCGROUP as u64, "CLONE_NEWCGROUP"),
    (libc::CLONE_NEWUTS as u64, "CLONE_NEWUTS"),
    (libc::CLONE_NEWIPC as u64, "CLONE_NEWIPC"),
    (libc::CLONE_NEWPID as u64, "CLONE_NEWPID"),
    (libc::CLONE_NEWNET as u64, "CLONE_NEWNET"),
];

impl fmt::Debug for CloneFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        sys::fmt_flags(f, "CloneFlags", self.0 as u32 as u64, CLONE_NAMES)
    }
}

/// unshare(2) of namespaces.
pub fn unshare(flags: i32) -> Result<(), Errno> {
    // SAFETY: only namespace flags are ever passed (never CLONE_FILES or
    // CLONE_FS, which would change what this process's fds or cwd mean).
    Ok(unsafe { rustix::thread::unshare_unsafe(UnshareFlags::from_bits_retain(flags as u32)) }?)
}

/// A sandbox step that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A step failed (everything pinned so far is unpinned).
    #[error("creating the pod sandbox: {0}")]
    Failed(String),
    /// Joining a pinned namespace failed.
    #[error("joining the pod's {kind} namespace at {path}: {cause}")]
    Join {
        /// net, ipc or uts.
        kind: &'static str,
        /// The pin.
        path: String,
        /// The cause.
        cause: String,
    },
}

/// The pod's pinned namespaces; `None` means the VM's own (host*).
#[derive(Debug, Clone)]
pub struct Sandbox {
    /// Network namespace pin.
    pub net: Option<String>,
    /// IPC namespace pin.
    pub ipc: Option<String>,
    /// UTS namespace pin.
    pub uts: String,
}

/// One pinned namespace: its /proc/self/ns name, clone flag, setns type
/// and pin.
type Pin<'a> = (&'static str, i32, LinkNameSpaceType, &'a str);

impl Sandbox {
    /// The pins, with their clone flag and /proc/self/ns name.
    fn pins(&self) -> Vec<Pin<'_>> {
        let mut v = vec![(
            "uts",
            libc::CLONE_NEWUTS,
            LinkNameSpaceType::HostNameAndNISDomainName,
            self.uts.as_str(),
        )];
        if let Some(p) = &self.net {
            v.push(("net", libc::CLONE_NEWNET, LinkNameSpaceType::Network, p));
        }
        if let Some(p) = &self.ipc {
            v.push((
                "ipc",
                libc::CLONE_NEWIPC,
                LinkNameSpaceType::InterProcessCommunication,
                p,
            ));
        }
        v
    }

    /// Joins the pinned namespaces (in a container's child process).
    pub fn join(&self) -> Result<(), Error> {
        for (kind, _, ns_type, path) in self.pins() {
            let fail = |cause: String| Error::Join {
                kind,
                path: path.to_string(),
                cause,
            };
            let f = sys::open(path, OFlags::RDONLY, 0).map_err(|e| fail(e.to_string()))?;
            rustix::thread::move_into_link_name_space(rustix::fd::AsFd::as_fd(&f), Some(ns_type))
                .map_err(|e| fail(Errno::from(e).to_string()))?;
        }
        Ok(())
    }
}

/// Why the pod's init (PID 1 of the pod's PID namespace) failed.
#[derive(Debug, thiserror::Error)]
pub enum PodInitError {
    /// unshare(CLONE_NEWPID) failed (not root?).
    #[error("unshare(CLONE_NEWPID): {0}")]
    Unshare(Errno),
    /// fork failed.
    #[error("forking the pod's init: {0}")]
    Fork(Errno),
    /// waitpid failed.
    #[error("waiting for the pod's init: {0}")]
    Wait(Errno),
    /// The pod's init was killed (e.g. by the OOM killer) before it reported.
    #[error("the pod's init was killed by {0}")]
    Killed(Sig),
}

/// Runs `pod` as PID 1 of a new PID namespace, the pod's: in the VM and
/// on a host alike, the pod's init (its pause) is PID 1 of a namespace that
/// holds only the pod, so `ps` in a container sharing it shows the pause as
/// PID 1 and nothing else (no kernel threads, no host processes), and
/// `kill(-1)` at the end reaches exactly the pod's leftovers.
///
/// This process stays outside: it forwards SIGTERM/SIGINT/SIGHUP/SIGPWR to
/// the pod's init, reaps every child it gets (in the VM, orphans of the
/// root namespace reparent to PID 1) and returns the pod's exit code. The
/// handled signals must already be blocked (the child inherits the mask).
pub fn run_as_pid_ns_init(pod: impl FnOnce() -> i32) -> Result<i32, PodInitError> {
    // unshare(CLONE_NEWPID) moves only the children: the next fork is the
    // new namespace's PID 1.
    unshare(libc::CLONE_NEWPID).map_err(PodInitError::Unshare)?;
    // Whatever this process queued for the host goes first: the child gets
    // a copy of the queue, and only one of them may write it.
    crate::channel::drain(crate::power::HOST_WAIT_MS);
    // SAFETY: the init is single-threaded, so the child may run any code.
    let child = match unsafe { sys::fork() }.map_err(PodInitError::Fork)? {
        None => {
            // The pod's init exits with the pod's code; only the real PID 1
            // may power the VM off.
            power::set_role(Role::Host);
            power::finish(pod())
        }
        Some(child) => {
            // The child reports from now on, with its own copy of anything
            // still queued.
            crate::channel::disown();
            child
        }
    };
    let set = crate::signals::handled_signals();
    loop {
        loop {
            match sys::waitpid(None, true) {
                Ok(WaitStatus::Exited(pid, code)) if pid == child => return Ok(code),
                // It never got to report the pod's end: that is an error.
                Ok(WaitStatus::Signaled(pid, sig, _)) if pid == child => {
                    return Err(PodInitError::Killed(sig))
                }
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
                Ok(_) | Err(Errno::EINTR) => continue,
                Err(e) => return Err(PodInitError::Wait(e)),
            }
        }
        if let Some(sig @ (libc::SIGTERM | libc::SIGINT | libc::SIGHUP | libc::SIGPWR)) =
            crate::signals::wait_signal(&set)
        {
            // SAFETY: kill(2) takes no pointers.
            let _ = unsafe { libc::kill(child, sig) };
        }
    }
}

/// Whether a sysctl may be set for this pod. Kubernetes allows only
/// namespaced sysctls (they stay inside the pod); in the VM the whole
/// kernel is the pod's, so any sysctl goes, but on a host a node-wide one
/// would change the host and is refused, as is a network (IPC) sysctl when
/// the pod shares the host's network (IPC) namespace.
pub fn sysctl_allowed(name: &str, host_network: bool, host_ipc: bool, vm: bool) -> Result<(), String> {
    let n = name.replace('/', ".");
    let net = n.starts_with("net.");
    let ipc = n.starts_with("kernel.shm")
        || n.starts_with("kernel.msg")
        || n == "kernel.sem"
        || n.starts_with("fs.mqueue.");
    if name.contains("..") || name.starts_with('.') || name.is_empty() {
        return Err(format!("sysctl {name:?} is not a valid name"));
    }
    if net && host_network {
        return Err(format!(
            "sysctl {name} would change the host's network namespace (hostNetwork)"
        ));
    }
    if ipc && host_ipc {
        return Err(format!(
            "sysctl {name} would change the host's IPC namespace (hostIPC)"
        ));
    }
    if !vm && !net && !ipc {
        return Err(format!(
            "sysctl {name} is not namespaced: on a host it would change the whole machine"
        ));
    }
    Ok(())
}

/// Creates, pins and configures the pod's namespaces under `dir`. `vm`:
/// the kernel is the pod's own (any sysctl may be set). `net`: the VM's
/// NIC goes into the pod's network namespace (or stays in the VM's with
/// hostNetwork) with these addresses.
pub fn create(plan: &Plan, dir: &str, vm: bool, net: Option<&net::Config>) -> Result<Sandbox, Error> {
    for s in &plan.sysctls {
        sysctl_allowed(&s.name, plan.host_network, plan.host_ipc, vm).map_err(Error::Failed)?;
    }
    let sandbox = Sandbox {
        net: (!plan.host_network).then(|| sys::join(dir, "net")),
        ipc: (!plan.host_ipc).then(|| sys::join(dir, "ipc")),
        uts: sys::join(dir, "uts"),
    };
    // The NIC is found in the VM's namespace, before the pod's is made.
    let nic = match net {
        None => None,
        Some(_) => Some(net::Nic::find().map_err(Error::Failed)?.ok_or_else(|| {
            Error::Failed("pod1.net= gives the pod a network, but the VM has no network device".into())
        })?),
    };
    enter_and_pin(plan, dir, &sandbox).map_err(Error::Failed)?;
    if let (Some(nic), Some(net)) = (nic, net) {
        if sandbox.net.is_some() {
            nic.move_here().map_err(Error::Failed)?;
        }
        nic.configure(net).map_err(Error::Failed)?;
    }
    Ok(sandbox)
}

/// Unshares the pod's namespaces, pins and configures them; on failure
/// unpins what it pinned.
fn enter_and_pin(plan: &Plan, dir: &str, sandbox: &Sandbox) -> Result<(), String> {
    let pins = sandbox.pins();
    let flags = pins.iter().fold(0, |a, (_, f, _, _)| a | *f);
    unshare(flags).map_err(|e| format!("unshare({:?}): {e}", CloneFlags(flags)))?;
    mounts::mkdir_p(dir).map_err(|e| e.to_string())?;
    let mut pinned: Vec<&str> = Vec::new();
    let res = (|| {
        for (kind, _, _, path) in &pins {
            sys::open(path, OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC, 0o666)
                .map_err(|e| format!("creating {path}: {e}"))?;
            let src = format!("/proc/self/ns/{kind}");
            mounts::bind(&src, path, false).map_err(|e| e.to_string())?;
            pinned.push(path);
        }
        rustix::system::sethostname(plan.hostname.as_bytes())
            .map_err(|e| format!("setting the hostname {:?}: {}", plan.hostname, Errno::from(e)))?;
        for s in &plan.sysctls {
            let path = sys::join("/proc/sys", &s.name.replace('.', "/"));
            sys::write(&path, &s.value)
                .map_err(|e| format!("setting sysctl {}={:?} ({path}): {e}", s.name, s.value))?;
        }
        loopback_up()
    })();
    if res.is_err() {
        for p in pinned {
            mounts::detach(p);
            let _ = sys::remove_file(p);
        }
    }
    res
}

/// Brings `lo` up in the current network namespace with SIOCSIFFLAGS.
fn loopback_up() -> Result<(), String> {
    #[repr(C)]
    struct IfReq {
        name: [libc::c_char; libc::IFNAMSIZ],
        flags: libc::c_short,
        _pad: [u8; 22],
    }
    let fail = |what: &str| format!("bringing lo up: {what}: {}", Errno::last());
    // SAFETY: socket(2) takes no pointers; the result is checked below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(fail("socket"));
    }
    // SAFETY: fd is a fresh socket we own from here on.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: 0,
        _pad: [0; 22],
    };
    for (d, s) in req.name.iter_mut().zip(b"lo") {
        *d = *s as libc::c_char;
    }
    let raw = sock.as_raw_fd();
    // SAFETY: req is a valid, writable struct ifreq (40 bytes) for the call.
    if unsafe { libc::ioctl(raw, libc::SIOCGIFFLAGS, &mut req as *mut IfReq) } < 0 {
        return Err(fail("SIOCGIFFLAGS"));
    }
    req.flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    // SAFETY: as above; the kernel only reads the name and flags.
    if unsafe { libc::ioctl(raw, libc::SIOCSIFFLAGS, &mut req as *mut IfReq) } < 0 {
        return Err(fail("SIOCSIFFLAGS"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctls_stay_in_the_pod() {
        assert!(sysctl_allowed("net.ipv4.ip_forward", false, false, false).is_ok());
        assert!(sysctl_allowed("kernel.shmmax", false, false, false).is_ok());
        assert!(sysctl_allowed("net.ipv4.ip_forward", true, false, true).is_err());
        assert!(sysctl_allowed("kernel.msgmax", false, true, true).is_err());
        assert!(sysctl_allowed("vm.swappiness", false, false, false).is_err());
        assert!(sysctl_allowed("vm.swappiness", false, false, true).is_ok());
        assert!(sysctl_allowed("net/../../etc", false, false, true).is_err());
    }
}
