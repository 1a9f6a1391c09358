//! Reading the channel from the guest: frames (`pod1_manifest::channel`)
//! decoded on a thread of their own and handed to `pod1 run`'s loop.
//!
//! Everything here comes from the guest and is treated as hostile: each
//! frame is checked against the format's bounds before its body is read,
//! so one frame never takes more than `MAX_FRAME` bytes, and frames go
//! through a bounded queue, so a guest that writes faster than `pod1 run`
//! prints waits (QEMU stops taking its bytes) instead of filling the
//! host's memory.

use std::io::{BufReader, Read};
use std::os::unix::net::UnixStream;
use std::sync::mpsc::SyncSender;

use pod1_manifest::channel::{Header, Kind, HEADER_LEN};
use pod1_manifest::events::{Record, Stream};

/// One decoded frame.
#[derive(Debug)]
pub enum Frame {
    /// An event, with the JSON it came as (for `--json`).
    Event(Record, String),
    /// Bytes a container wrote; empty when its stream ended.
    Output {
        /// The container.
        container: String,
        /// stdout or stderr.
        stream: Stream,
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
    /// The guest broke the format; the rest of the stream is discarded.
    Broken(String),
    /// The stream ended (QEMU exited).
    Closed,
}

/// Reads frames from `stream` until it ends, sending each through `tx`
/// wrapped by `wrap`. Stops early if the receiver is gone.
pub fn read_frames<M>(stream: UnixStream, tx: &SyncSender<M>, wrap: impl Fn(FromGuest) -> M) {
    let mut r = BufReader::with_capacity(1 << 18, stream);
    loop {
        let msg = match next(&mut r) {
            Ok(Some(frame)) => FromGuest::Frame(frame),
            Ok(None) => break,
            Err(why) => {
                let _ = tx.send(wrap(FromGuest::Broken(why)));
                // Keep reading (and dropping) so QEMU never stalls on a
                // guest that broke the format.
                let _ = std::io::copy(&mut r, &mut std::io::sink());
                break;
            }
        };
        if tx.send(wrap(msg)).is_err() {
            return;
        }
    }
    let _ = tx.send(wrap(FromGuest::Closed));
}

/// The next frame; `None` at a clean end of the stream, an error message
/// when the guest broke the format.
fn next(r: &mut impl Read) -> Result<Option<Frame>, String> {
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
    let h = Header::parse(&head).map_err(|e| e.to_string())?;
    let mut body = vec![0u8; h.body_len()];
    match read_full(r, &mut body) {
        Ok(n) if n == body.len() => {}
        Ok(_) => return Err("the stream ended inside a frame".into()),
        Err(e) => return Err(format!("reading the channel: {e}")),
    }
    let data = body.split_off(usize::from(h.name_len));
    let name = String::from_utf8_lossy(&body).into_owned();
    Ok(Some(match h.kind.stream() {
        Some(stream) => Frame::Output {
            container: name,
            stream,
            data,
            ms: h.ms,
        },
        None => {
            let raw = String::from_utf8_lossy(&data).into_owned();
            let rec = serde_json::from_str::<Record>(&raw)
                .map_err(|e| format!("an event the guest sent is not valid ({e}): {raw:.200}"))?;
            debug_assert_eq!(h.kind, Kind::Event);
            Frame::Event(rec, raw)
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

    fn frames(bytes: &[u8]) -> (Vec<Frame>, Option<String>) {
        let mut r = bytes;
        let mut out = Vec::new();
        loop {
            match next(&mut r) {
                Ok(Some(f)) => out.push(f),
                Ok(None) => return (out, None),
                Err(e) => return (out, Some(e)),
            }
        }
    }

    #[test]
    fn decodes_events_and_output() {
        let mut wire = Vec::new();
        let json = br#"{"event":"sandbox_ready","ms":3}"#;
        encode(&mut wire, Kind::Event, b"", json, 3);
        encode(&mut wire, Kind::Stderr, b"web", b"oops\n", 4);
        encode(&mut wire, Kind::Stderr, b"web", b"", 5);
        let (got, err) = frames(&wire);
        assert_eq!(err, None);
        assert!(
            matches!(&got[0], Frame::Event(Record { event: Event::SandboxReady {}, ms: 3 }, raw) if raw.as_bytes() == json)
        );
        assert!(
            matches!(&got[1], Frame::Output { container, stream: Stream::Stderr, data, ms: 4 }
            if container == "web" && data == b"oops\n")
        );
        assert!(matches!(&got[2], Frame::Output { data, .. } if data.is_empty()));
    }

    #[test]
    fn refuses_what_breaks_the_format() {
        let mut wire = Vec::new();
        encode(&mut wire, Kind::Stdout, b"c", b"fine", 0);
        let good = wire.len();
        // A header claiming more than a frame may hold: refused before any
        // body is read or allocated.
        let mut huge = Header {
            kind: Kind::Stdout,
            name_len: 1,
            data_len: 0,
            ms: 0,
        }
        .encode();
        huge[4..8].copy_from_slice(&((MAX_DATA as u32) * 1000).to_le_bytes());
        wire.extend_from_slice(&huge);
        let (got, err) = frames(&wire);
        assert_eq!(got.len(), 1);
        assert!(err.unwrap().contains("at most"));
        // A forged event that is not an event; a truncated frame.
        let mut bad = Vec::new();
        encode(&mut bad, Kind::Event, b"", b"{\"event\":\"pod_exited\"", 0);
        assert!(frames(&bad).1.unwrap().contains("not valid"));
        assert!(frames(&wire[..good - 1]).1.unwrap().contains("ended inside"));
        assert!(frames(&wire[..5]).1.unwrap().contains("header"));
        assert!(
            frames(b"{\"event\":\"pod_exited\",\"phase\":\"Succeeded\",\"exit_code\":0,\"ms\":1}\n")
                .1
                .is_some()
        );
    }
}
