//! The init's two outputs: its own log lines on the console (ttyS0 in the
//! VM, stderr on a host) and the event channel to the host (ttyS1 in the VM,
//! a file or stdout on a host), one `events::Record` JSON object per line.
//!
//! Both are process-wide file descriptors kept in atomics, so the fatal path
//! and the panic hook can reach them without any shared state to lock.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use pod1_manifest::events::{Event, Record, Request};
use rustix::fd::{BorrowedFd, IntoRawFd, OwnedFd, RawFd};
use rustix::fs::OFlags;
use rustix::termios;
use rustix::time::{clock_gettime, ClockId};

use crate::sys::{self, Errno, IoError};

/// The event channel's file descriptor (-1 until opened).
static EVENTS_FD: AtomicI32 = AtomicI32::new(-1);
/// Whether the event channel is a tty that `tcdrain` can flush.
static EVENTS_TTY: AtomicBool = AtomicBool::new(false);
/// Where the init's own log lines go (stderr until a container child
/// points its stderr at the container's log pipe).
static CONSOLE_FD: AtomicI32 = AtomicI32::new(2);
/// `pod1.debug` on the kernel command line (or `POD1_DEBUG` on a host).
static DEBUG: AtomicBool = AtomicBool::new(false);

/// Errors opening the event channel.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The serial port or file could not be opened.
    #[error("opening the event channel {path}: {source} (the VM needs a second serial port for events)")]
    Open {
        /// The port or file.
        path: String,
        /// The cause.
        source: IoError,
    },
    /// The serial port could not be put in raw mode.
    #[error("setting {path} to raw mode: {source}")]
    Raw {
        /// The port.
        path: String,
        /// The cause.
        source: Errno,
    },
}

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

/// Sends one event to the host. An event that cannot be written is reported
/// on the console; the pod goes on (the host sees the gap).
pub fn emit(event: Event) {
    let rec = Record { event, ms: now_ms() };
    let fd = EVENTS_FD.load(Ordering::Relaxed);
    let mut line = match serde_json::to_string(&rec) {
        Ok(l) => l,
        Err(e) => return log(&format!("cannot encode event {rec:?}: {e}")),
    };
    debug(&format!("event {line}"));
    if fd < 0 {
        return log(&format!("no event channel: {line}"));
    }
    line.push('\n');
    if let Err(e) = write_all(fd, line.as_bytes()) {
        log(&format!("writing an event: {e}: {}", line.trim_end()));
    }
}

/// Waits until the host has everything written to the channel.
pub fn drain() {
    let fd = EVENTS_FD.load(Ordering::Relaxed);
    if fd >= 0 && EVENTS_TTY.load(Ordering::Relaxed) {
        // SAFETY: the channel's fd stays open for the life of the process.
        let _ = termios::tcdrain(unsafe { BorrowedFd::borrow_raw(fd) });
    } else if fd >= 0 {
        // SAFETY: as above.
        let _ = rustix::fs::fsync(unsafe { BorrowedFd::borrow_raw(fd) });
    }
}

/// Uses an already open descriptor (a file or stdout) as the event channel.
pub fn use_fd(fd: OwnedFd) {
    EVENTS_FD.store(fd.into_raw_fd(), Ordering::Relaxed);
}

/// Opens (creating or truncating) a file as the event channel.
pub fn open_file(path: &str) -> Result<(), Error> {
    let file = sys::open(path, OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC, 0o666).map_err(|source| {
        Error::Open {
            path: path.to_string(),
            source,
        }
    })?;
    use_fd(file);
    Ok(())
}

/// Opens the VM's event port read-write in raw mode (no echo, no line
/// editing, no CR/LF translation) and returns a duplicate for reading the
/// host's requests.
pub fn open_serial(path: &str) -> Result<OwnedFd, Error> {
    let open = |source| Error::Open {
        path: path.to_string(),
        source,
    };
    let file = sys::open(path, OFlags::RDWR | OFlags::NOCTTY | OFlags::NONBLOCK, 0).map_err(open)?;
    let raw = |e: rustix::io::Errno| Error::Raw {
        path: path.to_string(),
        source: e.into(),
    };
    let mut t = termios::tcgetattr(&file).map_err(raw)?;
    t.make_raw();
    termios::tcsetattr(&file, termios::OptionalActions::Now, &t).map_err(raw)?;
    let reader = rustix::io::fcntl_dupfd_cloexec(&file, 3).map_err(|e| open(e.into()))?;
    EVENTS_TTY.store(true, Ordering::Relaxed);
    use_fd(file);
    Ok(reader)
}

/// Splits the host's request stream into lines and parses each one.
#[derive(Debug, Default)]
pub struct Requests {
    buf: Vec<u8>,
}

impl Requests {
    /// Feeds bytes read from the channel; returns the complete requests.
    /// Lines that are not requests (noise on a serial line) are logged.
    pub fn feed(&mut self, data: &[u8]) -> Vec<Request> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        while let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=nl).collect();
            let text = String::from_utf8_lossy(&line);
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            match serde_json::from_str::<Request>(text) {
                Ok(r) => out.push(r),
                Err(e) => log(&format!("ignoring a line from the host ({e}): {text}")),
            }
        }
        // A request is a few dozen bytes: a longer unfinished line is noise,
        // and PID 1 must not buffer it without bound.
        if self.buf.len() > MAX_REQUEST {
            log(&format!(
                "ignoring {} bytes from the host with no newline",
                self.buf.len()
            ));
            self.buf.clear();
        }
        out
    }
}

/// The longest unfinished line kept from the host.
const MAX_REQUEST: usize = 4096;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endless_line_is_dropped() {
        let mut r = Requests::default();
        for _ in 0..100 {
            assert!(r.feed(&[b'x'; 1000]).is_empty());
        }
        assert!(r.buf.len() <= MAX_REQUEST);
        assert_eq!(r.feed(b"\n{\"request\":\"stop\"}\n").len(), 1);
    }

    #[test]
    fn requests_split_lines_and_skip_noise() {
        let mut r = Requests::default();
        assert!(r.feed(b"{\"request\":\"st").is_empty());
        assert_eq!(r.feed(b"op\"}\r\n"), vec![Request::Stop]);
        assert!(r.feed(b"garbage\n\n").is_empty());
        assert_eq!(r.feed(b"{\"request\":\"stop\"}\n"), vec![Request::Stop]);
    }
}
