//! What one boot has seen so far, and how `pod1 run` shows it: containers'
//! lines as `name | line` (stderr lines on stderr), or every event as a
//! JSON line with `--json`; the console's tail to explain a failure; the
//! exit code; the pod's status ([`status`]), folded from the same events.
//!
//! Output is buffered: on a terminal each line is flushed as it comes, as a
//! person watching expects; otherwise lines are written in large blocks
//! and flushed whenever `pod1 run` has nothing more to read, and at least
//! every 100 ms (see [`Session::idle`]), so a pod printing megabytes costs
//! a few system calls per block instead of one per line, and a quiet pod's
//! last line is never held back. When stdout and stderr are the same file
//! (`>log 2>&1`), both go through one buffer, so their lines keep their
//! order in it.

use std::collections::{HashMap, VecDeque};
use std::io::{BufWriter, IsTerminal, Stderr, Stdout, Write};
use std::process::ExitStatus;
use std::time::{Instant, SystemTime};

use pod1_manifest::channel::LineSplitter;
use pod1_manifest::events::{Event, HookKind, ProbeKind, Record, Stream};

use crate::cmd::run::exit;

pub mod guest;
pub mod status;
pub mod status_file;

use status::{Cut, Fold, PodStatus, REFUSED_EXIT_CODE};

/// Console lines kept to explain a failure.
const CONSOLE_TAIL: usize = 40;
/// Pipes a session keeps a partial line for, and names it keeps a colour
/// for; a guest naming more is ignored beyond this (a pod has at most a
/// few hundred containers, each with two pipes per run).
const MAX_STREAMS: usize = 2048;
/// The widest name the prefixes are padded to (a container name has at
/// most 63 characters).
const MAX_WIDTH: usize = 63;
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
pub struct Session<O: Write = Stdout, E: Write = Stderr> {
    display: Display,
    color: bool,
    colors: HashMap<String, &'static str>,
    width: usize,
    tail: VecDeque<String>,
    /// The partial line of each pipe, by its number, with its container
    /// and stream.
    lines: HashMap<u32, (String, Stream, LineSplitter)>,
    stdout: Out<O>,
    stderr: Out<E>,
    /// stdout and stderr are one file: stderr's lines go through stdout's buffer.
    one_file: bool,
    /// The init's first event arrived.
    pub init_seen: bool,
    /// The stop request was sent.
    pub stop_sent: bool,
    /// Which channel device the guest speaks on (the first to deliver).
    pub channel: Option<usize>,
    /// The guest broke the channel's format.
    pub channel_broken: bool,
    pod_exit: Option<i32>,
    init_error: Option<String>,
    /// When the pod reported its end (or the init its failure).
    pub finished_at: Option<Instant>,
    /// The pod's status so far (when `pod1 run` needs it).
    status: Option<Fold>,
    /// Why the run ended, when the pod did not report its end.
    pub cut: Option<Cut>,
    /// The published ports, shown once the pod's network is up.
    pub published: Vec<String>,
}

/// `text` with control characters escaped, for pod1's own lines about
/// what the guest said (a reason, a message).
fn printable(text: &str) -> String {
    text.chars()
        .flat_map(|c| match c.is_control() {
            true => c.escape_default().collect::<Vec<_>>(),
            false => vec![c],
        })
        .collect()
}

/// Free text from the guest (a probe's output, a hook's error) for one of
/// pod1's lines: cut as the status cuts a message, its trailing blanks
/// (a command's last newline) dropped, its control characters escaped,
/// so that it stays on its line.
fn guest_text(text: &str) -> String {
    printable(status::bounded_message(text).trim_end())
}

/// `what`, then `: ` and the guest's `message` unless it is empty.
fn with_message(what: &str, message: &str) -> String {
    match guest_text(message) {
        m if m.is_empty() => what.to_string(),
        m => format!("{what}: {m}"),
    }
}

/// The line for a probe's new result, in the kubelet's words for a
/// failure (`Liveness probe failed: ...`, its `Unhealthy` event); none for
/// a liveness probe that passes, which changes nothing.
fn probe_line(probe: ProbeKind, success: bool, message: &str) -> Option<String> {
    let failed = || with_message(&format!("{} probe failed", probe.title()), message);
    match (probe, success) {
        (ProbeKind::Readiness, true) => Some("ready".into()),
        (ProbeKind::Readiness, false) => Some(format!("not ready: {}", failed())),
        (ProbeKind::Startup, true) => Some("started (startup probe passed)".into()),
        (ProbeKind::Liveness, true) => None,
        (ProbeKind::Startup | ProbeKind::Liveness, false) => Some(failed()),
    }
}

impl Session {
    /// A session writing to this process's stdout and stderr, folding the
    /// pod's status into `status` if given.
    pub fn new(display: Display, status: Option<Fold>) -> Self {
        let (out, err) = (std::io::stdout(), std::io::stderr());
        let (out_tty, err_tty) = (out.is_terminal(), err.is_terminal());
        let file = |fd: u32| {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(format!("/proc/self/fd/{fd}")).map(|m| (m.dev(), m.ino()))
        };
        let one_file = matches!((file(1), file(2)), (Ok(a), Ok(b)) if a == b);
        let mut s = Session::with((out, out_tty), (err, err_tty), one_file, display);
        s.status = status;
        s
    }
}

impl<O: Write, E: Write> Session<O, E> {
    /// A session writing to `out` and `err`, each with whether it is a
    /// terminal (colours on stdout's, a flush per line on each).
    fn with(out: (O, bool), err: (E, bool), one_file: bool, display: Display) -> Self {
        Session {
            display,
            color: out.1,
            colors: HashMap::new(),
            width: 0,
            tail: VecDeque::new(),
            lines: HashMap::new(),
            stdout: Out::new(out.0, out.1),
            stderr: Out::new(err.0, err.1),
            one_file,
            init_seen: false,
            stop_sent: false,
            channel: None,
            channel_broken: false,
            pod_exit: None,
            init_error: None,
            finished_at: None,
            status: None,
            cut: None,
            published: Vec::new(),
        }
    }

    /// Nothing more to read for now: what is buffered goes out.
    pub fn idle(&mut self) {
        self.stdout.flush();
        self.stderr.flush();
    }

    /// One line for stderr.
    fn err_line(&mut self, parts: &[&[u8]]) {
        match self.one_file {
            true => self.stdout.line(parts),
            false => self.stderr.line(parts),
        }
    }

    /// A line of pod1's own on stderr, after everything printed before it.
    pub fn note(&mut self, msg: &str) {
        self.stdout.flush();
        self.err_line(&[b"pod1: ", msg.as_bytes()]);
        self.idle();
    }

    /// A line of the guest console.
    pub fn console(&mut self, line: String) {
        if self.display.console {
            self.err_line(&[line.as_bytes()]);
        }
        if self.tail.len() == CONSOLE_TAIL {
            self.tail.pop_front();
        }
        self.tail.push_back(line);
    }

    fn prefix(&mut self, name: &str) -> String {
        self.width = self.width.max(name.len().min(MAX_WIDTH));
        let n = self.colors.len();
        let code = match self.colors.get(name) {
            Some(code) => *code,
            None if n >= MAX_STREAMS => COLORS[0],
            None => *self
                .colors
                .entry(name.to_string())
                .or_insert(COLORS[n % COLORS.len()]),
        };
        if self.color {
            format!("\x1b[{code}m{name:<w$} |\x1b[0m", w = self.width)
        } else {
            format!("{name:<w$} |", w = self.width)
        }
    }

    /// Bytes a container wrote to pipe number `pipe` (empty: the pipe
    /// ended), split into lines.
    pub fn output(&mut self, container: &str, stream: Stream, pipe: u32, data: &[u8], ms: u64) {
        if !self.lines.contains_key(&pipe) && self.lines.len() >= MAX_STREAMS {
            return;
        }
        // Out of the map while it runs, so the lines can be printed as the
        // splitter hands them out.
        let (name, _, mut splitter) = self
            .lines
            .remove(&pipe)
            .unwrap_or_else(|| (container.to_string(), stream, LineSplitter::default()));
        if data.is_empty() {
            splitter.finish(|l| self.log_line(&name, stream, l, ms));
        } else {
            splitter.feed(data, |l| self.log_line(&name, stream, l, ms));
            self.lines.insert(pipe, (name, stream, splitter));
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
            Stream::Stderr => self.err_line(&out_line),
        }
    }

    /// A line of pod1's about `container` on stderr, after everything
    /// printed before it: `name | text`.
    fn container_line(&mut self, container: &str, text: &str) {
        let p = self.prefix(&printable(container));
        self.stdout.flush();
        self.err_line(&[p.as_bytes(), b" ", text.as_bytes()]);
    }

    /// The end of every pipe (the VM is gone): unfinished lines are
    /// printed as they are.
    pub fn close_streams(&mut self) {
        let mut pipes: Vec<u32> = self.lines.keys().copied().collect();
        pipes.sort_unstable();
        for pipe in pipes {
            if let Some((name, stream, mut splitter)) = self.lines.remove(&pipe) {
                splitter.finish(|l| self.log_line(&name, stream, l, 0));
            }
        }
    }

    /// An event from the init.
    pub fn event(&mut self, rec: Record) {
        if let Some(fold) = &mut self.status {
            fold.record(&rec, SystemTime::now());
        }
        if self.display.json {
            // Written anew from what was parsed: one object per line, only
            // the fields pod1 knows, whatever the guest sent.
            if let Ok(json) = serde_json::to_string(&rec) {
                self.stdout.line(&[json.as_bytes()]);
            }
        }
        match rec.event {
            Event::InitStarted { .. } => self.init_seen = true,
            // The sandbox holds the configured NIC from here on.
            Event::SandboxReady {} => {
                for p in std::mem::take(&mut self.published) {
                    self.note(&format!("published {p}"));
                }
            }
            Event::ContainerExited {
                container,
                exit_code,
                reason,
                oom_killed,
                message,
                ..
            } if !self.display.json => {
                let p = self.prefix(&container);
                let mut why = match (reason, oom_killed) {
                    (Some(r), _) => format!(": {}", printable(&r)),
                    (None, true) => ": OOMKilled (the container's memory limit was reached)".to_string(),
                    (None, false) => String::new(),
                };
                // Its termination message, on the same line, cut as the
                // status cuts it.
                if let Some(m) = message.as_deref().map(status::bounded_message) {
                    why.push_str(&format!("; message: {}", printable(m.trim_end())));
                }
                self.stdout.flush();
                self.stderr.line(&[
                    p.as_bytes(),
                    format!(" exited with code {exit_code}{why}").as_bytes(),
                ]);
            }
            Event::ContainerWaiting {
                container,
                reason,
                message,
            } if !self.display.json => {
                let p = self.prefix(&container);
                let line = format!(
                    " not started: {}: {}; counts as exit code {REFUSED_EXIT_CODE}",
                    printable(&reason),
                    printable(&message)
                );
                self.stdout.flush();
                self.stderr.line(&[p.as_bytes(), line.as_bytes()]);
            }
            // Probes and hooks: the init sends these only when something
            // changed, so one line each.
            Event::ContainerProbe {
                container,
                probe,
                success,
                message,
            } if !self.display.json => {
                if let Some(line) = probe_line(probe, success, &message) {
                    self.container_line(&container, &line);
                }
            }
            Event::HookFailed {
                container,
                hook,
                message,
            } if !self.display.json => {
                let hook = match hook {
                    HookKind::PostStart => "postStart",
                    HookKind::PreStop => "preStop",
                };
                self.container_line(
                    &container,
                    &with_message(&format!("{hook} hook failed"), &message),
                );
            }
            // The kubelet's `Killing` event: its message is a sentence
            // (`Container web failed liveness probe, will be restarted`).
            Event::ContainerKilling { container, message } if !self.display.json => {
                self.container_line(&container, &with_message("killing", &message));
            }
            // The pod ends once: a later report cannot change its code.
            Event::PodExited {
                exit_code,
                deadline_exceeded,
                ..
            } if self.pod_exit.is_none() => {
                self.pod_exit = Some(exit_code);
                self.finished_at.get_or_insert_with(Instant::now);
                if deadline_exceeded {
                    self.note(
                        "the pod ran out of its activeDeadlineSeconds and was stopped (DeadlineExceeded)",
                    );
                }
            }
            Event::Error { message } if self.init_error.is_none() => {
                self.init_error = Some(message);
                self.finished_at.get_or_insert_with(Instant::now);
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
            self.err_line(&[l.as_bytes()]);
        }
        self.idle();
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
        let why = match qemu.is_empty() {
            true => why,
            false => format!("{why}; QEMU said: {qemu}"),
        };
        self.note(&why);
        self.cut.get_or_insert(Cut::Vm(why));
        exit::POD1_FAILED
    }

    /// The pod's status at the end of the run (`now`), if the session
    /// folds it.
    pub fn pod_status(&self, now: SystemTime) -> Option<PodStatus> {
        let fold = self.status.as_ref()?;
        Some(fold.status(now, self.cut.as_ref()))
    }

    /// With `--json`, `status` as the last line: a `pod_status` event.
    pub fn print_status(&mut self, status: &PodStatus, now: SystemTime) {
        if !self.display.json {
            return;
        }
        let ms = self.status.as_ref().map_or(0, |f| f.guest_ms(now));
        self.stdout.line(&[status::event_line(status, ms).as_bytes()]);
        self.idle();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(one_file: bool) -> Session<Vec<u8>, Vec<u8>> {
        let display = Display {
            json: false,
            console: false,
        };
        Session::with((Vec::new(), false), (Vec::new(), false), one_file, display)
    }

    fn text(s: &Session<Vec<u8>, Vec<u8>>) -> (String, String) {
        let get = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
        (get(s.stdout.w.get_ref()), get(s.stderr.w.get_ref()))
    }

    #[test]
    fn lines_of_two_pipes_never_mix() {
        // A restarted container's new pipe while an orphan still writes to
        // the old one: same container, same stream, two pipes.
        let mut s = session(false);
        s.output("web", Stream::Stdout, 1, b"old hal", 1);
        s.output("web", Stream::Stdout, 3, b"new line\nnew hal", 2);
        s.output("web", Stream::Stdout, 1, b"f\n", 3);
        s.output("web", Stream::Stdout, 1, b"", 4);
        s.output("web", Stream::Stdout, 3, b"f\n", 5);
        s.output("web", Stream::Stderr, 4, b"oops", 6);
        s.close_streams();
        s.idle();
        let (out, err) = text(&s);
        assert_eq!(out, "web | new line\nweb | old half\nweb | new half\n");
        assert_eq!(err, "web | oops\n");
    }

    #[test]
    fn one_file_keeps_the_order_of_both_streams() {
        let mut s = session(true);
        s.output("a", Stream::Stdout, 1, b"1\n", 1);
        s.output("a", Stream::Stderr, 2, b"2\n", 1);
        s.output("a", Stream::Stdout, 1, b"3\n", 1);
        s.note("4");
        s.idle();
        assert_eq!(text(&s), ("a | 1\na | 2\na | 3\npod1: 4\n".into(), String::new()));
    }

    #[test]
    fn the_first_report_of_the_end_stands() {
        let mut s = session(false);
        for code in [3, 0] {
            s.event(Record {
                event: Event::PodExited {
                    phase: pod1_manifest::events::Phase::Failed,
                    exit_code: code,
                    deadline_exceeded: false,
                },
                ms: 1,
            });
        }
        assert_eq!(s.exit_code(), 3);
    }

    #[test]
    fn a_refused_container_gets_one_line() {
        let mut s = session(false);
        s.event(Record {
            event: Event::ContainerWaiting {
                container: "web".into(),
                reason: "CreateContainerConfigError".into(),
                // What the guest says is shown, its control characters escaped.
                message: "container has runAsNonRoot and image will run as root\x1b[2J".into(),
            },
            ms: 1,
        });
        s.idle();
        assert_eq!(
            text(&s),
            (
                String::new(),
                "web | not started: CreateContainerConfigError: container has runAsNonRoot and image \
                 will run as root\\u{1b}[2J; counts as exit code 126\n"
                    .into()
            )
        );
    }

    /// The events of probes and hooks, one for each kind of line they
    /// give (and one that gives none).
    fn probe_and_hook_events() -> Vec<Event> {
        let probe = |probe, success, message: &str| Event::ContainerProbe {
            container: "web".into(),
            probe,
            success,
            message: message.into(),
        };
        vec![
            probe(ProbeKind::Startup, true, ""),
            probe(ProbeKind::Readiness, true, ""),
            // A command's output: its last newline dropped, the others
            // and any other control character escaped.
            probe(ProbeKind::Readiness, false, "not yet\nreally\x1b[2J\n"),
            probe(
                ProbeKind::Liveness,
                false,
                "HTTP probe failed with statuscode: 500",
            ),
            Event::ContainerKilling {
                container: "web".into(),
                message: "Container web failed liveness probe, will be restarted".into(),
            },
            // Passing again changes nothing: no line.
            probe(ProbeKind::Liveness, true, ""),
            Event::HookFailed {
                container: "web".into(),
                hook: HookKind::PostStart,
                message: "é".repeat(3_000),
            },
            probe(ProbeKind::Startup, false, ""),
            Event::HookFailed {
                container: "web".into(),
                hook: HookKind::PreStop,
                message: "exit status 1".into(),
            },
        ]
    }

    #[test]
    fn probes_and_hooks_get_one_line_each() {
        let mut s = session(false);
        s.output("web", Stream::Stdout, 1, b"listening\n", 1);
        for event in probe_and_hook_events() {
            s.event(Record { event, ms: 2 });
        }
        s.idle();
        let (out, err) = text(&s);
        assert_eq!(out, "web | listening\n");
        let lines: Vec<&str> = err.lines().collect();
        // The hook's message is cut at 4 KiB, at a character boundary.
        let post_start = format!("web | postStart hook failed: {}", "é".repeat(2_048));
        assert_eq!(
            lines,
            [
                "web | started (startup probe passed)",
                "web | ready",
                "web | not ready: Readiness probe failed: not yet\\nreally\\u{1b}[2J",
                "web | Liveness probe failed: HTTP probe failed with statuscode: 500",
                "web | killing: Container web failed liveness probe, will be restarted",
                &post_start,
                "web | Startup probe failed",
                "web | preStop hook failed: exit status 1",
            ]
        );
        // In one file, they come in order with the container's lines.
        let mut s = session(true);
        s.output("web", Stream::Stdout, 1, b"a\n", 1);
        s.event(Record {
            event: probe_and_hook_events().swap_remove(1),
            ms: 2,
        });
        s.output("web", Stream::Stdout, 1, b"b\n", 3);
        s.idle();
        assert_eq!(
            text(&s),
            ("web | a\nweb | ready\nweb | b\n".into(), String::new())
        );
    }

    #[test]
    fn json_shows_probes_and_hooks_as_events() {
        let display = Display {
            json: true,
            console: false,
        };
        let mut s = Session::with((Vec::new(), false), (Vec::new(), false), false, display);
        let events = probe_and_hook_events();
        for event in events.clone() {
            s.event(Record { event, ms: 2 });
        }
        s.idle();
        let (out, err) = text(&s);
        assert_eq!(err, "");
        let lines: Vec<Record> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.into_iter().map(|r| r.event).collect::<Vec<_>>(), events);
    }

    #[test]
    fn json_ends_with_the_pod_status() {
        let display = Display {
            json: true,
            console: false,
        };
        let mut s = Session::with((Vec::new(), false), (Vec::new(), false), false, display);
        s.event(Record {
            event: Event::SandboxReady {},
            ms: 1,
        });
        let now = SystemTime::now();
        s.print_status(&status::unread("x", now), now);
        let (out, _) = text(&s);
        let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["event"], "sandbox_ready");
        assert_eq!(lines[1]["event"], "pod_status");
        assert_eq!(lines[1]["status"]["phase"], "Failed");
    }

    #[test]
    fn a_guest_naming_endless_containers_is_bounded() {
        let mut s = session(false);
        for i in 0..3 * MAX_STREAMS as u32 {
            let name = format!("{:0>200}", i);
            s.output(&name, Stream::Stdout, i, b"x", 0);
            s.output(&name, Stream::Stdout, i, b"", 0);
        }
        assert!(s.colors.len() <= MAX_STREAMS && s.lines.is_empty());
        assert_eq!(s.width, MAX_WIDTH);
    }
}
