//! Capabilities, applied as runc does for a containerd/CRI spec: the bounding
//! set is cut to the plan's set, then permitted and effective are set to it.
//! Inheritable and ambient stay empty (containerd leaves them empty since
//! CVE-2022-24769), so a non-root user ends with no effective capabilities
//! after exec, exactly as in Kubernetes.

use alloc::string::String;

use pod1_manifest::plan::CAPABILITIES;
use rustix::thread::{CapabilitySet, CapabilitySets};

use crate::sys::{self, Errno};

/// A capability step that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The plan names a capability this init does not know.
    #[error("unknown capability {0:?}")]
    Unknown(String),
    /// Dropping from the bounding set failed.
    #[error("dropping capability {name} from the bounding set: {source}")]
    Bounding {
        /// The capability.
        name: &'static str,
        /// The cause.
        source: Errno,
    },
    /// capset(2) failed.
    #[error("capset: {0}")]
    Capset(Errno),
}

/// The capability numbers named by `names` as a 64-bit mask.
pub fn mask(names: &[String]) -> Result<u64, Error> {
    names.iter().try_fold(0u64, |acc, n| {
        let i = CAPABILITIES
            .iter()
            .position(|c| c == n)
            .ok_or_else(|| Error::Unknown(n.clone()))?;
        Ok(acc | (1u64 << i))
    })
}

/// The highest capability number the kernel knows.
fn last_cap() -> usize {
    sys::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(CAPABILITIES.len() - 1)
}

/// Cuts the bounding set down to `keep`. Needs CAP_SETPCAP, so it runs
/// before the uid changes.
pub fn limit_bounding(keep: u64) -> Result<(), Error> {
    let last = last_cap().min(63);
    for cap in 0..=last {
        if keep & (1 << cap) != 0 {
            continue;
        }
        // SAFETY: PR_CAPBSET_DROP takes a capability number and no pointers.
        let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        if r != 0 {
            let e = Errno::last();
            // A capability newer than the kernel: nothing to drop.
            if e == Errno::EINVAL {
                continue;
            }
            let name = CAPABILITIES.get(cap).copied().unwrap_or("?");
            return Err(Error::Bounding { name, source: e });
        }
    }
    Ok(())
}

/// Sets permitted and effective to `set`, inheritable to nothing.
/// Capabilities this process does not hold (newer than the kernel, or
/// outside the bounding set the init itself was started with) are left
/// out: asking for them is EPERM, and a privileged container gets
/// everything the runtime has, as with runc.
pub fn set(set: u64) -> Result<(), Error> {
    let current = rustix::thread::capabilities(None).map_err(|e| Error::Capset(e.into()))?;
    let set = CapabilitySet::from_bits_retain(set) & current.permitted;
    let sets = CapabilitySets {
        effective: set,
        permitted: set,
        inheritable: CapabilitySet::empty(),
    };
    rustix::thread::set_capabilities(None, sets).map_err(|e| Error::Capset(e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_to_mask() {
        assert_eq!(mask(&["CHOWN".into(), "KILL".into()]).unwrap(), 1 | (1 << 5));
        assert_eq!(mask(&[]).unwrap(), 0);
        assert!(mask(&["NOPE".into()]).is_err());
    }
}
