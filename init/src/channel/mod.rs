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
//! queue (they are few and bounded, and one lost would change the pod's
//! story); output never overtakes an event or another chunk of its pipe.
//!
//! Frames are written whole: one write(2) takes only whole frames of at
//! most 32 KiB, which a virtio port takes entirely or not at all, so a
//! writer that dies (the pod's init, killed) never leaves half a frame in
//! front of the next writer's (the VM's PID 1 reporting it). A tty takes
//! what fits; ttyS1 is the fallback and has no such guarantee.
//!
//! The queue is process-wide so that every event source (the supervisor,
//! the fatal path, the panic handler) reaches it without passing it
//! around. The init never starts a thread; a forked child that will not
//! report calls [`forget`] first, and a parent whose child reports from
//! now on calls [`disown`], so queued bytes are never written twice.

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

use crate::console::{self, now_ms};
use crate::sys::{self, Errno};

/// Containers' pipes are read only while less than this waits for the host.
pub const HIGH_WATER: usize = 256 * 1024;
/// The longest free text (a reason, a message) an event carries; JSON
/// escaping can make it 6 times longer, still within one frame.
const MAX_TEXT: usize = 4096;

/// How records are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `pod1_manifest::channel` frames on a virtio port: whole frames per write.
    Frames,
    /// The same frames on a tty (ttyS1), which takes what fits.
    FramesOnTty,
    /// One JSON record per line, output split into `log` records: host
    /// mode's events file or stdout.
    JsonLines,
}

#[derive(Debug)]
struct Channel {
    fd: OwnedFd,
    encoding: Encoding,
    /// Bytes not yet written; `queue[head..]` is what is left.
    queue: Vec<u8>,
    head: usize,
    /// The host's end went away (a write failed): nothing more is kept.
    lost: bool,
    /// The host took nothing for a whole wait: later waits do not wait.
    stalled: bool,
}

/// The one channel of this process.
struct Global(UnsafeCell<Option<Channel>>);

// SAFETY: the init never starts a thread (it forks); `with` hands out one
// `&mut` at a time, guarded by BUSY against re-entry (a panic inside `with`
// whose handler reports through the channel finds it busy and only logs).
unsafe impl Sync for Global {}

static CHANNEL: Global = Global(UnsafeCell::new(None));
static BUSY: AtomicBool = AtomicBool::new(false);

/// Runs `f` on the slot holding the channel; `None` when it is in use by
/// an interrupted caller (the panic path).
fn with_slot<R>(f: impl FnOnce(&mut Option<Channel>) -> R) -> Option<R> {
    if BUSY.swap(true, Ordering::Acquire) {
        return None;
    }
    // SAFETY: BUSY was clear, so no other reference to the cell exists
    // (single thread, and re-entry is turned away above).
    let r = f(unsafe { &mut *CHANNEL.0.get() });
    BUSY.store(false, Ordering::Release);
    Some(r)
}

/// Runs `f` on the channel; `None` when there is none (or it is busy).
fn with<R>(f: impl FnOnce(&mut Channel) -> R) -> Option<R> {
    with_slot(|slot| slot.as_mut().map(f)).flatten()
}

/// Makes `fd` the channel.
pub fn install(fd: OwnedFd, encoding: Encoding) {
    with_slot(|slot| *slot = Some(Channel::new(fd, encoding)));
}

/// In a forked child that will never report: drop this copy of the
/// channel (and of the parent's queued bytes) without writing anything.
pub fn forget() {
    with_slot(|slot| *slot = None);
}

/// In a parent whose forked child now reports (and has its own copy of
/// what was queued): drop this copy of the queue, keep the channel.
pub fn disown() {
    with(|ch| {
        ch.queue = Vec::new();
        ch.head = 0;
    });
}

/// Sends one event (queued, then written as far as the port takes it).
pub fn event(event: Event) {
    let rec = Record {
        event: event.bounded(MAX_TEXT),
        ms: now_ms(),
    };
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

/// Sends bytes a container wrote to pipe number `pipe`; empty `data` says
/// the pipe ended. In host mode's JSON lines, `lines` splits them into
/// `log` records.
pub fn output(container: &str, stream: Stream, pipe: u32, data: &[u8], lines: &mut LineSplitter) {
    let ms = now_ms();
    with(|ch| {
        ch.push_output(container, stream, pipe, data, lines, ms);
        ch.flush();
    });
}

/// Whether containers' output may be read now (the queue is below
/// [`HIGH_WATER`], or the host is gone and output is dropped anyway).
pub fn has_room() -> bool {
    with(|ch| ch.has_room()).unwrap_or(true)
}

/// Bytes waiting for the host.
pub fn queued() -> usize {
    with(|ch| ch.queue.len() - ch.head).unwrap_or(0)
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
        if hung_up(revents) {
            ch.lose("the host hung up");
        }
        ch.flush();
    });
}

/// Writes everything queued, waiting for the host while it takes bytes;
/// gives up once it has taken nothing for `idle_ms` (or did so before).
pub fn drain(idle_ms: u64) {
    // Whether all of it went or not, what follows is the same.
    let _ = with(|ch| ch.wait_until(idle_ms, |ch| ch.head == ch.queue.len()));
}

/// Waits until the queue is below [`HIGH_WATER`]; false if the host took
/// nothing for `idle_ms` (or did so before).
pub fn wait_room(idle_ms: u64) -> bool {
    with(|ch| ch.wait_until(idle_ms, Channel::has_room)).unwrap_or(true)
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
            if now >= deadline || ch.lost || ch.encoding == Encoding::JsonLines {
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

/// Whether a poll says the other end is gone: POLLHUP or POLLERR without
/// POLLOUT (a virtio port whose host side closed reports POLLHUP alone).
fn hung_up(revents: PollFlags) -> bool {
    revents.intersects(PollFlags::HUP | PollFlags::ERR) && !revents.contains(PollFlags::OUT)
}

/// poll(2) on one descriptor for up to `ms`; the events seen (none on a
/// timeout or an interrupted call).
fn poll_one(fd: BorrowedFd<'_>, events: PollFlags, ms: u64) -> PollFlags {
    let mut fds = [PollFd::from_borrowed_fd(fd, events)];
    match rustix::event::poll(&mut fds, Some(&sys::timespec_ms(ms.min(60_000)))) {
        Ok(_) => fds[0].revents(),
        Err(_) => PollFlags::empty(),
    }
}

impl Channel {
    fn new(fd: OwnedFd, encoding: Encoding) -> Channel {
        Channel {
            fd,
            encoding,
            queue: Vec::new(),
            head: 0,
            lost: false,
            stalled: false,
        }
    }

    fn has_room(&self) -> bool {
        self.lost || self.queue.len() - self.head < HIGH_WATER
    }

    /// Queues one event record, already JSON (bounded by [`MAX_TEXT`]).
    fn push_event(&mut self, json: &[u8], ms: u64) {
        if self.lost {
            return;
        }
        match self.encoding {
            Encoding::Frames | Encoding::FramesOnTty => {
                wire::encode(&mut self.queue, Kind::Event, b"", 0, json, ms)
            }
            Encoding::JsonLines => {
                self.queue.extend_from_slice(json);
                self.queue.push(b'\n');
            }
        }
    }

    /// Queues output of a container's pipe (see [`output`]).
    fn push_output(
        &mut self,
        container: &str,
        stream: Stream,
        pipe: u32,
        data: &[u8],
        lines: &mut LineSplitter,
        ms: u64,
    ) {
        if self.lost {
            return;
        }
        match self.encoding {
            Encoding::Frames | Encoding::FramesOnTty => {
                let kind = Kind::of(stream);
                if data.is_empty() {
                    wire::encode(&mut self.queue, kind, container.as_bytes(), pipe, b"", ms);
                }
                for piece in data.chunks(wire::MAX_DATA) {
                    wire::encode(&mut self.queue, kind, container.as_bytes(), pipe, piece, ms);
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

    /// Writes until `done` holds or the host is gone (true), or until the
    /// host has taken nothing for `idle_ms` (false; later waits then only
    /// write what the port takes at once).
    fn wait_until(&mut self, idle_ms: u64, done: impl Fn(&Channel) -> bool) -> bool {
        let mut deadline = now_ms().saturating_add(idle_ms);
        loop {
            let before = self.head;
            self.flush();
            if self.lost || done(self) {
                return true;
            }
            let now = now_ms();
            if self.head != before {
                deadline = now.saturating_add(idle_ms);
            }
            if self.stalled || now >= deadline {
                if !self.stalled {
                    let left = self.queue.len() - self.head;
                    console::log(&format!(
                        "the host took nothing for {idle_ms} ms: {left} bytes wait; not waiting for it again"
                    ));
                }
                self.stalled = true;
                return false;
            }
            if hung_up(poll_one(self.fd.as_fd(), PollFlags::OUT, deadline - now)) {
                self.lose("the host hung up");
            }
        }
    }

    /// Writes from the queue until it is empty or the port would block.
    fn flush(&mut self) {
        while !self.lost && self.head < self.queue.len() {
            let rest = &self.queue[self.head..];
            let len = match self.encoding {
                // Whole frames only (at least one frame: the queue holds
                // nothing but whole frames of at most MAX_FRAME bytes).
                Encoding::Frames => wire::whole_frames(rest, wire::MAX_FRAME).max(1),
                Encoding::FramesOnTty | Encoding::JsonLines => rest.len(),
            };
            match rustix::io::write(&self.fd, &rest[..len]).map_err(Errno::from) {
                Ok(0) => self.lose("the port took no bytes"),
                Ok(n) => {
                    self.head += n;
                    self.stalled = false;
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => break,
                Err(e) => self.lose(&format!("writing to the host: {e}")),
            }
        }
        if self.head == self.queue.len() {
            // Keep the memory of a burst no longer than it lasts.
            if self.queue.capacity() > 4 * HIGH_WATER {
                self.queue = Vec::new();
            }
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
    use rustix::fd::FromRawFd;

    /// A channel into a non-blocking pipe (64 KiB: far less than is sent).
    fn piped() -> (Channel, OwnedFd) {
        let (r, w) =
            rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC | rustix::pipe::PipeFlags::NONBLOCK)
                .unwrap();
        (Channel::new(w, Encoding::Frames), r)
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
                ch.push_output("web", Stream::Stdout, 7, &data[sent..end], &mut lines, 1);
                ch.push_event(br#"{"event":"sandbox_ready","ms":2}"#, 2);
                sent = end;
            } else {
                take(&r, &mut wire);
            }
            ch.flush();
            assert!(ch.queue.len() - ch.head < HIGH_WATER + 2 * wire::MAX_FRAME);
        }
        ch.push_output("web", Stream::Stdout, 7, b"", &mut lines, 3);
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
                    assert_eq!((&body[..3], h.pipe), (&b"web"[..], 7));
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
    fn each_write_holds_whole_frames_only() {
        // A SOCK_SEQPACKET pair keeps each write(2) as one message, taken
        // whole or not at all, as a virtio port takes it.
        let mut sv = [0; 2];
        // SAFETY: sv is a writable array of two ints for the new descriptors.
        let r = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_NONBLOCK,
                0,
                sv.as_mut_ptr(),
            )
        };
        assert_eq!(r, 0);
        // SAFETY: both descriptors are fresh and owned from here on.
        let (a, b) = unsafe { (OwnedFd::from_raw_fd(sv[0]), OwnedFd::from_raw_fd(sv[1])) };
        let mut ch = Channel::new(a, Encoding::Frames);
        let mut lines = LineSplitter::default();
        for i in 0..200u32 {
            ch.push_output("c", Stream::Stderr, 1, &[i as u8; 20_000], &mut lines, 0);
            ch.push_event(b"{}", 0);
        }
        let mut buf = vec![0u8; 2 * wire::MAX_FRAME];
        let (mut frames, mut messages) = (0, 0);
        while ch.head < ch.queue.len() {
            ch.flush();
            while let Ok(n @ 1..) = rustix::io::read(&b, &mut buf) {
                assert!(n <= wire::MAX_FRAME);
                assert_eq!(
                    wire::whole_frames(&buf[..n], n),
                    n,
                    "a write ended inside a frame"
                );
                messages += 1;
                let mut at = 0;
                while at < n {
                    at += Header::parse(buf[at..at + HEADER_LEN].try_into().unwrap())
                        .unwrap()
                        .frame_len();
                    frames += 1;
                }
            }
        }
        assert_eq!(frames, 400);
        assert!(messages < frames, "small frames share a write");
    }

    #[test]
    fn a_host_that_hangs_up_closes_the_channel() {
        let (mut ch, r) = piped();
        ch.push_event(b"{}", 1);
        drop(r);
        ch.flush();
        assert!(ch.lost && ch.has_room() && ch.queue.is_empty());
        ch.push_output(
            "web",
            Stream::Stdout,
            7,
            &[1; 1000],
            &mut LineSplitter::default(),
            1,
        );
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
