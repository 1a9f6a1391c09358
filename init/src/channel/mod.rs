//! The channel to the host: events and container output out, the host's
//! requests in. In the VM it is the virtio-serial port `org.pod1.channel`
//! (or ttyS1 as a fallback, see [`port`]) carrying the frames of
//! `pod1_manifest::channel`; in host mode a file or stdout carrying one
//! JSON record per line.
//!
//! Backpressure: what is sent waits in one queue in this process and is
//! written without blocking whenever the port takes it. The supervisor
//! reads containers' pipes only while the queue holds less than
//! [`HIGH_WATER`] bytes, so a host that reads slowly makes the containers
//! block on their full pipes, never the init. Events always go into the
//! queue (they are few and small, and one lost would change the pod's
//! story); output never overtakes an event or another chunk of its stream.
//!
//! The queue is process-wide so that every event source (the supervisor,
//! the fatal path, the panic handler) reaches it without passing it
//! around. The init never starts a thread; a forked child that will not
//! report calls [`forget`] first, so the parent's queued bytes are never
//! written twice.

pub mod port;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

use pod1_manifest::channel::{self as wire, Kind, LineSplitter};
use pod1_manifest::events::{Event, Record, Request, Stream};
use rustix::event::{PollFd, PollFlags};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::termios;

use crate::console::{self, now_ms};
use crate::sys::Errno;

/// Containers' pipes are read only while less than this waits for the host.
pub const HIGH_WATER: usize = 256 * 1024;

/// How records are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `pod1_manifest::channel` frames: the VM's port.
    Frames,
    /// One JSON record per line, output split into `log` records: host
    /// mode's events file or stdout.
    JsonLines,
}

#[derive(Debug)]
struct Channel {
    fd: OwnedFd,
    encoding: Encoding,
    /// A tty (ttyS1): `tcdrain` waits for the UART to send everything.
    tty: bool,
    /// Bytes not yet written; `queue[head..]` is what is left.
    queue: Vec<u8>,
    head: usize,
    /// The host's end went away (a write failed): what is queued is dropped.
    lost: bool,
}

/// The one channel of this process.
struct Global(UnsafeCell<Option<Channel>>);

// SAFETY: the init never starts a thread (it forks); `with` hands out one
// `&mut` at a time, guarded by BUSY against re-entry (a panic inside `with`
// whose handler reports through the channel finds it busy and only logs).
unsafe impl Sync for Global {}

static CHANNEL: Global = Global(UnsafeCell::new(None));
static BUSY: AtomicBool = AtomicBool::new(false);

/// Runs `f` on the channel; `None` when there is none (or it is in use by
/// an interrupted caller: the panic path).
fn with<R>(f: impl FnOnce(&mut Channel) -> R) -> Option<R> {
    if BUSY.swap(true, Ordering::Acquire) {
        return None;
    }
    // SAFETY: BUSY was clear, so no other reference to the cell exists
    // (single thread, and re-entry is turned away above).
    let r = unsafe { (*CHANNEL.0.get()).as_mut() }.map(f);
    BUSY.store(false, Ordering::Release);
    r
}

/// Makes `fd` the channel.
pub fn install(fd: OwnedFd, encoding: Encoding, tty: bool) {
    let ch = Channel::new(fd, encoding, tty);
    if BUSY.swap(true, Ordering::Acquire) {
        return;
    }
    // SAFETY: as in `with`.
    unsafe { *CHANNEL.0.get() = Some(ch) };
    BUSY.store(false, Ordering::Release);
}

/// In a forked child that will never report: drop this copy of the
/// channel (and of the parent's queued bytes) without writing anything.
pub fn forget() {
    if BUSY.swap(true, Ordering::Acquire) {
        return;
    }
    // SAFETY: as in `with`; the descriptor is closed, the parent keeps its own.
    unsafe { *CHANNEL.0.get() = None };
    BUSY.store(false, Ordering::Release);
}

/// Sends one event (queued, then written as far as the port takes it).
pub fn event(event: Event) {
    let rec = Record { event, ms: now_ms() };
    let json = match serde_json::to_vec(&rec) {
        Ok(j) => j,
        Err(e) => return console::log(&format!("cannot encode event {rec:?}: {e}")),
    };
    console::debug(&format!("event {}", String::from_utf8_lossy(&json)));
    let sent = with(|ch| {
        ch.push_event(&json, rec.ms);
        ch.flush();
    });
    if sent.is_none() {
        console::log(&format!("no event channel: {}", String::from_utf8_lossy(&json)));
    }
}

/// Sends bytes a container wrote; empty `data` says the stream ended. In
/// host mode's JSON lines, `lines` splits them into `log` records.
pub fn output(container: &str, stream: Stream, data: &[u8], lines: &mut LineSplitter) {
    let ms = now_ms();
    with(|ch| {
        ch.push_output(container, stream, data, lines, ms);
        ch.flush();
    });
}

/// Whether containers' output may be read now (the queue is below
/// [`HIGH_WATER`], or the host is gone and output is dropped anyway).
pub fn has_room() -> bool {
    with(|ch| ch.has_room()).unwrap_or(true)
}

/// The port, when bytes wait for it to become writable (poll it for POLLOUT).
pub fn waiting_fd() -> Option<BorrowedFd<'static>> {
    with(|ch| {
        (!ch.lost && ch.head < ch.queue.len()).then(|| {
            // SAFETY: the channel's descriptor stays open until `forget` or
            // the end of the process; callers use it for one poll.
            unsafe { BorrowedFd::borrow_raw(rustix::fd::AsRawFd::as_raw_fd(&ch.fd)) }
        })
    })
    .flatten()
}

/// After a poll of [`waiting_fd`]: writes what the port takes now, or
/// closes the channel if the host hung up (a virtio port then reports
/// POLLHUP and never POLLOUT: polling it again would spin).
pub fn polled(revents: PollFlags) {
    with(|ch| {
        if revents.intersects(PollFlags::HUP | PollFlags::ERR) && !revents.contains(PollFlags::OUT) {
            ch.lose("the host hung up");
        }
        ch.flush();
    });
}

/// Writes everything queued, waiting for the host up to `timeout_ms`; on
/// a tty, also waits until the UART has sent it all.
pub fn drain(timeout_ms: u64) {
    with(|ch| {
        // Whether all of it went or not, what follows is the same.
        let _ = ch.wait_until(timeout_ms, |ch| ch.head == ch.queue.len());
        if ch.tty {
            let _ = termios::tcdrain(&ch.fd);
        }
    });
}

/// Waits up to `timeout_ms` until the queue is below [`HIGH_WATER`];
/// false if the host took nothing for that long.
pub fn wait_room(timeout_ms: u64) -> bool {
    with(|ch| ch.wait_until(timeout_ms, Channel::has_room)).unwrap_or(true)
}

/// Waits up to `timeout_ms` for the host's `ack` (it has read everything
/// up to `pod_exited`); false when none came or the host hung up.
pub fn await_ack(timeout_ms: u64) -> bool {
    let deadline = now_ms().saturating_add(timeout_ms);
    with(|ch| {
        let mut requests = Requests::default();
        let mut buf = [0u8; 256];
        loop {
            let now = now_ms();
            if now >= deadline || ch.lost {
                return false;
            }
            let revents = poll_one(ch.fd.as_fd(), PollFlags::IN, deadline - now);
            if revents.is_empty() {
                continue;
            }
            match rustix::io::read(&ch.fd, &mut buf).map_err(Errno::from) {
                Ok(0) => return false,
                Ok(n) => {
                    if requests.feed(&buf[..n]).contains(&Request::Ack) {
                        return true;
                    }
                }
                Err(Errno::EINTR | Errno::EAGAIN) => {}
                Err(_) => return false,
            }
        }
    })
    .unwrap_or(false)
}

/// poll(2) on one descriptor for up to `ms`; the events seen (none on a
/// timeout or an interrupted call).
fn poll_one(fd: BorrowedFd<'_>, events: PollFlags, ms: u64) -> PollFlags {
    let ms = ms.min(60_000);
    let timeout = rustix::event::Timespec {
        tv_sec: (ms / 1000) as i64,
        tv_nsec: ((ms % 1000) * 1_000_000) as i64,
    };
    let mut fds = [PollFd::from_borrowed_fd(fd, events)];
    match rustix::event::poll(&mut fds, Some(&timeout)) {
        Ok(_) => fds[0].revents(),
        Err(_) => PollFlags::empty(),
    }
}

impl Channel {
    fn new(fd: OwnedFd, encoding: Encoding, tty: bool) -> Channel {
        Channel {
            fd,
            encoding,
            tty,
            queue: Vec::new(),
            head: 0,
            lost: false,
        }
    }

    fn has_room(&self) -> bool {
        self.lost || self.queue.len() - self.head < HIGH_WATER
    }

    /// Queues one event record, already JSON.
    fn push_event(&mut self, json: &[u8], ms: u64) {
        match self.encoding {
            Encoding::Frames if json.len() > wire::MAX_DATA => {
                console::log(&format!("an event of {} bytes is too large to send", json.len()));
            }
            Encoding::Frames => wire::encode(&mut self.queue, Kind::Event, b"", json, ms),
            Encoding::JsonLines => {
                self.queue.extend_from_slice(json);
                self.queue.push(b'\n');
            }
        }
    }

    /// Queues output of a container's stream (see [`output`]).
    fn push_output(
        &mut self,
        container: &str,
        stream: Stream,
        data: &[u8],
        lines: &mut LineSplitter,
        ms: u64,
    ) {
        if self.lost {
            return;
        }
        match self.encoding {
            Encoding::Frames => {
                let kind = Kind::of(stream);
                if data.is_empty() {
                    wire::encode(&mut self.queue, kind, container.as_bytes(), b"", ms);
                }
                for piece in data.chunks(wire::MAX_DATA) {
                    wire::encode(&mut self.queue, kind, container.as_bytes(), piece, ms);
                }
            }
            Encoding::JsonLines => {
                let queue = &mut self.queue;
                let mut log = |line: &[u8]| {
                    let rec = Record {
                        event: Event::Log {
                            container: container.into(),
                            stream,
                            line: String::from_utf8_lossy(line).into_owned(),
                        },
                        ms,
                    };
                    if let Ok(json) = serde_json::to_vec(&rec) {
                        queue.extend_from_slice(&json);
                        queue.push(b'\n');
                    }
                };
                match data.is_empty() {
                    true => lines.finish(&mut log),
                    false => lines.feed(data, &mut log),
                }
            }
        }
    }

    /// Writes until `done` holds or the host is gone (true), or until
    /// `timeout_ms` passed (false).
    fn wait_until(&mut self, timeout_ms: u64, done: impl Fn(&Channel) -> bool) -> bool {
        let deadline = now_ms().saturating_add(timeout_ms);
        loop {
            self.flush();
            if self.lost || done(self) {
                return true;
            }
            let now = now_ms();
            if now >= deadline {
                let left = self.queue.len() - self.head;
                console::log(&format!(
                    "the host read nothing for {timeout_ms} ms: {left} bytes wait"
                ));
                return false;
            }
            let revents = poll_one(self.fd.as_fd(), PollFlags::OUT, deadline - now);
            if revents.intersects(PollFlags::HUP | PollFlags::ERR) && !revents.contains(PollFlags::OUT) {
                self.lose("the host hung up");
            }
        }
    }

    /// Writes from the queue until it is empty or the port would block.
    fn flush(&mut self) {
        while !self.lost && self.head < self.queue.len() {
            match rustix::io::write(&self.fd, &self.queue[self.head..]).map_err(Errno::from) {
                Ok(0) => self.lose("the port took no bytes"),
                Ok(n) => self.head += n,
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => break,
                Err(e) => self.lose(&format!("writing to the host: {e}")),
            }
        }
        if self.head == self.queue.len() {
            self.queue.clear();
            self.head = 0;
        } else if self.head >= HIGH_WATER / 2 {
            // Keep the queue's memory at what is really waiting.
            self.queue.drain(..self.head);
            self.head = 0;
        }
    }

    fn lose(&mut self, why: &str) {
        if !self.lost {
            let left = self.queue.len() - self.head;
            console::log(&format!(
                "{why}: the channel is closed; {left} bytes and all later output are dropped"
            ));
        }
        self.lost = true;
        self.queue = Vec::new();
        self.head = 0;
    }
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
                Err(e) => console::log(&format!("ignoring a line from the host ({e}): {text}")),
            }
        }
        // A request is a few dozen bytes: a longer unfinished line is noise,
        // and PID 1 must not buffer it without bound.
        if self.buf.len() > MAX_REQUEST {
            console::log(&format!(
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
    use pod1_manifest::channel::{Header, HEADER_LEN};

    /// A channel into a non-blocking pipe (64 KiB: far less than is sent).
    fn piped() -> (Channel, OwnedFd) {
        let (r, w) =
            rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC | rustix::pipe::PipeFlags::NONBLOCK)
                .unwrap();
        (Channel::new(w, Encoding::Frames, false), r)
    }

    /// Reads what the pipe holds now.
    fn take(r: &OwnedFd, into: &mut Vec<u8>) {
        let mut buf = [0u8; 65536];
        while let Ok(n @ 1..) = rustix::io::read(r, &mut buf) {
            into.extend_from_slice(&buf[..n]);
        }
    }

    #[test]
    fn a_slow_reader_gets_every_byte_in_order() {
        let (mut ch, r) = piped();
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut lines = LineSplitter::default();
        let mut wire = Vec::new();
        let mut sent = 0;
        // The supervisor's way: output only while there is room; events
        // always; flush after each; the host reads a pipe's worth at a time.
        while sent < data.len() {
            if ch.has_room() {
                let end = (sent + 40_000).min(data.len());
                ch.push_output("web", Stream::Stdout, &data[sent..end], &mut lines, 1);
                ch.push_event(br#"{"event":"sandbox_ready","ms":2}"#, 2);
                sent = end;
            } else {
                take(&r, &mut wire);
            }
            ch.flush();
            assert!(ch.queue.len() - ch.head < HIGH_WATER + 2 * wire::MAX_FRAME);
        }
        ch.push_output("web", Stream::Stdout, b"", &mut lines, 3);
        while ch.head < ch.queue.len() {
            take(&r, &mut wire);
            ch.flush();
        }
        take(&r, &mut wire);
        // Decode: the stream's bytes exactly, one event after each chunk, the end last.
        let (mut got, mut events, mut ended, mut at) = (Vec::new(), 0, false, 0);
        while at < wire.len() {
            let h = Header::parse(wire[at..at + HEADER_LEN].try_into().unwrap()).unwrap();
            let body = &wire[at + HEADER_LEN..at + HEADER_LEN + h.body_len()];
            match h.kind {
                Kind::Event => events += 1,
                Kind::Stdout if h.data_len == 0 => ended = true,
                Kind::Stdout => {
                    assert_eq!(&body[..3], b"web");
                    got.extend_from_slice(&body[3..]);
                }
                Kind::Stderr => panic!("nothing was sent on stderr"),
            }
            at += HEADER_LEN + h.body_len();
        }
        assert!(got == data, "the bytes arrived changed or out of order");
        assert_eq!((events, ended), (data.len().div_ceil(40_000), true));
    }

    #[test]
    fn a_host_that_hangs_up_closes_the_channel() {
        let (mut ch, r) = piped();
        ch.push_event(b"{}", 1);
        drop(r);
        ch.flush();
        assert!(ch.lost && ch.has_room() && ch.queue.is_empty());
        ch.push_output("web", Stream::Stdout, &[1; 1000], &mut LineSplitter::default(), 1);
        assert!(
            ch.queue.is_empty(),
            "nothing more is kept for a host that is gone"
        );
    }

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
        assert_eq!(
            r.feed(b"{\"request\":\"stop\"}\n{\"request\":\"ack\"}\n"),
            vec![Request::Stop, Request::Ack]
        );
    }
}
