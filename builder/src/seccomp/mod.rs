//! seccomp: a profile (OCI or Docker JSON) compiled into a classic BPF
//! program on the host, with libseccomp as runc does, and handed to the
//! init in the plan; the init only installs it.
//!
//! `RuntimeDefault` is `runtime-default.json`, containerd's default profile
//! for x86-64 (the syscall list and argument rules of its
//! `contrib/seccomp/seccomp_default.go`) written in Docker's profile format,
//! so one reader serves both it and `Localhost` files. Both formats are read:
//! OCI's `LinuxSeccomp` and Docker's superset (`archMap`, `includes`,
//! `excludes`).

use std::collections::BTreeMap;
use std::io::{Read, Seek};
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};
use pod1_manifest::plan::{hex, Seccomp};
use pod1_manifest::pod::SeccompProfileType;
use pod1_manifest::Plan;
use serde::Deserialize;

/// containerd's default profile in Docker's format.
const RUNTIME_DEFAULT: &str = include_str!("runtime-default.json");

/// The guest kernel series pod1 boots (both kernels are 6.1): Docker's
/// `minKernel` conditions are evaluated against it.
const GUEST_KERNEL: (u32, u32) = (6, 1);

/// `SECCOMP_FILTER_FLAG_*` (linux/seccomp.h) a profile may ask for; the
/// others need a notification listener, which pod1 has not.
const FLAGS: &[(&str, u32)] = &[
    ("SECCOMP_FILTER_FLAG_TSYNC", 1),
    ("SECCOMP_FILTER_FLAG_LOG", 2),
    ("SECCOMP_FILTER_FLAG_SPEC_ALLOW", 4),
];

/// A seccomp profile as runc and Docker read it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Profile {
    default_action: String,
    default_errno_ret: Option<u32>,
    #[serde(default)]
    architectures: Option<Vec<String>>,
    /// Docker: the native architecture and its sub-architectures.
    #[serde(default)]
    arch_map: Option<Vec<ArchMap>>,
    #[serde(default)]
    flags: Option<Vec<String>>,
    listener_path: Option<String>,
    listener_metadata: Option<String>,
    #[serde(default)]
    syscalls: Option<Vec<Syscall>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ArchMap {
    architecture: String,
    #[serde(default)]
    sub_architectures: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Syscall {
    #[serde(default)]
    names: Option<Vec<String>>,
    /// Docker's older single-name form.
    name: Option<String>,
    action: String,
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Option<Vec<Arg>>,
    #[serde(default)]
    includes: Option<Filter>,
    #[serde(default)]
    excludes: Option<Filter>,
    /// Docker's note; ignored.
    #[serde(default, rename = "comment")]
    _comment: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Arg {
    index: u32,
    value: u64,
    #[serde(default)]
    value_two: u64,
    op: String,
}

/// Docker's conditions on a rule.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Filter {
    #[serde(default)]
    arches: Option<Vec<String>>,
    #[serde(default)]
    caps: Option<Vec<String>>,
    min_kernel: Option<String>,
}

/// Compiles every container's filter into the plan. `dir` is the
/// manifest's directory, against which `Localhost` paths resolve.
pub fn compile_plan(plan: &mut Plan, dir: &Path) -> Result<()> {
    // Containers with the same profile and capabilities share one compile,
    // and the plan holds each distinct program once.
    let mut done: BTreeMap<(Option<String>, Vec<String>), (u32, usize)> = BTreeMap::new();
    for c in plan.init_containers.iter_mut().chain(plan.containers.iter_mut()) {
        let caps = c.capabilities.clone();
        let Some(s) = c.seccomp.as_mut() else { continue };
        let key = (s.localhost_profile.clone(), caps);
        if let Some((flags, index)) = done.get(&key) {
            (s.flags, s.program) = (*flags, Some(*index));
            continue;
        }
        let (flags, bpf) = compile_one(s, &key.1, dir).with_context(|| format!("container {:?}", c.name))?;
        let index = match plan.programs.iter().position(|p| *p == bpf) {
            Some(i) => i,
            None => {
                plan.programs.push(bpf);
                plan.programs.len() - 1
            }
        };
        (s.flags, s.program) = (flags, Some(index));
        done.insert(key, (flags, index));
    }
    Ok(())
}

fn compile_one(s: &Seccomp, caps: &[String], dir: &Path) -> Result<(u32, String)> {
    let (text, source) = match (s.profile, &s.localhost_profile) {
        (SeccompProfileType::Localhost, Some(file)) => {
            let path = dir.join(file);
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read the seccomp profile {}", path.display()))?;
            (text, path.display().to_string())
        }
        (SeccompProfileType::Localhost, None) => bail!("seccompProfile Localhost without localhostProfile"),
        _ => (RUNTIME_DEFAULT.to_string(), "RuntimeDefault".to_string()),
    };
    let profile: Profile = {
        let de = &mut serde_json::Deserializer::from_str(&text);
        serde_path_to_error::deserialize(de)
            .map_err(|e| anyhow!("seccomp profile {source}: {}: {}", e.path(), e.inner()))?
    };
    let (flags, program) = compile(&profile, caps).with_context(|| format!("seccomp profile {source}"))?;
    Ok((flags, hex(&program)))
}

/// The profile's classic BPF program (the kernel's `struct sock_filter`
/// array) and its filter flags, for a process with `caps` (names without
/// `CAP_`).
fn compile(p: &Profile, caps: &[String]) -> Result<(u32, Vec<u8>)> {
    if p.listener_path.as_deref().is_some_and(|l| !l.is_empty()) || p.listener_metadata.is_some() {
        bail!("listenerPath: pod1 has no seccomp notification agent; remove it");
    }
    let mut flags = 0;
    for f in p.flags.iter().flatten() {
        let bit = FLAGS.iter().find(|(n, _)| n == f).map(|(_, b)| *b);
        flags |=
            bit.ok_or_else(|| anyhow!("flags: {f:?} is not supported (use one of TSYNC, LOG, SPEC_ALLOW)"))?;
    }
    let default = action(&p.default_action, p.default_errno_ret).context("defaultAction")?;
    let mut ctx = ScmpFilterContext::new(default).context("libseccomp: creating a filter")?;
    // A binary tree of syscall numbers instead of a list: every syscall the
    // container makes runs the filter, which for the default profile would
    // otherwise compare against hundreds of numbers (libseccomp 2.5+).
    ctx.set_ctl_optimize(2)
        .context("libseccomp: optimizing the filter")?;
    for arch in arches(p)? {
        if arch != ScmpArch::X8664 && arch != ScmpArch::Native {
            ctx.add_arch(arch)
                .with_context(|| format!("libseccomp: adding {arch:?}"))?;
        }
    }
    let has_cap = |c: &str| {
        let c = c.to_ascii_uppercase();
        let c = c.strip_prefix("CAP_").unwrap_or(&c);
        caps.iter().any(|h| h == c)
    };
    for (i, call) in p.syscalls.iter().flatten().enumerate() {
        if !applies(call, &has_cap) {
            continue;
        }
        let at = format!("syscalls[{i}]");
        let act = action(&call.action, call.errno_ret).with_context(|| format!("{at}.action"))?;
        // libseccomp refuses a rule whose action is the default one; runc
        // skips such rules, and so does this.
        if act == default {
            continue;
        }
        let conds = call
            .args
            .iter()
            .flatten()
            .enumerate()
            .map(|(j, a)| compare(a).with_context(|| format!("{at}.args[{j}]")))
            .collect::<Result<Vec<_>>>()?;
        // runc's rule: two conditions on the same argument become separate
        // rules (either may match); otherwise one rule holds them all.
        // (`compare` has checked every index is 0-5.)
        let mut seen = [false; 6];
        let repeated = call.args.iter().flatten().any(|a| {
            seen.get_mut(a.index as usize)
                .is_some_and(|s| std::mem::replace(s, true))
        });
        let names = call.names.iter().flatten().chain(call.name.iter());
        for name in names {
            // A name this libseccomp does not know is skipped, as runc does:
            // profiles list syscalls newer than some kernels.
            let Ok(nr) = ScmpSyscall::from_name(name) else {
                continue;
            };
            let add = |ctx: &mut ScmpFilterContext, c: &[ScmpArgCompare]| {
                ctx.add_rule_conditional(act, nr, c)
                    .map(|_| ())
                    .with_context(|| format!("{at}: libseccomp refused the rule for {name}"))
            };
            if conds.is_empty() {
                ctx.add_rule(act, nr)
                    .map(|_| ())
                    .with_context(|| format!("{at}: libseccomp refused the rule for {name}"))?;
            } else if repeated {
                for c in &conds {
                    add(&mut ctx, std::slice::from_ref(c))?;
                }
            } else {
                add(&mut ctx, &conds)?;
            }
        }
    }
    // libseccomp 2.5 writes the program to a descriptor only.
    let mut file = tempfile::tempfile().context("creating a temporary file")?;
    ctx.export_bpf(&file)
        .context("libseccomp: exporting the filter")?;
    let mut program = Vec::new();
    file.rewind()?;
    file.read_to_end(&mut program)?;
    if program.is_empty() || program.len() % 8 != 0 {
        bail!("libseccomp exported a program of {} bytes", program.len());
    }
    Ok((flags, program))
}

/// The profile's architectures: `architectures`, else Docker's `archMap`
/// entry for x86-64 with its sub-architectures.
fn arches(p: &Profile) -> Result<Vec<ScmpArch>> {
    let mut names: Vec<&str> = p.architectures.iter().flatten().map(String::as_str).collect();
    if names.is_empty() {
        for m in p
            .arch_map
            .iter()
            .flatten()
            .filter(|m| m.architecture == "SCMP_ARCH_X86_64")
        {
            names.push(&m.architecture);
            names.extend(m.sub_architectures.iter().flatten().map(String::as_str));
        }
    }
    names
        .iter()
        .map(|n| {
            n.parse()
                .map_err(|_| anyhow!("architectures: unknown architecture {n:?}"))
        })
        .collect()
}

/// Docker's `includes` / `excludes` for a process with these capabilities
/// on x86-64 (Docker names it `amd64`) and a 6.1 kernel.
fn applies(call: &Syscall, has_cap: &dyn Fn(&str) -> bool) -> bool {
    const ARCH: &str = "amd64";
    let at_least = |min: &str| {
        let mut parts = min.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        let want = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        GUEST_KERNEL >= want
    };
    if let Some(inc) = &call.includes {
        let arches = inc.arches.as_deref().unwrap_or_default();
        if !arches.is_empty() && !arches.iter().any(|a| a == ARCH) {
            return false;
        }
        if !inc.caps.iter().flatten().all(|c| has_cap(c)) {
            return false;
        }
        if inc.min_kernel.as_deref().is_some_and(|m| !at_least(m)) {
            return false;
        }
    }
    if let Some(exc) = &call.excludes {
        if exc.arches.iter().flatten().any(|a| a == ARCH) {
            return false;
        }
        if exc.caps.iter().flatten().any(|c| has_cap(c)) {
            return false;
        }
        if exc.min_kernel.as_deref().is_some_and(at_least) {
            return false;
        }
    }
    true
}

/// An action by its libseccomp name; `ERRNO` and `TRACE` take `errno`
/// (EPERM when absent, as runc does).
fn action(name: &str, errno: Option<u32>) -> Result<ScmpAction> {
    let ret = errno.unwrap_or(libc::EPERM as u32);
    if ret > u16::MAX as u32 {
        bail!("errnoRet {ret} is out of range (0-65535)");
    }
    Ok(match name {
        "SCMP_ACT_ALLOW" => ScmpAction::Allow,
        "SCMP_ACT_ERRNO" => ScmpAction::Errno(ret as i32),
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => ScmpAction::KillThread,
        "SCMP_ACT_KILL_PROCESS" => ScmpAction::KillProcess,
        "SCMP_ACT_TRAP" => ScmpAction::Trap,
        "SCMP_ACT_TRACE" => ScmpAction::Trace(ret as u16),
        "SCMP_ACT_LOG" => ScmpAction::Log,
        "SCMP_ACT_NOTIFY" => bail!("SCMP_ACT_NOTIFY needs a notification agent, which pod1 has not"),
        other => bail!("unknown action {other:?}"),
    })
}

fn compare(a: &Arg) -> Result<ScmpArgCompare> {
    if a.index > 5 {
        bail!("index {} is not a syscall argument (0-5)", a.index);
    }
    // OCI's `value` is the mask and `valueTwo` the datum for MASKED_EQ.
    let (op, datum) = match a.op.as_str() {
        "SCMP_CMP_NE" => (ScmpCompareOp::NotEqual, a.value),
        "SCMP_CMP_LT" => (ScmpCompareOp::Less, a.value),
        "SCMP_CMP_LE" => (ScmpCompareOp::LessOrEqual, a.value),
        "SCMP_CMP_EQ" => (ScmpCompareOp::Equal, a.value),
        "SCMP_CMP_GE" => (ScmpCompareOp::GreaterEqual, a.value),
        "SCMP_CMP_GT" => (ScmpCompareOp::Greater, a.value),
        "SCMP_CMP_MASKED_EQ" => (ScmpCompareOp::MaskedEqual(a.value), a.value_two),
        other => bail!("unknown op {other:?}"),
    };
    Ok(ScmpArgCompare::new(a.index, op, datum))
}

#[cfg(test)]
mod tests;
