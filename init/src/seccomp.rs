//! Installs a container's seccomp filter, compiled on the host (see the
//! builder's `seccomp` module): as the last step before exec with
//! no_new_privs, as the first step of taking on the container's identity
//! without it (see `process::identity_steps`).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use pod1_manifest::plan::Seccomp;

use crate::sys::Errno;

/// `SECCOMP_SET_MODE_FILTER` (linux/seccomp.h).
const SET_MODE_FILTER: libc::c_ulong = 1;

/// The plan's hex program as the kernel's `sock_filter` array.
fn decode(hex: &str) -> Option<Vec<libc::sock_filter>> {
    let bytes = pod1_manifest::plan::unhex(hex)?;
    // The kernel takes at most BPF_MAXINSNS (4096) instructions.
    if bytes.is_empty() || bytes.len() % 8 != 0 || bytes.len() / 8 > 4096 {
        return None;
    }
    Some(
        bytes
            .chunks_exact(8)
            .map(|c| libc::sock_filter {
                code: u16::from_le_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect(),
    )
}

/// Installs `s` (its program among the plan's `programs`) on the calling
/// process. The caller has set no_new_privs (or still holds CAP_SYS_ADMIN).
pub fn install(s: &Seccomp, programs: &[String]) -> Result<(), String> {
    let what = match &s.localhost_profile {
        Some(file) => format!("the seccomp profile {file}"),
        None => format!("the seccomp profile {:?}", s.profile),
    };
    let hex = s.program.and_then(|i| programs.get(i)).map_or("", String::as_str);
    let filter = decode(hex).ok_or_else(|| format!("{what}: the plan holds no valid program; rebuild"))?;
    let prog = libc::sock_fprog {
        // decode() keeps it within 4096 instructions.
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `prog` points at `filter`, both alive across the call; the
    // kernel copies the program.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SET_MODE_FILTER,
            s.flags as libc::c_ulong,
            &prog as *const libc::sock_fprog,
        )
    };
    if ret != 0 {
        return Err(format!("installing {what}: {}", Errno::last()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_kernel_layout() {
        let f = decode("2000000004000000").expect("one instruction");
        assert_eq!((f[0].code, f[0].jt, f[0].jf, f[0].k), (0x20, 0, 0, 4));
        assert!(decode("").is_none());
        assert!(decode("20000000040000").is_none());
        assert!(decode("2000000004000zz0").is_none());
        assert!(decode(&"0".repeat(16 * 4097)).is_none());
    }
}
