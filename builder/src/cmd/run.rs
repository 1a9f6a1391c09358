//! `pod1 run`: boot the pod under QEMU and give back its output and exit code.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::unistd::Pid;
use pod1_manifest::events::Request;
use pod1_manifest::plan::{NetworkPlan, Plan, PortPlan};
use pod1_manifest::pod::RestartPolicy;

use crate::channel::FromGuest;
use crate::initrd::{guest_initrd, is_initramfs};
use crate::kernel;
use crate::net;
use crate::qemu::{kvm_usable, Accel, ChannelKind, KernelCmdline, VmConfig};
use crate::session::guest::{handle, spawn_readers, Msg};
use crate::session::status::{self, Cut, Fold, PodStatus};
use crate::session::status_file;
use crate::session::{Display, Session};

/// Boot the pod under qemu-system-x86_64; print its output; exit with its exit code.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// A pod manifest (built first; an unchanged build is reused) or an initramfs from `pod1 build`.
    #[arg(required_unless_present = "image")]
    pub input: Option<PathBuf>,
    /// One container from the command line instead of a manifest.
    #[command(flatten)]
    pub quick: super::quick::QuickArgs,
    /// Refuse manifest fields pod1 would ignore (they are warnings otherwise).
    #[arg(long)]
    pub strict: bool,
    /// Pull registry images: always, missing (only absent ones) or never;
    /// replaces every container's imagePullPolicy [default: the manifest's].
    #[arg(long, value_name = "WHEN")]
    pub pull: Option<crate::image::policy::PullFlag>,
    /// Another file of ConfigMaps and Secrets the pod reads (repeatable).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Guest kernel [default: $POD1_KERNEL, the cached minimal kernel, the fetched Debian kernel].
    #[arg(long)]
    pub kernel: Option<PathBuf>,
    /// Guest memory, in MiB or with a suffix (512M, 1G) [default: 512M];
    /// with --image, the container's memory limit too.
    #[arg(long, value_parser = parse_memory)]
    pub memory: Option<u32>,
    /// Guest CPUs [default: 1]; with --image, the container's CPU limit too.
    #[arg(long)]
    pub cpus: Option<u32>,
    /// The pod's network: user (a NIC on QEMU's user-mode network) or none (loopback only).
    #[arg(long, value_enum, default_value_t = net::Mode::User, value_name = "MODE")]
    pub network: net::Mode,
    /// Publish a port: [HOSTIP:]HOSTPORT:CONTAINERPORT[/udp] (repeatable;
    /// HOSTIP defaults to 127.0.0.1).
    #[arg(short = 'p', long = "publish", value_name = "PORTS")]
    pub publish: Vec<net::Publish>,
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
    /// Print the init's events as JSON lines instead of the containers'
    /// output, ending with a `pod_status` event.
    #[arg(long)]
    pub json: bool,
    /// Write the pod's final status to FILE as a Kubernetes v1 PodStatus
    /// (what `kubectl get pod -o json` shows under `.status`), however the run ends.
    #[arg(long, value_name = "FILE")]
    pub status: Option<PathBuf>,
    /// The device carrying events and output between the guest and pod1:
    /// a virtio-serial port, or the second serial port (ttyS1, far slower).
    #[arg(long, value_enum, default_value_t = ChannelKind::Virtio)]
    pub channel: ChannelKind,
    /// The static init binary, when building a manifest [default: pod1-init next to pod1].
    #[arg(long)]
    pub init: Option<PathBuf>,
}

impl Args {
    /// The guest's memory in MiB.
    pub fn memory(&self) -> u32 {
        self.memory.unwrap_or(512)
    }

    /// The guest's CPUs.
    pub fn cpus(&self) -> u32 {
        self.cpus.unwrap_or(1)
    }
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
    // PCI interrupt routing from the BIOS's table instead of ACPI: the
    // ACPI way runs the firmware's AML for each device's interrupt link,
    // 63 ms of guest time for the channel's virtio-serial device on the
    // minimal kernel and 70 ms of Debian's boot even without it
    // (kernel-config/README.md). Virtio devices use MSI-X anyway; power-off
    // still goes through ACPI.
    ("acpi", Some("noirq")),
];
/// How long output may sit in `pod1 run`'s buffers while the guest keeps
/// sending (it is flushed at once whenever the guest pauses).
const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Runs `pod1 run`; returns the process exit code.
pub fn run(args: &Args) -> Result<i32> {
    // One container from the command line: the Pod it makes, printed or
    // written as a manifest and run as any other.
    let quick;
    let args = match &args.quick.image {
        None => args,
        Some(_) => {
            let mut pod = super::quick::pod(&args.quick, args.memory, args.cpus)?;
            // -p becomes the container's ports, as a manifest would write them.
            if !args.publish.is_empty() {
                pod["spec"]["containers"][0]["ports"] = net::ports_json(&args.publish);
            }
            if args.quick.dry_run {
                crate::print(&super::quick::show(&pod, args.quick.output)?)?;
                return Ok(0);
            }
            quick = Args {
                input: Some(super::quick::write_manifest(&pod)?),
                publish: Vec::new(),
                ..args.clone()
            };
            &quick
        }
    };
    // Signals are taken by one thread with sigwait; block them before any
    // thread exists so every thread inherits the mask. QEMU runs in its own
    // process group, so a terminal's Ctrl-C reaches only pod1.
    let signals = signal_set();
    signals.thread_block().context("blocking signals")?;
    if let Some(file) = &args.status {
        status_file::check(file)?;
    }
    let started = SystemTime::now();
    let mut plan = None;
    match build_and_boot(args, &signals, &mut plan) {
        Ok((code, status)) => {
            if let (Some(file), Some(status)) = (&args.status, status) {
                status_file::write(file, &status)
                    .with_context(|| format!("the pod's exit code was {code}, but its status is missing"))?;
            }
            Ok(code)
        }
        // Whatever stopped pod1 is the pod's end too: its status says so,
        // rather than leave an earlier run's file in place.
        Err(e) if args.status.is_some() || args.json => {
            let why = format!("{e:#}");
            let now = SystemTime::now();
            let status = match &plan {
                Some(plan) => Fold::new(plan, started).status(now, Some(&Cut::Pod1(why.clone()))),
                None => status::unread(&why, started),
            };
            if args.json {
                let ms = now.duration_since(started).unwrap_or_default().as_millis();
                let ms = u64::try_from(ms).unwrap_or(u64::MAX);
                crate::print(&format!("{}\n", status::event_line(&status, ms)))?;
            }
            if let Some(file) = &args.status {
                if let Err(w) = status_file::write(file, &status) {
                    note(&format!("{w:#}"));
                }
            }
            Err(e)
        }
        Err(e) => Err(e),
    }
}

/// Builds if needed and boots (again under TCG if a KVM boot stalls);
/// the exit code and, when `pod1 run` reports it, the pod's status.
/// `plan` is set as soon as the plan is read.
fn build_and_boot(
    args: &Args,
    signals: &SigSet,
    plan: &mut Option<Plan>,
) -> Result<(i32, Option<Box<PodStatus>>)> {
    let input = args.input.as_deref().context("no manifest to run")?;
    let building = super::interrupt::Building::watch(*signals, {
        let (status, json, started) = (args.status.clone(), args.json, SystemTime::now());
        move |sig| {
            let why = format!("pod1 run was stopped by {sig} while it built the pod");
            let pod_status = status::unread(&why, started);
            if json {
                let _ = crate::print(&format!("{}\n", status::event_line(&pod_status, 0)));
            }
            if let Some(file) = &status {
                let _ = status_file::write(file, &pod_status);
            }
            note(&why);
            // A pull stopped here resumes next time; the store stays whole.
            std::process::exit(exit::INTERRUPTED);
        }
    });
    let initrd = match is_initramfs(input)? {
        true => input.to_path_buf(),
        false => crate::cache::build(
            input,
            &args.files,
            args.init.as_deref(),
            args.strict,
            pod1_manifest::downward::Node::new(u64::from(args.memory()), u64::from(args.cpus()))
                .with_network(net::for_mode(args.network)),
            args.pull,
            |img| note(&format!("built {} into {}", input.display(), img.display())),
        )?,
    };
    drop(building);
    // The plan is needed for the status and for a Job's retries; an
    // initramfs pod1 did not build has none, which matters only for the
    // status.
    match status_file::read_plan(&initrd) {
        Ok(p) => *plan = Some(p),
        // --json without a plan has no pod_status event; --status needs one.
        Err(e) if args.status.is_some() => return Err(e),
        Err(_) => {}
    }
    // A Job's pod under restartPolicy Never is booted again when it fails,
    // up to backoffLimit times (as the Job controller makes new pods);
    // under OnFailure the init counts container restarts instead.
    let retries = plan
        .as_ref()
        .filter(|p| p.restart_policy == RestartPolicy::Never)
        .and_then(|p| p.backoff_limit)
        .unwrap_or(0);
    let network = network(args, plan.as_ref(), &input.display().to_string())?;
    let mut failures = 0;
    let deadline = args
        .timeout
        .map(|t| Instant::now() + Duration::from_secs_f64(t.max(0.0)));
    let mut attempt_args = args.clone();
    let kernel = kernel::find(args.kernel.as_deref())?;
    let work = tempfile::Builder::new()
        .prefix("pod1-run-")
        .tempdir()
        .context("creating a temporary directory")?;
    let mut required: Vec<&str> = match args.channel {
        ChannelKind::Virtio => kernel::channel_modules(&args.machine).to_vec(),
        ChannelKind::Serial => Vec::new(),
    };
    if network.is_some() {
        required.extend(kernel::net_modules(&args.machine));
    }
    // hostPath volumes: checked and made before the boot, their modules.
    let shares = crate::virtiofs::prepare(plan.as_ref(), &args.machine)?;
    if !shares.is_empty() {
        required.extend(kernel::FS_MODULES);
    }
    let modules = kernel::modules_tree(&kernel, &required, kernel::OPTIONAL_MODULES)?;
    let initrd = guest_initrd(&initrd, modules, args.memory(), work.path())?;
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
    // The init configures the NIC with the addresses QEMU serves.
    if let Some((net, _)) = &network {
        cmdline.push("pod1.net", Some(&net.cmdline_value()))?;
    }
    if args.channel == ChannelKind::Serial && !user.has("pod1.channel") {
        cmdline.push("pod1.channel", Some("serial"))?;
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
        let attempt = failures + 1;
        let config = VmConfig {
            qemu: args.qemu.clone(),
            kernel: kernel.clone(),
            initrd: initrd.clone(),
            cmdline: cmdline.clone(),
            accel,
            machine: args.machine.clone(),
            memory_mib: args.memory(),
            cpus: args.cpus(),
            console_socket: work.path().join(format!("console-{attempt}.sock")),
            serial_socket: work.path().join(format!("serial-{attempt}.sock")),
            channel: args.channel,
            virtio_socket: work.path().join(format!("channel-{attempt}.sock")),
            network: network.clone(),
            shares: shares.qemu(work.path(), attempt),
        };
        let daemons = shares.start(work.path(), attempt)?;
        match boot(&config, &attempt_args, signals, plan.as_ref(), daemons)? {
            Outcome::Exit(code, status, cut) if code != 0 && !cut && failures < retries => {
                failures += 1;
                note(&format!(
                    "the Job's pod failed (exit code {code}); running it again ({failures} of backoffLimit {retries})"
                ));
                drop(status);
                // --timeout bounds the whole run, every attempt together.
                attempt_args.timeout =
                    deadline.map(|d| d.saturating_duration_since(Instant::now()).as_secs_f64());
            }
            Outcome::Exit(code, status, _) => {
                if failures > 0 && code != 0 && failures == retries {
                    note(&format!(
                        "the Job failed: BackoffLimitExceeded (backoffLimit {retries})"
                    ));
                }
                return Ok((code, status));
            }
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

/// The NIC to give the VM, from the plan (a pod is built for a network
/// or without one: its /etc/hosts, resolv.conf and downward API say
/// which) and `-p`, each forward's host port checked free.
fn network(args: &Args, plan: Option<&Plan>, input: &str) -> Result<Option<(NetworkPlan, Vec<PortPlan>)>> {
    let net = plan.and_then(|p| p.network.clone());
    let mut forwards = plan.map(|p| p.ports.clone()).unwrap_or_default();
    forwards.extend(args.publish.iter().map(|p| p.0.clone()));
    match (net, args.network) {
        (Some(_), net::Mode::None) => bail!(
            "{input} was built with a network; rebuild it with --network none (pod1 run --network none MANIFEST does)"
        ),
        (None, _) if !forwards.is_empty() => bail!(
            "{input} has no network (--network none), so no port can be published to it: {}",
            forwards.iter().map(net::describe).collect::<Vec<_>>().join(", ")
        ),
        (None, _) => Ok(None),
        (Some(n), net::Mode::User) => {
            net::check_addresses(&n, &forwards)?;
            net::check_free(&forwards)?;
            Ok(Some((n, forwards)))
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

enum Outcome {
    /// The exit code, the pod's status if it was folded, and whether the
    /// run was cut short (timeout, a signal, a broken VM) rather than the
    /// pod ending on its own.
    Exit(i32, Option<Box<PodStatus>>, bool),
    KvmStalled,
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

fn boot(
    config: &VmConfig,
    args: &Args,
    signals: &SigSet,
    plan: Option<&Plan>,
    mut daemons: crate::virtiofs::Daemons,
) -> Result<Outcome> {
    let mut sockets = vec![
        (&config.console_socket, "console"),
        (&config.serial_socket, "serial"),
    ];
    if config.channel == ChannelKind::Virtio {
        sockets.push((&config.virtio_socket, "virtio-serial"));
    }
    let listeners = sockets
        .iter()
        .map(|(path, what)| {
            let _ = std::fs::remove_file(path);
            UnixListener::bind(path).with_context(|| format!("creating the {what} socket"))
        })
        .collect::<Result<Vec<_>>>()?;
    let started = Instant::now();
    // The pod's startTime: the kubelet's is when it took the pod on,
    // before making its sandbox.
    let fold = plan.map(|p| Fold::new(p, SystemTime::now()));
    let mut child = spawn_qemu(config)?;
    let mut vm = Vm {
        pid: Pid::from_raw(child.id() as i32),
        done: false,
    };
    let mut streams = Vec::new();
    for (l, (_, what)) in listeners.iter().zip(&sockets) {
        streams.push(accept(l, &mut child, what)?);
    }
    // Requests (stop, ack) go to both channel devices: the guest reads the
    // one it uses, and the other's bytes wait unread, harmlessly.
    let writers = streams[1..]
        .iter()
        .map(UnixStream::try_clone)
        .collect::<std::io::Result<Vec<_>>>()?;
    // One queue for every reader, unbounded so that the console, QEMU's
    // exit and signals never wait; the frames' own bound is the slots
    // (crate::channel::IN_FLIGHT), the console's CONSOLE_PENDING.
    let (tx, rx) = mpsc::channel();
    let (slots, slots_rx) = mpsc::sync_channel(crate::channel::IN_FLIGHT);
    let console_pending = Arc::new(AtomicUsize::new(0));
    let mut open_streams = streams.len();
    spawn_readers(streams, &tx, &slots, &console_pending);
    drop(slots);
    let handled = |m: &Msg| match m {
        Msg::Guest(_, FromGuest::Frame(_) | FromGuest::Skipped(_)) => {
            let _ = slots_rx.try_recv();
        }
        Msg::Console(_) => {
            console_pending.fetch_sub(1, Ordering::Relaxed);
        }
        _ => {}
    };
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
    daemons.watch(&tx, vm.pid);
    drop(tx);
    let request = |req: Request| {
        let mut line = serde_json::to_string(&req).unwrap_or_default();
        line.push('\n');
        for mut w in &writers {
            let _ = w.write_all(line.as_bytes());
        }
    };
    let display = Display {
        json: args.json,
        console: args.console,
    };
    let mut s = Session::new(display, fold);
    if let Some((_, forwards)) = &config.network {
        s.published = forwards.iter().map(net::describe).collect();
    }
    let timeout = args
        .timeout
        .map(|t| started + Duration::from_secs_f64(t.max(0.0)));
    let mut flushed = Instant::now();
    let exit = loop {
        // Everything already received is handled before anything is
        // flushed: output goes out in large blocks while the guest is
        // busy, and at least every FLUSH_EVERY.
        if flushed.elapsed() >= FLUSH_EVERY {
            s.idle();
            flushed = Instant::now();
        }
        let msg = match rx.try_recv() {
            Ok(m) => m,
            Err(TryRecvError::Disconnected) => break s.exit_code(),
            Err(TryRecvError::Empty) => {
                s.idle();
                flushed = Instant::now();
                let mut deadline = timeout;
                if config.accel == Accel::Kvm && !s.init_seen {
                    deadline = Some(deadline.map_or(started + KVM_STALL, |d| d.min(started + KVM_STALL)));
                }
                if let Some(t) = s.finished_at {
                    deadline = Some(deadline.map_or(t + POWEROFF_GRACE, |d| d.min(t + POWEROFF_GRACE)));
                }
                let got = match deadline {
                    Some(d) => rx.recv_timeout(d.saturating_duration_since(Instant::now())),
                    None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                };
                match got {
                    Ok(m) => m,
                    Err(RecvTimeoutError::Disconnected) => break s.exit_code(),
                    Err(RecvTimeoutError::Timeout) => {
                        let now = Instant::now();
                        if config.accel == Accel::Kvm && !s.init_seen && now >= started + KVM_STALL {
                            return Ok(Outcome::KvmStalled);
                        }
                        if s.finished_at.is_some_and(|t| now >= t + POWEROFF_GRACE) {
                            s.note("the VM did not power off after the pod finished; killed it");
                            break s.exit_code();
                        }
                        if timeout.is_some_and(|t| now >= t) {
                            s.cut = Some(Cut::Timeout(args.timeout.unwrap_or(0.0)));
                            s.print_console_tail();
                            s.note(&format!(
                                "the pod did not finish within {} s; the VM was killed",
                                args.timeout.unwrap_or(0.0)
                            ));
                            break exit::TIMEOUT;
                        }
                        continue;
                    }
                }
            }
        };
        handled(&msg);
        match msg {
            Msg::QemuExited(status) => {
                vm.done = true;
                // Drain what the readers still hold: every frame sent before power-off.
                let until = Instant::now() + Duration::from_secs(2);
                while open_streams > 0 {
                    match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
                        Ok(Msg::QemuExited(_) | Msg::Signal(_)) => {}
                        Ok(m) => {
                            handled(&m);
                            handle(&mut s, m, &mut open_streams, &request)
                        }
                        Err(_) => break,
                    }
                }
                break s.finish(status, &stderr_text.join().unwrap_or_default());
            }
            Msg::Signal(Signal::SIGINT | Signal::SIGTERM) if !s.stop_sent => {
                s.stop_sent = true;
                s.note("stopping the pod (grace period honoured); press Ctrl-C again to kill the VM");
                request(Request::Stop);
            }
            Msg::Signal(_) => {
                s.cut = Some(Cut::Interrupted);
                s.note("killed the VM");
                break exit::INTERRUPTED;
            }
            Msg::DaemonDied(why) => {
                s.print_console_tail();
                s.note(&why);
                s.cut = Some(Cut::Vm(why));
                break exit::POD1_FAILED;
            }
            m => handle(&mut s, m, &mut open_streams, &request),
        }
        if s.channel_broken {
            s.print_console_tail();
            let why =
                "the guest broke the channel, so the pod's end can never be reported: the VM was killed";
            s.note(why);
            s.cut = Some(Cut::Vm(why.into()));
            break exit::POD1_FAILED;
        }
    };
    let now = SystemTime::now();
    let status = s.pod_status(now).map(Box::new);
    if let Some(status) = &status {
        s.print_status(status, now);
    }
    s.idle();
    // QEMU first, then the daemons it used (a daemon killed first would
    // leave the guest's I/O blocked for nothing).
    drop(vm);
    drop(daemons);
    Ok(Outcome::Exit(exit, status, s.cut.is_some() || s.stop_sent))
}
