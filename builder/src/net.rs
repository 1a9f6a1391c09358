//! The pod's network on the host's side: `--network`, `-p`, the NIC's
//! QEMU arguments with its port forwards, and the check that every
//! published host port is free before the VM boots.

use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::str::FromStr;

use anyhow::{bail, Result};
use pod1_manifest::network::{self, Network, DEFAULT_HOST_IP};
use pod1_manifest::plan::{NetworkPlan, PortPlan, Protocol};

/// `--network`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// A NIC on QEMU's user-mode network: the pod reaches the host and
    /// what the host reaches; published ports reach the pod.
    #[default]
    User,
    /// Loopback only.
    None,
}

/// The network a pod is built for with `mode`; the search domains come
/// from the host's /etc/resolv.conf (none if it cannot be read).
pub fn for_mode(mode: Mode) -> Option<Network> {
    match mode {
        Mode::None => None,
        Mode::User => {
            let conf = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
            Some(Network::user(network::host_searches(&conf)))
        }
    }
}

/// One `-p [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|/udp]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish(pub PortPlan);

impl FromStr for Publish {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let usage = || format!("{s:?} is not [HOSTIP:]HOSTPORT:CONTAINERPORT[/udp], e.g. 8080:80");
        let (ports, protocol) = match s.rsplit_once('/') {
            Some((p, "tcp")) => (p, Protocol::Tcp),
            Some((p, "udp")) => (p, Protocol::Udp),
            Some(_) => return Err(usage()),
            None => (s, Protocol::Tcp),
        };
        let parts: Vec<&str> = ports.split(':').collect();
        let (ip, host, container) = match parts[..] {
            [h, c] => (DEFAULT_HOST_IP, h, c),
            [ip, h, c] => (ip, h, c),
            _ => return Err(usage()),
        };
        if ip.parse::<Ipv4Addr>().is_err() {
            return Err(format!(
                "{s:?}: {ip:?} is not an IPv4 address (QEMU's user network publishes on IPv4 only)"
            ));
        }
        let port = |p: &str| p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(usage);
        Ok(Publish(PortPlan {
            container: String::new(),
            name: None,
            protocol,
            host_ip: ip.to_string(),
            host_port: port(host)?,
            container_port: port(container)?,
        }))
    }
}

/// `-p` options as a container's `ports` (`pod1 run --image`).
pub fn ports_json(publish: &[Publish]) -> serde_json::Value {
    let ports = publish.iter().map(|Publish(p)| {
        let mut port = serde_json::json!({"containerPort": p.container_port, "hostPort": p.host_port});
        if p.host_ip != DEFAULT_HOST_IP {
            port["hostIP"] = p.host_ip.clone().into();
        }
        if p.protocol == Protocol::Udp {
            port["protocol"] = "UDP".into();
        }
        port
    });
    serde_json::Value::Array(ports.collect())
}

/// How a forward is shown: `127.0.0.1:8080 -> 80/tcp (container web)`.
pub fn describe(p: &PortPlan) -> String {
    let whose = match (p.container.as_str(), &p.name) {
        ("", _) => "-p".to_string(),
        (c, Some(n)) => format!("container {c}, port {n}"),
        (c, None) => format!("container {c}"),
    };
    format!(
        "{}:{} -> {}/{} ({whose})",
        p.host_ip,
        p.host_port,
        p.container_port,
        p.protocol.lower()
    )
}

/// Fails unless every address of `net` and `forwards` is an IPv4
/// address and the prefix fits one: they become QEMU's `-netdev`
/// option, which a comma or a host name read from an initramfs's plan
/// would otherwise extend.
pub fn check_addresses(net: &NetworkPlan, forwards: &[PortPlan]) -> Result<()> {
    let named = [
        ("address", &net.address),
        ("gateway", &net.gateway),
        ("dns", &net.dns),
    ];
    let hosts = forwards.iter().map(|p| ("hostIP", &p.host_ip));
    for (what, ip) in named.into_iter().chain(hosts) {
        if ip.parse::<Ipv4Addr>().is_err() {
            bail!("the plan's network {what} {ip:?} is not an IPv4 address; rebuild the pod with this pod1");
        }
    }
    if net.prefix_len > 32 {
        bail!("the plan's network prefix /{} is not one of IPv4", net.prefix_len);
    }
    Ok(())
}

/// Fails, naming the port and what to do, if a forward's host address
/// and port cannot be bound here (taken, not an address of this machine,
/// privileged). QEMU would fail the same way, with a vaguer message.
pub fn check_free(forwards: &[PortPlan]) -> Result<()> {
    for (i, p) in forwards.iter().enumerate() {
        // One address, or the wildcard and any address, cannot both listen
        // on a port.
        let clash = forwards[..i].iter().find(|q| {
            q.protocol == p.protocol
                && q.host_port == p.host_port
                && (q.host_ip == p.host_ip || q.host_ip == "0.0.0.0" || p.host_ip == "0.0.0.0")
        });
        if let Some(first) = clash {
            bail!(
                "cannot publish {}: {} already publishes that host port",
                describe(p),
                describe(first)
            );
        }
        let addr = (p.host_ip.as_str(), p.host_port);
        let bound = match p.protocol {
            Protocol::Tcp => TcpListener::bind(addr).map(drop),
            Protocol::Udp => UdpSocket::bind(addr).map(drop),
        };
        let Err(e) = bound else { continue };
        let what = describe(p);
        match e.kind() {
            std::io::ErrorKind::AddrInUse => bail!(
                "cannot publish {what}: {}:{}/{} is already in use on this machine; stop what uses it or choose another host port",
                p.host_ip,
                p.host_port,
                p.protocol.lower()
            ),
            std::io::ErrorKind::AddrNotAvailable => bail!(
                "cannot publish {what}: {} is not an address of this machine (hostIP)",
                p.host_ip
            ),
            std::io::ErrorKind::PermissionDenied => bail!(
                "cannot publish {what}: ports below 1024 need root (or a lower net.ipv4.ip_unprivileged_port_start)"
            ),
            _ => bail!("cannot publish {what}: {e}"),
        }
    }
    Ok(())
}

/// QEMU's arguments for the NIC: a user-mode network serving `net`'s
/// addresses (no IPv6: the init configures IPv4 only, and forwards are
/// IPv4), forwarding each of `forwards` to the pod's address.
pub fn qemu_args(net: &NetworkPlan, forwards: &[PortPlan], machine: &str) -> Vec<String> {
    let subnet = net
        .address
        .parse::<Ipv4Addr>()
        .map(|a| {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(net.prefix_len.min(32)))
                .unwrap_or(0);
            Ipv4Addr::from(u32::from(a) & mask)
        })
        .map_or_else(|_| net.address.clone(), |a| a.to_string());
    let mut netdev = format!(
        "user,id=net0,ipv6=off,net={subnet}/{},host={},dns={},dhcpstart={}",
        net.prefix_len, net.gateway, net.dns, net.address
    );
    for p in forwards {
        netdev.push_str(&format!(
            ",hostfwd={}:{}:{}-{}:{}",
            p.protocol.lower(),
            p.host_ip,
            p.host_port,
            net.address,
            p.container_port
        ));
    }
    // No option ROM: the guest boots from -kernel, not the network.
    let device = match machine.starts_with("microvm") {
        true => "virtio-net-device,netdev=net0",
        false => "virtio-net-pci,netdev=net0,romfile=",
    };
    ["-netdev", &netdev, "-device", device]
        .map(str::to_string)
        .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_syntax() {
        let p = |s: &str| s.parse::<Publish>().map(|p| p.0);
        let tcp = p("8080:80").unwrap();
        assert_eq!(
            (
                tcp.host_ip.as_str(),
                tcp.host_port,
                tcp.container_port,
                tcp.protocol
            ),
            ("127.0.0.1", 8080, 80, Protocol::Tcp)
        );
        let udp = p("0.0.0.0:5353:53/udp").unwrap();
        assert_eq!((udp.host_ip.as_str(), udp.protocol), ("0.0.0.0", Protocol::Udp));
        for bad in [
            "80",
            "a:80",
            "8080:80/sctp",
            "1:2:3:4",
            "0:80",
            "[::1]:80:80",
            "70000:80",
        ] {
            assert!(p(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn nic_arguments() {
        let net = Network::user(Vec::new()).plan;
        let fwd = vec![
            "8080:80".parse::<Publish>().unwrap().0,
            "0.0.0.0:53:53/udp".parse::<Publish>().unwrap().0,
        ];
        assert_eq!(
            qemu_args(&net, &fwd, "pc"),
            [
                "-netdev",
                "user,id=net0,ipv6=off,net=10.0.2.0/24,host=10.0.2.2,dns=10.0.2.3,dhcpstart=10.0.2.15,\
                 hostfwd=tcp:127.0.0.1:8080-10.0.2.15:80,hostfwd=udp:0.0.0.0:53-10.0.2.15:53",
                "-device",
                "virtio-net-pci,netdev=net0,romfile="
            ]
        );
        assert_eq!(
            qemu_args(&net, &[], "microvm")[3],
            "virtio-net-device,netdev=net0"
        );
    }

    #[test]
    fn only_addresses_reach_qemu() {
        let net = Network::user(Vec::new()).plan;
        let fwd = "8080:80".parse::<Publish>().unwrap().0;
        check_addresses(&net, std::slice::from_ref(&fwd)).unwrap();
        let sneaky = PortPlan {
            host_ip: "127.0.0.1,smb=/".into(),
            ..fwd
        };
        assert!(check_addresses(&net, &[sneaky]).is_err());
        let bad = NetworkPlan {
            dns: "localhost".into(),
            ..net.clone()
        };
        assert!(check_addresses(&bad, &[]).is_err());
        assert!(check_addresses(
            &NetworkPlan {
                prefix_len: 33,
                ..net
            },
            &[]
        )
        .is_err());
    }

    #[test]
    fn a_taken_port_is_named() {
        let held = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = held.local_addr().unwrap().port();
        let fwd = format!("{port}:80").parse::<Publish>().unwrap().0;
        let err = check_free(std::slice::from_ref(&fwd)).unwrap_err().to_string();
        assert!(
            err.contains(&format!("127.0.0.1:{port}/tcp is already in use")),
            "{err}"
        );
        drop(held);
        check_free(std::slice::from_ref(&fwd)).unwrap();
        let err = check_free(&[fwd.clone(), fwd.clone()]).unwrap_err().to_string();
        assert!(err.contains("already publishes that host port"), "{err}");
        let everywhere = PortPlan {
            host_ip: "0.0.0.0".into(),
            ..fwd.clone()
        };
        assert!(check_free(&[fwd.clone(), everywhere]).is_err());
        let other = PortPlan {
            host_ip: "127.0.0.2".into(),
            ..fwd
        };
        let third = PortPlan {
            host_ip: "127.0.0.3".into(),
            ..other.clone()
        };
        check_free(&[other, third]).unwrap();
        // UDP is checked apart from TCP.
        let held = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = held.local_addr().unwrap().port();
        let fwd = format!("{port}:53/udp").parse::<Publish>().unwrap().0;
        assert!(check_free(&[fwd]).is_err());
    }
}
