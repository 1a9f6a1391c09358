//! What one boot has seen so far, and how `pod1 run` shows it: containers'
//! lines as `name | line` (stderr lines on stderr), or every event as a
//! JSON line with `--json`; the console's tail to explain a failure; the
//! exit code.
//!
//! Output is buffered: on a terminal each line is flushed as it comes, as a
//! person watching expects; otherwise lines are written in large blocks
//! and flushed whenever `pod1 run` has nothing more to read (see
//! [`Session::idle`]), so a pod printing megabytes costs a few system calls
//! per block instead of one per line, and a quiet pod's last line is never
//! held back.

use std::collections::{HashMap, VecDeque};
use std::io::{BufWriter, IsTerminal, Stderr, Stdout, Write};
use std::process::ExitStatus;
use std::time::Instant;

use pod1_manifest::channel::LineSplitter;
use pod1_manifest::events::{Event, Record, Stream};

use crate::cmd::run::exit;

/// Console lines kept to explain a failure.
const CONSOLE_TAIL: usize = 40;
/// Output streams (container × stdout/stderr) a session keeps a partial
/// line for; a guest naming more is ignored beyond this (a pod has at most
/// a few hundred containers).
const MAX_STREAMS: usize = 2048;
const COLORS: &[&str] = &["36", "33", "32", "35", "34", "31", "96", "93", "92", "95"];

/// How the session shows things (from `pod1 run`'s options).
#[derive(Debug, Clone, Copy)]
pub struct Display {
    /// `--json`: events as JSON lines instead of containers' output.
    pub json: bool,
    /// `--console`: the guest console on stderr.
    pub console: bool,
}

/// One buffered output, flushed per line on a terminal.
#[derive(Debug)]
struct Out<W: Write> {
    w: BufWriter<W>,
    per_line: bool,
}

impl<W: Write> Out<W> {
    fn new(w: W, terminal: bool) -> Self {
        Out {
            w: BufWriter::with_capacity(1 << 16, w),
            per_line: terminal,
        }
    }

    /// Writes `parts` and a newline. A reader that went away (`| head`) is
    /// not an error: the pod still runs to its end.
    fn line(&mut self, parts: &[&[u8]]) {
        for p in parts {
            let _ = self.w.write_all(p);
        }
        let _ = self.w.write_all(b"\n");
        if self.per_line {
            let _ = self.w.flush();
        }
    }

    fn flush(&mut self) {
        let _ = self.w.flush();
    }
}

/// The state of one boot.
#[derive(Debug)]
pub struct Session {
    display: Display,
    color: bool,
    colors: HashMap<String, &'static str>,
    width: usize,
    tail: VecDeque<String>,
    lines: HashMap<(String, Stream), LineSplitter>,
    stdout: Out<Stdout>,
    stderr: Out<Stderr>,
    /// The init's first event arrived.
    pub init_seen: bool,
    /// The stop request was sent.
    pub stop_sent: bool,
    pod_exit: Option<i32>,
    init_error: Option<String>,
    /// When the pod reported its end (or the init its failure).
    pub finished_at: Option<Instant>,
}

impl Session {
    /// A session writing to this process's stdout and stderr.
    pub fn new(display: Display) -> Self {
        let (out, err) = (std::io::stdout(), std::io::stderr());
        let color = out.is_terminal();
        let (out_tty, err_tty) = (out.is_terminal(), err.is_terminal());
        Session {
            display,
            color,
            colors: HashMap::new(),
            width: 0,
            tail: VecDeque::new(),
            lines: HashMap::new(),
            stdout: Out::new(out, out_tty),
            stderr: Out::new(err, err_tty),
            init_seen: false,
            stop_sent: false,
            pod_exit: None,
            init_error: None,
            finished_at: None,
        }
    }

    /// Nothing more to read for now: what is buffered goes out.
    pub fn idle(&mut self) {
        self.stdout.flush();
        self.stderr.flush();
    }

    /// A line of pod1's own on stderr, after everything printed before it.
    pub fn note(&mut self, msg: &str) {
        self.stdout.flush();
        self.stderr.line(&[b"pod1: ", msg.as_bytes()]);
        self.stderr.flush();
    }

    /// A line of the guest console.
    pub fn console(&mut self, line: String) {
        if self.display.console {
            self.stderr.line(&[line.as_bytes()]);
        }
        if self.tail.len() == CONSOLE_TAIL {
            self.tail.pop_front();
        }
        self.tail.push_back(line);
    }

    fn prefix(&mut self, name: &str) -> String {
        self.width = self.width.max(name.len());
        let n = self.colors.len();
        let code = *self
            .colors
            .entry(name.to_string())
            .or_insert(COLORS[n % COLORS.len()]);
        if self.color {
            format!("\x1b[{code}m{name:<w$} |\x1b[0m", w = self.width)
        } else {
            format!("{name:<w$} |", w = self.width)
        }
    }

    /// Bytes a container wrote (empty: its stream ended), split into lines.
    pub fn output(&mut self, container: String, stream: Stream, data: &[u8], ms: u64) {
        let key = (container, stream);
        if !self.lines.contains_key(&key) && self.lines.len() >= MAX_STREAMS {
            return;
        }
        // Out of the map while it runs, so the lines can be printed as the
        // splitter hands them out.
        let mut splitter = self.lines.remove(&key).unwrap_or_default();
        if data.is_empty() {
            splitter.finish(|l| self.log_line(&key.0, stream, l, ms));
        } else {
            splitter.feed(data, |l| self.log_line(&key.0, stream, l, ms));
            self.lines.insert(key, splitter);
        }
    }

    fn log_line(&mut self, container: &str, stream: Stream, line: &[u8], ms: u64) {
        if self.display.json {
            let rec = Record {
                event: Event::Log {
                    container: container.to_string(),
                    stream,
                    line: String::from_utf8_lossy(line).into_owned(),
                },
                ms,
            };
            if let Ok(json) = serde_json::to_string(&rec) {
                self.stdout.line(&[json.as_bytes()]);
            }
            return;
        }
        let p = self.prefix(container);
        let out_line = [p.as_bytes(), b" ", line];
        match stream {
            Stream::Stdout => self.stdout.line(&out_line),
            Stream::Stderr => self.stderr.line(&out_line),
        }
    }

    /// The end of every stream: unfinished lines are printed as they are.
    pub fn close_streams(&mut self) {
        let mut keys: Vec<(String, Stream)> = self.lines.keys().cloned().collect();
        keys.sort();
        for (container, stream) in keys {
            self.output(container, stream, &[], 0);
        }
    }

    /// An event from the init.
    pub fn event(&mut self, rec: Record, raw: &str) {
        if self.display.json {
            self.stdout.line(&[raw.as_bytes()]);
        }
        match rec.event {
            Event::InitStarted { .. } => self.init_seen = true,
            Event::ContainerExited {
                container,
                exit_code,
                reason,
                ..
            } if !self.display.json => {
                let p = self.prefix(&container);
                let why = reason.map(|r| format!(": {r}")).unwrap_or_default();
                self.stdout.flush();
                self.stderr.line(&[
                    p.as_bytes(),
                    format!(" exited with code {exit_code}{why}").as_bytes(),
                ]);
            }
            Event::PodExited { exit_code, .. } => {
                self.pod_exit = Some(exit_code);
                self.finished_at = Some(Instant::now());
            }
            Event::Error { message } => {
                self.init_error = Some(message);
                self.finished_at = Some(Instant::now());
            }
            _ => {}
        }
    }

    /// The exit code from what was reported so far.
    pub fn exit_code(&self) -> i32 {
        match (self.pod_exit, &self.init_error) {
            (_, Some(_)) => exit::POD1_FAILED,
            (Some(code), None) => code,
            (None, None) => exit::POD1_FAILED,
        }
    }

    /// The console's last lines on stderr (unless it was shown anyway).
    pub fn print_console_tail(&mut self) {
        if self.display.console || self.tail.is_empty() {
            return;
        }
        self.note("last lines of the guest console:");
        let tail: Vec<String> = self.tail.iter().map(|l| format!("  {l}")).collect();
        for l in tail {
            self.stderr.line(&[l.as_bytes()]);
        }
        self.stderr.flush();
    }

    /// The exit code once QEMU has exited, explaining any failure.
    pub fn finish(&mut self, status: ExitStatus, qemu_stderr: &str) -> i32 {
        self.close_streams();
        if let Some(msg) = self.init_error.clone() {
            self.print_console_tail();
            self.note(&format!("the init failed: {msg}"));
            return exit::POD1_FAILED;
        }
        if let Some(code) = self.pod_exit {
            self.idle();
            return code;
        }
        self.print_console_tail();
        let panicked = self.tail.iter().any(|l| l.contains("Kernel panic"));
        let why = if panicked {
            "the guest kernel panicked before the pod finished".to_string()
        } else if !self.init_seen {
            format!("the VM stopped ({status}) before the init started: check the kernel and initramfs")
        } else {
            format!("the VM stopped ({status}) before the pod finished")
        };
        let qemu = qemu_stderr.trim();
        if qemu.is_empty() {
            self.note(&why);
        } else {
            self.note(&format!("{why}; QEMU said: {qemu}"));
        }
        exit::POD1_FAILED
    }
}
