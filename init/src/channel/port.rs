//! Finding and opening the channel's device.
//!
//! In the VM the channel is the virtio-serial port named
//! `pod1_manifest::channel::PORT_NAME`. No udev runs here, so the init
//! finds it the way udev would: the port whose `/sys/class/virtio-ports/
//! vportNpM/name` holds that name is `/dev/vportNpM` (devtmpfs makes the
//! node). The virtio-console driver adds ports asynchronously (the host
//! announces them over the device's control queue after the driver
//! probes), so the init waits a little for the name to appear, and then
//! for the host's side to be open. Without a virtio-serial device (a kernel
//! without virtio, or `pod1.channel=serial`), ttyS1 carries the same frames.

use alloc::format;
use alloc::string::{String, ToString};

use pod1_manifest::channel::PORT_NAME;
use rustix::event::{PollFd, PollFlags};
use rustix::fd::OwnedFd;
use rustix::fs::OFlags;
use rustix::termios;

use super::Encoding;
use crate::console::{self, now_ms};
use crate::sys::{self, Errno, IoError};

/// Which device the host asked for (`pod1.channel=` on the kernel command line).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Want {
    /// The virtio-serial port, else ttyS1.
    #[default]
    Virtio,
    /// ttyS1 only.
    Serial,
}

/// The serial port used when there is no virtio port.
pub const SERIAL: &str = "/dev/ttyS1";
/// How long the named port may take to appear once a virtio-console device
/// is bound (the host announces ports over the control queue).
const APPEAR_MS: u64 = 2_000;
/// How long the host's side of the port may take to open.
const CONNECT_MS: u64 = 1_000;

/// Errors opening the channel.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The device or file could not be opened.
    #[error("opening the channel to the host {path}: {source} (the VM needs a virtio-serial port or a second serial port)")]
    Open {
        /// The port or file.
        path: String,
        /// The cause.
        source: IoError,
    },
    /// The serial port could not be put in raw, exclusive mode.
    #[error("setting {path} to raw, exclusive mode: {source}")]
    Raw {
        /// The port.
        path: String,
        /// The cause.
        source: Errno,
    },
}

/// Opens the VM's channel and installs it; returns a second descriptor of
/// it for reading the host's requests. `events` (`pod1.events=PATH`) names
/// a serial device to use instead of looking for the virtio port.
///
/// Nothing else in the guest may write to a device the host reads: a
/// virtio port takes one opener at a time (EBUSY), the serial port used is
/// made exclusive (TIOCEXCL: EBUSY for anyone without CAP_SYS_ADMIN), and
/// ttyS1, when the virtio port is the channel, is held open exclusively
/// all the same, before any container exists.
pub fn open_vm(want: Want, events: Option<&str>) -> Result<OwnedFd, Error> {
    if let Some(path) = events {
        return open_serial(path);
    }
    if want == Want::Serial {
        return open_serial(SERIAL);
    }
    match find_virtio_port("/sys") {
        Some(dev) => {
            let reader = open_virtio(&dev)?;
            match raw_exclusive(SERIAL) {
                // Held for the life of the init (close-on-exec, so no
                // container inherits it).
                Ok(tty) => drop(rustix::fd::IntoRawFd::into_raw_fd(tty)),
                Err(e) => console::debug(&format!("not holding {SERIAL}: {e}")),
            }
            Ok(reader)
        }
        None => {
            console::log(&format!(
                "no virtio-serial port named {PORT_NAME}: the channel falls back to {SERIAL} (much slower)"
            ));
            open_serial(SERIAL)
        }
    }
}

/// The device node of the port named [`PORT_NAME`], waiting up to
/// [`APPEAR_MS`] for it when a virtio-console device is bound; `None` at
/// once when none is.
pub fn find_virtio_port(sys_root: &str) -> Option<String> {
    let driver = sys::join(sys_root, "bus/virtio/drivers/virtio_console");
    let bound = sys::read_dir(&driver).is_ok_and(|names| names.iter().any(|n| n.starts_with("virtio")));
    if !bound {
        return None;
    }
    let class = sys::join(sys_root, "class/virtio-ports");
    let since = now_ms();
    let deadline = since + APPEAR_MS;
    loop {
        if let Some(port) = named_port(&class, PORT_NAME) {
            console::debug(&format!(
                "{PORT_NAME} is {port}, found after {} ms",
                now_ms() - since
            ));
            return Some(format!("/dev/{port}"));
        }
        if now_ms() >= deadline {
            return None;
        }
        sys::sleep_ms(1);
    }
}

/// The entry of `class` (`/sys/class/virtio-ports`) whose `name` is `name`.
fn named_port(class: &str, name: &str) -> Option<String> {
    let ports = sys::read_dir(class).ok()?;
    ports.into_iter().find(|p| {
        sys::read_to_string(&sys::join(class, &format!("{p}/name")))
            .is_ok_and(|n| n.trim_end_matches('\n') == name)
    })
}

/// Opens the virtio port and waits (briefly) for the host's side to be
/// open. QEMU connects its side before the guest starts, so it is open by
/// now under `pod1 run`; until it is, the port polls as hung up (the
/// channel would be given up at once), so the wait sleeps rather than polls.
fn open_virtio(dev: &str) -> Result<OwnedFd, Error> {
    let file = open(dev, OFlags::RDWR | OFlags::NOCTTY | OFlags::NONBLOCK, 0)?;
    let since = now_ms();
    loop {
        let mut fds = [PollFd::new(&file, PollFlags::OUT)];
        let ready = rustix::event::poll(&mut fds, Some(&sys::timespec_ms(0)));
        if ready.is_ok() && fds[0].revents().contains(PollFlags::OUT) {
            break;
        }
        if now_ms() >= since + CONNECT_MS {
            console::log(&format!("{dev}: the host has not opened its side of the channel"));
            break;
        }
        sys::sleep_ms(1);
    }
    console::debug(&format!(
        "channel: {dev}, the host's side open after {} ms",
        now_ms() - since
    ));
    finish(file, dev, Encoding::Frames)
}

/// Opens a serial port as the channel (see [`raw_exclusive`]).
pub fn open_serial(path: &str) -> Result<OwnedFd, Error> {
    let file = raw_exclusive(path)?;
    console::debug(&format!("channel: {path}"));
    finish(file, path, Encoding::FramesOnTty)
}

/// Opens a serial port read-write in raw mode (no echo, no line editing,
/// no CR/LF translation: 8-bit clean for the frames) and exclusive.
fn raw_exclusive(path: &str) -> Result<OwnedFd, Error> {
    let file = open(path, OFlags::RDWR | OFlags::NOCTTY | OFlags::NONBLOCK, 0)?;
    let raw = |e: rustix::io::Errno| Error::Raw {
        path: path.to_string(),
        source: e.into(),
    };
    let mut t = termios::tcgetattr(&file).map_err(raw)?;
    t.make_raw();
    termios::tcsetattr(&file, termios::OptionalActions::Now, &t).map_err(raw)?;
    termios::ioctl_tiocexcl(&file).map_err(raw)?;
    Ok(file)
}

/// Opens the channel's device or file, naming it in the error.
fn open(path: &str, flags: OFlags, mode: u32) -> Result<OwnedFd, Error> {
    sys::open(path, flags, mode).map_err(|source| Error::Open {
        path: path.to_string(),
        source,
    })
}

/// Installs `file` as the channel; returns a duplicate for reading requests.
fn finish(file: OwnedFd, path: &str, encoding: Encoding) -> Result<OwnedFd, Error> {
    let reader = rustix::io::fcntl_dupfd_cloexec(&file, 3).map_err(|e| Error::Open {
        path: path.to_string(),
        source: IoError::from(e),
    })?;
    super::install(file, encoding);
    Ok(reader)
}

/// Host mode: events go to `path` (created or truncated), one JSON record
/// per line.
pub fn open_file(path: &str) -> Result<(), Error> {
    let file = open(path, OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC, 0o666)?;
    super::install(file, Encoding::JsonLines);
    Ok(())
}

/// Host mode: events go to an open descriptor (stdout), one JSON record per line.
pub fn use_fd(fd: OwnedFd) {
    super::install(fd, Encoding::JsonLines);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_named_port_only_when_a_device_is_bound() {
        let dir = std::env::temp_dir().join(format!("pod1-ports-{}", std::process::id()));
        let root = dir.to_str().unwrap();
        let mk = |rel: &str, name: Option<&str>| {
            let p = dir.join(rel);
            std::fs::create_dir_all(&p).unwrap();
            if let Some(n) = name {
                std::fs::write(p.join("name"), format!("{n}\n")).unwrap();
            }
        };
        mk("class/virtio-ports/vport0p1", Some("org.other"));
        mk("class/virtio-ports/vport0p2", Some(PORT_NAME));
        // No device bound to the driver: no wait, no port.
        mk("bus/virtio/drivers/virtio_console", None);
        assert_eq!(find_virtio_port(root), None);
        mk("bus/virtio/drivers/virtio_console/virtio0", None);
        assert_eq!(find_virtio_port(root).as_deref(), Some("/dev/vport0p2"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
