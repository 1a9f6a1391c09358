//! How the init ends: the one path every outcome (success, error, panic)
//! goes through. As the VM's PID 1 it must never return from main (the
//! kernel panics if PID 1 exits), so it powers the VM off; on a host it exits.

use alloc::format;
use alloc::string::ToString;
use core::sync::atomic::{AtomicU8, Ordering};

use pod1_manifest::events::{Event, Phase};
use rustix::system::{reboot, RebootCommand};

use crate::sys;
use crate::{channel, console};

/// Which process this is; decides how it may end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Role {
    /// PID 1 of the VM: power off, never exit.
    Vm = 0,
    /// The pod's init, PID 1 of the pod's PID namespace (in the VM or on a
    /// host): exit; the VM's PID 1 powers off with its code.
    Host = 1,
    /// A child the init forked (a container being prepared):
    /// exit quietly, never touch the VM's power.
    Child = 2,
}

static ROLE: AtomicU8 = AtomicU8::new(Role::Host as u8);

/// Sets how this process ends.
pub fn set_role(role: Role) {
    ROLE.store(role as u8, Ordering::Relaxed);
}

fn role() -> Role {
    match ROLE.load(Ordering::Relaxed) {
        0 => Role::Vm,
        2 => Role::Child,
        _ => Role::Host,
    }
}

/// The pod's exit code when the init itself failed (DESIGN's table).
pub const INIT_FAILED: i32 = 125;

/// An internal error with no heap left to report it (a fault inside the
/// allocator, glibc's assertion, an unwind): the console line, then the
/// end as `end_now` ends, except that a host process or a forked child
/// leaves with _exit (exit's handlers free memory). The host gets no
/// event: an event needs memory.
pub fn die(message: &str) -> ! {
    console::log_static(message);
    match role() {
        Role::Vm => end_now(INIT_FAILED),
        // SAFETY: _exit ends the process at once, touching no memory of
        // the process's own.
        Role::Host | Role::Child => unsafe { libc::_exit(INIT_FAILED) },
    }
}

/// An internal error: tell the console and the host, then end. The panic
/// handler (main.rs) comes here too.
pub fn fatal(message: &str) -> ! {
    if role() == Role::Child {
        console::log(message);
        // SAFETY: _exit ends this forked child without running the parent's
        // atexit handlers or flushing buffers it shares with the parent.
        unsafe { libc::_exit(INIT_FAILED) }
    }
    console::log(&format!("error: {message}"));
    channel::event(Event::Error {
        message: message.to_string(),
    });
    channel::event(Event::PodExited {
        phase: Phase::Failed,
        exit_code: INIT_FAILED,
        deadline_exceeded: false,
    });
    finish(INIT_FAILED)
}

/// Ends at once, with no report and no allocation (also for a panic while
/// one is being reported): sync and power off in the VM, exit elsewhere.
pub fn end_now(code: i32) -> ! {
    match role() {
        Role::Vm => {
            rustix::fs::sync();
            if reboot(RebootCommand::PowerOff).is_err() {
                console::log_static("power off failed; halting here");
            }
            loop {
                // PID 1 must never exit: wait for the host to pull the plug.
                sys::sleep_ms(3_600_000);
            }
        }
        Role::Host => sys::exit(code),
        // SAFETY: see `fatal`: a forked child leaves without atexit handlers.
        Role::Child => unsafe { libc::_exit(code) },
    }
}

/// How long the host may take to read what is queued for it, and then to
/// acknowledge `pod_exited`, before the VM powers off anyway. `pod1 run`
/// reads as fast as its own output goes and acknowledges at once; this
/// bounds the wait for a host that stopped reading (a paused terminal).
pub const HOST_WAIT_MS: u64 = 60_000;

/// Ends the pod with `code`: on the VM, send everything queued, wait for
/// the host's acknowledgement (powering off sooner would lose what QEMU
/// still holds for it), kill what is left, sync and power off; on a host,
/// send everything and exit with the code.
pub fn finish(code: i32) -> ! {
    match role() {
        Role::Child => {}
        Role::Host => channel::drain(HOST_WAIT_MS),
        Role::Vm => {
            channel::drain(HOST_WAIT_MS);
            if !channel::await_ack(HOST_WAIT_MS) {
                console::log("the host did not acknowledge the pod's end");
            }
        }
    }
    if role() == Role::Vm {
        // Order matters: nothing may still write once the disks are synced.
        // SAFETY: kill(2) takes no pointers; -1 means every process
        // but this one (rustix has no call for it).
        let _ = unsafe { libc::kill(-1, libc::SIGKILL) };
        console::log(&format!("pod finished with exit code {code}; powering off"));
    }
    end_now(code)
}
