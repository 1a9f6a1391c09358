//! A container's process: cloned into new mount (and, unless the pod
//! shares one, PID) namespaces, prepared, parked on a start pipe (runc's
//! exec fifo), then released to exec its command.
//!
//! Protocol with the init, over CLOEXEC pipes so exec closes them:
//! - sync pipe (child → init): `R` once fully prepared; or `E` and a message
//!   when preparation failed, then the child exits.
//! - start pipe (init → child): one byte releases the child; EOF (the init
//!   dropped it) makes the child exit without running anything.

use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::signal::{signal, sigprocmask, SigHandler, SigSet, SigmaskHow, Signal};
use nix::unistd::{Gid, Pid, Uid};
use pod1_manifest::ContainerPlan;

use crate::namespaces::Sandbox;
use crate::power::{self, Role};
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
/// runc's default PATH when the container's environment has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What the child needs from the init.
#[derive(Debug)]
pub struct Context<'a> {
    /// The container.
    pub plan: &'a ContainerPlan,
    /// The pod's pinned namespaces.
    pub sandbox: &'a Sandbox,
    /// Join the init's PID namespace instead of getting a new one.
    pub share_pid: bool,
    /// The root filesystem layout.
    pub rootfs: rootfs::Spec<'a>,
}

/// A created container process, parked before exec.
#[derive(Debug)]
pub struct Child {
    /// Its pid in the init's PID namespace.
    pub pid: Pid,
    /// Readiness (`R`) or an error message.
    pub sync: OwnedFd,
    /// Write one byte to start; drop to abort.
    pub start: OwnedFd,
    /// Read end of its stdout.
    pub stdout: OwnedFd,
    /// Read end of its stderr.
    pub stderr: OwnedFd,
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
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|source| Error::Pipe {
        container: container.to_string(),
        source,
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
    // Without shareProcessNamespace each container gets its own PID
    // namespace whose PID 1 is its command (as with Docker and Kubernetes'
    // default). With it, the containers stay in the init's PID namespace,
    // where the init, the pod's pause, is PID 1: `ps` in any container shows
    // the pause as PID 1 and every container's processes, and orphans
    // reparent to the init, which reaps them. In the VM that namespace is
    // the VM's (the pod is the only thing in the VM, so that is the pod's
    // PID namespace); on a host it is the one the init made for the pod.
    let mut flags = CloneFlags::CLONE_NEWNS;
    if !ctx.share_pid {
        flags |= CloneFlags::CLONE_NEWPID;
    }
    // SAFETY: a raw clone without CLONE_VM and without a new stack behaves
    // as fork(2): the child gets a copy of the address space and continues
    // here with the return value 0. The init is single-threaded, so no lock
    // can be held by another thread in the copy.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags.bits() | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if ret < 0 {
        return Err(Error::Clone {
            container: name.clone(),
            flags,
            source: Errno::last(),
        });
    }
    if ret == 0 {
        power::set_role(Role::Child);
        drop((sync_r, start_w, out_r, err_r));
        child(ctx, sync_w, start_r, out_w, err_w)
    }
    Ok(Child {
        pid: Pid::from_raw(ret as i32),
        sync: sync_r,
        start: start_w,
        stdout: out_r,
        stderr: err_r,
    })
}

/// Reads the child's readiness report (blocks until it is prepared or gone).
pub fn wait_ready(sync: OwnedFd) -> Ready {
    let mut buf = Vec::new();
    let _ = File::from(sync).read_to_end(&mut buf);
    match buf.split_first() {
        Some((b'R', _)) => Ready::Created,
        Some((b'E', msg)) => Ready::Failed(String::from_utf8_lossy(msg).into_owned()),
        _ => Ready::Failed("the container process died while being prepared".into()),
    }
}

/// Releases a parked child to exec its command.
pub fn start(start: OwnedFd) -> Result<(), Errno> {
    let mut f = File::from(start);
    f.write_all(b"S")
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
}

/// The child: prepare, report, park, exec. Never returns.
fn child(ctx: &Context, sync: OwnedFd, start: OwnedFd, out: OwnedFd, err: OwnedFd) -> ! {
    let mut sync = File::from(sync);
    console::keep_console_apart();
    // stdout/stderr first, so everything after start lands in the log.
    let stdio = (|| -> Result<(), String> {
        let null = File::options()
            .read(true)
            .write(true)
            .open("/dev/null")
            .map_err(|e| format!("opening /dev/null: {e}"))?;
        for (fd, target) in [(null.as_raw_fd(), 0), (out.as_raw_fd(), 1), (err.as_raw_fd(), 2)] {
            nix::unistd::dup2(fd, target).map_err(|e| format!("dup2 to {target}: {e}"))?;
        }
        Ok(())
    })();
    drop((out, err));
    let prepared = stdio.and_then(|()| prepare(ctx));
    if let Err(msg) = prepared {
        let _ = sync.write_all(format!("E{msg}").as_bytes());
        power::finish(power::INIT_FAILED);
    }
    if sync.write_all(b"R").is_err() {
        power::finish(power::INIT_FAILED);
    }
    drop(sync);
    let mut go = [0u8; 1];
    match File::from(start).read(&mut go) {
        Ok(1) => {}
        // The init gave up on this container (pod stopping or failed).
        _ => power::finish(0),
    }
    // The init has put us in our cgroup by now: a private cgroup namespace
    // makes it the container's root, as Docker does on cgroup v2. A kernel
    // without cgroup namespaces simply shows the full path.
    if nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP).is_ok() {
        // Its own cgroup, read-only, at the usual place (as Docker does on
        // cgroup v2), so a process can read its limits. Best effort.
        rootfs::mount_cgroup_ro(ctx.plan.privileged);
    }
    let code = match run(ctx.plan) {
        Ok(never) => match never {},
        Err((code, msg)) => {
            let _ = std::io::stderr().write_all(format!("pod1: {msg}\n").as_bytes());
            code
        }
    };
    power::finish(code)
}

/// Everything before parking: namespaces and the root filesystem.
fn prepare(ctx: &Context) -> Result<(), String> {
    ctx.sandbox.join().map_err(|e| e.to_string())?;
    rootfs::enter(&ctx.rootfs).map_err(|e| format!("preparing the root filesystem: {e}"))?;
    Ok(())
}

/// After start: user, capabilities, no_new_privs, then exec. Returns only on
/// failure, with the exit code and the message for the container's stderr.
fn run(plan: &ContainerPlan) -> Result<std::convert::Infallible, (i32, String)> {
    let fail = |m: String| (power::INIT_FAILED, m);
    let caps = caps::mask(&plan.capabilities).map_err(|e| fail(e.to_string()))?;
    // Order matters: the bounding set needs CAP_SETPCAP, which the uid change
    // drops; KEEPCAPS keeps the permitted set across setuid so capset can
    // then set exactly the plan's set.
    caps::limit_bounding(caps).map_err(|e| fail(e.to_string()))?;
    nix::sys::prctl::set_keepcaps(true).map_err(|e| fail(format!("PR_SET_KEEPCAPS: {e}")))?;
    nix::unistd::setgroups(&[]).map_err(|e| fail(format!("setgroups([]): {e}")))?;
    let (uid, gid) = (plan.user.uid, plan.user.gid);
    nix::unistd::setgid(Gid::from_raw(gid)).map_err(|e| fail(format!("setgid({gid}): {e}")))?;
    nix::unistd::setuid(Uid::from_raw(uid)).map_err(|e| fail(format!("setuid({uid}): {e}")))?;
    nix::sys::prctl::set_keepcaps(false).map_err(|e| fail(format!("PR_SET_KEEPCAPS: {e}")))?;
    caps::set(caps).map_err(|e| fail(e.to_string()))?;
    if !plan.privileged {
        nix::sys::prctl::set_no_new_privs().map_err(|e| fail(format!("PR_SET_NO_NEW_PRIVS: {e}")))?;
    }
    let path_var = plan
        .env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    let argv0 = plan
        .argv
        .first()
        .ok_or_else(|| (NOT_FOUND, "the container has no command".to_string()))?;
    let prog = look_path(argv0, path_var, Path::new(&plan.working_dir))?;
    let cstr = |s: &str| CString::new(s).map_err(|_| fail(format!("{s:?} contains a NUL byte")));
    let argv = plan.argv.iter().map(|a| cstr(a)).collect::<Result<Vec<_>, _>>()?;
    let mut env = plan.env.clone();
    // runc's rule: HOME from the image's /etc/passwd when the pod sets none.
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        env.push(format!("HOME={}", home_of(&passwd, uid)));
    }
    let env = env.iter().map(|a| cstr(a)).collect::<Result<Vec<_>, _>>()?;
    let prog_c = CString::new(prog.as_os_str().as_encoded_bytes())
        .map_err(|_| fail(format!("{} contains a NUL byte", prog.display())))?;
    // The init blocks every signal it handles and Rust's runtime ignores
    // SIGPIPE; the command starts with neither.
    // SAFETY: restoring the default disposition installs no handler code.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    let e = nix::unistd::execve(&prog_c, &argv, &env).unwrap_err_errno();
    Err(match e {
        Errno::ENOENT | Errno::ENOTDIR => (
            NOT_FOUND,
            format!("exec {}: no such file or directory", prog.display()),
        ),
        e => (
            NOT_EXECUTABLE,
            format!(
                "exec {}: {} (permission denied or not an executable)",
                prog.display(),
                e.desc()
            ),
        ),
    })
}

/// `execve` returns only on failure; this names that error.
trait ExecErr {
    fn unwrap_err_errno(self) -> Errno;
}

impl ExecErr for Result<std::convert::Infallible, Errno> {
    fn unwrap_err_errno(self) -> Errno {
        match self {
            Ok(never) => match never {},
            Err(e) => e,
        }
    }
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

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Go's exec.LookPath as runc uses it: a name with a slash is used as it is
/// (relative to the working directory); otherwise the first executable
/// regular file of that name on PATH.
pub fn look_path(name: &str, path_var: &str, cwd: &Path) -> Result<PathBuf, (i32, String)> {
    if name.contains('/') {
        let p = cwd.join(name);
        return match std::fs::metadata(&p) {
            Err(_) => Err((NOT_FOUND, format!("exec {name}: no such file or directory"))),
            Ok(m) if m.is_dir() => Err((NOT_EXECUTABLE, format!("exec {name}: is a directory"))),
            Ok(_) if !is_executable(&p) => Err((NOT_EXECUTABLE, format!("exec {name}: permission denied"))),
            Ok(_) => Ok(p),
        };
    }
    for dir in path_var.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let p = cwd.join(dir).join(name);
        if is_executable(&p) {
            return Ok(p);
        }
    }
    Err((
        NOT_FOUND,
        format!("exec {name:?}: executable file not found in $PATH ({path_var})"),
    ))
}

/// Wraps a raw fd the caller owns.
pub fn owned(fd: i32) -> OwnedFd {
    // SAFETY: callers pass a descriptor nobody else owns.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_comes_from_passwd() {
        let pw = "root:x:0:0:root:/root:/bin/sh\nbad line\napp:x:1000:1000::/home/app:/bin/sh\n";
        assert_eq!(home_of(pw, 0), "/root");
        assert_eq!(home_of(pw, 1000), "/home/app");
        assert_eq!(home_of(pw, 5), "/");
    }

    #[test]
    fn look_path_follows_go() {
        let d = std::env::temp_dir().join(format!("pod1-lookpath-{}", std::process::id()));
        std::fs::create_dir_all(d.join("bin")).unwrap();
        std::fs::write(d.join("bin/prog"), "").unwrap();
        std::fs::set_permissions(d.join("bin/prog"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(d.join("bin/data"), "").unwrap();
        std::fs::set_permissions(d.join("bin/data"), std::fs::Permissions::from_mode(0o644)).unwrap();
        let path = format!("/nonexistent:{}", d.join("bin").display());
        assert_eq!(look_path("prog", &path, &d).unwrap(), d.join("bin/prog"));
        // A non-executable match on PATH is skipped, as Go does.
        assert_eq!(look_path("data", &path, &d).unwrap_err().0, NOT_FOUND);
        assert_eq!(look_path("nope-xyz", &path, &d).unwrap_err().0, NOT_FOUND);
        assert_eq!(look_path("/nope/x", &path, &d).unwrap_err().0, NOT_FOUND);
        assert_eq!(look_path("bin/data", &path, &d).unwrap_err().0, NOT_EXECUTABLE);
        assert_eq!(look_path("./bin/prog", &path, &d).unwrap(), d.join("./bin/prog"));
        assert_eq!(look_path("/", &path, &d).unwrap_err().0, NOT_EXECUTABLE);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
