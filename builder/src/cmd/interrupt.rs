//! Ctrl-C while `pod1 run` builds the pod (a pull can take minutes). The
//! run's signals stay blocked in every thread, as `pod1 run` needs for its
//! VM; while the build lasts, one thread takes them with a short
//! `sigtimedwait` and ends the run, and once the build is over it hands any
//! late one back, pending, to the VM's signal thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use nix::sys::signal::{SigSet, Signal};

/// While this lives, a signal of the set calls `on_signal` (which should
/// end the process); dropped, the watch stops within 50 ms.
#[derive(Debug)]
pub struct Building {
    done: Arc<AtomicBool>,
}

impl Building {
    /// Watches `signals` (blocked in the calling thread and so inherited).
    pub fn watch(signals: SigSet, on_signal: impl Fn(Signal) + Send + 'static) -> Building {
        let done = Arc::new(AtomicBool::new(false));
        let seen = done.clone();
        std::thread::spawn(move || loop {
            let timeout = libc::timespec {
                tv_sec: 0,
                tv_nsec: 50_000_000,
            };
            // SAFETY: the set and the timespec are valid for the call, and
            // a null siginfo pointer is allowed.
            let sig = unsafe { libc::sigtimedwait(signals.as_ref(), std::ptr::null_mut(), &timeout) };
            let signal = Signal::try_from(sig).ok();
            match (seen.load(Ordering::SeqCst), signal) {
                (false, Some(s)) => on_signal(s),
                // Too late for the build: pending again, for the VM's thread.
                (true, Some(s)) => {
                    let _ = nix::sys::signal::kill(nix::unistd::getpid(), s);
                    return;
                }
                (true, None) => return,
                (false, None) => {}
            }
        });
        Building { done }
    }
}

impl Drop for Building {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
    }
}
