//! An exec check or hook under way: the helper's report, then the
//! command's output and end (see `crate::exec`). Every read is
//! non-blocking and bounded; nothing here waits.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use rustix::event::PollFlags;
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};

use super::checks::Outcome;
use crate::exec::{self, Exec};
use crate::process;
use crate::sys::Errno;

/// The most of a command's output kept for its message (the kubelet's
/// exec prober reads 10 KiB); the rest is read and dropped, so a chatty
/// command never blocks on a full pipe.
const OUTPUT_MAX: usize = 10 * 1024;

/// The most of the helper's report read: one line of at most PIPE_BUF.
const REPORT_MAX: usize = rustix::pipe::PIPE_BUF;

#[derive(Debug)]
pub(super) struct ExecCheck {
    /// The helper's report while it is to come, and what came of it.
    report: Option<(OwnedFd, Vec<u8>)>,
    /// The command's process, once reported.
    pid: Option<i32>,
    output: Option<OwnedFd>,
    failure: OwnedFd,
    kept: Vec<u8>,
    /// argv joined with spaces, for messages.
    command: String,
}

impl ExecCheck {
    pub(super) fn new(e: Exec, argv: &[String]) -> ExecCheck {
        ExecCheck {
            report: Some((e.report, Vec::new())),
            pid: None,
            output: Some(e.output),
            failure: e.failure,
            kept: Vec::new(),
            command: argv.join(" "),
        }
    }

    /// The command's process, once the helper said which.
    pub(super) fn pid(&self) -> Option<i32> {
        self.pid
    }

    /// What to poll: the report until it came, then the output.
    pub(super) fn poll_fd(&self) -> Option<(BorrowedFd<'_>, PollFlags)> {
        match (&self.report, &self.output) {
            (Some((fd, _)), _) | (None, Some(fd)) => Some((fd.as_fd(), PollFlags::IN)),
            (None, None) => None,
        }
    }

    /// Its descriptor was ready: reads the report or the output. An
    /// outcome only when the helper failed to start the command.
    pub(super) fn ready(&mut self) -> Option<Outcome> {
        if let Some((fd, got)) = &mut self.report {
            let ended = read_some(fd, got, REPORT_MAX);
            match exec::parse_report(got) {
                Some(Ok(pid)) => {
                    self.pid = Some(pid);
                    self.report = None;
                }
                Some(Err(why)) => return Some(Outcome::Error(why)),
                None if ended => return Some(Outcome::Error("the exec helper died".into())),
                None => {}
            }
            return None;
        }
        if let Some(fd) = &self.output {
            if read_some(fd, &mut self.kept, OUTPUT_MAX) {
                self.output = None;
            }
        }
        None
    }

    /// The command's process ended with `code` (`signal`): the check's
    /// outcome, from its exit, its output and its failure pipe.
    pub(super) fn ended(&mut self, code: i32, signal: Option<i32>) -> Outcome {
        // What it wrote before it ended (a child it left behind may hold
        // the pipe open: nothing more is waited for).
        if let Some(fd) = &self.output {
            read_some(fd, &mut self.kept, OUTPUT_MAX);
        }
        let command = &self.command;
        // Its execve failed (not found, not executable, its working
        // directory): the kubelet's runtime reports an error, not an exit.
        if let Some(why) = process::exec_failure(&self.failure) {
            return Outcome::Error(why);
        }
        let text = String::from_utf8_lossy(&self.kept).trim_end().to_string();
        match (code, signal) {
            (0, _) => Outcome::Success,
            // Not ours (a timed-out check is dropped first): the kernel's,
            // as the container's PID namespace ended under it.
            (_, Some(libc::SIGKILL)) => Outcome::Error(format!("command {command:?} was killed")),
            _ if text.is_empty() => Outcome::Failure(format!("command {command:?} exited with code {code}")),
            _ => Outcome::Failure(text),
        }
    }

    /// The failure of a check that outlived its timeout, as the kubelet's
    /// exec prober words it.
    pub(super) fn timed_out(&self) -> String {
        format!("command {:?} timed out", self.command)
    }
}

/// Reads what is there, keeping up to `max` bytes in `kept` (the rest is
/// dropped); true at its end (EOF or an error). At most 16 reads a call: a
/// writer that never pauses cannot hold the loop.
fn read_some(fd: &OwnedFd, kept: &mut Vec<u8>, max: usize) -> bool {
    let mut buf = [0u8; 4096];
    for _ in 0..16 {
        match rustix::io::read(fd, &mut buf).map_err(Errno::from) {
            Ok(0) => return true,
            Ok(n) => {
                let room = max.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => return false,
            Err(_) => return true,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_is_read_whole_or_not_at_all() {
        assert_eq!(exec::parse_report(b"P12"), None);
        assert_eq!(exec::parse_report(b"P12\n"), Some(Ok(12)));
        assert_eq!(
            exec::parse_report(b"Ejoining the container's namespaces: ESRCH\n"),
            Some(Err("joining the container's namespaces: ESRCH".into()))
        );
        assert!(matches!(exec::parse_report(b"Pxx\n"), Some(Err(_))));
        assert!(matches!(exec::parse_report(b"\n"), Some(Err(_))));
    }

    #[test]
    fn output_is_kept_up_to_its_bound_and_the_rest_drained() {
        let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::NONBLOCK).unwrap();
        crate::sys::write_fd(&w, &[b'x'; 30_000]).unwrap();
        let mut kept = Vec::new();
        // 16 reads of 4 KiB drain it all; only OUTPUT_MAX stays.
        assert!(!read_some(&r, &mut kept, OUTPUT_MAX));
        assert_eq!(kept.len(), OUTPUT_MAX);
        drop(w);
        assert!(read_some(&r, &mut kept, OUTPUT_MAX));
        assert_eq!(kept.len(), OUTPUT_MAX);
    }
}
