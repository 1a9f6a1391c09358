//! Termination messages, as the kubelet reads them when a container ends:
//! the last bytes of the file bound at `terminationMessagePath`, or, under
//! `FallbackToLogsOnError`, for a failed container whose file is empty,
//! the end of its log.

use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;

use rustix::fs::{OFlags, SeekFrom};

use crate::sys::{self, Errno};

/// The kubelet's log fallback: the last 80 lines...
const LOG_LINES: usize = 80;
/// ...read forward from their start up to 2048 bytes
/// (`MaxContainerTerminationMessageLogLines`, `...LogLength`).
const LOG_BYTES: usize = 2048;
/// How much of a run's output is kept for the fallback: enough for the
/// 80 lines to start inside it unless they are very long (then they are
/// taken from where the kept output starts).
const KEPT: usize = 16 * 1024;

/// The end of one run's output (stdout and stderr in the order read),
/// kept only for a container that falls back to its logs.
#[derive(Debug, Clone, Default)]
pub struct Tail(Rc<RefCell<Vec<u8>>>);

impl Tail {
    /// Adds what the container wrote, keeping the last [`KEPT`] bytes.
    pub fn push(&self, data: &[u8]) {
        let mut kept = self.0.borrow_mut();
        kept.extend_from_slice(data);
        if kept.len() > 2 * KEPT {
            let cut = kept.len() - KEPT;
            kept.drain(..cut);
        }
    }

    /// The kubelet's fallback message from what was kept.
    pub fn message(&self) -> String {
        let kept = self.0.borrow();
        let kept = &kept[kept.len().saturating_sub(KEPT)..];
        from_log(kept)
    }
}

/// The last [`LOG_LINES`] lines of `log`, at most [`LOG_BYTES`] of them
/// from their start.
fn from_log(log: &[u8]) -> String {
    // A final newline ends the last line rather than starting another.
    let body = log.strip_suffix(b"\n").unwrap_or(log);
    let start = body
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, b)| **b == b'\n')
        .nth(LOG_LINES - 1)
        .map_or(0, |(i, _)| i + 1);
    let lines = &log[start..];
    String::from_utf8_lossy(&lines[..lines.len().min(LOG_BYTES)]).into_owned()
}

/// The message of a container that ended with `code`: the last `max`
/// bytes of `file` (the kubelet's `tail.ReadAtMost`), else, with
/// `fallback` and a non-zero code, its log's tail; `None` when there is
/// nothing to say.
pub fn read(file: &str, max: usize, fallback: Option<&Tail>, code: i32) -> Option<String> {
    let data = match read_last(file, max) {
        Ok(d) => d,
        Err(Errno::ENOENT) => Vec::new(),
        Err(e) => return Some(format!("Error on reading termination log {file}: {e}")),
    };
    if !data.is_empty() {
        return Some(String::from_utf8_lossy(&data).into_owned());
    }
    match fallback {
        Some(tail) if code != 0 => Some(tail.message()).filter(|m| !m.is_empty()),
        _ => None,
    }
}

/// The last `max` bytes of `path`.
fn read_last(path: &str, max: usize) -> Result<Vec<u8>, Errno> {
    let errno = |e: sys::IoError| e.errno().unwrap_or(Errno::EIO);
    // Non-blocking: whatever the container made of the file, the init
    // does not wait on it.
    let fd = sys::open(path, OFlags::RDONLY | OFlags::NONBLOCK, 0).map_err(errno)?;
    let size = rustix::fs::fstat(&fd).map_err(Errno::from)?.st_size;
    let from = u64::try_from(size).unwrap_or(0).saturating_sub(max as u64);
    rustix::fs::seek(&fd, SeekFrom::Start(from)).map_err(Errno::from)?;
    // At most `max` bytes, whatever is still writing to it.
    let mut out = alloc::vec![0u8; max];
    let mut got = 0;
    while got < max {
        match rustix::io::read(&fd, &mut out[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    out.truncate(got);
    Ok(out)
}

/// Empties `path` for a new run (a container's new instance gets a new,
/// empty file from the kubelet).
pub fn reset(path: &str) {
    if let Err(e) = sys::open(path, OFlags::WRONLY | OFlags::TRUNC | OFlags::NONBLOCK, 0) {
        if !e.is_not_found() {
            crate::console::debug(&format!("emptying {path}: {e}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_fallback_takes_the_last_80_lines_up_to_2048_bytes() {
        let log: String = (1..=100).map(|i| format!("line {i}\n")).collect();
        let m = from_log(log.as_bytes());
        assert!(m.starts_with("line 21\n") && m.ends_with("line 100\n"), "{m}");
        assert_eq!(from_log(b"one\ntwo"), "one\ntwo");
        // Long lines: 2048 bytes from the start of the last 80.
        let long: String = (0..100).map(|i| format!("{i:0>99}\n")).collect();
        let m = from_log(long.as_bytes());
        assert_eq!(m.len(), 2048);
        assert!(m.starts_with(&format!("{:0>99}\n", 20)), "{m}");
    }

    #[test]
    fn a_tail_keeps_the_end() {
        let t = Tail::default();
        for i in 0..10_000 {
            t.push(format!("{i}\n").as_bytes());
        }
        let m = t.message();
        assert!(m.starts_with("9920\n") && m.ends_with("9999\n"), "{m}");
    }

    #[test]
    fn the_file_wins_and_the_fallback_needs_a_failure() {
        let dir = std::env::temp_dir().join(format!("pod1-message-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("msg");
        let path = file.to_str().unwrap();
        let tail = Tail::default();
        tail.push(b"from the log\n");
        std::fs::write(&file, "x".repeat(5000) + "end").unwrap();
        let m = read(path, 4096, Some(&tail), 1).unwrap();
        assert_eq!((m.len(), m.ends_with("xend")), (4096, true));
        reset(path);
        assert_eq!(std::fs::read(&file).unwrap().len(), 0);
        assert_eq!(
            read(path, 4096, Some(&tail), 1).as_deref(),
            Some("from the log\n")
        );
        assert_eq!(read(path, 4096, Some(&tail), 0), None);
        assert_eq!(read(path, 4096, None, 1), None);
        assert_eq!(
            read(&format!("{path}-missing"), 4096, Some(&tail), 2).as_deref(),
            Some("from the log\n")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
