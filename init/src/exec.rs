//! A command run in a running container, as `kubectl exec` (runc exec)
//! runs it: for exec probes and exec hooks.
//!
//! The process joins everything the container's own process has: its
//! cgroup, its namespaces (mount, PID, cgroup, and the pod's network, IPC
//! and UTS), then takes its identity (user, groups, capabilities, no_new_privs,
//! seccomp filter) and environment and execs in its working directory.
//!
//! Two processes, because a PID namespace is entered only by a new child:
//! the init forks a helper, which joins the cgroup and the namespaces
//! (`setns` on a pidfd of the container's process: the init's /proc shows
//! the VM's PID numbers, not the pod's, so /proc/PID/ns cannot name them),
//! then clones the command's process with CLONE_PARENT, so that it is the
//! init's own child (reaped and timed like any other), reports its pid
//! and exits. The helper's work is a few system calls: the init reads its
//! report at once.
//!
//! After `setns` into the mount namespace the root is that namespace's
//! root, which the container's `pivot_root` made its image: the same root
//! `nsenter` finds.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use pod1_manifest::ContainerPlan;
use rustix::fd::{AsRawFd, OwnedFd};
use rustix::fs::OFlags;
use rustix::pipe::PipeFlags;

use crate::power::{self, Role};
use crate::sys::{self, Errno};
use crate::{console, process};

/// What a command's run needs besides the container's plan.
#[derive(Debug)]
pub struct Target<'a> {
    /// The container's process (its pid in the init's PID namespace).
    pub pid: i32,
    /// The container.
    pub plan: &'a ContainerPlan,
    /// The plan's BPF programs (the seccomp filter's).
    pub programs: &'a [String],
    /// The container's `cgroup.procs`, when it has a cgroup.
    pub cgroup_procs: Option<String>,
    /// The container's oom_score_adj.
    pub oom_score_adj: i32,
}

/// A command started in a container.
#[derive(Debug)]
pub struct Exec {
    /// The command's process, the init's child.
    pub pid: i32,
    /// The helper that started it (also the init's child, already ending).
    pub helper: i32,
    /// Read end (non-blocking) of the command's stdout and stderr.
    pub output: OwnedFd,
}

/// The namespaces the command joins: all the container's but the user
/// namespace (the pod has none of its own).
const NAMESPACES: i32 = libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWPID;

/// Starts `argv` in the container; an error says why it could not start
/// (the check then fails with it).
pub fn spawn(t: &Target, argv: &[String]) -> Result<Exec, String> {
    let pidfd = rustix::process::pidfd_open(
        rustix::process::Pid::from_raw(t.pid).ok_or("no container process")?,
        rustix::process::PidfdFlags::empty(),
    )
    .map_err(|e| format!("pidfd_open({}): {}", t.pid, Errno::from(e)))?;
    let pipe =
        || rustix::pipe::pipe_with(PipeFlags::CLOEXEC).map_err(|e| format!("pipe: {}", Errno::from(e)));
    let (out_r, out_w) = pipe()?;
    // Only the init's end: the command's stdout stays blocking.
    rustix::fs::fcntl_setfl(&out_r, OFlags::NONBLOCK).map_err(|e| format!("fcntl: {}", Errno::from(e)))?;
    let (report_r, report_w) = pipe()?;
    // SAFETY: the init is single-threaded, so the child may run any code.
    let helper = match unsafe { sys::fork() } {
        Err(e) => return Err(format!("fork: {e}")),
        Ok(Some(pid)) => pid,
        Ok(None) => {
            power::set_role(Role::Child);
            crate::channel::forget();
            drop((out_r, report_r));
            let msg = match helper_main(t, argv, &pidfd, out_w) {
                Ok(pid) => format!("P{pid}"),
                Err(e) => format!("E{e}"),
            };
            let _ = sys::write_fd(&report_w, msg.as_bytes());
            power::end_now(0)
        }
    };
    drop((out_w, report_w, pidfd));
    // The helper writes one short report and exits: this read ends at once.
    let mut report = Vec::new();
    let _ = sys::read_fd(&report_r, &mut report);
    let report = String::from_utf8_lossy(&report);
    match report.split_at_checked(1) {
        Some(("P", pid)) => match pid.parse() {
            Ok(pid) => Ok(Exec {
                pid,
                helper,
                output: out_r,
            }),
            Err(_) => Err(format!("the exec helper reported {report:?}")),
        },
        Some(("E", why)) => Err(why.to_string()),
        _ => Err("the exec helper died".to_string()),
    }
    .map_err(|e| {
        // The helper is reaped by the caller either way; say whose it was.
        console::debug(&format!("exec in container {}: {e}", t.plan.name));
        e
    })
}

/// The helper: join, then clone the command's process as the init's
/// child. Returns its pid (in the init's PID namespace).
fn helper_main(t: &Target, argv: &[String], pidfd: &OwnedFd, out: OwnedFd) -> Result<i32, String> {
    console::keep_console_apart();
    let null = sys::open("/dev/null", OFlags::RDWR, 0).map_err(|e| format!("opening /dev/null: {e}"))?;
    let dup = |res: rustix::io::Result<()>| res.map_err(|e| format!("dup2: {}", Errno::from(e)));
    dup(rustix::stdio::dup2_stdin(&null))?;
    dup(rustix::stdio::dup2_stdout(&out))?;
    dup(rustix::stdio::dup2_stderr(&out))?;
    drop((null, out));
    // Best effort, as for the container's own process (a host-mode init
    // may lack CAP_SYS_RESOURCE).
    let _ = sys::write("/proc/self/oom_score_adj", t.oom_score_adj.to_string());
    // Into the container's cgroup first, while the init's cgroup
    // namespace and mounts still show it; the command inherits it.
    if let Some(procs) = &t.cgroup_procs {
        sys::write(procs, "0").map_err(|e| format!("joining the container's cgroup ({procs}): {e}"))?;
    }
    // SAFETY: setns(2) on a pidfd we own; no pointers.
    if unsafe { libc::setns(pidfd.as_raw_fd(), NAMESPACES) } != 0 {
        return Err(format!(
            "joining the container's namespaces: {} (has it ended?)",
            Errno::last()
        ));
    }
    rustix::process::chdir(t.plan.working_dir.as_str())
        .map_err(|e| format!("chdir to {}: {}", t.plan.working_dir, Errno::from(e)))?;
    // SAFETY: as fork(2) (no CLONE_VM, no new stack); the helper is
    // single-threaded. CLONE_PARENT makes the child the init's.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (libc::CLONE_PARENT | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    match ret {
        0 => {
            let code = match process::run(t.plan, argv, t.programs) {
                Ok(never) => match never {},
                Err((code, msg)) => {
                    let _ = sys::write_fd(sys::stderr(), format!("pod1: {msg}\n").as_bytes());
                    code
                }
            };
            power::end_now(code)
        }
        pid if pid > 0 => Ok(pid as i32),
        _ => Err(format!("clone: {}", Errno::last())),
    }
}
