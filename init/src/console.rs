//! The init's own log lines on the console (ttyS0 in the VM, stderr on a
//! host) and the clock every event and debug line carries. (Events go to
//! the host through `channel`.)
//!
//! The console is a process-wide file descriptor kept in an atomic, so the
//! fatal path and the panic hook can reach it without any state to lock.

use alloc::format;
use core::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use rustix::fd::{BorrowedFd, IntoRawFd, RawFd};
use rustix::time::{clock_gettime, ClockId};

use crate::sys::{self, Errno};

/// Where the init's own log lines go (stderr until a container child
/// points its stderr at the container's log pipe).
static CONSOLE_FD: AtomicI32 = AtomicI32::new(2);
/// `pod1.debug` on the kernel command line (or `POD1_DEBUG` on a host).
static DEBUG: AtomicBool = AtomicBool::new(false);

/// Turns on debug lines.
pub fn set_debug(on: bool) {
    DEBUG.store(on, Ordering::Relaxed);
}

/// Milliseconds since boot (CLOCK_BOOTTIME), the clock of every event.
pub fn now_ms() -> u64 {
    now_us() / 1000
}

/// Microseconds since boot (CLOCK_BOOTTIME).
pub fn now_us() -> u64 {
    let ts = clock_gettime(ClockId::Boottime);
    (ts.tv_sec as u64) * 1_000_000 + (ts.tv_nsec as u64) / 1000
}

/// Writes all of `buf` to `fd`, retrying on EINTR and short writes.
pub fn write_all(fd: RawFd, mut buf: &[u8]) -> Result<(), Errno> {
    // SAFETY: the caller passes a descriptor it keeps open for this call.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    while !buf.is_empty() {
        match rustix::io::write(fd, buf).map_err(Errno::from) {
            Ok(0) => return Err(Errno::EIO),
            Ok(n) => buf = &buf[n..],
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => sys::sleep_ms(1),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// One line of the init's own log on the console.
pub fn log(msg: &str) {
    let line = format!("pod1-init: {msg}\n");
    let _ = write_all(CONSOLE_FD.load(Ordering::Relaxed), line.as_bytes());
}

/// [`log`] without allocating, for the last words of a failing init.
pub fn log_static(msg: &str) {
    let fd = CONSOLE_FD.load(Ordering::Relaxed);
    for part in ["pod1-init: ", msg, "\n"] {
        let _ = write_all(fd, part.as_bytes());
    }
}

/// Keeps the console reachable in a container child whose fd 2 is about
/// to become the container's stderr: moves it to a CLOEXEC descriptor, so
/// the init's own lines never show up as the container's output and the
/// command never inherits it.
pub fn keep_console_apart() {
    if let Ok(fd) = rustix::io::fcntl_dupfd_cloexec(sys::stderr(), 3) {
        CONSOLE_FD.store(fd.into_raw_fd(), Ordering::Relaxed);
    }
}

/// A line only shown with `pod1.debug`.
pub fn debug(msg: &str) {
    if DEBUG.load(Ordering::Relaxed) {
        debug_at(now_us(), msg);
    }
}

/// A debug line for a step that ended at `us` (CLOCK_BOOTTIME): each line
/// carries its time, so `pod1.debug` is also a trace of where boot time goes.
pub fn debug_at(us: u64, msg: &str) {
    if DEBUG.load(Ordering::Relaxed) {
        log(&format!("[{}.{:03} ms] {msg}", us / 1000, us % 1000));
    }
}
