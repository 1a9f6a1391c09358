//! The wire format between the init and `pod1 run`: frames on a
//! virtio-serial port named [`PORT_NAME`] (or, as a fallback, the VM's
//! second serial port ttyS1).
//!
//! Each frame is a 20-byte [`Header`] followed by a body of
//! `name_len + data_len` bytes. An [`Kind::Event`] frame carries one
//! [`Record`](crate::events::Record) as JSON in its data (no name). An
//! output frame ([`Kind::Stdout`], [`Kind::Stderr`]) carries raw bytes a
//! container wrote, named by the container, with the id of the pipe they
//! came from (a restarted container gets new pipes, and an orphan may
//! still write to the old one: lines never mix across pipes); an output
//! frame with no data says that pipe has ended.
//!
//! A frame is at most [`MAX_FRAME`] bytes, what virtio-console takes in
//! one write(2), and the init writes whole frames only: a writer that dies
//! (the pod's init, killed) never leaves half a frame in front of the next
//! writer's.
//!
//! Output goes as the raw bytes the init read from a container's pipe, not
//! as lines: the init does one read and one write per chunk, whatever the
//! lines look like, and the host splits lines ([`LineSplitter`]), turning
//! them into the same `log` events the JSON form has. Every length is
//! bounded ([`MAX_NAME`], [`MAX_DATA`]), so a reader never buffers more than
//! one frame of [`MAX_FRAME`] bytes, whatever the guest sends.
//!
//! ```
//! use pod1_manifest::channel::{Header, Kind, HEADER_LEN};
//! let h = Header { kind: Kind::Stdout, name_len: 3, data_len: 6, pipe: 7, ms: 840 };
//! let bytes = h.encode();
//! assert_eq!(bytes.len(), HEADER_LEN);
//! assert_eq!(Header::parse(&bytes), Ok(h));
//! ```
//!
//! The host's requests travel the other way on the same port as JSON lines
//! ([`Request`](crate::events::Request)): they are few and small.

use alloc::vec::Vec;
use core::fmt;

use crate::events::Stream;

/// The name of the virtio-serial port (`virtserialport,name=…` on QEMU's
/// side, `/sys/class/virtio-ports/*/name` in the guest).
pub const PORT_NAME: &str = "org.pod1.channel";
/// The first byte of every frame.
pub const MAGIC: u8 = 0xd1;
/// Length of a frame header.
pub const HEADER_LEN: usize = 20;
/// The longest name a frame may carry (a container name is at most 63).
pub const MAX_NAME: usize = 255;
/// The largest frame, header included: what virtio-console takes in one
/// write(2) (drivers/char/virtio_console.c caps each write at 32 KiB).
pub const MAX_FRAME: usize = 32 * 1024;
/// The most data one frame may carry.
pub const MAX_DATA: usize = MAX_FRAME - HEADER_LEN - MAX_NAME;
/// A line longer than this is delivered in pieces of this size.
pub const MAX_LINE: usize = 16 * 1024;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// One event record, as JSON.
    Event = 1,
    /// Bytes a container wrote to its stdout.
    Stdout = 2,
    /// Bytes a container wrote to its stderr.
    Stderr = 3,
}

impl Kind {
    /// The output kind of a stream.
    pub fn of(stream: Stream) -> Kind {
        match stream {
            Stream::Stdout => Kind::Stdout,
            Stream::Stderr => Kind::Stderr,
        }
    }

    /// The stream of an output kind.
    pub fn stream(self) -> Option<Stream> {
        match self {
            Kind::Event => None,
            Kind::Stdout => Some(Stream::Stdout),
            Kind::Stderr => Some(Stream::Stderr),
        }
    }
}

/// A frame header (20 bytes, little-endian): magic, kind, name length
/// (u16), data length (u32), pipe id (u32), milliseconds since boot (u64).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// What the body holds.
    pub kind: Kind,
    /// Length of the name that starts the body.
    pub name_len: u16,
    /// Length of the data after the name.
    pub data_len: u32,
    /// Which pipe output came from (0 on events).
    pub pipe: u32,
    /// When the init read or made it (CLOCK_BOOTTIME, ms).
    pub ms: u64,
}

/// Why a header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// The first byte is not [`MAGIC`]: the stream is out of step.
    Magic(u8),
    /// An unknown kind.
    Kind(u8),
    /// A name longer than [`MAX_NAME`], or a name on an event.
    Name(u16),
    /// Data longer than [`MAX_DATA`].
    Data(u32),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Magic(b) => write!(f, "a frame starts with byte {b:#04x}, not {MAGIC:#04x}"),
            FrameError::Kind(k) => write!(f, "unknown frame kind {k}"),
            FrameError::Name(n) => write!(f, "a frame names {n} bytes (at most {MAX_NAME}, none on events)"),
            FrameError::Data(n) => write!(f, "a frame holds {n} bytes of data (at most {MAX_DATA})"),
        }
    }
}

impl Header {
    /// The header's bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0] = MAGIC;
        b[1] = self.kind as u8;
        b[2..4].copy_from_slice(&self.name_len.to_le_bytes());
        b[4..8].copy_from_slice(&self.data_len.to_le_bytes());
        b[8..12].copy_from_slice(&self.pipe.to_le_bytes());
        b[12..20].copy_from_slice(&self.ms.to_le_bytes());
        b
    }

    /// Reads and checks a header: every bound holds for the body that follows.
    pub fn parse(b: &[u8; HEADER_LEN]) -> Result<Header, FrameError> {
        if b[0] != MAGIC {
            return Err(FrameError::Magic(b[0]));
        }
        let kind = match b[1] {
            1 => Kind::Event,
            2 => Kind::Stdout,
            3 => Kind::Stderr,
            k => return Err(FrameError::Kind(k)),
        };
        let name_len = u16::from_le_bytes([b[2], b[3]]);
        let data_len = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
        let pipe = u32::from_le_bytes([b[8], b[9], b[10], b[11]]);
        let ms = u64::from_le_bytes([b[12], b[13], b[14], b[15], b[16], b[17], b[18], b[19]]);
        if usize::from(name_len) > MAX_NAME || (kind == Kind::Event && name_len != 0) {
            return Err(FrameError::Name(name_len));
        }
        if data_len as usize > MAX_DATA {
            return Err(FrameError::Data(data_len));
        }
        Ok(Header {
            kind,
            name_len,
            data_len,
            pipe,
            ms,
        })
    }

    /// Length of the body that follows the header.
    pub fn body_len(&self) -> usize {
        usize::from(self.name_len) + self.data_len as usize
    }

    /// Length of the whole frame.
    pub fn frame_len(&self) -> usize {
        HEADER_LEN + self.body_len()
    }
}

/// How many bytes of `queued` (frames back to back, starting at a frame
/// boundary) make up the whole frames that fit in `limit` bytes; 0 if
/// the first frame is longer (or `queued` does not start with a frame).
pub fn whole_frames(queued: &[u8], limit: usize) -> usize {
    let mut at = 0;
    while let Some(head) = queued.get(at..at + HEADER_LEN) {
        let Ok(h) = Header::parse(head.try_into().unwrap_or(&[0; HEADER_LEN])) else {
            break;
        };
        if at + h.frame_len() > limit.min(queued.len()) {
            break;
        }
        at += h.frame_len();
    }
    at
}

/// Appends one frame to `out`. `name` is cut to [`MAX_NAME`] bytes and
/// `data` must hold at most [`MAX_DATA`] bytes (longer data is cut: callers
/// send it in pieces).
pub fn encode(out: &mut Vec<u8>, kind: Kind, name: &[u8], pipe: u32, data: &[u8], ms: u64) {
    let name = &name[..name.len().min(MAX_NAME)];
    let data = &data[..data.len().min(MAX_DATA)];
    let h = Header {
        kind,
        name_len: name.len() as u16,
        data_len: data.len() as u32,
        pipe,
        ms,
    };
    out.extend_from_slice(&h.encode());
    out.extend_from_slice(name);
    out.extend_from_slice(data);
}

/// Splits one output stream into lines, as a log reader would: each line
/// without its `\n`; a line longer than [`MAX_LINE`] in pieces of that
/// size; what is left at the end of the stream as a last line. Holds at
/// most [`MAX_LINE`] bytes between calls.
#[derive(Debug, Default, Clone)]
pub struct LineSplitter {
    partial: Vec<u8>,
    /// The last thing delivered was a full piece: a newline right after it
    /// ends that piece rather than making an empty line of its own.
    cut: bool,
}

impl LineSplitter {
    /// Feeds bytes; calls `line` for every complete line (or full piece).
    pub fn feed(&mut self, mut data: &[u8], mut line: impl FnMut(&[u8])) {
        if self.cut && !data.is_empty() {
            self.cut = false;
            if data[0] == b'\n' {
                data = &data[1..];
            }
        }
        while !data.is_empty() {
            let room = MAX_LINE - self.partial.len();
            let window = &data[..data.len().min(room)];
            match window.iter().position(|&b| b == b'\n') {
                Some(nl) => {
                    if self.partial.is_empty() {
                        line(&window[..nl]);
                    } else {
                        self.partial.extend_from_slice(&window[..nl]);
                        line(&self.partial);
                        self.partial.clear();
                    }
                    data = &data[nl + 1..];
                }
                None if window.len() == room => {
                    // A full piece with no newline in it.
                    if self.partial.is_empty() {
                        line(window);
                    } else {
                        self.partial.extend_from_slice(window);
                        line(&self.partial);
                        self.partial.clear();
                    }
                    data = &data[room..];
                    self.cut = true;
                    if data.first() == Some(&b'\n') {
                        data = &data[1..];
                        self.cut = false;
                    }
                }
                None => {
                    self.partial.extend_from_slice(window);
                    data = &[];
                }
            }
        }
    }

    /// The stream ended: the unfinished line, if any, is the last.
    pub fn finish(&mut self, mut line: impl FnMut(&[u8])) {
        if !self.partial.is_empty() {
            line(&self.partial);
            self.partial.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    fn split(chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut s = LineSplitter::default();
        let mut out = Vec::new();
        for c in chunks {
            s.feed(c, |l| out.push(l.to_vec()));
        }
        s.finish(|l| out.push(l.to_vec()));
        out
    }

    #[test]
    fn headers_round_trip_and_bounds_hold() {
        let h = Header {
            kind: Kind::Event,
            name_len: 0,
            data_len: 70,
            pipe: 0,
            ms: 1 << 40,
        };
        assert_eq!(Header::parse(&h.encode()), Ok(h));
        let bad = |f: &dyn Fn(&mut [u8; HEADER_LEN])| {
            let mut b = Header {
                kind: Kind::Stderr,
                name_len: 3,
                data_len: 1,
                pipe: 9,
                ms: 0,
            }
            .encode();
            f(&mut b);
            Header::parse(&b)
        };
        assert_eq!(bad(&|b| b[0] = b'{'), Err(FrameError::Magic(b'{')));
        assert_eq!(bad(&|b| b[1] = 9), Err(FrameError::Kind(9)));
        assert_eq!(
            bad(&|b| b[2..4].copy_from_slice(&256u16.to_le_bytes())),
            Err(FrameError::Name(256))
        );
        assert_eq!(
            bad(&|b| b[1] = 1),
            Err(FrameError::Name(3)),
            "an event has no name"
        );
        let too_big = (MAX_DATA + 1) as u32;
        assert_eq!(
            bad(&|b| b[4..8].copy_from_slice(&too_big.to_le_bytes())),
            Err(FrameError::Data(too_big))
        );
    }

    #[test]
    fn encode_writes_header_name_data() {
        let mut out = vec![7u8];
        encode(&mut out, Kind::Stdout, b"web", 4, b"hello\n", 5);
        let h = Header::parse(out[1..21].try_into().unwrap()).unwrap();
        assert_eq!(
            (h.kind, h.name_len, h.data_len, h.pipe, h.ms),
            (Kind::Stdout, 3, 6, 4, 5)
        );
        assert_eq!(&out[21..], b"webhello\n");
        assert_eq!(h.frame_len(), 29);
        // The largest frame is exactly what one virtio-console write takes.
        let mut big = Vec::new();
        encode(&mut big, Kind::Stdout, &[b'n'; 300], 1, &[0; 40_000], 0);
        assert_eq!(big.len(), MAX_FRAME);
    }

    #[test]
    fn whole_frames_never_split_one() {
        let mut q = Vec::new();
        encode(&mut q, Kind::Event, b"", 0, &[b'{'; 100], 0);
        encode(&mut q, Kind::Stdout, b"c", 1, &[1; 1000], 0);
        encode(&mut q, Kind::Stdout, b"c", 1, &[1; 1000], 0);
        let (a, b) = (HEADER_LEN + 100, HEADER_LEN + 1001);
        assert_eq!(whole_frames(&q, usize::MAX), q.len());
        assert_eq!(whole_frames(&q, a + b + b - 1), a + b);
        assert_eq!(whole_frames(&q, a - 1), 0);
        assert_eq!(
            whole_frames(&q[..a + 5], usize::MAX),
            a,
            "a frame not yet all queued"
        );
        assert_eq!(whole_frames(b"{\"event\"", usize::MAX), 0);
    }

    #[test]
    fn lines_across_chunks() {
        assert_eq!(split(&[b"a\nb", b"c\n\nd"]), [&b"a"[..], b"bc", b"", b"d"]);
        assert_eq!(split(&[b"", b"x\n"]), [b"x"]);
        assert!(split(&[b""]).is_empty());
        assert_eq!(
            split(&[b"\r\n"]),
            [b"\r"],
            "a CR stays, as the container wrote it"
        );
    }

    #[test]
    fn long_lines_come_in_pieces_and_memory_stays_bounded() {
        let long = vec![b'x'; 2 * MAX_LINE + 10];
        let mut with_nl = long.clone();
        with_nl.push(b'\n');
        let got = split(&[&with_nl[..100], &with_nl[100..]]);
        assert_eq!(
            got.iter().map(Vec::len).collect::<Vec<_>>(),
            [MAX_LINE, MAX_LINE, 10]
        );
        let mut s = LineSplitter::default();
        for _ in 0..100 {
            s.feed(&[b'y'; 1000], |_| {});
            assert!(s.partial.len() < MAX_LINE);
        }
        // Exactly MAX_LINE then a newline is one line, not a line and an
        // empty one, wherever the chunks break.
        let mut exact = vec![b'z'; MAX_LINE];
        exact.extend_from_slice(b"\nnext\n");
        for cut in [MAX_LINE - 1, MAX_LINE, MAX_LINE + 1, exact.len()] {
            let got = split(&[&exact[..cut], &exact[cut..]]);
            assert_eq!(
                got.iter().map(Vec::len).collect::<Vec<_>>(),
                [MAX_LINE, 4],
                "cut at {cut}"
            );
        }
    }
}
