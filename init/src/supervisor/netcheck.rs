//! Provisional: replaced by the real non-blocking HTTP/TCP check.
use alloc::string::String;
use pod1_manifest::plan::Handler;
use rustix::event::PollFlags;
use rustix::fd::{BorrowedFd, OwnedFd};

#[derive(Debug)]
pub struct NetCheck {
    fd: OwnedFd,
}

impl NetCheck {
    pub fn start(_handler: &Handler, _netns: Option<&str>) -> Result<NetCheck, String> {
        Err("not yet".into())
    }
    pub fn poll_fd(&self) -> (BorrowedFd<'_>, PollFlags) {
        (rustix::fd::AsFd::as_fd(&self.fd), PollFlags::IN)
    }
    pub fn advance(&mut self) -> Option<Result<(), String>> {
        None
    }
    pub fn timed_out(&self) -> String {
        "timed out".into()
    }
}
