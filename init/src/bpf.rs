//! bpf(2) for the cgroup device controller: load the program the plan
//! carries (see `pod1_manifest::devices`) and attach it to a cgroup.

use rustix::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::sys::Errno;

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
/// Programs of the cgroups above still run (a nested runtime may add its own).
const BPF_F_ALLOW_MULTI: u32 = 2;

/// The leading fields of `union bpf_attr` for BPF_PROG_LOAD; the rest of
/// the union must be zero, which the kernel checks up to `size`.
#[repr(C)]
#[derive(Default)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `union bpf_attr` for BPF_PROG_ATTACH.
#[repr(C)]
#[derive(Default)]
struct ProgAttach {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &T) -> Result<libc::c_long, Errno> {
    // SAFETY: `attr` is a live, initialised `union bpf_attr` prefix of
    // size_of::<T>() bytes; the kernel reads at most that many. Pointers
    // inside it (instructions, license) are kept alive by the callers.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *const T as *const libc::c_void,
            core::mem::size_of::<T>(),
        )
    };
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok(ret)
    }
}

/// Loads a `BPF_PROG_TYPE_CGROUP_DEVICE` program (`struct bpf_insn` bytes).
pub fn load_device_program(insns: &[u8]) -> Result<OwnedFd, Errno> {
    if insns.is_empty() || insns.len() % 8 != 0 {
        return Err(Errno::EINVAL);
    }
    let license = b"Apache-2.0\0";
    let mut attr = ProgLoad {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: (insns.len() / 8) as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        ..ProgLoad::default()
    };
    attr.prog_name[..11].copy_from_slice(b"pod1_device");
    let fd = bpf(BPF_PROG_LOAD, &attr)?;
    // SAFETY: BPF_PROG_LOAD returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Attaches a device program to the cgroup open at `cgroup`.
pub fn attach_device_program(cgroup: &OwnedFd, prog: &OwnedFd) -> Result<(), Errno> {
    let attr = ProgAttach {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        replace_bpf_fd: 0,
    };
    bpf(BPF_PROG_ATTACH, &attr).map(|_| ())
}
