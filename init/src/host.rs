//! Host mode: `pod1-init --root DIR [--events FILE]` runs a pod on a Linux
//! host as root, from an unpacked initramfs tree, with the VM's behaviour:
//! the pod's init is PID 1 of a new PID namespace (so reaping, signals and
//! `kill(-1)` work as in the VM) in a new mount namespace whose mounts are
//! all private (nothing leaks to the host). The VM's early mounts, the
//! switch to a tmpfs and the power-off are skipped; the exit code is the
//! pod's.
//!
//! This process stays outside (see `namespaces::run_as_pid_ns_init`): it
//! forwards SIGTERM/SIGINT/SIGHUP to the pod's init, waits for it and exits
//! with its code.

use alloc::format;
use alloc::string::{String, ToString};

use rustix::process::Signal;

use crate::mounts::MsFlags;
use crate::sys::{self, Errno};
use crate::{channel, console, namespaces, power, signals};

/// The command line of host mode.
#[derive(Debug, PartialEq, Eq)]
pub struct Args {
    /// The unpacked initramfs tree.
    pub root: String,
    /// Where events go (stdout when absent).
    pub events: Option<String>,
}

/// What host mode prints for a bad command line.
pub const USAGE: &str = "usage: pod1-init --root DIR [--events FILE]\n\
  Runs the pod planned in DIR/etc/pod1/plan.json (an unpacked pod1 initramfs) on this host,\n\
  as root, in new namespaces. Events go to FILE (default: stdout), one JSON object per line.\n\
  The exit code is the pod's. SIGTERM or SIGINT stops the pod gracefully.\n\
  POD1_DEBUG=1 logs each step on stderr with its time (CLOCK_BOOTTIME).";

/// Parses host mode's arguments (without argv[0]).
pub fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<Args, String> {
    let mut root = None;
    let mut events = None;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let (key, inline) = match a.split_once('=') {
            Some((k, v)) if k.starts_with("--") => (k.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or(format!("{key} needs a value"))
        };
        match key.as_str() {
            "--root" => root = Some(value()?),
            "--events" => events = Some(value()?),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let root = root.ok_or("--root DIR is required")?;
    Ok(Args { root, events })
}

/// Runs host mode; returns the process's exit code.
pub fn main(args: Args, run_pod: impl FnOnce(&str, &str) -> i32) -> i32 {
    let fail = |what: &str, e: &dyn core::fmt::Display| {
        console::log(&format!("{what}: {e}"));
        power::INIT_FAILED
    };
    let root = match sys::canonicalize(&args.root) {
        Ok(r) => r,
        Err(e) => return fail(&format!("--root {}", args.root), &e),
    };
    let opened = match &args.events {
        Some(path) => channel::port::open_file(path).map_err(|e| e.to_string()),
        // Close-on-exec, so the events never reach a container.
        None => rustix::io::fcntl_dupfd_cloexec(sys::stdout(), 3)
            .map(channel::port::use_fd)
            .map_err(|e| Errno::from(e).to_string()),
    };
    if let Err(e) = opened {
        return fail("opening the event channel", &e);
    }
    // Order matters: block before the child exists, so no signal is lost
    // and the child inherits the mask (its signalfd reads them).
    if let Err(e) = signals::block(&signals::handled_signals()) {
        return fail("blocking signals", &e);
    }
    let pid = rustix::process::getpid().as_raw_nonzero();
    let state = sys::join(&sys::temp_dir(), &format!("pod1-init.{pid}"));
    if let Err(e) = sys::create_dir_all(&state) {
        return fail(&format!("creating {state}"), &e);
    }
    let code = match namespaces::run_as_pid_ns_init(|| inner(&root, &state, run_pod)) {
        Ok(code) => code,
        Err(e) => {
            // The pod's init did not report the end itself: do it here.
            let message = format!("running the pod in its own PID namespace (host mode needs root): {e}");
            console::log(&message);
            channel::event(pod1_manifest::events::Event::Error { message });
            channel::event(pod1_manifest::events::Event::PodExited {
                phase: pod1_manifest::events::Phase::Failed,
                exit_code: power::INIT_FAILED,
                deadline_exceeded: false,
            });
            power::INIT_FAILED
        }
    };
    let _ = sys::remove_dir(&state);
    channel::drain(crate::power::HOST_WAIT_MS);
    code
}

/// The pod's init, PID 1 of the new PID namespace.
fn inner(root: &str, state: &str, run_pod: impl FnOnce(&str, &str) -> i32) -> i32 {
    let step = |what: &str, e: &dyn core::fmt::Display| -> i32 {
        power::fatal(&format!("host mode: {what}: {e}"));
    };
    // If the outer process dies, so does the pod.
    if let Err(e) = rustix::process::set_parent_process_death_signal(Some(Signal::KILL)) {
        return step("PR_SET_PDEATHSIG", &Errno::from(e));
    }
    if let Err(e) = namespaces::unshare(libc::CLONE_NEWNS) {
        return step("unshare(CLONE_NEWNS)", &e);
    }
    // Order matters: private first, so none of the mounts below reach the host.
    if let Err(e) = crate::mounts::make_private_rec() {
        return step("making mounts private", &e);
    }
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    // A /proc of the pod's PID namespace, as in the VM.
    if let Err(e) = crate::mounts::mount_fs("proc", "/proc", "proc", flags, None) {
        return step("mounting /proc", &e);
    }
    // nodev, as the VM's /run: volumes and layers live here.
    if let Err(e) = crate::mounts::mount_fs("tmpfs", state, "tmpfs", MsFlags::MS_NODEV, Some("mode=0755")) {
        return step("mounting the state tmpfs", &e);
    }
    // PID 1 of its namespace reaps orphans anyway; as a subreaper it also
    // would if it were not (DESIGN: the same binary makes itself one).
    if let Err(e) = rustix::process::set_child_subreaper(Some(rustix::process::getpid())) {
        return step("PR_SET_CHILD_SUBREAPER", &Errno::from(e));
    }
    run_pod(root, state)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Result<Args, String> {
        parse_args(v.iter().map(|s| s.to_string()))
    }

    #[test]
    fn parses() {
        let a = args(&["--root", "/r", "--events=/e"]).unwrap();
        assert_eq!(a.root, "/r");
        assert_eq!(a.events.as_deref(), Some("/e"));
        assert!(args(&[]).is_err());
        assert!(args(&["--root"]).is_err());
        assert!(args(&["--root", "/r", "--bogus"]).is_err());
    }
}
