use super::*;

fn default_caps() -> Vec<String> {
    pod1_manifest::plan::DEFAULT_CAPABILITIES
        .iter()
        .map(|c| c.to_string())
        .collect()
}

fn profile(json: &str) -> Profile {
    serde_json::from_str(json).expect("profile")
}

fn default_profile() -> Profile {
    profile(RUNTIME_DEFAULT)
}

/// Runs `probe` in a forked child under `program`; returns what the probe
/// returned (a small number), or 255 when the filter could not be installed.
fn under_filter(program: &[u8], probe: fn() -> i32) -> i32 {
    let filters: Vec<libc::sock_filter> = program
        .chunks_exact(8)
        .map(|c| libc::sock_filter {
            code: u16::from_le_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    let prog = libc::sock_fprog {
        len: filters.len() as u16,
        filter: filters.as_ptr() as *mut _,
    };
    // SAFETY: the child makes only raw system calls before _exit (no
    // allocation, no locks), so forking a multi-threaded test is sound.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // SAFETY: prctl and seccomp take no pointers but `prog`, which
        // outlives the calls; _exit never returns.
        unsafe {
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
            if libc::syscall(libc::SYS_seccomp, 1, 0, &prog as *const libc::sock_fprog) != 0 {
                libc::_exit(255);
            }
            libc::_exit(probe());
        }
    }
    let mut status = 0;
    // SAFETY: waits for the child forked above.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(libc::WIFEXITED(status), "the probe died: status {status:#x}");
    libc::WEXITSTATUS(status)
}

fn errno_of(ret: libc::c_long) -> i32 {
    if ret >= 0 {
        0
    } else {
        // SAFETY: reads this thread's errno.
        unsafe { *libc::__errno_location() }
    }
}

/// Each probe: 1 when the call failed with the errno the default profile gives, else 0.
fn probe_default() -> i32 {
    // SAFETY: raw system calls with integer arguments only.
    unsafe {
        let unshare = errno_of(libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUSER)) == libc::EPERM;
        let clone3 = errno_of(libc::syscall(libc::SYS_clone3, 0usize, 0usize)) == libc::ENOSYS;
        let vsock = errno_of(libc::syscall(
            libc::SYS_socket,
            libc::AF_VSOCK,
            libc::SOCK_STREAM,
            0,
        )) == libc::EPERM;
        let alg = errno_of(libc::syscall(
            libc::SYS_socket,
            libc::AF_ALG,
            libc::SOCK_SEQPACKET,
            0,
        )) == libc::EPERM;
        let unix = libc::syscall(libc::SYS_socket, libc::AF_UNIX, libc::SOCK_STREAM, 0) >= 0;
        let pers_query = libc::syscall(libc::SYS_personality, 0xffffffffu32 as libc::c_long) >= 0;
        let pers_other = errno_of(libc::syscall(libc::SYS_personality, 0x0040000)) == libc::EPERM;
        let mount = errno_of(libc::syscall(libc::SYS_umount2, c"/nonexistent".as_ptr(), 0)) == libc::EPERM;
        let getpid = libc::syscall(libc::SYS_getpid) > 0;
        [
            unshare, clone3, vsock, alg, unix, pers_query, pers_other, mount, getpid,
        ]
        .iter()
        .enumerate()
        .map(|(i, ok)| if *ok { 0 } else { i as i32 + 1 })
        .find(|&v| v != 0)
        .unwrap_or(0)
    }
}

#[test]
fn runtime_default_closes_what_containerd_closes() {
    let (flags, program) = compile(&default_profile(), &default_caps()).expect("compile");
    assert_eq!(flags, 0);
    // Nonzero: the number of the first expectation that failed.
    assert_eq!(under_filter(&program, probe_default), 0);
}

#[test]
fn runtime_default_opens_with_capabilities() {
    let mut caps = default_caps();
    caps.push("SYS_ADMIN".into());
    let (_, program) = compile(&default_profile(), &caps).expect("compile");
    fn probe() -> i32 {
        // SAFETY: integer arguments only; umount2 of a missing path fails
        // with ENOENT or EPERM (no capability) if the filter lets it through.
        let e = unsafe { errno_of(libc::syscall(libc::SYS_umount2, c"/nonexistent".as_ptr(), 0)) };
        // SAFETY: as above.
        let c3 = unsafe { errno_of(libc::syscall(libc::SYS_clone3, 0usize, 0usize)) };
        i32::from(e == libc::EPERM) + 2 * i32::from(c3 == libc::ENOSYS)
    }
    // As root on the host the umount reaches the kernel: ENOENT or EINVAL,
    // not the filter's EPERM; clone3 reaches the kernel too (EFAULT/EINVAL).
    assert_eq!(under_filter(&program, probe), 0);
    // And the default probe now sees unshare let through (its first check).
    assert_eq!(under_filter(&program, probe_default), 1);
}

#[test]
fn docker_conditions_and_errno() {
    let p = profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":["SCMP_ARCH_X86"]}],
            "syscalls":[
              {"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":13},
              {"name":"getppid","action":"SCMP_ACT_ERRNO","errnoRet":7,"includes":{"caps":["CAP_SYS_ADMIN"]}},
              {"names":["getuid"],"action":"SCMP_ACT_ERRNO","errnoRet":9,"excludes":{"arches":["amd64"]}},
              {"names":["gettid"],"action":"SCMP_ACT_ERRNO","errnoRet":11,"includes":{"minKernel":"6.2"}},
              {"names":["getpgrp"],"action":"SCMP_ACT_ERRNO","errnoRet":12,"includes":{"minKernel":"4.8"}},
              {"names":["no_such_call_xyz"],"action":"SCMP_ACT_ERRNO"}
            ]}"#,
    );
    let (_, program) = compile(&p, &default_caps()).expect("compile");
    fn probe() -> i32 {
        // SAFETY: integer and static-string arguments only.
        unsafe {
            let mkdir =
                errno_of(libc::syscall(libc::SYS_mkdir, c"/nonexistent/x".as_ptr(), 0o755)) == libc::EACCES;
            let ppid = libc::syscall(libc::SYS_getppid) > 0;
            let uid = libc::syscall(libc::SYS_getuid) >= 0;
            let tid = libc::syscall(libc::SYS_gettid) > 0;
            let pgrp = errno_of(libc::syscall(libc::SYS_getpgrp)) == 12;
            [mkdir, ppid, uid, tid, pgrp]
                .iter()
                .position(|ok| !ok)
                .map_or(0, |i| i as i32 + 1)
        }
    }
    assert_eq!(under_filter(&program, probe), 0);
}

#[test]
fn same_argument_twice_means_either() {
    // Two conditions on arg 0: runc makes them two rules (OR).
    let p = profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["personality"],"action":"SCMP_ACT_ERRNO","errnoRet":22,
            "args":[{"index":0,"value":1,"op":"SCMP_CMP_EQ"},{"index":0,"value":2,"op":"SCMP_CMP_EQ"}]}]}"#,
    );
    let (_, program) = compile(&p, &[]).expect("compile");
    fn probe() -> i32 {
        // SAFETY: integer arguments only; personality(0xffffffff) only queries.
        unsafe {
            let one = errno_of(libc::syscall(libc::SYS_personality, 1)) == libc::EINVAL;
            let two = errno_of(libc::syscall(libc::SYS_personality, 2)) == libc::EINVAL;
            let query = libc::syscall(libc::SYS_personality, 0xffffffffu32 as libc::c_long) >= 0;
            i32::from(!one) + 2 * i32::from(!two) + 4 * i32::from(!query)
        }
    }
    assert_eq!(under_filter(&program, probe), 0);
}

#[test]
fn refuses_what_it_cannot_honour() {
    let err = |json: &str| format!("{:#}", compile(&profile(json), &[]).expect_err(json));
    assert!(err(r#"{"defaultAction":"SCMP_ACT_BOGUS"}"#).contains("unknown action"));
    assert!(err(r#"{"defaultAction":"SCMP_ACT_NOTIFY"}"#).contains("notification"));
    assert!(
        err(r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/run/agent.sock"}"#)
            .contains("listenerPath")
    );
    assert!(
        err(r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]}"#)
            .contains("flags")
    );
    assert!(err(r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_VAX"]}"#).contains("VAX"));
    let bad_arg = r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO","args":[{"index":6,"value":0,"op":"SCMP_CMP_EQ"}]}]}"#;
    assert!(err(bad_arg).contains("syscalls[0].args[0]"), "{}", err(bad_arg));
    assert!(err(r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":70000}"#).contains("out of range"));
    // A typo is an error, not a silently ignored field.
    assert!(serde_json::from_str::<Profile>(r#"{"defaultAction":"SCMP_ACT_ALLOW","sycalls":[]}"#).is_err());
}

#[test]
fn flags_and_hex() {
    let p = profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_LOG","SECCOMP_FILTER_FLAG_SPEC_ALLOW"]}"#,
    );
    let (flags, program) = compile(&p, &[]).expect("compile");
    assert_eq!(flags, 6);
    let h = hex(&program);
    assert_eq!(h.len(), program.len() * 2);
}
