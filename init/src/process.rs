//! A container's process: cloned into new mount (and, unless the pod
//! shares one, PID) namespaces, prepared, parked on a start pipe (runc's
//! exec fifo), then released to exec its command.
//!
//! Protocol with the init, over CLOEXEC pipes so exec closes them:
//! - sync pipe (child → init): `R` once fully prepared; or `E` and a message
//!   when preparation failed, then the child exits.
//! - start pipe (init → child): one byte releases the child; EOF (the init
//!   dropped it) makes the child exit without running anything.
//! - exec pipe (child → init), runc's way of telling a failed exec from the
//!   command's own exit: a successful execve closes the child's end
//!   unwritten; anything failing between the start and execve writes its
//!   message there (as well as to the container's stderr) before the child
//!   exits. The init reads it, without blocking, once the process has
//!   ended ([`exec_failure`]).

use alloc::ffi::CString;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::convert::Infallible;

use pod1_manifest::ContainerPlan;
use rustix::fd::OwnedFd;
use rustix::fs::{FileType, OFlags};
use rustix::pipe::PipeFlags;

use crate::namespaces::{CloneFlags, Sandbox};
use crate::power::{self, Role};
use crate::sys::{self, Errno};
use crate::{caps, console, rootfs};

/// A process step that failed (in the init, before the child exists).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// pipe2 failed.
    #[error("creating the pipes of container {container}: {source}")]
    Pipe {
        /// Container name.
        container: String,
        /// The cause.
        source: Errno,
    },
    /// clone failed.
    #[error("cloning the process of container {container} ({flags:?}): {source}")]
    Clone {
        /// Container name.
        container: String,
        /// Namespace flags.
        flags: CloneFlags,
        /// The cause.
        source: Errno,
    },
}

/// Exit code when the command was not found (as a shell and docker give).
pub const NOT_FOUND: i32 = 127;
/// Exit code when the command exists but cannot be executed.
pub const NOT_EXECUTABLE: i32 = 126;
/// The most an exec failure's message takes on the exec pipe: PIPE_BUF, so
/// the child's one write into the empty pipe is whole and never waits.
pub const EXEC_MESSAGE_MAX: usize = rustix::pipe::PIPE_BUF;
/// runc's default PATH when the container's environment has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What the child needs from the init.
#[derive(Debug)]
pub struct Context<'a> {
    /// The container.
    pub plan: &'a ContainerPlan,
    /// The plan's BPF programs, which the container's refer to.
    pub programs: &'a [String],
    /// The pod's pinned namespaces.
    pub sandbox: &'a Sandbox,
    /// Join the init's PID namespace instead of getting a new one.
    pub share_pid: bool,
    /// The root filesystem layout.
    pub rootfs: rootfs::Spec<'a>,
    /// The kubelet's value for the pod's QoS class (the init's own -1000
    /// must not be inherited).
    pub oom_score_adj: i32,
}

/// A created container process, parked before exec.
#[derive(Debug)]
pub struct Child {
    /// Its pid in the init's PID namespace.
    pub pid: i32,
    /// Readiness (`R`) or an error message.
    pub sync: OwnedFd,
    /// Write one byte to start; drop to abort.
    pub start: OwnedFd,
    /// Read end of its stdout.
    pub stdout: OwnedFd,
    /// Read end of its stderr.
    pub stderr: OwnedFd,
    /// Read end of its exec pipe (non-blocking): see [`exec_failure`].
    pub exec: OwnedFd,
}

/// How preparation went.
#[derive(Debug, PartialEq, Eq)]
pub enum Ready {
    /// Parked on the start pipe.
    Created,
    /// Failed, with the reason.
    Failed(String),
}

fn pipe(container: &str) -> Result<(OwnedFd, OwnedFd), Error> {
    pipe_with(container, PipeFlags::CLOEXEC)
}

fn pipe_with(container: &str, flags: PipeFlags) -> Result<(OwnedFd, OwnedFd), Error> {
    rustix::pipe::pipe_with(flags).map_err(|e| Error::Pipe {
        container: container.to_string(),
        source: e.into(),
    })
}

/// Clones the container's process. The child prepares everything and parks;
/// call [`wait_ready`] next.
pub fn create(ctx: &Context) -> Result<Child, Error> {
    let name = &ctx.plan.name;
    let (sync_r, sync_w) = pipe(name)?;
    let (start_r, start_w) = pipe(name)?;
    let (out_r, out_w) = pipe(name)?;
    let (err_r, err_w) = pipe(name)?;
    // Non-blocking from the start (no later fcntl that could fail): the
    // init's reads never wait, and the child's one write of at most
    // PIPE_BUF bytes into the empty pipe is whole.
    let (exec_r, exec_w) = pipe_with(name, PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
    // Without shareProcessNamespace each container gets its own PID
    // namespace whose PID 1 is its command (as with Docker and Kubernetes'
    // default). With it, the containers stay in the init's PID namespace,
    // where the init, the pod's pause, is PID 1: `ps` in any container shows
    // the pause as PID 1 and every container's processes, and orphans
    // reparent to the init, which reaps them. In the VM that namespace is
    // the VM's (the pod is the only thing in the VM, so that is the pod's
    // PID namespace); on a host it is the one the init made for the pod.
    let mut flags = libc::CLONE_NEWNS;
    if !ctx.share_pid {
        flags |= libc::CLONE_NEWPID;
    }
    // SAFETY: the init is single-threaded.
    let pid = match unsafe { sys::fork_with(flags) } {
        Ok(Some(pid)) => pid,
        Ok(None) => {
            power::set_role(Role::Child);
            // The child reports through its sync pipe, never the channel:
            // the parent's queued bytes must not be written twice.
            crate::channel::forget();
            drop((sync_r, start_w, out_r, err_r, exec_r));
            child(ctx, sync_w, start_r, out_w, err_w, exec_w)
        }
        Err(source) => {
            return Err(Error::Clone {
                container: name.clone(),
                flags: CloneFlags(flags),
                source,
            })
        }
    };
    // The child's ends go now: a later clone must not inherit them, and a
    // failed exec's EOF must come when the child ends.
    drop((sync_w, start_r, out_w, err_w, exec_w));
    Ok(Child {
        pid,
        sync: sync_r,
        start: start_w,
        stdout: out_r,
        stderr: err_r,
        exec: exec_r,
    })
}

/// Reads the child's readiness report (blocks until it is prepared or gone).
pub fn wait_ready(sync: OwnedFd) -> Ready {
    let mut buf = Vec::new();
    let _ = sys::read_fd(&sync, &mut buf);
    match buf.split_first() {
        Some((b'R', _)) => Ready::Created,
        Some((b'E', msg)) => Ready::Failed(String::from_utf8_lossy(msg).into_owned()),
        _ => Ready::Failed("the container process died while being prepared".into()),
    }
}

/// Releases a parked child to exec its command.
pub fn start(start: OwnedFd) -> Result<(), Errno> {
    sys::write_fd(&start, b"S").map_err(|e| e.errno().unwrap_or(Errno::EIO))
}

/// What a container's exec pipe says once its process has ended: the
/// message of what failed between its start and execve, or None when its
/// command ran (a successful execve closed the pipe unwritten) or it never
/// got that far. Reads at most [`EXEC_MESSAGE_MAX`] bytes and never waits
/// (the pipe is non-blocking; its only writer is gone by then anyway).
pub fn exec_failure(exec: &OwnedFd) -> Option<String> {
    let mut buf = [0u8; EXEC_MESSAGE_MAX];
    let mut len = 0;
    // Bounded: a read makes progress, fails or ends; EINTR only a few times.
    for _ in 0..8 {
        match rustix::io::read(exec, &mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => {
                len += n;
                if len == buf.len() {
                    break;
                }
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => break,
        }
    }
    let msg = String::from_utf8_lossy(&buf[..len]);
    let msg = msg.trim_end();
    (!msg.is_empty()).then(|| msg.to_string())
}

/// `msg` cut to at most `max` bytes, at a character boundary.
pub(crate) fn cut(msg: &str, max: usize) -> &str {
    let mut end = msg.len().min(max);
    while !msg.is_char_boundary(end) {
        end -= 1;
    }
    &msg[..end]
}

/// The child: prepare, report, park, exec. Never returns.
fn child(ctx: &Context, sync: OwnedFd, start: OwnedFd, out: OwnedFd, err: OwnedFd, exec: OwnedFd) -> ! {
    // Until its execve, this is a copy of the init (the whole plan, its
    // descriptors): no process of the pod may read it through /proc or
    // ptrace, as runc's nsexec keeps its own. execve makes it dumpable again.
    // SAFETY: prctl(PR_SET_DUMPABLE) takes no pointers.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    console::keep_console_apart();
    // stdout/stderr first, so everything after start lands in the log.
    let stdio = (|| -> Result<(), String> {
        let null = sys::open("/dev/null", OFlags::RDWR, 0).map_err(|e| format!("opening /dev/null: {e}"))?;
        let dup = |target: i32, res: rustix::io::Result<()>| {
            res.map_err(|e| format!("dup2 to {target}: {}", Errno::from(e)))
        };
        dup(0, rustix::stdio::dup2_stdin(&null))?;
        dup(1, rustix::stdio::dup2_stdout(&out))?;
        dup(2, rustix::stdio::dup2_stderr(&err))?;
        Ok(())
    })();
    drop((out, err));
    let prepared = stdio.and_then(|()| prepare(ctx));
    if let Err(msg) = prepared {
        let _ = sys::write_fd(&sync, format!("E{msg}").as_bytes());
        power::finish(power::INIT_FAILED);
    }
    if sys::write_fd(&sync, b"R").is_err() {
        power::finish(power::INIT_FAILED);
    }
    drop(sync);
    let mut go = [0u8; 1];
    match rustix::io::read(&start, &mut go) {
        Ok(1) => {}
        // The init gave up on this container (pod stopping or failed).
        _ => power::finish(0),
    }
    // The init has put us in our cgroup by now: a private cgroup namespace
    // makes it the container's root, as Docker does on cgroup v2. A kernel
    // without cgroup namespaces simply shows the full path.
    if crate::namespaces::unshare(libc::CLONE_NEWCGROUP).is_ok() {
        // Its own cgroup, read-only, at the usual place (as Docker does on
        // cgroup v2), so a process can read its limits. Best effort.
        rootfs::mount_cgroup_ro(ctx.plan.privileged);
    }
    // A successful execve closes `exec` (close-on-exec) unwritten.
    let code = match run(ctx.plan, &ctx.plan.argv, ctx.programs, false) {
        Ok(never) => match never {},
        Err((code, msg)) => {
            let _ = sys::write_fd(sys::stderr(), format!("pod1: {msg}\n").as_bytes());
            let _ = sys::write_fd(&exec, cut(&msg, EXEC_MESSAGE_MAX).as_bytes());
            code
        }
    };
    power::finish(code)
}

/// Everything before parking: namespaces and the root filesystem.
fn prepare(ctx: &Context) -> Result<(), String> {
    let name = &ctx.plan.name;
    console::debug(&format!("container {name}: cloned"));
    // Lowering it needs CAP_SYS_RESOURCE, which a host-mode init may lack
    // (in the VM it has every capability): then the inherited value stays.
    if let Err(e) = sys::write("/proc/self/oom_score_adj", ctx.oom_score_adj.to_string()) {
        console::log(&format!(
            "container {name}: setting oom_score_adj to {}: {e}",
            ctx.oom_score_adj
        ));
    }
    ctx.sandbox.join().map_err(|e| e.to_string())?;
    console::debug(&format!("container {name}: joined the sandbox"));
    rootfs::enter(&ctx.rootfs).map_err(|e| format!("preparing the root filesystem: {e}"))?;
    console::debug(&format!("container {name}: root filesystem ready"));
    Ok(())
}

/// One step of taking on the container's identity before exec, as runc's
/// standard_init orders them (see [`identity_steps`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Install the seccomp filter.
    Seccomp,
    /// Cut the bounding set to the plan's capabilities (needs CAP_SETPCAP,
    /// which the uid change drops).
    Bounding,
    /// PR_SET_KEEPCAPS on: the permitted set survives setuid, so capset
    /// can then set exactly the plan's set.
    KeepCaps,
    /// setgroups(2): exactly the plan's supplementary groups.
    Groups,
    /// setgid(2).
    Gid,
    /// setuid(2).
    Uid,
    /// PR_SET_KEEPCAPS off again.
    DropKeepCaps,
    /// capset(2): permitted and effective = the plan's set.
    Caps,
    /// PR_SET_NO_NEW_PRIVS.
    NoNewPrivs,
}

/// The steps from the identity the init gave the child to the container's,
/// in order. Order matters: the bounding set needs CAP_SETPCAP, which the
/// uid change drops; and without no_new_privs installing a seccomp filter
/// needs CAP_SYS_ADMIN, so then the filter goes first, while the child
/// still holds every capability, and the calls after it are filtered
/// (runc does the same; RuntimeDefault allows them). With no_new_privs the
/// filter goes last instead, right before execve ([`seccomp_last`]), so
/// that as few of the init's own calls as possible run under it.
fn identity_steps(no_new_privileges: bool, seccomp: bool) -> Vec<Step> {
    let mut steps = Vec::with_capacity(9);
    if seccomp && !no_new_privileges {
        steps.push(Step::Seccomp);
    }
    steps.extend([
        Step::Bounding,
        Step::KeepCaps,
        Step::Groups,
        Step::Gid,
        Step::Uid,
        Step::DropKeepCaps,
        Step::Caps,
    ]);
    if no_new_privileges {
        steps.push(Step::NoNewPrivs);
    }
    steps
}

/// Whether the seccomp filter is installed right before execve (the other
/// half of [`identity_steps`]' rule).
fn seccomp_last(no_new_privileges: bool, seccomp: bool) -> bool {
    seccomp && no_new_privileges
}

/// Performs one [`Step`] for `plan`; `caps` is the plan's capability mask.
fn take(step: Step, plan: &ContainerPlan, programs: &[String], caps: u64) -> Result<(), String> {
    use rustix::process::{Gid, Uid};
    let errno = Errno::from;
    let (uid, gid) = (plan.user.uid, plan.user.gid);
    match step {
        Step::Seccomp => match &plan.seccomp {
            Some(filter) => crate::seccomp::install(filter, programs),
            None => Ok(()),
        },
        Step::Bounding => caps::limit_bounding(caps).map_err(|e| e.to_string()),
        Step::KeepCaps | Step::DropKeepCaps => rustix::thread::set_keep_capabilities(step == Step::KeepCaps)
            .map_err(|e| format!("PR_SET_KEEPCAPS: {}", errno(e))),
        Step::Groups => {
            let groups: Vec<Gid> = plan
                .user
                .additional_gids
                .iter()
                .map(|g| Gid::from_raw(*g))
                .collect();
            rustix::thread::set_thread_groups(&groups)
                .map_err(|e| format!("setgroups({:?}): {}", plan.user.additional_gids, errno(e)))
        }
        Step::Gid => rustix::thread::set_thread_gid(Gid::from_raw(gid))
            .map_err(|e| format!("setgid({gid}): {}", errno(e))),
        Step::Uid => rustix::thread::set_thread_uid(Uid::from_raw(uid))
            .map_err(|e| format!("setuid({uid}): {}", errno(e))),
        Step::Caps => caps::set(caps).map_err(|e| e.to_string()),
        Step::NoNewPrivs => {
            rustix::thread::set_no_new_privs(true).map_err(|e| format!("PR_SET_NO_NEW_PRIVS: {}", errno(e)))
        }
    }
}

/// After start: the container's identity ([`identity_steps`]), then exec
/// `argv` (the container's command, or one run in it: see `exec`) with its
/// environment. `enter`: chdir to the working directory first, as the new
/// identity (a container's own process is already there). Returns only on
/// failure, with the exit code and the message for the container's stderr.
pub(crate) fn run(
    plan: &ContainerPlan,
    argv: &[String],
    programs: &[String],
    enter: bool,
) -> Result<Infallible, (i32, String)> {
    let fail = |m: String| (power::INIT_FAILED, m);
    let caps = caps::mask(&plan.capabilities).map_err(|e| fail(e.to_string()))?;
    let seccomp = plan.seccomp.is_some();
    for step in identity_steps(plan.no_new_privileges, seccomp) {
        take(step, plan, programs, caps).map_err(fail)?;
    }
    if enter {
        rustix::process::chdir(plan.working_dir.as_str())
            .map_err(|e| fail(format!("chdir to {}: {}", plan.working_dir, go_desc(e.into()))))?;
        sys::cwd_within_root().map_err(fail)?;
    }
    let uid = plan.user.uid;
    let path_var = plan
        .env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    let argv0 = argv
        .first()
        .ok_or_else(|| (NOT_FOUND, "the container has no command".to_string()))?;
    let prog = look_path(argv0, path_var, &plan.working_dir)?;
    let cstr = |s: &str| CString::new(s).map_err(|_| fail(format!("{s:?} contains a NUL byte")));
    let argv = argv.iter().map(|a| cstr(a)).collect::<Result<Vec<_>, _>>()?;
    let mut env = plan.env.clone();
    // runc's rule: HOME from the image's /etc/passwd when the pod sets none.
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        let passwd = sys::read_to_string("/etc/passwd").unwrap_or_default();
        env.push(format!("HOME={}", home_of(&passwd, uid)));
    }
    let env = env.iter().map(|a| cstr(a)).collect::<Result<Vec<_>, _>>()?;
    let prog_c = CString::new(prog.as_str()).map_err(|_| fail(format!("{prog} contains a NUL byte")))?;
    console::debug(&format!("container {}: exec {prog}", plan.name));
    clean_for_exec();
    // Last, as runc does with no_new_privs set: every call after this one
    // is filtered, and the profile must allow execve.
    if seccomp_last(plan.no_new_privileges, seccomp) {
        take(Step::Seccomp, plan, programs, caps).map_err(fail)?;
    }
    // runc's words for it (Go's os.PathError): `exec /bin/app: exec
    // format error`; ENOENT here is a missing interpreter or loader.
    let e = execve(&prog_c, &argv, &env);
    let code = match e {
        Errno::ENOENT | Errno::ENOTDIR => NOT_FOUND,
        _ => NOT_EXECUTABLE,
    };
    Err((code, format!("exec {prog}: {}", go_desc(e))))
}

/// An error's description as Go spells it: glibc's, first letter lowercased
/// (`no such file or directory`).
pub(crate) fn go_desc(e: Errno) -> String {
    let desc = e.desc();
    let mut chars = desc.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => desc,
    }
}

/// The command starts clean, as runc starts it: every signal at its default
/// disposition and none blocked (the init ignores SIGPIPE and blocks what
/// it handles; a host-mode init may have inherited ignored signals), and
/// no descriptor but 0-2 (the init's own are close-on-exec; a host-mode
/// init may have inherited others).
fn clean_for_exec() {
    // The kernel's sigaction layout; the raw call reaches the signals glibc
    // reserves for itself (32 and 33), which its wrapper refuses.
    #[repr(C)]
    struct KernelSigaction {
        handler: usize,
        flags: u64,
        restorer: usize,
        mask: u64,
    }
    let default = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    for sig in 1..=64 {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            // SAFETY: `default` outlives the call and has the kernel's
            // layout for x86-64; SIG_DFL installs no handler code.
            unsafe {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    sig,
                    &default as *const KernelSigaction,
                    core::ptr::null_mut::<KernelSigaction>(),
                    8usize,
                )
            };
        }
    }
    crate::signals::unblock_all();
    // SAFETY: close_range takes no pointers; CLOEXEC only marks descriptors.
    let marked = unsafe { libc::close_range(3, u32::MAX, libc::CLOSE_RANGE_CLOEXEC as libc::c_int) };
    if marked != 0 {
        // Kernels before 5.11: mark each open descriptor instead.
        if let Ok(dir) = sys::open(
            "/proc/self/fd",
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY,
            0,
        ) {
            let fds: Vec<i32> = sys::entries(&dir)
                .unwrap_or_default()
                .iter()
                .filter_map(|n| n.to_str().ok()?.parse().ok())
                .filter(|fd| *fd > 2)
                .collect();
            for fd in fds {
                // SAFETY: fcntl on a number that may no longer be open fails
                // with EBADF; nothing is dereferenced.
                unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
            }
        }
    }
}

/// execve(2) (rustix has no safe one); returns only on failure, with the
/// error.
fn execve(prog: &CString, argv: &[CString], env: &[CString]) -> Errno {
    let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_p.push(core::ptr::null());
    let mut env_p: Vec<*const libc::c_char> = env.iter().map(|a| a.as_ptr()).collect();
    env_p.push(core::ptr::null());
    // SAFETY: prog and every string are NUL-terminated and outlive the call;
    // both arrays end with NULL.
    unsafe { libc::execve(prog.as_ptr(), argv_p.as_ptr(), env_p.as_ptr()) };
    Errno::last()
}

/// The home directory of `uid` in an /etc/passwd, else `/`.
fn home_of(passwd: &str, uid: u32) -> String {
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 6 && f[2].parse() == Ok(uid))
        .map(|f| f[5].to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "/".to_string())
}

fn is_executable(p: &str) -> bool {
    sys::stat(p)
        .map(|m| sys::file_type(&m) == FileType::RegularFile && m.st_mode & 0o111 != 0)
        .unwrap_or(false)
}

/// Go's exec.LookPath as runc uses it: a name with a slash is used as it is
/// (relative to the working directory); otherwise the first executable
/// regular file of that name on PATH. The errors are Go's (`exec:
/// "app": executable file not found in $PATH`), which containerd and the
/// kubelet pass on, except that a directory says so.
pub fn look_path(name: &str, path_var: &str, cwd: &str) -> Result<String, (i32, String)> {
    if name.contains('/') {
        let p = sys::join(cwd, name);
        return match sys::stat(&p) {
            Err(e) => {
                let why = e.errno().map_or_else(|| e.to_string(), go_desc);
                Err((NOT_FOUND, format!("exec: {name:?}: stat {name}: {why}")))
            }
            Ok(m) if sys::file_type(&m) == FileType::Directory => {
                Err((NOT_EXECUTABLE, format!("exec: {name:?}: is a directory")))
            }
            Ok(_) if !is_executable(&p) => {
                Err((NOT_EXECUTABLE, format!("exec: {name:?}: permission denied")))
            }
            Ok(_) => Ok(p),
        };
    }
    for dir in path_var.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let p = sys::join(&sys::join(cwd, dir), name);
        if is_executable(&p) {
            return Ok(p);
        }
    }
    Err((
        NOT_FOUND,
        format!("exec: {name:?}: executable file not found in $PATH"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seccomp_goes_first_without_no_new_privs_and_last_with_it() {
        use Step::*;
        let ids = [Bounding, KeepCaps, Groups, Gid, Uid, DropKeepCaps, Caps];
        // Without no_new_privs the filter needs CAP_SYS_ADMIN: before any
        // capability or id changes, and not again before exec.
        let early = identity_steps(false, true);
        assert_eq!(early[0], Seccomp);
        assert_eq!(early[1..], ids);
        assert!(!seccomp_last(false, true));
        // With it: no_new_privs after the capabilities, the filter right
        // before execve.
        let late = identity_steps(true, true);
        assert_eq!(late[..ids.len()], ids);
        assert_eq!(late[ids.len()..], [NoNewPrivs]);
        assert!(seccomp_last(true, true));
        // No filter: nothing to install anywhere; no_new_privs only when asked.
        assert_eq!(identity_steps(false, false), ids);
        assert!(!identity_steps(true, false).contains(&Seccomp));
        assert!(!seccomp_last(true, false) && !seccomp_last(false, false));
        // The bounding set needs CAP_SETPCAP: before the uid changes.
        for steps in [early, late] {
            let at = |s: Step| steps.iter().position(|x| *x == s).unwrap();
            assert!(at(Bounding) < at(Uid) && at(KeepCaps) < at(Uid) && at(Uid) < at(Caps));
            assert!(at(Groups) < at(Gid) && at(Gid) < at(Uid));
        }
    }

    #[test]
    fn home_comes_from_passwd() {
        let pw = "root:x:0:0:root:/root:/bin/sh\nbad line\napp:x:1000:1000::/home/app:/bin/sh\n";
        assert_eq!(home_of(pw, 0), "/root");
        assert_eq!(home_of(pw, 1000), "/home/app");
        assert_eq!(home_of(pw, 5), "/");
    }

    #[test]
    fn look_path_follows_go() {
        use std::os::unix::fs::PermissionsExt;
        let d = std::env::temp_dir().join(format!("pod1-lookpath-{}", std::process::id()));
        std::fs::create_dir_all(d.join("bin")).unwrap();
        std::fs::write(d.join("bin/prog"), "").unwrap();
        std::fs::set_permissions(d.join("bin/prog"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(d.join("bin/data"), "").unwrap();
        std::fs::set_permissions(d.join("bin/data"), std::fs::Permissions::from_mode(0o644)).unwrap();
        let path = format!("/nonexistent:{}", d.join("bin").display());
        let d_str = d.to_str().unwrap();
        let look = |name: &str| look_path(name, &path, d_str).map(std::path::PathBuf::from);
        assert_eq!(look("prog").unwrap(), d.join("bin/prog"));
        // A non-executable match on PATH is skipped, as Go does.
        assert_eq!(look("data").unwrap_err().0, NOT_FOUND);
        assert_eq!(look("nope-xyz").unwrap_err().0, NOT_FOUND);
        assert_eq!(look("/nope/x").unwrap_err().0, NOT_FOUND);
        assert_eq!(look("bin/data").unwrap_err().0, NOT_EXECUTABLE);
        assert_eq!(look("./bin/prog").unwrap(), d.join("./bin/prog"));
        assert_eq!(look("/").unwrap_err().0, NOT_EXECUTABLE);
        // Go's words, as containerd and the kubelet report them.
        assert_eq!(
            look("nope-xyz").unwrap_err().1,
            r#"exec: "nope-xyz": executable file not found in $PATH"#
        );
        assert_eq!(
            look("/nope/x").unwrap_err().1,
            r#"exec: "/nope/x": stat /nope/x: no such file or directory"#
        );
        assert_eq!(
            look("bin/data").unwrap_err().1,
            r#"exec: "bin/data": permission denied"#
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// A pipe as [`create`] makes the exec pipe.
    fn exec_pipe() -> (OwnedFd, OwnedFd) {
        pipe_with("c", PipeFlags::CLOEXEC | PipeFlags::NONBLOCK).unwrap()
    }

    #[test]
    fn a_failure_message_on_the_exec_pipe_is_read_back() {
        let (r, w) = exec_pipe();
        sys::write_fd(&w, br#"exec: "nosuch": executable file not found in $PATH"#).unwrap();
        drop(w);
        assert_eq!(
            exec_failure(&r).as_deref(),
            Some(r#"exec: "nosuch": executable file not found in $PATH"#)
        );
    }

    #[test]
    fn an_exec_pipe_closed_unwritten_says_the_command_ran() {
        let (r, w) = exec_pipe();
        drop(w);
        assert_eq!(exec_failure(&r), None);
    }

    #[test]
    fn reading_the_exec_pipe_never_waits() {
        // A writer still holding its end (which the init never waits for).
        let (r, _w) = exec_pipe();
        assert_eq!(exec_failure(&r), None);
    }

    #[test]
    fn the_exec_pipe_carries_at_most_pipe_buf() {
        // What the child writes: cut at a character boundary.
        let long = "é".repeat(EXEC_MESSAGE_MAX);
        let sent = cut(&long, EXEC_MESSAGE_MAX);
        assert!(sent.len() <= EXEC_MESSAGE_MAX && sent.len() > EXEC_MESSAGE_MAX - 2);
        assert_eq!(cut("short", EXEC_MESSAGE_MAX), "short");
        // What the init reads: no more than that, even from a writer that
        // sends more.
        let (r, w) = exec_pipe();
        sys::write_fd(&w, &vec![b'x'; 2 * EXEC_MESSAGE_MAX]).unwrap();
        assert_eq!(exec_failure(&r).map(|m| m.len()), Some(EXEC_MESSAGE_MAX));
    }

    #[test]
    fn errors_read_as_go_prints_them() {
        assert_eq!(go_desc(Errno::ENOENT), "no such file or directory");
        assert_eq!(go_desc(Errno::ENOTDIR), "not a directory");
    }
}
