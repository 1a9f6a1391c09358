//! A pull's progress on a terminal, one line per layer as `docker pull`
//! shows it; nothing when stderr is not a terminal (CI logs get the final
//! line only, from the caller).
//!
//! Hand-written: a redraw of a few lines with two ANSI sequences (cursor
//! up, erase line) does not warrant a progress-bar crate.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The lines of one pull.
#[derive(Debug)]
pub struct Progress {
    enabled: bool,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    lines: Vec<Line>,
    /// Lines drawn last time (the cursor sits below them).
    drawn: usize,
    last: Option<Instant>,
}

#[derive(Debug)]
struct Line {
    id: String,
    total: u64,
    done: u64,
    status: &'static str,
}

impl Progress {
    /// Drawn only when stderr is a terminal.
    pub fn new() -> Progress {
        Progress {
            enabled: std::io::stderr().is_terminal(),
            state: Mutex::default(),
        }
    }

    /// Adds a line for blob `digest` of `total` bytes; returns its index.
    pub fn add(&self, digest: &str, total: u64, status: &'static str) -> usize {
        let mut s = self.lock();
        let id = digest.split_once(':').map_or(digest, |(_, h)| h);
        s.lines.push(Line {
            id: id.chars().take(12).collect(),
            total,
            done: 0,
            status,
        });
        s.lines.len() - 1
    }

    /// `done` bytes of line `i` are in; redrawn at most every 100 ms.
    pub fn update(&self, i: usize, done: u64) {
        let mut s = self.lock();
        if let Some(l) = s.lines.get_mut(i) {
            l.done = done;
            l.status = "Downloading";
        }
        if s.last.map_or(true, |t| t.elapsed() >= Duration::from_millis(100)) {
            self.draw(&mut s);
        }
    }

    /// Line `i` has a final `status` ("Pull complete", "Already exists").
    pub fn finish(&self, i: usize, status: &'static str) {
        let mut s = self.lock();
        if let Some(l) = s.lines.get_mut(i) {
            l.done = l.total;
            l.status = status;
        }
        self.draw(&mut s);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn draw(&self, s: &mut State) {
        if !self.enabled {
            return;
        }
        let mut out = String::new();
        if s.drawn > 0 {
            out.push_str(&format!("\x1b[{}A", s.drawn));
        }
        for l in &s.lines {
            out.push_str("\x1b[2K");
            out.push_str(&render(l));
            out.push('\n');
        }
        s.drawn = s.lines.len();
        s.last = Some(Instant::now());
        // A terminal that went away is no reason to fail the pull.
        let _ = std::io::stderr().lock().write_all(out.as_bytes());
    }
}

impl Default for Progress {
    fn default() -> Self {
        Progress::new()
    }
}

fn render(l: &Line) -> String {
    if l.status != "Downloading" {
        return format!("{}: {}", l.id, l.status);
    }
    let width = 40u64;
    let filled = (l.done.min(l.total) * width)
        .checked_div(l.total)
        .unwrap_or(width)
        .min(width);
    let bar: String = (0..width)
        .map(|i| match i.cmp(&filled) {
            std::cmp::Ordering::Less => '=',
            std::cmp::Ordering::Equal => '>',
            std::cmp::Ordering::Greater => ' ',
        })
        .collect();
    format!(
        "{}: Downloading [{bar}] {}/{}",
        l.id,
        human(l.done),
        human(l.total)
    )
}

/// Sizes as docker prints them (decimal units).
pub fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n}B")
    } else {
        format!("{v:.1}{}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let l = Line {
            id: "0123456789ab".into(),
            total: 2_000_000,
            done: 1_000_000,
            status: "Downloading",
        };
        let r = render(&l);
        assert!(
            r.starts_with("0123456789ab: Downloading [===================="),
            "{r}"
        );
        assert!(r.ends_with("] 1.0MB/2.0MB"), "{r}");
        assert_eq!(human(999), "999B");
        assert_eq!(human(1_234_567_890), "1.2GB");
        let p = Progress {
            enabled: false,
            state: Mutex::default(),
        };
        let i = p.add("sha256:0123456789abcdef", 10, "Waiting");
        p.update(i, 5);
        p.finish(i, "Pull complete");
        assert_eq!(render(&p.lock().lines[0]), "0123456789ab: Pull complete");
    }
}
