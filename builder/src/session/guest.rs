//! What comes from the guest, on threads of their own: the console's
//! lines and the frames of each channel device, handed to `pod1 run`'s loop
//! as [`Msg`]s; and how the loop hands each to the [`Session`].

use std::io::{BufRead, BufReader, Read};
use std::os::unix::net::UnixStream;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Sender, SyncSender};
use std::sync::Arc;

use nix::sys::signal::Signal;
use pod1_manifest::events::{Event, Request};

use super::Session;
use crate::channel::{read_frames, Frame, FromGuest};

/// Console lines read but not yet handled beyond which the console's reader
/// drops lines rather than stop reading (QEMU would then stop taking the
/// guest's console output, and the init writes its log there).
pub const CONSOLE_PENDING: usize = 10_000;

/// One message for `pod1 run`'s loop.
#[derive(Debug)]
pub enum Msg {
    /// A line of the guest console.
    Console(String),
    /// The console's stream ended.
    ConsoleClosed,
    /// From the reader of channel device N (0: ttyS1, 1: the virtio port).
    Guest(usize, FromGuest),
    /// QEMU exited.
    QemuExited(ExitStatus),
    /// `pod1 run` got a signal.
    Signal(Signal),
    /// A hostPath volume's virtiofsd died while QEMU ran: the sentence to print.
    DaemonDied(String),
}

/// One message from a reader thread. The guest speaks on one of the two
/// channel devices: the first to deliver a frame is the channel, and
/// whatever comes on the other from then on is ignored (the init holds
/// both, so no container can write to either; this keeps it so should one
/// find a way).
pub fn handle(s: &mut Session, msg: Msg, open_streams: &mut usize, request: &impl Fn(Request)) {
    let msg = match msg {
        Msg::Guest(_, FromGuest::Closed) | Msg::ConsoleClosed => {
            *open_streams -= 1;
            return;
        }
        Msg::Guest(device, g) => {
            if matches!(g, FromGuest::Frame(_)) {
                s.channel.get_or_insert(device);
            }
            match s.channel {
                Some(d) if d != device => return,
                _ => g,
            }
        }
        Msg::Console(line) => return s.console(line),
        Msg::QemuExited(_) | Msg::Signal(_) | Msg::DaemonDied(_) => return,
    };
    match msg {
        FromGuest::Frame(Frame::Event(rec)) => {
            let ended = matches!(rec.event, Event::PodExited { .. });
            s.event(rec);
            // Everything before it has been read: the VM may power off.
            if ended {
                request(Request::Ack);
            }
        }
        FromGuest::Frame(Frame::Output {
            container,
            stream,
            pipe,
            data,
            ms,
        }) => s.output(&container, stream, pipe, &data, ms),
        FromGuest::Skipped(why) => s.note(&format!("the guest's channel: {why}")),
        // Nothing can come from the guest any more, the pod's end included:
        // the loop ends the run.
        FromGuest::Broken(why) => {
            s.note(&format!("ignoring the rest of the guest's channel: {why}"));
            s.channel_broken = true;
        }
        FromGuest::Closed => {}
    }
}

/// One thread per stream: the console's lines, and the frames of each
/// channel device.
pub fn spawn_readers(
    streams: Vec<UnixStream>,
    tx: &Sender<Msg>,
    slots: &SyncSender<()>,
    console_pending: &Arc<AtomicUsize>,
) {
    let mut streams = streams.into_iter();
    if let Some(console) = streams.next() {
        let (tx, pending) = (tx.clone(), Arc::clone(console_pending));
        std::thread::spawn(move || {
            // Bounded like everything from the guest: a line longer than
            // this is cut (the console is for people, kernel lines are
            // short), and lines beyond CONSOLE_PENDING are dropped.
            let mut r = BufReader::new(console);
            let mut line = Vec::new();
            loop {
                line.clear();
                match (&mut r).take(4096).read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                if pending.load(Ordering::Relaxed) >= CONSOLE_PENDING {
                    continue;
                }
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end_matches(['\n', '\r']).to_string();
                pending.fetch_add(1, Ordering::Relaxed);
                if tx.send(Msg::Console(text)).is_err() {
                    return;
                }
            }
            let _ = tx.send(Msg::ConsoleClosed);
        });
    }
    for (device, stream) in streams.enumerate() {
        let (tx, slots) = (tx.clone(), slots.clone());
        std::thread::spawn(move || read_frames(stream, slots, &tx, |g| Msg::Guest(device, g)));
    }
}
