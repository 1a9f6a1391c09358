//! `pod1 run`: boot the pod under QEMU and give back its output and exit code.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, IsTerminal, Read, Seek, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::unistd::Pid;
use pod1_manifest::events::{Event, Record, Request, Stream};

use crate::kernel;
use crate::qemu::{kvm_usable, Accel, KernelCmdline, VmConfig};

/// Boot the pod under qemu-system-x86_64; print its output; exit with its exit code.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A pod manifest (built first; an unchanged build is reused) or an initramfs from `pod1 build`.
    pub input: PathBuf,
    /// Guest kernel [default: $POD1_KERNEL, the cached minimal kernel, the fetched Debian kernel].
    #[arg(long)]
    pub kernel: Option<PathBuf>,
    /// Guest memory, in MiB or with a suffix (512M, 1G).
    #[arg(long, default_value = "512M", value_parser = parse_memory)]
    pub memory: u32,
    /// Guest CPUs.
    #[arg(long, default_value_t = 1)]
    pub cpus: u32,
    /// Acceleration: auto uses KVM only where it can work, else TCG.
    #[arg(long, value_enum, default_value_t = Accel::Auto)]
    pub accel: Accel,
    /// QEMU machine type (see BENCHMARKS.md for why pc is the default).
    #[arg(long, default_value = "pc")]
    pub machine: String,
    /// Kill the VM after this many seconds and exit 124.
    #[arg(long)]
    pub timeout: Option<f64>,
    /// Show the guest console (kernel messages, init's log) on stderr.
    #[arg(long)]
    pub console: bool,
    /// Extra kernel parameters, e.g. `rdinit=/sbin/init` or `pod1.debug=1`.
    #[arg(long)]
    pub append: Option<String>,
    /// The QEMU binary.
    #[arg(long, default_value = "qemu-system-x86_64")]
    pub qemu: PathBuf,
    /// Print the init's events as JSON lines instead of the containers' output.
    #[arg(long)]
    pub json: bool,
    /// The static init binary, when building a manifest [default: pod1-init next to pod1].
    #[arg(long)]
    pub init: Option<PathBuf>,
}

fn parse_memory(s: &str) -> Result<u32, String> {
    let (num, mul) = match s.as_bytes().last() {
        Some(b'G' | b'g') => (&s[..s.len() - 1], 1024),
        Some(b'M' | b'm') => (&s[..s.len() - 1], 1),
        _ => (s, 1),
    };
    match num.parse::<u32>() {
        Ok(n) if n > 0 => n.checked_mul(mul).ok_or_else(|| "too large".to_string()),
        _ => Err(format!("{s:?} is not a size like 512M or 1G")),
    }
}

/// Exit codes of `pod1 run` beyond the pod's own.
pub mod exit {
    /// `--timeout` expired.
    pub const TIMEOUT: i32 = 124;
    /// pod1 itself failed.
    pub const POD1_FAILED: i32 = 125;
    /// Killed with a second Ctrl-C.
    pub const INTERRUPTED: i32 = 130;
}

/// How long a KVM boot may show no sign of the init before it is retried under TCG.
const KVM_STALL: Duration = Duration::from_secs(5);
/// How long QEMU may take to exit after the pod reported its end.
const POWEROFF_GRACE: Duration = Duration::from_secs(15);
/// Kernel parameters every boot gets unless `--append` sets the same key.
const DEFAULT_CMDLINE: &[(&str, Option<&str>)] = &[
    ("console", Some("ttyS0")),
    ("panic", Some("-1")),
    ("quiet", None),
    ("no_timer_check", None),
    ("8250.nr_uarts", Some("2")),
    ("i8042.noaux", None),
    ("i8042.nokbd", None),
    // Every RCU grace period the pod waits for (the cgroup move of a
    // container, unmounts, namespace teardown) becomes an expedited one
    // instead of a few timer ticks: 18 ms less guest time per hello pod on
    // the minimal kernel (HZ=100), 10 ms on Debian's (BENCHMARKS.md).
    ("rcupdate.rcu_expedited", Some("1")),
];
/// Console lines kept to explain a failure.
const CONSOLE_TAIL: usize = 40;

/// Runs `pod1 run`; returns the process exit code.
pub fn run(args: &Args) -> Result<i32> {
    // Signals are taken by one thread with sigwait; block them before any
    // thread exists so every thread inherits the mask. QEMU runs in its own
    // process group, so a terminal's Ctrl-C reaches only pod1.
    let signals = signal_set();
    signals.thread_block().context("blocking signals")?;
    let initrd = match is_initramfs(&args.input)? {
        true => args.input.clone(),
        false => crate::cache::build(&args.input, args.init.as_deref(), |img| {
            note(&format!("built {} into {}", args.input.display(), img.display()))
        })?,
    };
    let kernel = kernel::find(args.kernel.as_deref())?;
    let work = tempfile::Builder::new()
        .prefix("pod1-run-")
        .tempdir()
        .context("creating a temporary directory")?;
    let initrd = guest_initrd(&initrd, &kernel, args.memory, work.path())?;
    let mut user = KernelCmdline::default();
    if let Some(extra) = &args.append {
        user.append(extra)?;
    }
    // ttyS0 is the console; panic=-1 reboots at once on a panic, which
    // -no-reboot turns into QEMU exiting, so a panic never hangs. The rest
    // trims boot time (see BENCHMARKS.md). A parameter the user gives wins.
    let mut cmdline = KernelCmdline::default();
    for (k, v) in DEFAULT_CMDLINE {
        if !user.has(k) {
            cmdline.push(k, *v)?;
        }
    }
    cmdline.append(&user.to_string())?;
    let mut accel = match args.accel {
        Accel::Auto => {
            let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
            match kvm_usable(&cpuinfo, Path::new("/dev/kvm")) {
                Ok(()) => {
                    note("using KVM");
                    Accel::Kvm
                }
                Err(why) => {
                    note(&format!("using TCG (software emulation): {why}"));
                    Accel::Tcg
                }
            }
        }
        a => a,
    };
    loop {
        let config = VmConfig {
            qemu: args.qemu.clone(),
            kernel: kernel.clone(),
            initrd: initrd.clone(),
            cmdline: cmdline.clone(),
            accel,
            machine: args.machine.clone(),
            memory_mib: args.memory,
            cpus: args.cpus,
            console_socket: work.path().join("console.sock"),
            events_socket: work.path().join("events.sock"),
        };
        match boot(&config, args, &signals)? {
            Outcome::Exit(code) => return Ok(code),
            Outcome::KvmStalled if args.accel == Accel::Auto => {
                note(&format!(
                    "no sign of the init {}s into a KVM boot; retrying under TCG",
                    KVM_STALL.as_secs()
                ));
                accel = Accel::Tcg;
            }
            Outcome::KvmStalled => bail!(
                "no sign of the init {}s into a KVM boot (try --accel tcg)",
                KVM_STALL.as_secs()
            ),
        }
    }
}

fn signal_set() -> SigSet {
    let mut s = SigSet::empty();
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        s.add(sig);
    }
    s
}

fn note(msg: &str) {
    eprintln!("pod1: {msg}");
}

/// Whether `path` is an initramfs (gzip or newc magic) rather than a manifest.
fn is_initramfs(path: &Path) -> Result<bool> {
    let head = file_head(path)?;
    Ok(head.starts_with(GZIP_MAGIC) || head.starts_with(b"070701"))
}

/// The first bytes of a gzip stream.
const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];

/// Up to the first 6 bytes of `path`: enough for the gzip and newc magics.
fn file_head(path: &Path) -> Result<Vec<u8>> {
    let mut head = Vec::with_capacity(6);
    let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    f.take(6).read_to_end(&mut head)?;
    Ok(head)
}

/// The initramfs QEMU loads: the pod's archive, inflated on the host, then a
/// second archive with the kernel modules the init loads when `kernel` has
/// overlayfs as a module (the kernel unpacks concatenated archives one after
/// the other).
///
/// Inflating takes the host a few milliseconds; the guest's gunzip took
/// about 100 ms of a 1.2 s boot under TCG (BENCHMARKS.md). The uncompressed
/// copy sits in guest memory until the kernel has unpacked it, so an archive
/// that would take more than a quarter of `memory_mib` goes as it is, and so
/// does one that is not made of gzip members alone (another compressor, zero
/// padding): the kernel reads those itself, as before.
fn guest_initrd(initrd: &Path, kernel: &Path, memory_mib: u32, work: &Path) -> Result<PathBuf> {
    let modules = kernel::modules_tree(kernel)?;
    let combined = work.join("initrd");
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(&combined).with_context(|| format!("creating {}", combined.display()))?,
    );
    let limit = u64::from(memory_mib) << 18; // a quarter of the guest's memory, in bytes
    let inflated = file_head(initrd)?.starts_with(GZIP_MAGIC) && inflate(initrd, &mut out, limit)?;
    if !inflated && modules.is_none() {
        return Ok(initrd.to_path_buf());
    }
    if !inflated {
        out.rewind()?;
        out.get_mut().set_len(0)?;
        std::io::copy(&mut std::fs::File::open(initrd)?, &mut out)?;
    }
    if let Some(modules) = modules {
        crate::initramfs::write_uncompressed(&modules, &mut out)?;
    }
    out.flush()?;
    Ok(combined)
}

/// Writes the gzip members of `path` inflated to `out`; false (and `out`
/// left to be rewritten) when the file is not gzip members alone or inflates
/// to more than `limit` bytes.
fn inflate(path: &Path, out: &mut impl Write, limit: u64) -> Result<bool> {
    let mut gz = flate2::read::MultiGzDecoder::new(BufReader::new(std::fs::File::open(path)?));
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = match gz.read(&mut buf) {
            Ok(0) => return Ok(true),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return Ok(false),
        };
        total += n as u64;
        if total > limit {
            return Ok(false);
        }
        out.write_all(&buf[..n])?;
    }
}

enum Outcome {
    Exit(i32),
    KvmStalled,
}

enum Msg {
    Console(String),
    ConsoleClosed,
    Event(Record, String),
    BadEvent(String),
    EventsClosed,
    QemuExited(ExitStatus),
    Signal(Signal),
}

/// Kills and reaps QEMU however the run ends.
struct Vm {
    pid: Pid,
    done: bool,
}

impl Drop for Vm {
    fn drop(&mut self) {
        if !self.done {
            let _ = kill(self.pid, Signal::SIGKILL);
        }
    }
}

fn spawn_qemu(config: &VmConfig) -> Result<Child> {
    let mut cmd = Command::new(&config.qemu);
    cmd.args(config.args())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0);
    // SAFETY: the closure runs in the child between fork and exec and only
    // calls prctl(2), which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            // If pod1 dies for any reason, the kernel kills QEMU too.
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
        });
    }
    cmd.spawn()
        .with_context(|| format!("cannot start {} (install qemu-system-x86)", config.qemu.display()))
}

/// Waits for QEMU to connect to `listener`, or to exit.
fn accept(listener: &UnixListener, child: &mut Child, what: &str) -> Result<UnixStream> {
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false)?;
                return Ok(s);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e).context(format!("accepting QEMU's {what} connection")),
        }
        if let Some(status) = child.try_wait()? {
            let mut err = String::new();
            if let Some(mut s) = child.stderr.take() {
                let _ = s.read_to_string(&mut err);
            }
            bail!("QEMU exited ({status}) before it started the VM: {}", err.trim());
        }
        if Instant::now() > deadline {
            bail!("QEMU did not open its {what} serial port within 30 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn boot(config: &VmConfig, args: &Args, signals: &SigSet) -> Result<Outcome> {
    let _ = std::fs::remove_file(&config.console_socket);
    let _ = std::fs::remove_file(&config.events_socket);
    let console_l = UnixListener::bind(&config.console_socket).context("creating the console socket")?;
    let events_l = UnixListener::bind(&config.events_socket).context("creating the event socket")?;
    let started = Instant::now();
    let mut child = spawn_qemu(config)?;
    let mut vm = Vm {
        pid: Pid::from_raw(child.id() as i32),
        done: false,
    };
    let console = accept(&console_l, &mut child, "console")?;
    let events = accept(&events_l, &mut child, "event")?;
    let mut events_w = events.try_clone()?;
    let (tx, rx) = mpsc::channel();
    spawn_readers(console, events, &tx);
    let qemu_err = child.stderr.take();
    let stderr_text = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut e) = qemu_err {
            let _ = e.read_to_string(&mut s);
        }
        s
    });
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            if let Ok(status) = child.wait() {
                let _ = tx.send(Msg::QemuExited(status));
            }
        });
    }
    {
        let (tx, signals) = (tx.clone(), *signals);
        std::thread::spawn(move || {
            while let Ok(sig) = signals.wait() {
                if tx.send(Msg::Signal(sig)).is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);
    let mut s = Session::new(args);
    let timeout = args
        .timeout
        .map(|t| started + Duration::from_secs_f64(t.max(0.0)));
    // The console and the event channel: both end when QEMU exits.
    let mut open_streams = 2;
    let exit = loop {
        let now = Instant::now();
        let mut deadline = timeout.unwrap_or(now + Duration::from_secs(3600));
        if config.accel == Accel::Kvm && !s.init_seen {
            deadline = deadline.min(started + KVM_STALL);
        }
        if let Some(t) = s.finished_at {
            deadline = deadline.min(t + POWEROFF_GRACE);
        }
        let msg = match rx.recv_timeout(deadline.saturating_duration_since(now)) {
            Ok(m) => m,
            Err(RecvTimeoutError::Timeout) => {
                if config.accel == Accel::Kvm && !s.init_seen && Instant::now() >= started + KVM_STALL {
                    return Ok(Outcome::KvmStalled);
                }
                if s.finished_at
                    .is_some_and(|t| Instant::now() >= t + POWEROFF_GRACE)
                {
                    note("the VM did not power off after the pod finished; killed it");
                    break s.exit_code();
                }
                s.print_console_tail();
                note(&format!(
                    "the pod did not finish within {} s; the VM was killed",
                    args.timeout.unwrap_or(0.0)
                ));
                break exit::TIMEOUT;
            }
            Err(RecvTimeoutError::Disconnected) => break s.exit_code(),
        };
        match msg {
            Msg::Console(line) => s.console(line),
            Msg::Event(rec, raw) => s.event(rec, &raw),
            Msg::BadEvent(line) => s.console(format!("(unreadable event) {line}")),
            Msg::ConsoleClosed | Msg::EventsClosed => open_streams -= 1,
            Msg::Signal(Signal::SIGINT | Signal::SIGTERM) if !s.stop_sent => {
                s.stop_sent = true;
                note("stopping the pod (grace period honoured); press Ctrl-C again to kill the VM");
                let mut req = serde_json::to_string(&Request::Stop)?;
                req.push('\n');
                let _ = events_w.write_all(req.as_bytes());
            }
            Msg::Signal(_) => {
                note("killed the VM");
                break exit::INTERRUPTED;
            }
            Msg::QemuExited(status) => {
                vm.done = true;
                // Drain what the readers still hold: every event sent before power-off.
                let until = Instant::now() + Duration::from_secs(2);
                while open_streams > 0 {
                    match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
                        Ok(Msg::Console(line)) => s.console(line),
                        Ok(Msg::Event(rec, raw)) => s.event(rec, &raw),
                        Ok(Msg::ConsoleClosed | Msg::EventsClosed) => open_streams -= 1,
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
                break s.finish(status, &stderr_text.join().unwrap_or_default());
            }
        }
    };
    drop(vm);
    Ok(Outcome::Exit(exit))
}

fn spawn_readers(console: UnixStream, events: UnixStream, tx: &Sender<Msg>) {
    let ctx = tx.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(console).split(b'\n') {
            let Ok(line) = line else { break };
            let text = String::from_utf8_lossy(&line).trim_end_matches('\r').to_string();
            if ctx.send(Msg::Console(text)).is_err() {
                return;
            }
        }
        let _ = ctx.send(Msg::ConsoleClosed);
    });
    let etx = tx.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(events).split(b'\n') {
            let Ok(line) = line else { break };
            let text = String::from_utf8_lossy(&line).trim_end_matches('\r').to_string();
            if text.trim().is_empty() {
                continue;
            }
            let msg = match serde_json::from_str::<Record>(&text) {
                Ok(rec) => Msg::Event(rec, text),
                Err(_) => Msg::BadEvent(text),
            };
            if etx.send(msg).is_err() {
                return;
            }
        }
        let _ = etx.send(Msg::EventsClosed);
    });
}

const COLORS: &[&str] = &["36", "33", "32", "35", "34", "31", "96", "93", "92", "95"];

/// What one boot has seen so far, and how it is shown.
struct Session<'a> {
    args: &'a Args,
    color: bool,
    colors: HashMap<String, &'static str>,
    width: usize,
    tail: VecDeque<String>,
    init_seen: bool,
    stop_sent: bool,
    pod_exit: Option<i32>,
    init_error: Option<String>,
    finished_at: Option<Instant>,
}

impl<'a> Session<'a> {
    fn new(args: &'a Args) -> Self {
        Session {
            args,
            color: std::io::stdout().is_terminal(),
            colors: HashMap::new(),
            width: 0,
            tail: VecDeque::new(),
            init_seen: false,
            stop_sent: false,
            pod_exit: None,
            init_error: None,
            finished_at: None,
        }
    }

    fn console(&mut self, line: String) {
        if self.args.console {
            eprintln!("{line}");
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

    fn event(&mut self, rec: Record, raw: &str) {
        if self.args.json {
            out(raw);
        }
        match rec.event {
            Event::InitStarted { .. } => self.init_seen = true,
            Event::Log {
                container,
                stream,
                line,
            } if !self.args.json => {
                let p = self.prefix(&container);
                match stream {
                    Stream::Stdout => out(&format!("{p} {line}")),
                    Stream::Stderr => eprintln!("{p} {line}"),
                }
            }
            Event::ContainerExited {
                container,
                exit_code,
                reason,
                ..
            } if !self.args.json => {
                let p = self.prefix(&container);
                let why = reason.map(|r| format!(": {r}")).unwrap_or_default();
                eprintln!("{p} exited with code {exit_code}{why}");
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

    fn exit_code(&self) -> i32 {
        match (self.pod_exit, &self.init_error) {
            (_, Some(_)) => exit::POD1_FAILED,
            (Some(code), None) => code,
            (None, None) => exit::POD1_FAILED,
        }
    }

    fn print_console_tail(&self) {
        if self.args.console || self.tail.is_empty() {
            return;
        }
        eprintln!("pod1: last lines of the guest console:");
        for l in &self.tail {
            eprintln!("  {l}");
        }
    }

    /// The exit code once QEMU has exited, explaining any failure.
    fn finish(&self, status: ExitStatus, qemu_stderr: &str) -> i32 {
        if let Some(msg) = &self.init_error {
            self.print_console_tail();
            note(&format!("the init failed: {msg}"));
            return exit::POD1_FAILED;
        }
        if let Some(code) = self.pod_exit {
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
            note(&why);
        } else {
            note(&format!("{why}; QEMU said: {qemu}"));
        }
        exit::POD1_FAILED
    }
}

/// One line to stdout, flushed (a closed stdout is ignored: the VM still runs to its end).
fn out(line: &str) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{line}");
    let _ = o.flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{write::GzEncoder, Compression};

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn inflated(file: &[u8], limit: u64) -> Option<Vec<u8>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("initrd");
        std::fs::write(&path, file).unwrap();
        let mut out = Vec::new();
        inflate(&path, &mut out, limit).unwrap().then_some(out)
    }

    #[test]
    fn inflates_concatenated_members() {
        let file = [gz(b"first archive"), gz(b" second")].concat();
        assert_eq!(
            inflated(&file, 1 << 20).as_deref(),
            Some(&b"first archive second"[..])
        );
    }

    #[test]
    fn leaves_what_it_cannot_inflate_whole() {
        let mut padded = gz(b"archive");
        padded.extend([0u8; 512]);
        assert_eq!(inflated(&padded, 1 << 20), None, "zero padding");
        let whole = gz(b"archive");
        assert_eq!(inflated(&whole[..whole.len() - 4], 1 << 20), None, "truncated");
        assert_eq!(inflated(&gz(&[7u8; 100_000]), 50_000), None, "over the limit");
    }
}
