//! The QEMU command line: acceleration, machine, kernel command line, the
//! two serial ports (console; ttyS1, the channel's fallback) and the
//! channel's virtio-serial port.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use pod1_manifest::channel::PORT_NAME;
use pod1_manifest::plan::{NetworkPlan, PortPlan};

/// x86's COMMAND_LINE_SIZE, the NUL included.
const MAX_CMDLINE: usize = 2048;

/// A kernel command line built from validated parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelCmdline(Vec<String>);

impl KernelCmdline {
    /// Adds `key=value`, or a bare `key` when `value` is `None`.
    pub fn push(&mut self, key: &str, value: Option<&str>) -> Result<&mut Self> {
        let param = match value {
            Some(v) => format!("{key}={v}"),
            None => key.to_string(),
        };
        self.push_raw(&param)?;
        Ok(self)
    }

    /// Adds parameters given as one string (`--append`), split on whitespace.
    pub fn append(&mut self, params: &str) -> Result<&mut Self> {
        for p in params.split_whitespace() {
            self.push_raw(p)?;
        }
        Ok(self)
    }

    fn push_raw(&mut self, param: &str) -> Result<()> {
        if param.is_empty()
            || param
                .chars()
                .any(|c| c.is_whitespace() || c == '"' || c.is_control())
        {
            bail!(
                "kernel parameter {param:?} must be non-empty, without spaces, quotes or control characters"
            );
        }
        if self.to_string().len() + param.len() + 2 > MAX_CMDLINE {
            bail!("the kernel command line would exceed {MAX_CMDLINE} bytes");
        }
        self.0.push(param.to_string());
        Ok(())
    }

    /// Whether a parameter `key` or `key=...` is present.
    pub fn has(&self, key: &str) -> bool {
        self.0
            .iter()
            .any(|p| p == key || p.starts_with(&format!("{key}=")))
    }
}

impl fmt::Display for KernelCmdline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(" "))
    }
}

/// How the guest CPU runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Accel {
    /// KVM where it can work, else TCG.
    Auto,
    /// Hardware virtualisation.
    Kvm,
    /// QEMU's emulator: slower, works everywhere.
    Tcg,
}

impl Accel {
    /// The QEMU `-accel` name.
    pub fn name(self) -> &'static str {
        match self {
            Accel::Auto | Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// Whether KVM can work here: `/dev/kvm` opens read-write and the CPU
/// advertises vmx or svm. (`/dev/kvm` alone is not enough: nested setups
/// without the flags hang after the BIOS.)
pub fn kvm_usable(cpuinfo: &str, dev_kvm: &Path) -> Result<(), String> {
    if let Err(e) = std::fs::OpenOptions::new().read(true).write(true).open(dev_kvm) {
        return Err(format!("{} cannot be opened read-write ({e})", dev_kvm.display()));
    }
    let flags = cpuinfo.lines().find(|l| l.starts_with("flags")).unwrap_or("");
    if !flags.split_whitespace().any(|f| f == "vmx" || f == "svm") {
        return Err("the CPU advertises neither vmx nor svm".to_string());
    }
    Ok(())
}

/// Which device carries the channel between the init and `pod1 run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ChannelKind {
    /// A virtio-serial port (fast; ttyS1 still carries it if the guest has no virtio).
    Virtio,
    /// The second serial port, ttyS1 (an emulated 16550 UART: a few hundred KB/s under TCG).
    Serial,
}

/// Everything one QEMU run needs.
#[derive(Debug, Clone)]
pub struct VmConfig {
    /// `qemu-system-x86_64` or another binary.
    pub qemu: PathBuf,
    /// bzImage.
    pub kernel: PathBuf,
    /// The initramfs.
    pub initrd: PathBuf,
    /// Kernel parameters.
    pub cmdline: KernelCmdline,
    /// `kvm` or `tcg`.
    pub accel: Accel,
    /// QEMU machine type.
    pub machine: String,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// Guest CPUs.
    pub cpus: u32,
    /// Unix socket QEMU connects ttyS0 (the console) to.
    pub console_socket: PathBuf,
    /// Unix socket QEMU connects ttyS1 (the channel's fallback) to.
    pub serial_socket: PathBuf,
    /// The channel's device; for virtio, the unix socket of its port.
    pub channel: ChannelKind,
    /// Unix socket QEMU connects the virtio-serial port to.
    pub virtio_socket: PathBuf,
    /// The NIC's addresses and its port forwards; `None`: no NIC.
    pub network: Option<(NetworkPlan, Vec<PortPlan>)>,
    /// hostPath volumes' virtio-fs devices (none: no device, private RAM).
    pub shares: Vec<crate::virtiofs::QemuShare>,
}

impl VmConfig {
    /// QEMU's arguments.
    pub fn args(&self) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        let mut push = |items: &[&str]| a.extend(items.iter().map(|s| s.to_string()));
        // No default devices (VGA, a NIC with its option ROM), no window, and
        // a reboot (how panic=-1 ends) exits QEMU instead of rebooting.
        push(&["-nodefaults", "-no-user-config", "-display", "none", "-no-reboot"]);
        push(&["-machine", &self.machine, "-accel", self.accel.name()]);
        if self.accel == Accel::Kvm {
            push(&["-cpu", "host"]);
        }
        push(&["-m", &self.memory_mib.to_string(), "-smp", &self.cpus.to_string()]);
        push(&[
            "-kernel",
            &self.kernel.to_string_lossy(),
            "-initrd",
            &self.initrd.to_string_lossy(),
        ]);
        push(&["-append", &self.cmdline.to_string()]);
        let con = format!("socket,id=con,path={}", self.console_socket.display());
        let ev = format!("socket,id=ev,path={}", self.serial_socket.display());
        push(&[
            "-chardev",
            &con,
            "-serial",
            "chardev:con",
            "-chardev",
            &ev,
            "-serial",
            "chardev:ev",
        ]);
        if self.channel == ChannelKind::Virtio {
            // One port: port 0 is kept for a console, so max_ports=2 (the
            // default, 31, costs the guest 64 virtqueues to set up).
            let bus = if self.machine.starts_with("microvm") {
                "virtio-serial-device"
            } else {
                "virtio-serial-pci"
            };
            let chardev = format!("socket,id=ch,path={}", self.virtio_socket.display());
            let port = format!("virtserialport,bus=vser.0,chardev=ch,name={PORT_NAME}");
            push(&[
                "-device",
                &format!("{bus},id=vser,max_ports=2"),
                "-chardev",
                &chardev,
                "-device",
                &port,
            ]);
        }
        if let Some((net, forwards)) = &self.network {
            a.extend(crate::net::qemu_args(net, forwards, &self.machine));
        }
        a.extend(["-monitor", "none"].map(str::to_string));
        a.extend(crate::virtiofs::qemu_args(&self.shares, self.memory_mib));
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_validates() {
        let mut c = KernelCmdline::default();
        c.push("console", Some("ttyS0"))
            .unwrap()
            .push("quiet", None)
            .unwrap();
        c.append("  rdinit=/sbin/init  pod1.debug=1 ").unwrap();
        assert_eq!(
            c.to_string(),
            "console=ttyS0 quiet rdinit=/sbin/init pod1.debug=1"
        );
        assert!(c.has("rdinit") && c.has("quiet") && !c.has("init"));
        assert!(c.push("a", Some("b c")).is_err());
        assert!(c.push("a\"", None).is_err());
        assert!(c.append(&"x".repeat(3000)).is_err());
    }

    #[test]
    fn kvm_needs_the_cpu_flag_and_the_device() {
        assert!(kvm_usable("flags : fpu vmx sse", Path::new("/nonexistent/kvm")).is_err());
        let dev_null = Path::new("/dev/null");
        assert!(kvm_usable("flags\t\t: fpu sse hypervisor", dev_null)
            .unwrap_err()
            .contains("vmx"));
        assert!(kvm_usable("flags\t\t: fpu svm sse", dev_null).is_ok());
    }
}
