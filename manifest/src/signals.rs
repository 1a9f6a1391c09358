//! Signal names, as a container's stop signal names them: Kubernetes'
//! `lifecycle.stopSignal` (`SIGTERM`, `SIGRTMIN+3`, ...) and an image
//! config's `StopSignal` (as containerd reads it: `SIGTERM`, `TERM`,
//! `term` or `15`). The numbers are x86-64 Linux's; the real-time ones
//! start at 34, where glibc's SIGRTMIN is.

/// The signal a stop sends unless the manifest or image names another.
pub const SIGTERM: i32 = 15;

/// x86-64 Linux's standard signals by name, without `SIG`.
#[rustfmt::skip]
const NAMES: &[(&str, i32)] = &[
    ("HUP", 1), ("INT", 2), ("QUIT", 3), ("ILL", 4), ("TRAP", 5), ("ABRT", 6), ("IOT", 6),
    ("BUS", 7), ("FPE", 8), ("KILL", 9), ("USR1", 10), ("SEGV", 11), ("USR2", 12), ("PIPE", 13),
    ("ALRM", 14), ("TERM", 15), ("STKFLT", 16), ("CHLD", 17), ("CLD", 17), ("CONT", 18),
    ("STOP", 19), ("TSTP", 20), ("TTIN", 21), ("TTOU", 22), ("URG", 23), ("XCPU", 24),
    ("XFSZ", 25), ("VTALRM", 26), ("PROF", 27), ("WINCH", 28), ("IO", 29), ("POLL", 29),
    ("PWR", 30), ("SYS", 31),
];
const RTMIN: i32 = 34;
const RTMAX: i32 = 64;

/// The number of a name without `SIG`, upper case: a standard signal,
/// `RTMIN`, `RTMIN+N` or `RTMAX-N` (N up to 15, as Kubernetes lists them).
fn by_name(name: &str) -> Option<i32> {
    if let Some(&(_, n)) = NAMES.iter().find(|(s, _)| *s == name) {
        return Some(n);
    }
    let offset = |rest: &str| rest.parse::<i32>().ok().filter(|n| (1..=15).contains(n));
    match name {
        "RTMIN" => Some(RTMIN),
        "RTMAX" => Some(RTMAX),
        _ => {
            if let Some(rest) = name.strip_prefix("RTMIN+") {
                offset(rest).map(|n| RTMIN + n)
            } else {
                offset(name.strip_prefix("RTMAX-")?).map(|n| RTMAX - n)
            }
        }
    }
}

/// `lifecycle.stopSignal`: one of Kubernetes' names, `SIG` and all.
pub fn stop_signal(name: &str) -> Option<i32> {
    by_name(name.strip_prefix("SIG")?)
}

/// An image's `StopSignal`, as containerd parses it: a number, or a name
/// in any case with or without `SIG`.
pub fn image_signal(text: &str) -> Option<i32> {
    if let Ok(n) = text.parse::<i32>() {
        // 32 and 33 are glibc's own.
        return ((1..=31).contains(&n) || (RTMIN..=RTMAX).contains(&n)).then_some(n);
    }
    let upper = text.to_ascii_uppercase();
    by_name(upper.strip_prefix("SIG").unwrap_or(&upper))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_kubernetes_and_containerd_take_them() {
        assert_eq!(stop_signal("SIGTERM"), Some(15));
        assert_eq!(stop_signal("SIGUSR1"), Some(10));
        assert_eq!(stop_signal("SIGRTMIN+3"), Some(37));
        assert_eq!(stop_signal("SIGRTMAX-1"), Some(63));
        assert_eq!(stop_signal("TERM"), None);
        assert_eq!(stop_signal("SIGRTMIN+16"), None);
        assert_eq!(image_signal("SIGQUIT"), Some(3));
        assert_eq!(image_signal("quit"), Some(3));
        assert_eq!(image_signal("9"), Some(9));
        assert_eq!(image_signal("99"), None);
        assert_eq!(image_signal("33"), None);
        assert_eq!(image_signal("SIGNOPE"), None);
    }
}
