//! hostPath volumes on the host: each volume's path is checked (and made,
//! as its type asks) before the VM boots, then served to the guest by a
//! virtiofsd of its own (a daemon serves one directory) on a vhost-user
//! socket QEMU connects a `vhost-user-fs-pci` device to.
//!
//! Which daemon: `$POD1_VIRTIOFSD`, else the Rust `virtiofsd` on PATH,
//! else `/usr/libexec/virtiofsd` (where Fedora puts the Rust one), else
//! QEMU's C virtiofsd at `/usr/lib/qemu/virtiofsd` (Debian 12 ships only
//! that one). Both run as root: they act for the guest with its uids and
//! gids, 1:1, which only root can. Neither gets `xattr` (a guest could
//! otherwise set file capabilities on host files).
//!
//! What a daemon sees: each one starts in a mount namespace of its own
//! (`pre_exec`: unshare, `/` made private), where pod1 binds the volume
//! onto an empty directory of its run and hands the daemon that
//! directory; nothing of this reaches the host's mount table, even if pod1
//! is killed. That gives three things:
//! - a single file is shared without its siblings: the directory is a
//!   small tmpfs holding one empty file ([`FILE_NAME`]) with the host file
//!   bound over it, and the tmpfs is then made read-only, so the guest can
//!   add nothing beside it (sharing the file's own directory would hand an
//!   untrusted guest everything next to it);
//! - a volume every container mounts read-only is bound read-only, so the
//!   kernel refuses writes even from the daemon (the C one has no
//!   read-only mode; the Rust one also gets `--readonly`);
//! - the daemon's command line names only pod1's own directory, never a
//!   user's path (the C daemon's `-o source=` could not take a comma).
//!
//! Lifetime: a daemon gets SIGKILL when pod1 dies (PR_SET_PDEATHSIG) and
//! runs in its own process group (a terminal's Ctrl-C is pod1's to
//! handle). [`Daemons`] kills every daemon's group when the boot ends,
//! however it ends (the C daemon waits forever for a QEMU that died before
//! connecting). A daemon that dies while QEMU runs would leave the guest's
//! I/O on its share blocked forever: [`Daemons::watch`] reports it, and
//! `pod1 run` kills the VM and fails the run.

use std::ffi::CString;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use pod1_manifest::hostpath::{self, Action, Found, HostPathType, FILE_NAME};
use pod1_manifest::plan::Plan;

use crate::session::guest::Msg;

/// QEMU's C virtiofsd, as Debian's qemu-system-common installs it.
pub const C_VIRTIOFSD: &str = "/usr/lib/qemu/virtiofsd";
/// How long a daemon may take to open its socket.
const SOCKET_WAIT: Duration = Duration::from_secs(10);
/// How long QEMU may take to exit after a daemon did before the daemon's
/// end counts as its death: a daemon exits once QEMU hangs up, a moment
/// before QEMU itself is gone.
const QEMU_EXIT_GRACE: Duration = Duration::from_secs(1);
/// The most of a daemon's stderr kept for a message.
const STDERR_KEPT: usize = 2048;

/// Makes every hostPath of `plan` absolute against `manifest_dir`, and
/// decides for a `""` type whether it is a file from what is there now
/// (a directory when nothing is: `pod1 run` makes one).
pub fn resolve_plan(plan: &mut Plan, manifest_dir: &Path) -> Result<()> {
    let base =
        std::path::absolute(manifest_dir).with_context(|| format!("resolving {}", manifest_dir.display()))?;
    for v in &mut plan.volumes {
        let Some(h) = &mut v.host_path else { continue };
        if !h.path.starts_with('/') {
            let base = base.to_str().with_context(|| {
                format!(
                    "volume {}: the manifest's directory {} is not UTF-8: give hostPath.path as an absolute path",
                    v.name,
                    base.display()
                )
            })?;
            h.path = hostpath::absolute(base, &h.path);
        }
        if h.kind == HostPathType::Unset {
            h.file = std::fs::metadata(&h.path).is_ok_and(|m| m.is_file());
        }
    }
    Ok(())
}

/// What the build cache must also key on: for each hostPath of type `""`,
/// whether it is a file now (the plan's `file` comes from that).
pub fn fingerprint(pod: &pod1_manifest::Pod, manifest_dir: &Path) -> String {
    let mut out = String::new();
    for v in &pod.spec.volumes {
        let Some(h) = v
            .host_path
            .as_ref()
            .filter(|h| h.kind.as_deref().unwrap_or("").is_empty())
        else {
            continue;
        };
        let is_file = std::fs::metadata(manifest_dir.join(&h.path)).is_ok_and(|m| m.is_file());
        out.push_str(&format!("{}={is_file};", v.name));
    }
    out
}

/// Which virtiofsd, told apart by its options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// The Rust virtiofsd (`--shared-dir`, `--readonly`).
    Rust,
    /// QEMU's C virtiofsd (`-o source=`).
    C,
}

/// The daemon serving the shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Daemon {
    /// Its binary.
    pub path: PathBuf,
    /// Its kind.
    pub flavor: Flavor,
}

/// Finds the daemon (see the module's docs for the order).
fn find_daemon() -> Result<Daemon> {
    let chosen = match std::env::var_os("POD1_VIRTIOFSD") {
        Some(p) => {
            let p = PathBuf::from(p);
            if !p.is_file() {
                bail!("$POD1_VIRTIOFSD names {}, which is not a file", p.display());
            }
            p
        }
        None => {
            let on_path: Vec<PathBuf> = std::env::var_os("PATH")
                .map(|paths| {
                    std::env::split_paths(&paths)
                        .map(|d| d.join("virtiofsd"))
                        .collect()
                })
                .unwrap_or_default();
            let known = [
                PathBuf::from("/usr/libexec/virtiofsd"),
                PathBuf::from(C_VIRTIOFSD),
            ];
            on_path.into_iter().chain(known).find(|p| p.is_file()).context(
                "hostPath volumes need virtiofsd: install qemu-system-common (it ships /usr/lib/qemu/virtiofsd), \
                 or the Rust virtiofsd (`cargo install virtiofsd`) on PATH or as $POD1_VIRTIOFSD",
            )?
        }
    };
    let help = Command::new(&chosen)
        .arg("--help")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {} --help", chosen.display()))?;
    let text = [help.stdout, help.stderr].concat();
    Ok(Daemon {
        flavor: flavor_of(&String::from_utf8_lossy(&text)),
        path: chosen,
    })
}

/// The Rust daemon documents `--shared-dir`; the C one `-o source=`.
fn flavor_of(help: &str) -> Flavor {
    match help.contains("--shared-dir") {
        true => Flavor::Rust,
        false => Flavor::C,
    }
}

impl Daemon {
    /// Its arguments for one share.
    pub fn args(&self, socket: &Path, dir: &Path, read_only: bool) -> Vec<String> {
        let (socket, dir) = (socket.display(), dir.display());
        match self.flavor {
            Flavor::Rust => {
                let mut a = vec![
                    format!("--socket-path={socket}"),
                    format!("--shared-dir={dir}"),
                    "--cache=auto".to_string(),
                    "--sandbox=namespace".to_string(),
                ];
                if read_only {
                    a.push("--readonly".to_string());
                }
                a
            }
            Flavor::C => vec![
                format!("--socket-path={socket}"),
                "-o".to_string(),
                format!("source={dir}"),
                "-o".to_string(),
                "cache=auto".to_string(),
            ],
        }
    }

    fn describe(&self) -> String {
        match self.flavor {
            Flavor::Rust => format!("{} (the Rust virtiofsd)", self.path.display()),
            Flavor::C => format!(
                "{} (QEMU's C virtiofsd; the Rust virtiofsd is used instead when installed)",
                self.path.display()
            ),
        }
    }
}

/// One hostPath volume, checked and ready to share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    /// The volume's name.
    pub volume: String,
    /// The host path, absolute.
    pub path: PathBuf,
    /// The device's tag.
    pub tag: String,
    /// One file rather than a directory.
    pub file: bool,
    /// Every mount of it is read-only.
    pub read_only: bool,
}

/// A pod's hostPath shares and their daemon; empty for a pod without any,
/// which then gets no daemon, no device and no shared memory backend.
#[derive(Debug, Clone, Default)]
pub struct Shares {
    daemon: Option<Daemon>,
    list: Vec<Share>,
}

/// One share as QEMU sees it: the daemon's socket and the device's tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuShare {
    /// The vhost-user socket.
    pub socket: PathBuf,
    /// The tag the guest mounts.
    pub tag: String,
}

/// Checks every hostPath of the plan against its type, makes what the
/// type asks for (as the kubelet does, before the pod starts) and finds
/// the daemon. A pod without hostPath volumes needs nothing.
pub fn prepare(plan: Option<&Plan>, machine: &str) -> Result<Shares> {
    let mut list = Vec::new();
    for v in plan.map(|p| p.volumes.as_slice()).unwrap_or_default() {
        let Some(h) = &v.host_path else { continue };
        let fail = |msg: String| anyhow::anyhow!("hostPath volume {:?}: {msg}", v.name);
        let path = PathBuf::from(&h.path);
        let found = match std::fs::metadata(&path) {
            Ok(m) if m.is_dir() => Found::Dir,
            Ok(m) if m.is_file() => Found::File,
            Ok(_) => Found::Other,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Found::Missing,
            Err(e) => return Err(fail(format!("cannot read {}: {e}", path.display()))),
        };
        match hostpath::check(h.kind, h.file, found, &h.path).map_err(fail)? {
            Action::Use => {}
            // The kubelet's MakeDir: 0755, with the parents.
            Action::MakeDir => std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(&path)
                .map_err(|e| fail(format!("creating the directory {}: {e}", path.display())))?,
            // The kubelet's MakeFile: 0644, in a directory that must exist.
            Action::MakeFile => {
                std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .mode(0o644)
                    .open(&path)
                    .map_err(|e| {
                        fail(format!(
                            "creating the file {}: {e} (FileOrCreate makes the file, not its directory)",
                            path.display()
                        ))
                    })?;
            }
        }
        list.push(Share {
            volume: v.name.clone(),
            path,
            tag: h.tag.clone(),
            file: h.file,
            read_only: h.read_only,
        });
    }
    if list.is_empty() {
        return Ok(Shares::default());
    }
    if machine.starts_with("microvm") {
        bail!(
            "hostPath volumes need --machine pc: on microvm QEMU's virtio-fs device is an MMIO one, which pod1 does not set up"
        );
    }
    // SAFETY: geteuid(2) takes nothing and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "hostPath volumes need pod1 run as root: virtiofsd acts for the guest with its own uids and gids on the host's files, which only root can"
        );
    }
    let daemon = find_daemon()?;
    eprintln!("pod1: hostPath volumes shared by {}", daemon.describe());
    Ok(Shares {
        daemon: Some(daemon),
        list,
    })
}

impl Shares {
    /// Whether there is anything to share.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    fn socket(work: &Path, attempt: u32, i: usize) -> PathBuf {
        work.join(format!("virtiofs-{attempt}-{i}.sock"))
    }

    /// The devices of boot number `attempt`, its sockets in `work`.
    pub fn qemu(&self, work: &Path, attempt: u32) -> Vec<QemuShare> {
        self.list
            .iter()
            .enumerate()
            .map(|(i, s)| QemuShare {
                socket: Self::socket(work, attempt, i),
                tag: s.tag.clone(),
            })
            .collect()
    }

    /// Starts one daemon per share for boot number `attempt` and waits
    /// until each listens on its socket (QEMU fails at once without it).
    pub fn start(&self, work: &Path, attempt: u32) -> Result<Daemons> {
        let mut running = Daemons::default();
        let Some(daemon) = &self.daemon else {
            return Ok(running);
        };
        for (i, share) in self.list.iter().enumerate() {
            let fail = || {
                format!(
                    "hostPath volume {:?}: starting {}",
                    share.volume,
                    daemon.path.display()
                )
            };
            let socket = Self::socket(work, attempt, i);
            let dir = work.join(format!("share-{attempt}-{i}"));
            // Empty on the host's side (its mounts were the daemon's own);
            // a boot retried under TCG has the same number.
            let _ = std::fs::remove_dir(&dir);
            std::fs::create_dir(&dir).with_context(fail)?;
            let _ = std::fs::remove_file(&socket);
            let setup = NamespaceSetup::new(share, &dir)?;
            let mut cmd = Command::new(&daemon.path);
            cmd.args(daemon.args(&socket, &dir, share.read_only))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .process_group(0);
            // SAFETY: the closure runs in the child between fork and exec;
            // NamespaceSetup::run makes only async-signal-safe system calls
            // (prctl, unshare, mount, open, close) on C strings made before
            // the fork, and allocates nothing.
            unsafe {
                cmd.pre_exec(move || setup.run());
            }
            let child = cmd.spawn().with_context(fail)?;
            running.list.push(Running {
                volume: share.volume.clone(),
                pid: Pid::from_raw(child.id() as i32),
                child,
            });
            let last = running.list.last_mut().context("a daemon just started")?;
            wait_for_socket(last, &socket).with_context(fail)?;
        }
        Ok(running)
    }
}

/// Waits until `socket` exists, or the daemon exits (an error with what
/// it said), or [`SOCKET_WAIT`] passes.
fn wait_for_socket(d: &mut Running, socket: &Path) -> Result<()> {
    let deadline = Instant::now() + SOCKET_WAIT;
    loop {
        if std::fs::symlink_metadata(socket).is_ok_and(|m| m.file_type().is_socket()) {
            return Ok(());
        }
        if let Some(status) = d.child.try_wait()? {
            let said = d.child.stderr.take().map(read_tail).unwrap_or_default();
            bail!(
                "it exited ({status}) before it opened its socket: {}",
                said.trim()
            );
        }
        if Instant::now() > deadline {
            bail!(
                "it did not open its socket {} within {} s",
                socket.display(),
                SOCKET_WAIT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The end of what a daemon wrote on stderr.
fn read_tail(mut r: impl Read) -> String {
    let mut all = Vec::new();
    let _ = r.read_to_end(&mut all);
    let start = all.len().saturating_sub(STDERR_KEPT);
    String::from_utf8_lossy(&all[start..]).into_owned()
}

/// What the daemon's child does before exec: its own mount namespace,
/// and the volume bound at the directory the daemon serves. The C
/// strings are made before the fork.
struct NamespaceSetup {
    host: CString,
    dir: CString,
    /// `dir/FILE_NAME`, for a file.
    file: Option<CString>,
    read_only: bool,
}

impl NamespaceSetup {
    fn new(share: &Share, dir: &Path) -> Result<NamespaceSetup> {
        let c = |p: &Path| CString::new(p.as_os_str().as_bytes()).context("a path with a NUL byte");
        Ok(NamespaceSetup {
            host: c(&share.path)?,
            dir: c(dir)?,
            file: match share.file {
                true => Some(c(&dir.join(FILE_NAME))?),
                false => None,
            },
            read_only: share.read_only,
        })
    }

    /// Runs in the forked child: no allocation, only system calls.
    fn run(&self) -> std::io::Result<()> {
        let check = |r: libc::c_int| match r {
            -1 => Err(std::io::Error::last_os_error()),
            _ => Ok(()),
        };
        let none = std::ptr::null::<libc::c_char>();
        // SAFETY: every pointer passed below is a NUL-terminated string
        // owned by `self` (alive until exec) or NULL where the call takes
        // NULL; the calls only read them; close takes the descriptor open
        // returned.
        unsafe {
            // Dies with pod1, whatever kills it.
            check(libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
            ))?;
            check(libc::unshare(libc::CLONE_NEWNS))?;
            // Order matters: private before any mount, so none reaches the host.
            check(libc::mount(
                none,
                c"/".as_ptr(),
                none,
                libc::MS_REC | libc::MS_PRIVATE,
                none.cast(),
            ))?;
            let rdonly_remount = |target: *const libc::c_char, extra: libc::c_ulong| {
                check(libc::mount(
                    none,
                    target,
                    none,
                    libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | extra,
                    none.cast(),
                ))
            };
            match &self.file {
                None => {
                    check(libc::mount(
                        self.host.as_ptr(),
                        self.dir.as_ptr(),
                        none,
                        libc::MS_BIND | libc::MS_REC,
                        none.cast(),
                    ))?;
                    if self.read_only {
                        rdonly_remount(self.dir.as_ptr(), 0)?;
                    }
                }
                Some(file) => {
                    let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
                    check(libc::mount(
                        c"tmpfs".as_ptr(),
                        self.dir.as_ptr(),
                        c"tmpfs".as_ptr(),
                        flags,
                        c"size=16k,mode=0755".as_ptr().cast(),
                    ))?;
                    let fd = libc::open(
                        file.as_ptr(),
                        libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                        0o644 as libc::c_uint,
                    );
                    check(fd)?;
                    libc::close(fd);
                    check(libc::mount(
                        self.host.as_ptr(),
                        file.as_ptr(),
                        none,
                        libc::MS_BIND,
                        none.cast(),
                    ))?;
                    if self.read_only {
                        rdonly_remount(file.as_ptr(), 0)?;
                    }
                    // Nothing can be added beside the file.
                    check(libc::mount(
                        none,
                        self.dir.as_ptr(),
                        none,
                        libc::MS_REMOUNT | libc::MS_RDONLY | flags,
                        c"size=16k,mode=0755".as_ptr().cast(),
                    ))?;
                }
            }
        }
        Ok(())
    }
}

/// One running daemon.
#[derive(Debug)]
struct Running {
    volume: String,
    pid: Pid,
    child: Child,
}

/// The daemons of one boot: all killed (their process groups) and reaped
/// when this is dropped.
#[derive(Debug, Default)]
pub struct Daemons {
    list: Vec<Running>,
    /// Set when the boot ends: a daemon's end is no longer news.
    ending: Arc<AtomicBool>,
}

impl Daemons {
    /// Reports on `tx` a daemon that exits while QEMU (`qemu`) still runs:
    /// the guest's I/O on its share would block forever.
    pub fn watch(&mut self, tx: &Sender<Msg>, qemu: Pid) {
        for d in &mut self.list {
            let (tx, ending, pid, volume) = (tx.clone(), self.ending.clone(), d.pid, d.volume.clone());
            let said = Arc::new(std::sync::Mutex::new(Vec::new()));
            if let Some(mut stderr) = d.child.stderr.take() {
                // Its own thread: the C daemon's sandbox child holds the
                // pipe too, and may outlive the process pod1 started.
                let said = said.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 1024];
                    while let Ok(n @ 1..) = stderr.read(&mut buf) {
                        if let Ok(mut kept) = said.lock() {
                            kept.extend_from_slice(&buf[..n]);
                            let extra = kept.len().saturating_sub(STDERR_KEPT);
                            kept.drain(..extra);
                        }
                    }
                });
            }
            std::thread::spawn(move || {
                // WNOWAIT leaves it a zombie, so its pid cannot be reused
                // before Daemons reaps it.
                let status = waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT);
                let deadline = Instant::now() + QEMU_EXIT_GRACE;
                while Instant::now() < deadline && !ending.load(Ordering::SeqCst) {
                    let qemu_gone = !matches!(
                        waitid(
                            Id::Pid(qemu),
                            WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT
                        ),
                        Ok(WaitStatus::StillAlive)
                    );
                    if qemu_gone {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                if ending.load(Ordering::SeqCst) {
                    return;
                }
                let how = match status {
                    Ok(WaitStatus::Exited(_, code)) => format!("exited with code {code}"),
                    Ok(WaitStatus::Signaled(_, sig, _)) => format!("was killed by {sig}"),
                    _ => "ended".to_string(),
                };
                // What it said before it died (a moment for the last words).
                std::thread::sleep(Duration::from_millis(50));
                let said = said
                    .lock()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                // Its last lines (the C daemon logs every connection).
                let lines: Vec<&str> = said.trim().lines().collect();
                let said = match lines.len() {
                    0 => String::new(),
                    n => format!("; its last words: {}", lines[n.saturating_sub(3)..].join(" / ")),
                };
                let _ = tx.send(Msg::DaemonDied(format!(
                    "the virtiofsd serving hostPath volume {volume:?} {how} while the pod ran, so the guest's \
                     I/O on it could never finish: the VM was killed{said}"
                )));
            });
        }
    }
}

impl Drop for Daemons {
    fn drop(&mut self) {
        self.ending.store(true, Ordering::SeqCst);
        for d in &mut self.list {
            // The group: the C daemon's sandbox is a child of its own.
            let _ = killpg(d.pid, Signal::SIGKILL);
            let _ = d.child.wait();
        }
    }
}

/// QEMU's arguments for the shares: guest RAM on a shared memfd (the
/// daemon reads and writes the guest's buffers in place; with private RAM
/// the guest hangs on its first write), then one socket and one
/// `vhost-user-fs-pci` device per share. None without shares.
pub fn qemu_args(shares: &[QemuShare], memory_mib: u32) -> Vec<String> {
    if shares.is_empty() {
        return Vec::new();
    }
    let mut a = vec![
        "-object".to_string(),
        format!("memory-backend-memfd,id=pod1-mem,size={memory_mib}M,share=on"),
        "-numa".to_string(),
        "node,memdev=pod1-mem".to_string(),
    ];
    for (i, s) in shares.iter().enumerate() {
        a.extend([
            "-chardev".to_string(),
            format!("socket,id=vfs{i},path={}", s.socket.display()),
            "-device".to_string(),
            format!("vhost-user-fs-pci,chardev=vfs{i},tag={}", s.tag),
        ]);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daemon_arguments_per_flavor() {
        let d = |flavor| Daemon {
            path: "/x".into(),
            flavor,
        };
        let (sock, dir) = (Path::new("/w/s.sock"), Path::new("/w/share-1-0"));
        assert_eq!(
            d(Flavor::C).args(sock, dir, true),
            [
                "--socket-path=/w/s.sock",
                "-o",
                "source=/w/share-1-0",
                "-o",
                "cache=auto"
            ]
        );
        assert_eq!(
            d(Flavor::Rust).args(sock, dir, true),
            [
                "--socket-path=/w/s.sock",
                "--shared-dir=/w/share-1-0",
                "--cache=auto",
                "--sandbox=namespace",
                "--readonly"
            ]
        );
        assert!(!d(Flavor::Rust)
            .args(sock, dir, false)
            .contains(&"--readonly".to_string()));
        assert_eq!(
            flavor_of("Usage: virtiofsd [OPTIONS] --shared-dir <dir>"),
            Flavor::Rust
        );
        assert_eq!(
            flavor_of("usage: virtiofsd [options]\n -o source=PATH"),
            Flavor::C
        );
    }

    #[test]
    fn qemu_gets_shared_memory_and_one_device_per_share() {
        assert!(qemu_args(&[], 512).is_empty());
        let shares = [
            QemuShare {
                socket: "/w/a.sock".into(),
                tag: "pod1-vol0".into(),
            },
            QemuShare {
                socket: "/w/b.sock".into(),
                tag: "pod1-vol2".into(),
            },
        ];
        assert_eq!(
            qemu_args(&shares, 768).join(" "),
            "-object memory-backend-memfd,id=pod1-mem,size=768M,share=on -numa node,memdev=pod1-mem \
             -chardev socket,id=vfs0,path=/w/a.sock -device vhost-user-fs-pci,chardev=vfs0,tag=pod1-vol0 \
             -chardev socket,id=vfs1,path=/w/b.sock -device vhost-user-fs-pci,chardev=vfs1,tag=pod1-vol2"
        );
    }

    /// The plan of a one-container pod with these volumes.
    fn plan_of(volumes: serde_json::Value) -> Plan {
        let pod = serde_json::json!({"metadata": {"name": "p"}, "spec": {"volumes": volumes,
            "containers": [{"name": "c", "image": "dir:x", "command": ["true"]}]}});
        let pod = pod1_manifest::Pod::parse(&pod.to_string()).unwrap();
        let images = std::collections::BTreeMap::from([("dir:x".to_string(), Default::default())]);
        pod1_manifest::plan::resolve(&pod, &images).unwrap()
    }

    fn one(path: &Path, kind: &str) -> Plan {
        plan_of(serde_json::json!([{"name": "v", "hostPath": {"path": path, "type": kind}}]))
    }

    #[test]
    fn paths_are_checked_and_made_before_boot() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        // A pod without hostPath pays nothing, not even the daemon search.
        assert!(prepare(None, "microvm").unwrap().is_empty());
        assert!(prepare(Some(&plan_of(serde_json::json!([]))), "microvm")
            .unwrap()
            .is_empty());
        // The paths are checked and made first (as the kubelet does before
        // the pod starts); microvm is refused after that.
        let made = dir.path().join("a/b");
        let e = format!(
            "{:#}",
            prepare(Some(&one(&made, "DirectoryOrCreate")), "microvm").unwrap_err()
        );
        assert!(e.contains("--machine pc"), "{e}");
        assert_eq!(
            std::fs::metadata(&made).unwrap().permissions().mode() & 0o7777,
            0o755 & !umask()
        );
        let file = dir.path().join("f.conf");
        prepare(Some(&one(&file, "FileOrCreate")), "microvm").unwrap_err();
        let md = std::fs::metadata(&file).unwrap();
        assert!(md.is_file() && md.len() == 0);
        assert_eq!(md.permissions().mode() & 0o777, 0o644 & !umask());
        let missing = dir.path().join("nope");
        let e = format!(
            "{:#}",
            prepare(Some(&one(&missing, "Directory")), "pc").unwrap_err()
        );
        assert!(
            e.contains("hostPath volume \"v\"") && e.contains("is not a directory"),
            "{e}"
        );
        assert!(!missing.exists());
        let e = format!("{:#}", prepare(Some(&one(&file, "Directory")), "pc").unwrap_err());
        assert!(e.contains("is not a directory"), "{e}");
        let e = format!(
            "{:#}",
            prepare(Some(&one(&dir.path().join("x/y"), "FileOrCreate")), "pc").unwrap_err()
        );
        assert!(e.contains("not its directory"), "{e}");
        let e = format!("{:#}", prepare(Some(&one(&made, "File")), "pc").unwrap_err());
        assert!(e.contains("is not a file"), "{e}");
    }

    fn umask() -> u32 {
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
        nix::sys::stat::umask(old);
        old.bits()
    }

    #[test]
    fn relative_paths_resolve_against_the_manifest_and_unset_types_look() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("one.txt"), "x").unwrap();
        let mut plan = plan_of(serde_json::json!([
            {"name": "a", "hostPath": {"path": "one.txt"}},
            {"name": "b", "hostPath": {"path": "./sub/", "type": ""}},
            {"name": "c", "hostPath": {"path": "/abs", "type": "Directory"}}]));
        resolve_plan(&mut plan, dir.path()).unwrap();
        let h: Vec<_> = plan
            .volumes
            .iter()
            .map(|v| v.host_path.clone().unwrap())
            .collect();
        let base = dir.path().to_str().unwrap();
        assert_eq!((h[0].path.clone(), h[0].file), (format!("{base}/one.txt"), true));
        assert_eq!((h[1].path.clone(), h[1].file), (format!("{base}/sub"), false));
        assert_eq!(h[2].path, "/abs");
        assert_eq!(fingerprint_of(&dir), "a=true;b=false;");
    }

    fn fingerprint_of(dir: &tempfile::TempDir) -> String {
        let pod = serde_json::json!({"metadata": {"name": "p"}, "spec": {"volumes": [
            {"name": "a", "hostPath": {"path": "one.txt"}}, {"name": "b", "hostPath": {"path": "sub", "type": ""}},
            {"name": "c", "hostPath": {"path": "x", "type": "File"}}],
            "containers": [{"name": "c", "image": "dir:x"}]}});
        fingerprint(&pod1_manifest::Pod::parse(&pod.to_string()).unwrap(), dir.path())
    }
}
