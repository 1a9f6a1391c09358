//! `pod1-init`: the VM's PID 1, the pod's pause process and its container
//! runtime, in one static binary.
//!
//! As PID 1 (in the VM) it boots the minimal system, builds the pod sandbox,
//! runs the plan's containers through their lifecycle, reports events to
//! the host and powers the VM off. Any other PID means host mode (see `host`):
//! `pod1-init --root DIR [--events FILE]` runs the same pod on this host.
//!
//! What the init expects in the initramfs:
//! - `/etc/pod1/plan.json`: the plan (`pod1_manifest::plan::PLAN_PATH`);
//! - every `ContainerPlan::rootfs` directory (e.g. `/pod1/images/<id>`);
//! - optionally `/pod1/modules/load`: kernel modules to load, one path a line;
//! - the channel to the host: the virtio-serial port `org.pod1.channel`, or
//!   `/dev/ttyS1` without one (`pod1.channel=serial` asks for ttyS1,
//!   `pod1.events=PATH` for another serial device); `pod1.debug` logs more;
//! - `pod1.net=ADDRESS/PREFIX,GATEWAY`: the VM's NIC, configured in the
//!   pod's network namespace (see `net`).
//!
//! No Rust runtime start-up (`no_main`): std's would read /proc/self/maps
//! (glibc's pthread_getattr_np, for the main thread's stack guard) before
//! the init has mounted /proc. The C `main` below is the entry point.
//!
//! No std either (`no_std` + `alloc`), to stay small: std's panic machinery
//! alone (its backtrace symbolizer) was a third of the binary. glibc is
//! still linked statically and still starts the process; memory comes from
//! dlmalloc (`runtime`), files and system calls go through `sys` (rustix and libc),
//! and a panic takes the same fatal path as any error. The unit tests are
//! built with std and its test harness.
#![cfg_attr(not(test), no_std)]
#![cfg_attr(not(test), no_main)]
// The unit-test harness brings its own main, so the entry point is not built.
#![cfg_attr(test, allow(dead_code))]

extern crate alloc;

mod bpf;
mod caps;
mod cgroups;
mod channel;
mod cmdline;
mod console;
mod exec;
mod host;
mod hostpath;
mod kmod;
mod mountpoint;
mod mounts;
mod namespaces;
mod net;
mod power;
mod process;
mod rootfs;
mod runtime;
mod seccomp;
mod signals;
mod supervisor;
mod sys;
mod tree;
mod volumes;

use alloc::boxed::Box;
use alloc::format;
use alloc::string::{String, ToString};

use pod1_manifest::events::Event;
use pod1_manifest::plan::PLAN_PATH;
use pod1_manifest::Plan;
use rustix::fd::OwnedFd;

use crate::power::Role;
use crate::sys::{Errno, IoError};

/// A step of the init that failed; each ends the pod with exit code 125.
#[derive(Debug, thiserror::Error)]
enum Error {
    /// Blocking the handled signals failed.
    #[error("blocking signals: {0}")]
    Signals(Errno),
    /// A mount failed.
    #[error(transparent)]
    Mounts(#[from] mounts::Error),
    /// The channel to the host could not be opened.
    #[error(transparent)]
    Channel(#[from] channel::port::Error),
    /// The plan could not be read.
    #[error(
        "reading the plan {path}: {source} (the image must hold the plan `pod1 build` writes; rebuild it)"
    )]
    PlanRead {
        /// Where it should be.
        path: String,
        /// The cause.
        source: IoError,
    },
    /// The plan is not valid JSON of the right shape.
    #[error("parsing the plan {path}: {source} (was it written by the same pod1 version?)")]
    PlanParse {
        /// The file.
        path: String,
        /// The cause.
        source: serde_json::Error,
    },
    /// The sandbox could not be made.
    #[error(transparent)]
    Sandbox(#[from] namespaces::Error),
    /// The pod's PID namespace could not be made.
    #[error("running the pod in its own PID namespace: {0}")]
    PodNamespace(#[from] namespaces::PodInitError),
    /// The lifecycle failed.
    #[error(transparent)]
    Supervisor(#[from] supervisor::Error),
    /// A hostPath volume could not be mounted.
    #[error(transparent)]
    HostPath(Box<hostpath::Error>),
}

/// A panic takes the fatal path (error event, console line, sync, power
/// off in the VM; exit 125 on a host). Both profiles abort on panic, so
/// nothing unwinds.
///
/// A panic inside that path (while formatting or reporting) skips straight
/// to the end, so it cannot recurse.
#[cfg(not(test))]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    use core::sync::atomic::{AtomicBool, Ordering};
    static PANICKING: AtomicBool = AtomicBool::new(false);
    if runtime::heap_busy() {
        // The heap stopped midway: nothing more may be allocated.
        power::die("panic inside the heap")
    }
    if PANICKING.swap(true, Ordering::SeqCst) {
        power::end_now(power::INIT_FAILED)
    }
    power::fatal(&format!("panic: {info}"))
}

/// The entry point, called by the C runtime (see the crate docs).
#[cfg(not(test))]
#[no_mangle]
extern "C" fn main(argc: libc::c_int, argv: *const *const libc::c_char) -> libc::c_int {
    // SAFETY: the C runtime's argv holds argc strings for the whole run.
    unsafe { sys::set_args(argc, argv) };
    // What std's start-up would have done that matters here: a write to a
    // closed pipe (the host's end of the events) is an error, not death.
    // Children get the default back before exec.
    // SAFETY: SIG_IGN installs no handler code.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    init_main();
    0
}

/// Chooses VM or host mode; never returns.
fn init_main() {
    if rustix::process::getpid().is_init() {
        power::set_role(Role::Vm);
        match vm() {
            Ok(code) => power::finish(code),
            Err(e) => power::fatal(&e.to_string()),
        }
    }
    // Host mode: whoever started us may have closed 0-2; the next files
    // opened (the event file) must not take their numbers, or log lines
    // would land in them (std's runtime does the same).
    for fd in 0..=2 {
        // SAFETY: F_GETFD reads a flag of a descriptor number; nothing is
        // dereferenced.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
            // The lowest free number: `fd` itself.
            let _ =
                sys::open("/dev/null", rustix::fs::OFlags::RDWR, 0).map(rustix::fd::IntoRawFd::into_raw_fd);
        }
    }
    let args = match host::parse_args(sys::args().into_iter().skip(1)) {
        Ok(a) => a,
        Err(msg) => {
            if !msg.is_empty() {
                sys::eprint_line(&format!("pod1-init: {msg}"));
            }
            sys::eprint_line(host::USAGE);
            sys::exit(if msg.is_empty() { 0 } else { power::INIT_FAILED });
        }
    };
    console::set_debug(cmdline::truthy_var(sys::var(c"POD1_DEBUG").as_deref()));
    sys::exit(host::main(args, |root, state| {
        match pod(root, state, None, None) {
            Ok(code) => code,
            Err(e) => power::fatal(&e.to_string()),
        }
    }))
}

/// PID 1 in the VM: the boot checklist, then the pod (in a child that is
/// PID 1 of the pod's own PID namespace).
fn vm() -> Result<i32, Error> {
    // 1. Block the signals the supervisor reads from its signalfd. Order
    //    matters: first, so no SIGCHLD is lost and nothing kills PID 1.
    signals::block(&signals::handled_signals()).map_err(Error::Signals)?;
    let entered = console::now_us();
    // 2. The early filesystems; nothing reads /proc before this.
    mounts::mount_early(mounts::EARLY)?;
    let mounted = console::now_us();
    // 3. Our log lines go to the console, even if the initramfs had no
    //    /dev/console node when the kernel started us.
    console_on_stdio();
    // 4. Ctrl-Alt-Del becomes SIGINT (a graceful stop) instead of a reboot.
    if let Err(e) = rustix::system::reboot(rustix::system::RebootCommand::CadOff) {
        console::log(&format!("disabling Ctrl-Alt-Del: {}", Errno::from(e)));
    }
    // 5. Our options: `pod1.*` keys of the kernel command line.
    let opts = cmdline::parse(&sys::read_to_string("/proc/cmdline").unwrap_or_default());
    console::set_debug(opts.debug);
    for k in &opts.unknown {
        console::log(&format!("ignoring unknown option {k}"));
    }
    console::debug_at(entered, "PID 1 entered");
    console::debug_at(mounted, "early filesystems mounted");
    // 6. Modules, before anything that needs them (overlayfs).
    kmod::load_all(kmod::LOAD_LIST);
    console::debug("modules loaded");
    // 7. Off the initial rootfs, so containers can pivot_root.
    mounts::leave_initial_rootfs("/.pod1-root")?;
    console::debug("left the initial rootfs");
    // 8. The channel to the host (the virtio port, else ttyS1), after the
    //    modules (Debian's virtio-console is one), before the first event.
    let requests = channel::port::open_vm(opts.channel, opts.events.as_deref())?;
    console::debug("channel open");
    // 9. The pod runs as PID 1 of its own PID namespace (as on a host);
    //    this process stays the VM's PID 1 and powers off with its code.
    let net = opts.net;
    namespaces::run_as_pid_ns_init(|| match pod("/", "/run/pod1", Some(requests), net) {
        Ok(code) => code,
        Err(e) => power::fatal(&e.to_string()),
    })
    .map_err(Error::from)
}

/// Makes fds 0, 1 and 2 the console (or /dev/null). When the kernel found no
/// /dev/console in the initramfs they are closed, and the open below
/// itself returns one of them: that one must stay open.
fn console_on_stdio() {
    use rustix::fd::{AsRawFd, IntoRawFd};
    // Without a console, /dev/null: 0-2 must be open, or the next files
    // opened (the event port, pipes) would take their numbers and log
    // lines would land in them.
    let opened = ["/dev/console", "/dev/null"]
        .into_iter()
        .find_map(|p| sys::open(p, rustix::fs::OFlags::RDWR, 0).ok());
    if let Some(f) = opened {
        let fd = f.as_raw_fd();
        let _ = rustix::stdio::dup2_stdin(&f);
        let _ = rustix::stdio::dup2_stdout(&f);
        let _ = rustix::stdio::dup2_stderr(&f);
        // One of 0-2 itself (they were closed): it stays open as that.
        if fd <= 2 {
            let _ = f.into_raw_fd();
        }
    }
    // Nothing else in the guest may write to the console (a container
    // with CAP_MKNOD could make the node): opens without CAP_SYS_ADMIN get
    // EBUSY. (fd 2 is the console too; /dev/null is not a tty: nothing to
    // protect.)
    let _ = rustix::termios::ioctl_tiocexcl(sys::stderr());
}

/// The pod, the same in the VM and on a host: plan, sandbox, lifecycle.
/// `net`: the VM's NIC and its addresses (never on a host: the machine's
/// NICs are not the pod's).
fn pod(root: &str, state: &str, requests: Option<OwnedFd>, net: Option<net::Config>) -> Result<i32, Error> {
    // Only the VM's init hears from the host.
    let pid1 = requests.is_some();
    let argv0 = sys::args().into_iter().next().unwrap_or_default();
    channel::event(Event::InitStarted { argv0, pid1 });
    let path = sys::join(root, PLAN_PATH);
    let text = sys::read_to_string(&path).map_err(|source| Error::PlanRead {
        path: path.clone(),
        source,
    })?;
    let plan: Plan = serde_json::from_str(&text).map_err(|source| Error::PlanParse { path, source })?;
    console::debug("plan read");
    // The pause is never the OOM killer's choice (each container sets its
    // own value before it runs).
    if let Err(e) = sys::write("/proc/self/oom_score_adj", "-1000") {
        console::log(&format!("setting the init's oom_score_adj: {e}"));
    }
    mounts::mkdir_p(state)?;
    // Before any container: the namespaces they will join.
    let sandbox = namespaces::create(&plan, &sys::join(state, "ns"), pid1, net.as_ref())?;
    channel::event(Event::SandboxReady {});
    // hostPath shares, before the containers that bind them (in the VM
    // from their virtio-fs devices, on a host from the paths themselves).
    hostpath::mount_all(&plan.volumes, state, pid1).map_err(|e| Error::HostPath(Box::new(e)))?;
    let cg_name = if pid1 {
        "pod1".to_string()
    } else {
        // The outer process's pid, unique on the host (ours is 1).
        sys::file_name(state).map_or("pod1-host".into(), str::to_string)
    };
    let cgroups = cgroups::Cgroups::setup("/sys/fs/cgroup", &cg_name);
    console::debug("pod cgroup set up");
    let sup = supervisor::Supervisor::new(supervisor::Pod {
        plan,
        root: root.to_string(),
        state: state.to_string(),
        sandbox,
        cgroups,
        requests,
    })?;
    let (phase, code) = sup.run()?;
    console::debug(&format!("pod {phase:?} with exit code {code}"));
    Ok(code)
}
