//! Containers' output: each stdout and stderr pipe, read without blocking
//! and forwarded to the host through the channel.

use alloc::string::String;

use pod1_manifest::channel::{self as wire, LineSplitter};
use pod1_manifest::events::Stream;
use rustix::fd::OwnedFd;
use rustix::fs::OFlags;

use super::message::Tail;
use crate::channel;
use crate::sys::Errno;

/// A container's stdout or stderr pipe, forwarded to the host as it is
/// read: one read of at most one frame's worth per turn of the loop, so
/// one chatty container cannot hold the loop, and only while the channel
/// has room, so a slow host makes the container wait on its full pipe.
#[derive(Debug)]
pub struct LogPipe {
    pub fd: OwnedFd,
    /// The container it belongs to.
    pub container: String,
    stream: Stream,
    /// Its number, unique in the pod (the host splits lines per pipe).
    id: u32,
    /// Host mode's JSON lines split the output into `log` records.
    lines: LineSplitter,
    /// It reached its end (or failed for good).
    pub eof: bool,
    /// Where its run's output is kept for a termination message from the
    /// log (`FallbackToLogsOnError`).
    tail: Option<Tail>,
}

/// The most one pipe gives per read (one frame).
pub const CHUNK: usize = wire::MAX_DATA;
/// When a container has exited, what is left in its pipes is read at once,
/// ahead of its exit event, as long as less than this waits for the host
/// (a pipe holds 64 KiB unless the container made it larger, and orphans
/// may keep writing to it): the rest follows the event.
const EXIT_QUEUE: usize = 4 * channel::HIGH_WATER;

impl LogPipe {
    /// A pipe of `container`'s `stream`, numbered `id`, set non-blocking;
    /// what it reads is also kept in `tail`, if given.
    pub fn new(fd: OwnedFd, container: String, stream: Stream, id: u32, tail: Option<Tail>) -> LogPipe {
        let _ = rustix::fs::fcntl_setfl(&fd, OFlags::NONBLOCK);
        LogPipe {
            fd,
            container,
            stream,
            id,
            lines: LineSplitter::default(),
            eof: false,
            tail,
        }
    }

    /// One read; forwards what it got (or the end of the stream). Returns
    /// how many bytes were read.
    pub fn read(&mut self, buf: &mut [u8]) -> usize {
        loop {
            match rustix::io::read(&self.fd, &mut *buf).map_err(Errno::from) {
                Ok(0) => {
                    self.end();
                    return 0;
                }
                Ok(n) => {
                    if let Some(t) = &self.tail {
                        t.push(&buf[..n]);
                    }
                    channel::output(&self.container, self.stream, self.id, &buf[..n], &mut self.lines);
                    return n;
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return 0,
                // Any other error will not go away: treat it as the end.
                Err(_) => {
                    self.end();
                    return 0;
                }
            }
        }
    }

    /// Reads what is in the pipe now, while less than [`EXIT_QUEUE`]
    /// waits for the host.
    pub fn read_now(&mut self, buf: &mut [u8]) {
        while !self.eof && channel::queued() < EXIT_QUEUE && self.read(buf) > 0 {}
    }

    fn end(&mut self) {
        self.eof = true;
        channel::output(&self.container, self.stream, self.id, &[], &mut self.lines);
    }
}
