//! Just enough ELF reading to tell a static x86-64 executable from a dynamic one.
//!
//! Hand-written because the only question is "has it a PT_INTERP program
//! header?": a full ELF crate would be a large dependency for 30 lines.

use anyhow::{bail, Result};

const PT_INTERP: u32 = 3;
const EM_X86_64: u16 = 62;

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

/// Checks that `bin` is a statically linked x86-64 ELF executable.
pub fn check_static(bin: &[u8]) -> Result<()> {
    if bin.get(..4) != Some(b"\x7fELF") {
        bail!("not an ELF executable");
    }
    if bin.get(4) != Some(&2) || bin.get(5) != Some(&1) || u16_at(bin, 18) != Some(EM_X86_64) {
        bail!("not a 64-bit little-endian x86-64 executable");
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(bin, 32), u16_at(bin, 54), u16_at(bin, 56))
    else {
        bail!("truncated ELF header");
    };
    for i in 0..usize::from(phnum) {
        let off = usize::try_from(phoff)? + i * usize::from(phentsize);
        match u32_at(bin, off) {
            None => bail!("truncated program headers"),
            Some(PT_INTERP) => bail!(
                "it is dynamically linked (it names a program interpreter), and an initramfs has no shared libraries: \
                 build it with `cargo build --release --manifest-path init/Cargo.toml` (the project's .cargo/config.toml links it statically)"
            ),
            Some(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_static_from_dynamic() {
        // A dynamic executable from the system, and the static busybox if present.
        let dynamic = std::fs::read("/bin/ls").unwrap();
        assert!(check_static(&dynamic)
            .unwrap_err()
            .to_string()
            .contains("dynamically linked"));
        if let Ok(bb) = std::fs::read("/bin/busybox") {
            check_static(&bb).unwrap();
        }
        // This test binary is built with +crt-static.
        check_static(&std::fs::read(std::env::current_exe().unwrap()).unwrap()).unwrap();
        assert!(check_static(b"#!/bin/sh\n").is_err());
        assert!(check_static(b"\x7fELF\x02\x01").is_err());
    }
}
