//! The init's options from the kernel command line (`/proc/cmdline`).
//!
//! Only `pod1.*` keys are ours. Everything else belongs to the kernel or to
//! someone else and is tolerated silently (the kernel passes unknown
//! `key=value` words to PID 1 as environment and bare words as argv; we
//! read neither, so odd command lines cannot break the init).

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::channel::port::Want;

/// Options taken from `pod1.*` keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// `pod1.debug`: log every event and step on the console.
    pub debug: bool,
    /// `pod1.events=PATH`: a serial device for the channel instead of the
    /// virtio port.
    pub events: Option<String>,
    /// `pod1.channel=virtio|serial`: which device carries the channel.
    pub channel: Want,
    /// `pod1.net=ADDRESS/PREFIX,GATEWAY`: configure the VM's NIC so.
    pub net: Option<crate::net::Config>,
    /// `pod1.*` keys we do not know or cannot read (reported as a
    /// warning, not an error).
    pub unknown: Vec<String>,
}

/// Splits a command line into words, honouring double quotes as the kernel
/// does (`key="a b"` is one word, the quotes removed).
fn words(cmdline: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in cmdline.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(core::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

/// Whether an environment variable turns an option on: set, and not
/// `0`, `false`, `no`, `off` or empty.
pub fn truthy_var(v: Option<&str>) -> bool {
    v.is_some_and(|v| !v.is_empty()) && truthy(v)
}

fn truthy(v: Option<&str>) -> bool {
    !matches!(v, Some("0" | "false" | "no" | "off"))
}

/// Parses the `pod1.*` options out of a kernel command line.
pub fn parse(cmdline: &str) -> Options {
    let mut o = Options::default();
    for w in words(cmdline) {
        let Some(rest) = w.strip_prefix("pod1.") else {
            continue;
        };
        let (key, value) = match rest.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (rest, None),
        };
        match key {
            "debug" => o.debug = truthy(value),
            "events" => o.events = value.map(str::to_string),
            "channel" => match value {
                Some("virtio") => o.channel = Want::Virtio,
                Some("serial") => o.channel = Want::Serial,
                _ => o.unknown.push(w.clone()),
            },
            "net" => match value.and_then(crate::net::Config::parse) {
                Some(n) => o.net = Some(n),
                None => o.unknown.push(w.clone()),
            },
            _ => o.unknown.push(w.clone()),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_only_pod1_keys() {
        let o = parse("console=ttyS0 quiet pod1.debug foo=\"a b\" pod1.events=/dev/hvc1 pod1.zzz=1\n");
        assert!(o.debug);
        assert_eq!(o.events.as_deref(), Some("/dev/hvc1"));
        assert_eq!(o.unknown, ["pod1.zzz=1"]);
        assert_eq!(o.channel, Want::Virtio);
        assert!(parse("pod1.net=10.0.2.15/24,10.0.2.2").net.is_some());
        assert_eq!(parse("pod1.net=10.0.2.15").unknown, ["pod1.net=10.0.2.15"]);
        let o = parse("pod1.channel=serial pod1.channel=tcp");
        assert_eq!(
            (o.channel, o.unknown),
            (Want::Serial, vec!["pod1.channel=tcp".to_string()])
        );
    }

    #[test]
    fn tolerates_anything() {
        assert_eq!(parse(""), Options::default());
        assert_eq!(parse("\"unterminated pod1.debug"), Options::default());
        assert!(!parse("pod1.debug=0").debug);
        assert_eq!(words("a  \"b c\"d e"), ["a", "b cd", "e"]);
    }
}
