//! Reading the channel from the guest: frames (`pod1_manifest::channel`)
//! decoded on a thread of their own and handed to `pod1 run`'s loop.
//!
//! Everything here comes from the guest and is treated as hostile: each
//! frame is checked against the format's bounds before its body is read,
//! so one frame never takes more than `MAX_FRAME` bytes, and at most
//! [`IN_FLIGHT`] frames wait for `pod1 run`'s loop, so a guest that writes
//! faster than `pod1 run` prints waits (QEMU stops taking its bytes)
//! instead of filling the host's memory.

use std::io::{BufReader, Read};
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{Sender, SyncSender};

use pod1_manifest::channel::{FrameError, Header, Kind, HEADER_LEN};
use pod1_manifest::events::{Record, Stream};

/// Frames a reader may have handed over that the loop has not handled yet.
pub const IN_FLIGHT: usize = 64;

/// One decoded frame.
#[derive(Debug)]
pub enum Frame {
    /// An event.
    Event(Record),
    /// Bytes a container wrote; empty when that pipe ended.
    Output {
        /// The container.
        container: String,
        /// stdout or stderr.
        stream: Stream,
        /// The pipe they came from (its number in the pod).
        pipe: u32,
        /// The bytes.
        data: Vec<u8>,
        /// When the init read them (ms since boot).
        ms: u64,
    },
}

/// What the reader reports.
#[derive(Debug)]
pub enum FromGuest {
    /// A frame.
    Frame(Frame),
    /// A frame that was skipped (an event this pod1 cannot read).
    Skipped(String),
    /// The guest broke the format; the rest of the stream is discarded.
    Broken(String),
    /// The stream ended (QEMU exited).
    Closed,
}

/// Reads frames from `stream` until it ends, sending each through `tx`
/// wrapped by `wrap`. Before each frame (or skipped frame) it takes a slot
/// (`slots`, a channel of [`IN_FLIGHT`] places): the loop frees one for
/// each it has handled, so the reader waits while [`IN_FLIGHT`] wait.
/// Stops early if the loop is gone.
pub fn read_frames<M>(
    stream: UnixStream,
    slots: SyncSender<()>,
    tx: &Sender<M>,
    wrap: impl Fn(FromGuest) -> M,
) {
    let mut r = BufReader::with_capacity(1 << 16, stream);
    let mut first = true;
    loop {
        let msg = match next(&mut r, first) {
            Ok(Some(Ok(frame))) => FromGuest::Frame(frame),
            Ok(Some(Err(skipped))) => FromGuest::Skipped(skipped),
            Ok(None) => break,
            Err(why) => {
                let _ = tx.send(wrap(FromGuest::Broken(why)));
                // Keep reading (and dropping) so QEMU never stalls on a
                // guest that broke the format.
                let _ = std::io::copy(&mut r, &mut std::io::sink());
                break;
            }
        };
        first = false;
        if slots.send(()).is_err() || tx.send(wrap(msg)).is_err() {
            return;
        }
    }
    let _ = tx.send(wrap(FromGuest::Closed));
}

/// The next frame; `None` at a clean end of the stream, `Some(Err)` for a
/// frame skipped whole, an error message when the guest broke the format
/// (`first`: nothing was read before).
fn next(r: &mut impl Read, first: bool) -> Result<Option<Result<Frame, String>>, String> {
    let mut head = [0u8; HEADER_LEN];
    match read_full(r, &mut head) {
        Ok(0) => return Ok(None),
        // QEMU closed its end with bytes of ours unread (a request to the
        // device the guest does not use): an end like any other.
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(None),
        Ok(HEADER_LEN) => {}
        Ok(_) => return Err("the stream ended inside a frame header".into()),
        Err(e) => return Err(format!("reading the channel: {e}")),
    }
    let h = match Header::parse(&head) {
        Ok(h) => h,
        // The init before this format wrote JSON lines on ttyS1.
        Err(FrameError::Magic(b'{')) if first => return Err(
            "the guest sends JSON lines, not frames: the initramfs was built by an older pod1; rebuild it"
                .into(),
        ),
        Err(e) => return Err(e.to_string()),
    };
    let mut body = vec![0u8; h.body_len()];
    match read_full(r, &mut body) {
        Ok(n) if n == body.len() => {}
        Ok(_) => return Err("the stream ended inside a frame".into()),
        Err(e) => return Err(format!("reading the channel: {e}")),
    }
    let data = body.split_off(usize::from(h.name_len));
    let name = String::from_utf8_lossy(&body).into_owned();
    Ok(Some(match h.kind.stream() {
        Some(stream) => Ok(Frame::Output {
            container: name,
            stream,
            pipe: h.pipe,
            data,
            ms: h.ms,
        }),
        None => {
            debug_assert_eq!(h.kind, Kind::Event);
            // The frame's bounds held: skip an event this pod1 cannot
            // read (another version's) and go on with the next frame.
            serde_json::from_slice::<Record>(&data)
                .map(Frame::Event)
                .map_err(|e| {
                    format!(
                        "skipped an event it cannot read ({e}): {:.200}",
                        String::from_utf8_lossy(&data)
                    )
                })
        }
    }))
}

/// Reads until `buf` is full or the stream ends; how many bytes it got.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pod1_manifest::channel::{encode, MAX_DATA};
    use pod1_manifest::events::Event;

    /// The frames in `bytes`, the skipped ones, and the error that ended them.
    fn frames(bytes: &[u8]) -> (Vec<Frame>, Vec<String>, Option<String>) {
        let mut r = bytes;
        let (mut out, mut skipped) = (Vec::new(), Vec::new());
        loop {
            match next(&mut r, out.is_empty() && skipped.is_empty()) {
                Ok(Some(Ok(f))) => out.push(f),
                Ok(Some(Err(s))) => skipped.push(s),
                Ok(None) => return (out, skipped, None),
                Err(e) => return (out, skipped, Some(e)),
            }
        }
    }

    #[test]
    fn decodes_events_and_output() {
        let mut wire = Vec::new();
        let json = br#"{"event":"sandbox_ready","ms":3}"#;
        encode(&mut wire, Kind::Event, b"", 0, json, 3);
        encode(&mut wire, Kind::Stderr, b"web", 2, b"oops\n", 4);
        encode(
            &mut wire,
            Kind::Event,
            b"",
            0,
            br#"{"event":"from_the_future","ms":4}"#,
            4,
        );
        encode(&mut wire, Kind::Stderr, b"web", 2, b"", 5);
        let (got, skipped, err) = frames(&wire);
        assert_eq!(err, None);
        assert!(matches!(
            &got[0],
            Frame::Event(Record {
                event: Event::SandboxReady {},
                ms: 3
            })
        ));
        assert!(
            matches!(&got[1], Frame::Output { container, stream: Stream::Stderr, pipe: 2, data, ms: 4 }
            if container == "web" && data == b"oops\n")
        );
        assert!(matches!(&got[2], Frame::Output { data, .. } if data.is_empty()));
        assert_eq!(
            skipped.len(),
            1,
            "an unknown event is skipped, the rest still read"
        );
    }

    #[test]
    fn refuses_what_breaks_the_format() {
        let mut wire = Vec::new();
        encode(&mut wire, Kind::Stdout, b"c", 1, b"fine", 0);
        let good = wire.len();
        // A header claiming more than a frame may hold: refused before any
        // body is read or allocated.
        let mut huge = Header {
            kind: Kind::Stdout,
            name_len: 1,
            data_len: 0,
            pipe: 1,
            ms: 0,
        }
        .encode();
        huge[4..8].copy_from_slice(&((MAX_DATA as u32) * 1000).to_le_bytes());
        wire.extend_from_slice(&huge);
        let (got, _, err) = frames(&wire);
        assert_eq!(got.len(), 1);
        assert!(err.unwrap().contains("at most"));
        // A truncated frame; the JSON lines of an older init.
        assert!(frames(&wire[..good - 1]).2.unwrap().contains("ended inside"));
        assert!(frames(&wire[..5]).2.unwrap().contains("header"));
        let old = b"{\"event\":\"pod_exited\",\"phase\":\"Succeeded\",\"exit_code\":0,\"ms\":1}\n";
        assert!(frames(old).2.unwrap().contains("rebuild it"));
    }
}
