//! The small part of std the init used, rebuilt on rustix and glibc for a
//! `no_std` binary: errors that print as before, files and directories by
//! `&str` path (every path in the init is UTF-8), the command line, the
//! environment, exit and sleep.
//!
//! Two error types keep the messages users saw: [`Errno`] prints as nix's
//! did (`ENOENT: No such file or directory`), [`IoError`] as std's
//! `io::Error` did (`No such file or directory (os error 2)`).

use alloc::ffi::CString;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::ffi::{c_char, c_int, CStr};
use core::fmt;
use core::sync::atomic::{AtomicIsize, AtomicPtr, Ordering};

use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{self as rfs, FileType, Mode, OFlags, Stat};

extern "C" {
    // glibc 2.32+: the errno's name ("ENOENT"), NULL if unknown.
    fn strerrorname_np(errnum: c_int) -> *const c_char;
    // glibc 2.32+: the errno's description ("No such file or directory"),
    // untranslated, NULL if unknown. Unlike strerror_r it needs no
    // gettext, whose catalog and charset code would make up a tenth of
    // the static init.
    fn strerrordesc_np(errnum: c_int) -> *const c_char;
    // glibc 2.32+: a signal's abbreviation ("TERM"), NULL if unknown.
    fn sigabbrev_np(sig: c_int) -> *const c_char;
}

/// A system call's error number, shown as nix showed it: `EPERM: Operation
/// not permitted`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

impl Errno {
    pub const EPERM: Errno = Errno(libc::EPERM);
    pub const ENOENT: Errno = Errno(libc::ENOENT);
    pub const EINTR: Errno = Errno(libc::EINTR);
    pub const EIO: Errno = Errno(libc::EIO);
    pub const ECHILD: Errno = Errno(libc::ECHILD);
    pub const EAGAIN: Errno = Errno(libc::EAGAIN);
    pub const EEXIST: Errno = Errno(libc::EEXIST);
    pub const ENOTDIR: Errno = Errno(libc::ENOTDIR);
    pub const EINVAL: Errno = Errno(libc::EINVAL);
    pub const EBUSY: Errno = Errno(libc::EBUSY);
    #[cfg(test)]
    pub const ENODEV: Errno = Errno(libc::ENODEV);
    pub const ENOSYS: Errno = Errno(libc::ENOSYS);

    /// The calling thread's `errno` (after a failed libc call).
    pub fn last() -> Errno {
        // SAFETY: __errno_location returns this thread's errno slot, valid
        // for the life of the thread.
        Errno(unsafe { *libc::__errno_location() })
    }

    /// The C library's description, e.g. "No such file or directory".
    pub fn desc(self) -> String {
        // SAFETY: strerrordesc_np returns NULL or a static string.
        match unsafe { static_str(strerrordesc_np(self.0)) } {
            Some(d) => d.into(),
            None => alloc::format!("Unknown error {}", self.0),
        }
    }

    fn name(self) -> &'static str {
        // SAFETY: strerrorname_np returns NULL or a static string.
        unsafe { static_str(strerrorname_np(self.0)) }.unwrap_or("UnknownErrno")
    }
}

/// A C string glibc keeps for the life of the process, as `&str`.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that is never freed.
unsafe fn static_str(p: *const c_char) -> Option<&'static str> {
    if p.is_null() {
        return None;
    }
    // SAFETY: the caller guarantees a static NUL-terminated string.
    unsafe { CStr::from_ptr(p) }.to_str().ok()
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name(), self.desc())
    }
}

impl core::error::Error for Errno {}

impl From<rustix::io::Errno> for Errno {
    fn from(e: rustix::io::Errno) -> Errno {
        Errno(e.raw_os_error())
    }
}

/// A file operation's error, shown as std's `io::Error` showed it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum IoError {
    /// An error number: `No such file or directory (os error 2)`.
    Os(i32),
    /// An error without a number: its message.
    Other(&'static str),
}

impl IoError {
    /// std's `ErrorKind::InvalidInput` without a message.
    pub const INVALID_INPUT: IoError = IoError::Other("invalid input parameter");

    /// Whether this is ENOENT.
    pub fn is_not_found(self) -> bool {
        self == IoError::Os(libc::ENOENT)
    }

    /// The error number, if any.
    pub fn errno(self) -> Option<Errno> {
        match self {
            IoError::Os(n) => Some(Errno(n)),
            IoError::Other(_) => None,
        }
    }
}

impl fmt::Display for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IoError::Os(n) => write!(f, "{} (os error {n})", Errno(*n).desc()),
            IoError::Other(m) => f.write_str(m),
        }
    }
}

impl fmt::Debug for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl core::error::Error for IoError {}

impl From<rustix::io::Errno> for IoError {
    fn from(e: rustix::io::Errno) -> IoError {
        IoError::Os(e.raw_os_error())
    }
}

impl From<Errno> for IoError {
    fn from(e: Errno) -> IoError {
        IoError::Os(e.0)
    }
}

/// The result of the file helpers.
pub type IoResult<T> = Result<T, IoError>;

/// Prints flag bits as nix's bitflags printed them: `Name(A | B)`, the
/// names in `names`' order, unknown bits in hex, `Name(0x0)` when empty.
pub fn fmt_flags(f: &mut fmt::Formatter<'_>, ty: &str, bits: u64, names: &[(u64, &str)]) -> fmt::Result {
    write!(f, "{ty}(")?;
    let mut rest = bits;
    let mut sep = "";
    for (bit, name) in names {
        if rest & bit != 0 {
            write!(f, "{sep}{name}")?;
            rest &= !bit;
            sep = " | ";
        }
    }
    if rest != 0 || bits == 0 {
        write!(f, "{sep}{rest:#x}")?;
    }
    f.write_str(")")
}

// ---- paths ---------------------------------------------------------------

/// Whether the working directory is inside the root directory, as runc
/// checks it after its chdir (CVE-2024-21626): a directory reached through
/// a path outside the root (a symlink into `/proc/PID/root` of a process
/// outside, say) has no path from the root, and getcwd(2) says so (glibc
/// fails with ENOENT, the raw call prefixes `(unreachable)`).
pub fn cwd_within_root() -> Result<(), String> {
    match rustix::process::getcwd(Vec::new()) {
        Ok(p) if p.to_bytes().starts_with(b"/") => Ok(()),
        Ok(p) => Err(format!(
            "the working directory {p:?} is outside the container's root"
        )),
        Err(e) => Err(format!(
            "the working directory is outside the container's root (getcwd: {})",
            Errno::from(e)
        )),
    }
}

/// `base/rel` as `Path::join` makes it: an absolute `rel` replaces `base`.
pub fn join(base: &str, rel: &str) -> String {
    if rel.starts_with('/') || base.is_empty() {
        rel.to_string()
    } else if base.ends_with('/') {
        alloc::format!("{base}{rel}")
    } else {
        alloc::format!("{base}/{rel}")
    }
}

/// The last component of `path` (`Path::file_name`).
pub fn file_name(path: &str) -> Option<&str> {
    match path.trim_end_matches('/').rsplit('/').next() {
        None | Some("") | Some("..") | Some(".") => None,
        Some(name) => Some(name),
    }
}

// ---- files ---------------------------------------------------------------

/// Opens `path` with `flags` (plus O_CLOEXEC), creating it with `mode`.
pub fn open(path: &str, flags: OFlags, mode: u32) -> IoResult<OwnedFd> {
    Ok(rfs::open(
        path,
        flags | OFlags::CLOEXEC,
        Mode::from_raw_mode(mode),
    )?)
}

/// Reads `fd` to its end (retrying on EINTR).
pub fn read_fd(fd: impl AsFd, out: &mut Vec<u8>) -> IoResult<()> {
    let mut chunk = [0u8; 8192];
    loop {
        match rustix::io::read(&fd, &mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Writes all of `buf` to `fd` (retrying on EINTR and short writes).
pub fn write_fd(fd: impl AsFd, mut buf: &[u8]) -> IoResult<()> {
    while !buf.is_empty() {
        match rustix::io::write(&fd, buf) {
            Ok(0) => return Err(IoError::Other("failed to write whole buffer")),
            Ok(n) => buf = &buf[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// `fs::read_to_string`.
pub fn read_to_string(path: &str) -> IoResult<String> {
    let fd = open(path, OFlags::RDONLY, 0)?;
    let mut bytes = Vec::new();
    read_fd(&fd, &mut bytes)?;
    String::from_utf8(bytes).map_err(|_| IoError::Other("stream did not contain valid UTF-8"))
}

/// `fs::write`: creates or truncates `path` (mode 0666 less the umask).
pub fn write(path: &str, data: impl AsRef<[u8]>) -> IoResult<()> {
    let fd = open(path, OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC, 0o666)?;
    write_fd(&fd, data.as_ref())
}

/// `fs::create_dir` (mode 0777 less the umask).
pub fn create_dir(path: &str) -> IoResult<()> {
    Ok(rfs::mkdir(path, Mode::from_raw_mode(0o777))?)
}

/// `fs::create_dir_all`: `mkdir -p`.
pub fn create_dir_all(path: &str) -> IoResult<()> {
    if path.is_empty() || path == "/" {
        return Ok(());
    }
    match create_dir(path) {
        Ok(()) => return Ok(()),
        Err(e) if e.is_not_found() => {}
        Err(_) if is_dir(path) => return Ok(()),
        Err(e) => return Err(e),
    }
    let trimmed = path.trim_end_matches('/');
    if let Some(i) = trimmed.rfind('/') {
        create_dir_all(&trimmed[..i])?;
    }
    match create_dir(path) {
        Ok(()) => Ok(()),
        Err(_) if is_dir(path) => Ok(()),
        Err(e) => Err(e),
    }
}

/// `fs::remove_dir`.
pub fn remove_dir(path: &str) -> IoResult<()> {
    Ok(rfs::rmdir(path)?)
}

/// `fs::remove_file`.
pub fn remove_file(path: &str) -> IoResult<()> {
    Ok(rfs::unlink(path)?)
}

/// `fs::remove_dir_all`: removes `path` and everything below it, working
/// relative to open directories, so a name need not be UTF-8 and a symlink
/// is removed, never followed.
pub fn remove_dir_all(path: &str) -> IoResult<()> {
    let dir = open(path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW, 0)?;
    remove_contents(&dir)?;
    drop(dir);
    remove_dir(path)
}

fn remove_contents(dir: &OwnedFd) -> IoResult<()> {
    for name in entries(dir)? {
        match rfs::statat(dir, name.as_c_str(), rfs::AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if file_type(&st) == FileType::Directory => {
                remove_contents(&open_dir_at(dir, &name)?)?;
                rfs::unlinkat(dir, name.as_c_str(), rfs::AtFlags::REMOVEDIR)?;
            }
            Ok(_) => rfs::unlinkat(dir, name.as_c_str(), rfs::AtFlags::empty())?,
            Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Opens the directory `name` in `dir` without following a symlink.
pub fn open_dir_at(dir: &OwnedFd, name: &CStr) -> IoResult<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    Ok(rfs::openat(dir, name, flags, Mode::empty())?)
}

/// The names in the open directory `dir`, without `.` and `..`, as bytes
/// (a name need not be UTF-8).
pub fn entries(dir: &OwnedFd) -> IoResult<Vec<CString>> {
    let mut d = rfs::Dir::read_from(dir)?;
    let mut names = Vec::new();
    while let Some(entry) = d.read() {
        let entry = entry?;
        if !matches!(entry.file_name().to_bytes(), b"." | b"..") {
            names.push(CString::from(entry.file_name()));
        }
    }
    Ok(names)
}

/// The names in directory `path`, without `.` and `..`.
pub fn read_dir(path: &str) -> IoResult<Vec<String>> {
    let fd = open(path, OFlags::RDONLY | OFlags::DIRECTORY, 0)?;
    let mut dir = rfs::Dir::new(fd)?;
    let mut names = Vec::new();
    while let Some(entry) = dir.read() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let name = core::str::from_utf8(name).map_err(|_| IoError::Other("a file name is not UTF-8"))?;
        names.push(name.to_string());
    }
    Ok(names)
}

/// `stat(2)`, following symlinks.
pub fn stat(path: &str) -> IoResult<Stat> {
    Ok(rfs::stat(path)?)
}

/// `lstat(2)`: the link itself.
pub fn lstat(path: &str) -> IoResult<Stat> {
    Ok(rfs::lstat(path)?)
}

/// The file type in a `stat`.
pub fn file_type(st: &Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

/// Whether `path` is (or links to) a directory.
pub fn is_dir(path: &str) -> bool {
    stat(path).is_ok_and(|st| file_type(&st) == FileType::Directory)
}

/// Whether `path` exists (following symlinks).
pub fn exists(path: &str) -> bool {
    stat(path).is_ok()
}

/// `std::os::unix::fs::symlink`: makes `link` point to `target`.
pub fn symlink(target: &str, link: &str) -> IoResult<()> {
    Ok(rfs::symlink(target, link)?)
}

/// Copies the regular file `name` from directory `from` to a new file in
/// `to`, with its permission bits.
pub fn copy_file_at(from: &OwnedFd, to: &OwnedFd, name: &CStr) -> IoResult<()> {
    let src = rfs::openat(
        from,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mode = Mode::from_raw_mode(rfs::fstat(&src)?.st_mode & 0o7777);
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let dst = rfs::openat(to, name, flags, mode)?;
    let mut chunk = alloc::vec![0u8; 64 * 1024];
    loop {
        match rustix::io::read(&src, &mut chunk[..]) {
            Ok(0) => break,
            Ok(n) => write_fd(&dst, &chunk[..n])?,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(rfs::fchmod(&dst, mode)?)
}

/// `chmod(2)`.
pub fn chmod(path: &str, mode: u32) -> IoResult<()> {
    Ok(rfs::chmod(path, Mode::from_raw_mode(mode))?)
}

/// `fs::canonicalize` for a directory: the absolute path with every
/// symlink resolved, as the kernel names it: getcwd(2) from inside it,
/// then back (glibc's realpath would link its locale machinery in).
pub fn canonicalize(path: &str) -> IoResult<String> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let dir = rfs::open(path, flags, Mode::empty())?;
    let back = rfs::open(".", flags, Mode::empty())?;
    rustix::process::fchdir(&dir)?;
    let cwd = rustix::process::getcwd(Vec::new());
    rustix::process::fchdir(&back)?;
    Ok(String::from_utf8_lossy(cwd?.as_bytes()).into_owned())
}

// ---- process -------------------------------------------------------------

static ARGC: AtomicIsize = AtomicIsize::new(0);
static ARGV: AtomicPtr<*const c_char> = AtomicPtr::new(core::ptr::null_mut());

/// Keeps the C `main`'s arguments for [`args`].
///
/// # Safety
/// `argv` holds `argc` valid C strings that live as long as the process
/// (as the C runtime's do).
pub unsafe fn set_args(argc: c_int, argv: *const *const c_char) {
    ARGC.store(argc as isize, Ordering::Relaxed);
    ARGV.store(argv.cast_mut(), Ordering::Relaxed);
}

/// The command line, argv[0] first (invalid UTF-8 replaced).
pub fn args() -> Vec<String> {
    let argc = ARGC.load(Ordering::Relaxed).max(0) as usize;
    let argv = ARGV.load(Ordering::Relaxed);
    if argv.is_null() {
        return Vec::new();
    }
    (0..argc)
        .filter_map(|i| {
            // SAFETY: set_args' contract: argc valid strings in argv.
            let p = unsafe { *argv.add(i) };
            // SAFETY: as above; a NULL entry is skipped.
            (!p.is_null())
                .then(|| String::from_utf8_lossy(unsafe { CStr::from_ptr(p) }.to_bytes()).into_owned())
        })
        .collect()
}

/// An environment variable, if set and UTF-8.
pub fn var(name: &CStr) -> Option<String> {
    // SAFETY: name is a C string; the init is single-threaded, so nothing
    // changes the environment while the result is copied.
    let p = unsafe { libc::getenv(name.as_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: getenv returned a NUL-terminated string.
    unsafe { CStr::from_ptr(p) }.to_str().ok().map(str::to_string)
}

/// `env::temp_dir`: `$TMPDIR`, else `/tmp`.
pub fn temp_dir() -> String {
    var(c"TMPDIR").unwrap_or_else(|| "/tmp".to_string())
}

/// `process::exit`: runs the C library's exit handlers and exits.
pub fn exit(code: i32) -> ! {
    // SAFETY: exit(3) never returns; the init holds no state that another
    // thread could be using.
    unsafe { libc::exit(code) }
}

/// A timespec of `ms` milliseconds (for poll and nanosleep).
pub fn timespec_ms(ms: u64) -> rustix::time::Timespec {
    rustix::time::Timespec {
        tv_sec: (ms / 1000) as i64,
        tv_nsec: ((ms % 1000) * 1_000_000) as i64,
    }
}

/// Sleeps for `ms` milliseconds (at least; EINTR is retried by the kernel's
/// remaining time).
pub fn sleep_ms(ms: u64) {
    let mut req = timespec_ms(ms);
    while let rustix::thread::NanosleepRelativeResult::Interrupted(rest) = rustix::thread::nanosleep(&req) {
        req = rest;
    }
}

/// Standard output.
pub fn stdout() -> BorrowedFd<'static> {
    // SAFETY: the init never closes fds 0-2 (it only dup2s onto them).
    unsafe { rustix::stdio::stdout() }
}

/// Standard error.
pub fn stderr() -> BorrowedFd<'static> {
    // SAFETY: the init never closes fds 0-2 (it only dup2s onto them).
    unsafe { rustix::stdio::stderr() }
}

/// Writes a line to stderr (`eprintln!`).
pub fn eprint_line(msg: &str) {
    let mut line = String::with_capacity(msg.len() + 1);
    line.push_str(msg);
    line.push('\n');
    let _ = write_fd(stderr(), line.as_bytes());
}

/// A signal number, printed as nix's `Signal` printed it (`SIGTERM`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Sig(pub i32);

impl fmt::Display for Sig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // SAFETY: sigabbrev_np returns NULL or a static string.
        match unsafe { static_str(sigabbrev_np(self.0)) } {
            Some(abbrev) => write!(f, "SIG{abbrev}"),
            None => write!(f, "signal {}", self.0),
        }
    }
}

impl fmt::Debug for Sig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// What `waitpid` reported, printed as nix's `WaitStatus` printed it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum WaitStatus {
    /// Process `pid` exited with a code.
    Exited(i32, i32),
    /// Process `pid` was killed by a signal (and dumped core).
    Signaled(i32, Sig, bool),
    /// Another change of process `pid` (stopped, continued).
    Other(i32),
    /// WNOHANG and no child has changed.
    StillAlive,
}

impl fmt::Debug for WaitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitStatus::Exited(pid, code) => write!(f, "Exited(Pid({pid}), {code})"),
            WaitStatus::Signaled(pid, sig, core) => write!(f, "Signaled(Pid({pid}), {sig}, {core})"),
            WaitStatus::Other(pid) => write!(f, "Stopped(Pid({pid}))"),
            WaitStatus::StillAlive => f.write_str("StillAlive"),
        }
    }
}

/// `waitpid(2)` for `pid` (any child when `None`), without blocking when
/// `nohang`.
pub fn waitpid(pid: Option<i32>, nohang: bool) -> Result<WaitStatus, Errno> {
    use rustix::process::{Pid, WaitOptions};
    let opts = if nohang {
        WaitOptions::NOHANG
    } else {
        WaitOptions::empty()
    };
    let pid = match pid {
        Some(p) => Some(Pid::from_raw(p).ok_or(Errno::EINVAL)?),
        None => None,
    };
    Ok(match rustix::process::waitpid(pid, opts)? {
        None => WaitStatus::StillAlive,
        Some((pid, st)) => {
            let pid = pid.as_raw_nonzero().get();
            if let Some(code) = st.exit_status() {
                WaitStatus::Exited(pid, code)
            } else if let Some(sig) = st.terminating_signal() {
                WaitStatus::Signaled(pid, Sig(sig), st.as_raw() & 0x80 != 0)
            } else {
                WaitStatus::Other(pid)
            }
        }
    })
}

/// `fork(2)` as the raw clone system call, with `flags` (new namespaces)
/// besides: `Some(child)` in the parent, `None` in the child. glibc's fork
/// adds what a single-threaded process with its own heap does not need
/// (stdio's and malloc's locks, atfork handlers) and 4 KB to the init.
///
/// # Safety
/// The caller must be single-threaded (the child may then run any code).
pub unsafe fn fork_with(flags: c_int) -> Result<Option<i32>, Errno> {
    // SAFETY: clone without CLONE_VM and without a new stack behaves as
    // fork(2): the child gets a copy of the address space and continues
    // here with 0; the caller guarantees no other thread exists, so no
    // lock is held in the copy.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    match ret as i32 {
        -1 => Err(Errno::last()),
        0 => Ok(None),
        pid => Ok(Some(pid)),
    }
}

/// [`fork_with`] with no new namespace: `fork(2)`.
///
/// # Safety
/// As [`fork_with`].
pub unsafe fn fork() -> Result<Option<i32>, Errno> {
    // SAFETY: the caller's guarantee, passed on.
    unsafe { fork_with(0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The messages read as nix's and std's did.
    #[test]
    fn errors_print_as_before() {
        assert_eq!(Errno::ENOENT.to_string(), "ENOENT: No such file or directory");
        assert_eq!(Errno(4095).desc(), "Unknown error 4095");
        assert_eq!(format!("{:?}", Err::<(), _>(Errno::EPERM)), "Err(EPERM)");
        assert_eq!(
            IoError::Os(libc::ENOENT).to_string(),
            "No such file or directory (os error 2)"
        );
        assert_eq!(IoError::INVALID_INPUT.to_string(), "invalid input parameter");
        assert_eq!(Sig(libc::SIGTERM).to_string(), "SIGTERM");
        assert_eq!(
            format!("{:?}", WaitStatus::Signaled(7, Sig(libc::SIGKILL), false)),
            "Signaled(Pid(7), SIGKILL, false)"
        );
        assert_eq!(
            format!(
                "{:?}",
                crate::mounts::MsFlags::MS_NOSUID | crate::mounts::MsFlags::MS_NODEV
            ),
            "MsFlags(MS_NOSUID | MS_NODEV)"
        );
        assert_eq!(format!("{:?}", crate::mounts::MsFlags::empty()), "MsFlags(0x0)");
        assert_eq!(
            format!(
                "{:?}",
                crate::namespaces::CloneFlags(libc::CLONE_NEWNS | libc::CLONE_NEWPID)
            ),
            "CloneFlags(CLONE_NEWNS | CLONE_NEWPID)"
        );
    }

    #[test]
    fn paths_join_as_std_does() {
        assert_eq!(join("/", "etc/pod1/plan.json"), "/etc/pod1/plan.json");
        assert_eq!(join("/run/pod1", "ns"), "/run/pod1/ns");
        assert_eq!(join("/a", "/abs"), "/abs");
        assert_eq!(file_name("/tmp/pod1-init.12/"), Some("pod1-init.12"));
        assert_eq!(file_name("/"), None);
    }
}
