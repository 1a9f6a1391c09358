//! Signals: the set PID 1 and the pod's init handle (blocked first thing,
//! then read from a signalfd or with sigwait), and the calls rustix lacks
//! for them (signal masks, signalfd). The bottom layer: it knows nothing
//! of pods.

use rustix::fd::{FromRawFd, OwnedFd};

use crate::sys::Errno;

/// A set of signals (libc's sigset_t: rustix has no signal masks).
#[derive(Clone, Copy)]
pub struct SigSet(libc::sigset_t);

impl core::fmt::Debug for SigSet {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SigSet")
    }
}

impl SigSet {
    fn empty() -> SigSet {
        // SAFETY: sigset_t is plain data; sigemptyset initialises it.
        let mut set = unsafe { core::mem::zeroed::<libc::sigset_t>() };
        // SAFETY: set is a valid, writable sigset_t.
        unsafe { libc::sigemptyset(&mut set) };
        SigSet(set)
    }

    fn add(&mut self, sig: i32) {
        // SAFETY: self.0 is an initialised sigset_t; sig is a valid signal.
        unsafe { libc::sigaddset(&mut self.0, sig) };
    }
}

/// The signals the init handles; blocked before anything else happens so
/// none is lost and none kills PID 1.
pub fn handled_signals() -> SigSet {
    let mut s = SigSet::empty();
    for sig in [
        libc::SIGCHLD,
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGPWR,
        libc::SIGUSR1,
        libc::SIGUSR2,
    ] {
        s.add(sig);
    }
    s
}

/// Blocks `set` in this thread (pthread_sigmask, as nix's thread_block).
pub fn block(set: &SigSet) -> Result<(), Errno> {
    // SAFETY: set is an initialised sigset_t; the old mask is not asked for.
    match unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set.0, core::ptr::null_mut()) } {
        0 => Ok(()),
        e => Err(Errno(e)),
    }
}

/// Unblocks every signal (before a container's exec).
pub fn unblock_all() {
    let none = SigSet::empty();
    // SAFETY: none is an initialised sigset_t; the old mask is not asked for.
    unsafe { libc::sigprocmask(libc::SIG_SETMASK, &none.0, core::ptr::null_mut()) };
}

/// Waits for one of the (blocked) signals in `set`; `None` on error.
pub fn wait_signal(set: &SigSet) -> Option<i32> {
    let mut sig = 0;
    // SAFETY: set is an initialised sigset_t and sig a writable int.
    (unsafe { libc::sigwait(&set.0, &mut sig) } == 0).then_some(sig)
}

/// A non-blocking signalfd for `set` (rustix has none).
pub fn signalfd(set: &SigSet) -> Result<OwnedFd, Errno> {
    // SAFETY: -1 asks for a new descriptor; set is an initialised sigset_t.
    let fd = unsafe { libc::signalfd(-1, &set.0, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: fd is a fresh descriptor we own from here on.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The next signal a non-blocking signalfd holds, if any.
pub fn read_signal(fd: &OwnedFd) -> Option<i32> {
    // struct signalfd_siginfo: 128 bytes, ssi_signo (u32) first.
    let mut info = [0u8; 128];
    match rustix::io::read(fd, &mut info) {
        Ok(128) => Some(u32::from_ne_bytes([info[0], info[1], info[2], info[3]]) as i32),
        _ => None,
    }
}
