//! A command run in a running container, as `kubectl exec` (runc exec)
//! runs it: for exec probes and exec hooks.
//!
//! The process joins everything the container's own process has: its
//! cgroup, its namespaces (mount, PID, cgroup, and the pod's network, IPC
//! and UTS), then takes its identity (user, groups, capabilities,
//! no_new_privs, seccomp filter), enters its working directory (after the
//! identity, as runc does, and only if it lies inside the root) and execs
//! with its environment.
//!
//! Two processes, because a PID namespace is entered only by a new child:
//! the init forks a helper, which joins the cgroup and the namespaces
//! (`setns` on a pidfd of the container's process: the init's /proc shows
//! the VM's PID numbers, not the pod's, so /proc/PID/ns cannot name them),
//! then clones the command's process with CLONE_PARENT, so that it is the
//! init's own child (reaped and timed like any other), reports its pid
//! and exits. Nothing here waits for either: the report comes through a
//! non-blocking pipe the supervisor polls (a helper stopped by a process of
//! the pod must not stop the init).
//!
//! Both copies of the init are made non-dumpable at once (as runc's
//! nsexec does), so no process of the pod can read their memory (the whole
//! plan) or reach their descriptors through /proc; the command's process
//! closes every descriptor it inherited but its own before it does anything
//! in the container. After `setns` into the mount namespace the root is
//! that namespace's root, which the container's `pivot_root` made its
//! image: the same root `nsenter` finds.

use alloc::format;
use alloc::string::{String, ToString};

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

/// A command being started in a container. Every descriptor is
/// non-blocking.
#[derive(Debug)]
pub struct Exec {
    /// The helper (the init's child, ending as soon as it has reported).
    pub helper: i32,
    /// The helper's report: see [`parse_report`].
    pub report: OwnedFd,
    /// The command's stdout and stderr.
    pub output: OwnedFd,
    /// What failed before the command's execve, if anything (closed
    /// unwritten by a successful execve, as a container's exec pipe).
    pub failure: OwnedFd,
}

/// The namespaces the command joins: all the container's but the user
/// namespace (the pod has none of its own).
const NAMESPACES: i32 = libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWPID;

/// The descriptor the command's process keeps its failure pipe at (all
/// others but 0-2 are closed).
const FAILURE_FD: i32 = 3;

/// The helper's report, once whole: the command's pid, or why it could not
/// be started. `None` while it is incomplete. One line, written at once.
pub fn parse_report(bytes: &[u8]) -> Option<Result<i32, String>> {
    let line = &bytes[..bytes.iter().position(|b| *b == b'\n')?];
    let text = String::from_utf8_lossy(line);
    Some(match text.split_at_checked(1) {
        Some(("P", pid)) => pid
            .parse()
            .map_err(|_| format!("the exec helper reported {text:?}")),
        Some(("E", why)) => Err(why.to_string()),
        _ => Err(format!("the exec helper reported {text:?}")),
    })
}

/// Forks the helper that starts `argv` in the container. Fails only if
/// the init cannot even fork it.
pub fn spawn(t: &Target, argv: &[String]) -> Result<Exec, String> {
    let pidfd = rustix::process::pidfd_open(
        rustix::process::Pid::from_raw(t.pid).ok_or("no container process")?,
        rustix::process::PidfdFlags::empty(),
    )
    .map_err(|e| format!("pidfd_open({}): {}", t.pid, Errno::from(e)))?;
    let pipe =
        || rustix::pipe::pipe_with(PipeFlags::CLOEXEC).map_err(|e| format!("pipe: {}", Errno::from(e)));
    let nonblocking = |fd: &OwnedFd| {
        rustix::fs::fcntl_setfl(fd, OFlags::NONBLOCK).map_err(|e| format!("fcntl: {}", Errno::from(e)))
    };
    // Only the init's ends are non-blocking: the command's stdout is not.
    let (out_r, out_w) = pipe()?;
    let (report_r, report_w) = pipe()?;
    let (failure_r, failure_w) = pipe()?;
    for fd in [&out_r, &report_r, &failure_r] {
        nonblocking(fd)?;
    }
    // SAFETY: the init is single-threaded, so the child may run any code.
    let helper = match unsafe { sys::fork() } {
        Err(e) => return Err(format!("fork: {e}")),
        Ok(Some(pid)) => pid,
        Ok(None) => {
            power::set_role(Role::Child);
            crate::channel::forget();
            let msg = match helper_main(t, argv, &pidfd, out_w, &failure_w) {
                Ok(pid) => format!("P{pid}"),
                Err(e) => format!("E{}", e.replace('\n', " ")),
            };
            // One line in one write of at most PIPE_BUF bytes into an empty
            // pipe: whole.
            let line = format!("{}\n", process::cut(&msg, rustix::pipe::PIPE_BUF - 1));
            let _ = sys::write_fd(&report_w, line.as_bytes());
            power::end_now(0)
        }
    };
    drop((out_w, report_w, failure_w, pidfd));
    Ok(Exec {
        helper,
        report: report_r,
        output: out_r,
        failure: failure_r,
    })
}

/// The helper: join, then clone the command's process as the init's
/// child. Returns its pid (in the init's PID namespace).
fn helper_main(
    t: &Target,
    argv: &[String],
    pidfd: &OwnedFd,
    out: OwnedFd,
    failure: &OwnedFd,
) -> Result<i32, String> {
    // First: no process of the pod may read this copy of the init.
    // SAFETY: prctl(PR_SET_DUMPABLE) takes no pointers.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
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
        0 => command_main(t, argv, failure),
        pid if pid > 0 => Ok(pid as i32),
        _ => Err(format!("clone: {}", Errno::last())),
    }
}

/// The command's process: keep 0-2 and the failure pipe, then become the
/// container's process and exec. Never returns.
fn command_main(t: &Target, argv: &[String], failure: &OwnedFd) -> ! {
    // SAFETY: dup3/close_range take no pointers; FAILURE_FD is then ours,
    // and every descriptor above it (the init's, the report pipe) goes.
    unsafe {
        if failure.as_raw_fd() != FAILURE_FD {
            libc::dup3(failure.as_raw_fd(), FAILURE_FD, libc::O_CLOEXEC);
        }
        libc::close_range(FAILURE_FD as u32 + 1, u32::MAX, 0);
    }
    let code = match process::run(t.plan, argv, t.programs, true) {
        Ok(never) => match never {},
        Err((code, msg)) => {
            // SAFETY: FAILURE_FD is open (above) and stays ours until exit.
            let fd = unsafe { rustix::fd::BorrowedFd::borrow_raw(FAILURE_FD) };
            let _ = sys::write_fd(fd, process::cut(&msg, rustix::pipe::PIPE_BUF).as_bytes());
            code
        }
    };
    power::end_now(code)
}
