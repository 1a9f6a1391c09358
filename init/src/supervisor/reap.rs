//! Reaping: every child that ends is attributed (a container's run, a
//! check's command, a child given up, an orphan), and the pod's end.

use alloc::format;

use pod1_manifest::events::{Event, Phase};
use rustix::event::{PollFd, PollFlags};

use super::{policy, State, Supervisor};
use crate::channel;
use crate::console::{self, now_ms};
use crate::process;
use crate::signals::read_signal;
use crate::sys::{self, Errno, WaitStatus};

impl Supervisor {
    /// Reaps every child that has ended, attributing each exit.
    pub(super) fn reap(&mut self) {
        loop {
            let (pid, code, signal) = match sys::waitpid(None, true) {
                Ok(WaitStatus::Exited(pid, code)) => (pid, code, None),
                Ok(WaitStatus::Signaled(pid, sig, _)) => (pid, 128 + sig.0, Some(sig.0)),
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
                Err(Errno::EINTR) => continue,
                Ok(_) => continue,
                Err(e) => {
                    console::log(&format!("waitpid: {e}"));
                    return;
                }
            };
            self.attribute(pid, code, signal);
        }
    }

    pub(super) fn attribute(&mut self, pid: i32, code: i32, signal: Option<i32>) {
        if let Some(k) = self.aborted.iter().position(|p| *p == pid) {
            self.aborted.swap_remove(k);
            return;
        }
        if self.check_exited(pid, code, signal) {
            return;
        }
        // A parked child that died before its start (killed from outside).
        if let Some(i) = self
            .ctrs
            .iter()
            .position(|c| matches!(c.state, State::Created { pid: p, .. } if p == pid))
        {
            let reason = format!("the container process ended (exit {code}) before it was started");
            self.exited(i, code, signal, Some(reason));
            return;
        }
        let found = self.ctrs.iter().position(|c| match c.state {
            State::Running { pid: p, .. } => p == pid,
            _ => false,
        });
        let Some(i) = found else {
            self.unclaimed_exit(pid, code, signal);
            self.orphans += 1;
            console::debug(&format!("reaped orphan {pid} (exit {code})"));
            return;
        };
        // What failed between its start and execve, if anything did: the
        // container never ran its command (ContainerCannotRun).
        let reason = match &self.ctrs[i].state {
            State::Running { exec, .. } => process::exec_failure(exec),
            _ => None,
        };
        // Everything the process wrote is in its pipes by now: it goes
        // ahead of the exit event.
        let name = self.ctrs[i].plan.name.clone();
        for p in self.pipes.iter_mut().filter(|p| p.container == name) {
            p.read_now(&mut self.buf);
        }
        self.pipes.retain(|p| !p.eof);
        if let Some(why) = &reason {
            console::debug(&format!("container {name}: did not run its command: {why}"));
        }
        self.exited(i, code, signal, reason);
    }

    /// The end: no container will run again. Kill what is left (orphans in a
    /// shared PID namespace), reap everything, drain all output, report.
    pub(super) fn finish(mut self) -> (Phase, i32) {
        if rustix::process::getpid().is_init() {
            // PID 1 of the pod's PID namespace (or the VM): -1 means
            // everything in it but us.
            // SAFETY: kill(2) takes no pointers (rustix has no kill(-1)).
            let _ = unsafe { libc::kill(-1, libc::SIGKILL) };
        }
        // Reap everything; a child that outlives the SIGKILL by 10 s (stuck
        // in the kernel) is given up. Waits on the signalfd for SIGCHLD, so
        // the give-up holds (a blocking waitpid would never return).
        let give_up = now_ms() + 10_000;
        loop {
            match sys::waitpid(None, true) {
                Ok(WaitStatus::Exited(pid, code)) => self.attribute(pid, code, None),
                Ok(WaitStatus::Signaled(pid, sig, _)) => self.attribute(pid, 128 + sig.0, Some(sig.0)),
                Ok(WaitStatus::StillAlive) => {
                    let now = now_ms();
                    if now >= give_up {
                        console::log("children still alive 10 s after SIGKILL: not waiting for them");
                        break;
                    }
                    let mut fds = [PollFd::new(&self.sigfd, PollFlags::IN)];
                    let _ = rustix::event::poll(&mut fds, Some(&sys::timespec_ms(give_up - now)));
                    while read_signal(&self.sigfd).is_some() {}
                }
                Err(Errno::EINTR) | Ok(_) => {}
                Err(_) => break,
            }
        }
        // All writers are gone: read every pipe to its end, as fast as the
        // host takes it. A pipe that yields nothing for 5 s (a writer that
        // escaped the kill) is given up, and so is a host that takes
        // nothing for a minute.
        let mut idle_since = now_ms();
        while !self.pipes.is_empty() && now_ms() < idle_since + 5_000 {
            if !channel::has_room() {
                // A host that reads nothing for that long will not read
                // the rest either: stop waiting for it.
                if !channel::wait_room(crate::power::HOST_WAIT_MS) {
                    break;
                }
                idle_since = now_ms();
                continue;
            }
            let mut got = 0;
            for p in &mut self.pipes {
                got += p.read(&mut self.buf);
            }
            self.pipes.retain(|p| !p.eof);
            if got > 0 {
                idle_since = now_ms();
            } else if !self.pipes.is_empty() {
                sys::sleep_ms(5);
            }
        }
        if self.orphans > 0 {
            console::debug(&format!("reaped {} orphaned processes", self.orphans));
        }
        self.pod.cgroups.remove();
        let (phase, code) = policy::result(&self.finals, self.stopped);
        // Whatever the containers' codes after SIGTERM: a pod ended by its
        // deadline did not finish (124, as `pod1 run --timeout`).
        let code = if self.deadline_exceeded {
            policy::DEADLINE_EXIT_CODE
        } else {
            code
        };
        channel::event(Event::PodExited {
            phase,
            exit_code: code,
            deadline_exceeded: self.deadline_exceeded,
        });
        (phase, code)
    }
}
