//! `pod1-init`: the VM's PID 1, the pod's pause process and its container
//! runtime, in one static binary.
//!
//! As PID 1 (in the VM) it boots the minimal system, builds the pod sandbox,
//! runs the plan's containers through their lifecycle, reports events on
//! ttyS1 and powers the VM off. Any other PID means host mode (see `host`):
//! `pod1-init --root DIR [--events FILE]` runs the same pod on this host.
//!
//! What the init expects in the initramfs:
//! - `/etc/pod1/plan.json`: the plan (`pod1_manifest::plan::PLAN_PATH`);
//! - every `ContainerPlan::rootfs` directory (e.g. `/pod1/images/<id>`);
//! - optionally `/pod1/modules/load`: kernel modules to load, one path a line;
//! - `/dev/ttyS1` is the event channel (devtmpfs provides it; override with
//!   `pod1.events=PATH` on the kernel command line); `pod1.debug` logs more.
//!
//! No Rust runtime start-up (`no_main`): std's would read /proc/self/maps
//! (glibc's pthread_getattr_np, for the main thread's stack guard) before
//! the init has mounted /proc. The C `main` below is the entry point.
#![cfg_attr(not(test), no_main)]
// The unit-test harness brings its own main, so the entry point is not built.
#![cfg_attr(test, allow(dead_code))]

mod caps;
mod cgroups;
mod cmdline;
mod console;
mod host;
mod kmod;
mod mounts;
mod namespaces;
mod power;
mod process;
mod rootfs;
mod supervisor;
mod tree;

use std::fs;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use pod1_manifest::events::Event;
use pod1_manifest::plan::PLAN_PATH;
use pod1_manifest::Plan;

use crate::power::Role;

/// A step of the init that failed; each ends the pod with exit code 125.
#[derive(Debug, thiserror::Error)]
enum Error {
    /// Blocking the handled signals failed.
    #[error("blocking signals: {0}")]
    Signals(Errno),
    /// A mount failed.
    #[error(transparent)]
    Mounts(#[from] mounts::Error),
    /// The event channel could not be opened.
    #[error(transparent)]
    Console(#[from] console::Error),
    /// The plan could not be read.
    #[error(
        "reading the plan {path}: {source} (the image must hold the plan `pod1 build` writes; rebuild it)"
    )]
    PlanRead {
        /// Where it should be.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The plan is not valid JSON of the right shape.
    #[error("parsing the plan {path}: {source} (was it written by the same pod1 version?)")]
    PlanParse {
        /// The file.
        path: PathBuf,
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
}

/// The entry point, called by the C runtime (see the crate docs).
#[cfg(not(test))]
#[no_mangle]
pub extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    // What std's start-up would have done that matters here: a write to a
    // closed pipe (the host's end of the events) is an error, not death.
    // Children get the default back before exec.
    // SAFETY: SIG_IGN installs no handler code.
    let _ = unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigIgn,
        )
    };
    init_main();
    0
}

/// Chooses VM or host mode; never returns.
fn init_main() {
    power::install_panic_hook();
    if nix::unistd::getpid().as_raw() == 1 {
        power::set_role(Role::Vm);
        match vm() {
            Ok(code) => power::finish(code),
            Err(e) => power::fatal(&e.to_string()),
        }
    }
    let args = match host::parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("pod1-init: {msg}");
            }
            eprintln!("{}", host::USAGE);
            std::process::exit(if msg.is_empty() { 0 } else { power::INIT_FAILED });
        }
    };
    std::process::exit(host::main(args, |root, state| {
        match pod(root, state, None, false) {
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
    supervisor::handled_signals()
        .thread_block()
        .map_err(Error::Signals)?;
    // 2. The early filesystems; nothing reads /proc before this.
    mounts::mount_early(mounts::EARLY)?;
    // 3. Our log lines go to the console, even if the initramfs had no
    //    /dev/console node when the kernel started us.
    console_on_stdio();
    // 4. Ctrl-Alt-Del becomes SIGINT (a graceful stop) instead of a reboot.
    if let Err(e) = nix::sys::reboot::set_cad_enabled(false) {
        console::log(&format!("disabling Ctrl-Alt-Del: {e}"));
    }
    // 5. Our options: `pod1.*` keys of the kernel command line.
    let opts = cmdline::parse(&fs::read_to_string("/proc/cmdline").unwrap_or_default());
    console::set_debug(opts.debug);
    for k in &opts.unknown {
        console::log(&format!("ignoring unknown option {k}"));
    }
    // 6. Modules, before anything that needs them (overlayfs).
    kmod::load_all(Path::new(kmod::LOAD_LIST));
    // 7. Off the initial rootfs, so containers can pivot_root.
    mounts::leave_initial_rootfs(Path::new("/.pod1-root"))?;
    // 8. The event channel, then the first event.
    let port = opts.events.as_deref().unwrap_or("/dev/ttyS1");
    let requests = console::open_serial(Path::new(port))?;
    // 9. The pod runs as PID 1 of its own PID namespace (as on a host);
    //    this process stays the VM's PID 1 and powers off with its code.
    namespaces::run_as_pid_ns_init(|| {
        match pod(Path::new("/"), Path::new("/run/pod1"), Some(requests), true) {
            Ok(code) => code,
            Err(e) => power::fatal(&e.to_string()),
        }
    })
    .map_err(Error::from)
}

/// Makes fds 0, 1 and 2 the console. When the kernel found no
/// /dev/console in the initramfs they are closed, and the open below
/// itself returns one of them: that one must stay open.
fn console_on_stdio() {
    use std::os::fd::IntoRawFd;
    if let Ok(f) = fs::OpenOptions::new().read(true).write(true).open("/dev/console") {
        let fd = f.into_raw_fd();
        for target in 0..3 {
            if fd != target {
                let _ = nix::unistd::dup2(fd, target);
            }
        }
        if fd > 2 {
            let _ = nix::unistd::close(fd);
        }
    }
}

/// The pod, the same in the VM and on a host: plan, sandbox, lifecycle.
fn pod(root: &Path, state: &Path, requests: Option<OwnedFd>, pid1: bool) -> Result<i32, Error> {
    let argv0 = std::env::args().next().unwrap_or_default();
    console::emit(Event::InitStarted { argv0, pid1 });
    let path = root.join(PLAN_PATH);
    let text = fs::read_to_string(&path).map_err(|source| Error::PlanRead {
        path: path.clone(),
        source,
    })?;
    let plan: Plan = serde_json::from_str(&text).map_err(|source| Error::PlanParse { path, source })?;
    mounts::mkdir_p(state)?;
    // Before any container: the namespaces they will join.
    let sandbox = namespaces::create(&plan, &state.join("ns"), pid1)?;
    console::emit(Event::SandboxReady {});
    let cg_name = if pid1 {
        "pod1".to_string()
    } else {
        // The outer process's pid, unique on the host (ours is 1).
        state
            .file_name()
            .map_or("pod1-host".into(), |n| n.to_string_lossy().into_owned())
    };
    let cgroups = cgroups::Cgroups::setup(Path::new("/sys/fs/cgroup"), &cg_name);
    let sup = supervisor::Supervisor::new(supervisor::Pod {
        plan,
        root: root.to_owned(),
        state: state.to_owned(),
        sandbox,
        cgroups,
        requests,
    })?;
    let (phase, code) = sup.run()?;
    console::debug(&format!("pod {phase:?} with exit code {code}"));
    Ok(code)
}
