//! The device controller of cgroup v2: an eBPF program of type
//! `BPF_PROG_TYPE_CGROUP_DEVICE` that the init attaches to a container's
//! cgroup. The kernel runs it on every open and mknod of a device node;
//! it returns 1 to allow, 0 to deny (EPERM).
//!
//! The rules are runc's default ones (its `AllowedDevices`): mknod of any
//! node (opening it is what is checked), and read/write/mknod of null,
//! zero, full, random, urandom, tty, ptmx, the pseudo-terminals and
//! tun/tap. The console (5:1) is left out: in the VM it is the init's
//! console, and no container is given one.
//!
//! Written by hand (a few instructions per rule, as runc's devicefilter
//! emits them) rather than with an eBPF assembler crate: the program is
//! fixed and small, and the encoding is the kernel's (linux/bpf.h).

use alloc::vec::Vec;

/// A device's kind as the program sees it (`BPF_DEVCG_DEV_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Block device.
    Block = 1,
    /// Character device.
    Char = 2,
}

/// `BPF_DEVCG_ACC_MKNOD`.
pub const MKNOD: u32 = 1;
/// `BPF_DEVCG_ACC_READ`.
pub const READ: u32 = 2;
/// `BPF_DEVCG_ACC_WRITE`.
pub const WRITE: u32 = 4;
const RWM: u32 = READ | WRITE | MKNOD;

/// One allow rule; `None` is a wildcard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// Block or char.
    pub kind: Kind,
    /// Major number.
    pub major: Option<u32>,
    /// Minor number.
    pub minor: Option<u32>,
    /// Allowed accesses (`MKNOD | READ | WRITE`).
    pub access: u32,
}

const fn c(major: Option<u32>, minor: Option<u32>, access: u32) -> Rule {
    Rule {
        kind: Kind::Char,
        major,
        minor,
        access,
    }
}

/// runc's default allow list, without the console.
pub const DEFAULT_RULES: &[Rule] = &[
    c(None, None, MKNOD),
    Rule {
        kind: Kind::Block,
        major: None,
        minor: None,
        access: MKNOD,
    },
    c(Some(1), Some(3), RWM),    // null
    c(Some(1), Some(5), RWM),    // zero
    c(Some(1), Some(7), RWM),    // full
    c(Some(1), Some(8), RWM),    // random
    c(Some(1), Some(9), RWM),    // urandom
    c(Some(5), Some(0), RWM),    // tty
    c(Some(5), Some(2), RWM),    // ptmx
    c(Some(136), None, RWM),     // pts/*
    c(Some(10), Some(200), RWM), // net/tun
];

// eBPF opcodes (linux/bpf.h, bpf_common.h).
const LDX_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const AND_K: u8 = 0x57; // BPF_ALU64 | BPF_AND | BPF_K
const RSH_K: u8 = 0x77; // BPF_ALU64 | BPF_RSH | BPF_K
const MOV_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const MOV_X: u8 = 0xbf; // BPF_ALU64 | BPF_MOV | BPF_X
const JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

/// One `struct bpf_insn`: code, dst/src registers, offset, immediate.
fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> [u8; 8] {
    let o = off.to_le_bytes();
    let i = imm.to_le_bytes();
    [code, dst | src << 4, o[0], o[1], i[0], i[1], i[2], i[3]]
}

/// The program for `rules` (first match allows; nothing matched denies),
/// as the bytes of its `struct bpf_insn` array.
pub fn program(rules: &[Rule]) -> Vec<u8> {
    // struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }
    // with access_type = access << 16 | type. r1 is the context.
    let mut p: Vec<[u8; 8]> = alloc::vec![
        insn(LDX_W, 2, 1, 0, 0),      // r2 = access_type
        insn(AND_K, 2, 0, 0, 0xffff), // r2 = type
        insn(LDX_W, 3, 1, 0, 0),
        insn(RSH_K, 3, 0, 0, 16), // r3 = access
        insn(LDX_W, 4, 1, 4, 0),  // r4 = major
        insn(LDX_W, 5, 1, 8, 0),  // r5 = minor
    ];
    for r in rules {
        // Each check jumps past the rule's block when it fails; the block
        // is the type check, the access check (3), the number checks, and
        // "return 1" (2).
        let numbers: Vec<(u8, u32)> = [(4, r.major), (5, r.minor)]
            .into_iter()
            .filter_map(|(reg, n)| Some((reg, n?)))
            .collect();
        let len = 4 + numbers.len() + 2;
        let skip = |at: usize| (len - at - 1) as i16;
        p.push(insn(JNE_K, 2, 0, skip(0), r.kind as i32));
        // r0 = access & !allowed: any bit left is a refused access.
        p.push(insn(MOV_X, 0, 3, 0, 0));
        p.push(insn(AND_K, 0, 0, 0, !(r.access as i32)));
        p.push(insn(JNE_K, 0, 0, skip(3), 0));
        for (i, (reg, n)) in numbers.iter().enumerate() {
            p.push(insn(JNE_K, *reg, 0, skip(4 + i), *n as i32));
        }
        p.push(insn(MOV_K, 0, 0, 0, 1));
        p.push(insn(EXIT, 0, 0, 0, 0));
    }
    p.push(insn(MOV_K, 0, 0, 0, 0));
    p.push(insn(EXIT, 0, 0, 0, 0));
    p.concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the program the way the kernel would, over the few opcodes it
    /// uses: the test of the jump offsets.
    fn run(prog: &[u8], kind: Kind, access: u32, major: u32, minor: u32) -> u64 {
        let ctx = [(access << 16) | kind as u32, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = &prog[pc * 8..pc * 8 + 8];
            let (code, dst, src) = (i[0], (i[1] & 15) as usize, (i[1] >> 4) as usize);
            let off = i16::from_le_bytes([i[2], i[3]]);
            let imm = i32::from_le_bytes([i[4], i[5], i[6], i[7]]) as i64 as u64;
            pc += 1;
            match code {
                LDX_W => {
                    assert_eq!(src, 1);
                    r[dst] = u64::from(ctx[off as usize / 4]);
                }
                AND_K => r[dst] &= imm,
                RSH_K => r[dst] >>= imm,
                MOV_K => r[dst] = imm,
                MOV_X => r[dst] = r[src],
                JNE_K => {
                    if r[dst] != imm {
                        pc = (pc as i64 + i64::from(off)) as usize;
                    }
                }
                EXIT => return r[0],
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    #[test]
    fn allows_runc_default_devices_only() {
        let p = program(DEFAULT_RULES);
        let allow = |k, a, ma, mi| run(&p, k, a, ma, mi) == 1;
        for (ma, mi) in [
            (1, 3),
            (1, 5),
            (1, 7),
            (1, 8),
            (1, 9),
            (5, 0),
            (5, 2),
            (136, 0),
            (136, 7),
            (10, 200),
        ] {
            assert!(allow(Kind::Char, READ | WRITE, ma, mi), "{ma}:{mi}");
        }
        // The console, ttyS*, the virtio ports, memory, disks: no open.
        for (ma, mi) in [(5, 1), (4, 64), (4, 65), (1, 1), (1, 2), (244, 1), (10, 201)] {
            assert!(!allow(Kind::Char, READ, ma, mi), "{ma}:{mi}");
            assert!(!allow(Kind::Char, WRITE, ma, mi), "{ma}:{mi}");
            // mknod alone is allowed (runc's c *:* m), opening is not.
            assert!(allow(Kind::Char, MKNOD, ma, mi), "{ma}:{mi}");
        }
        assert!(!allow(Kind::Block, READ, 8, 0));
        assert!(!allow(Kind::Block, READ | WRITE, 254, 0));
        assert!(allow(Kind::Block, MKNOD, 8, 0));
        // A block device with the numbers of null is still a block device.
        assert!(!allow(Kind::Block, READ, 1, 3));
    }

    #[test]
    fn no_rules_deny_everything() {
        let p = program(&[]);
        assert_eq!(p.len(), 8 * 8);
        assert_eq!(run(&p, Kind::Char, MKNOD, 1, 3), 0);
    }

    #[test]
    fn hex_round_trip() {
        let p = program(DEFAULT_RULES);
        use crate::plan::{hex, unhex};
        assert_eq!(unhex(&hex(&p)).as_deref(), Some(&p[..]));
        assert_eq!(unhex("0g"), None);
        assert_eq!(unhex("abc"), None);
    }
}
