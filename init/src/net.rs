//! The pod's NIC, configured over rtnetlink: moved from the VM's network
//! namespace into the pod's, given its address, brought up, and given the
//! default route. Neither guest kernel can do it from the command line
//! (no IP_PNP) and the images need no DHCP client: the addresses are in
//! the plan (QEMU's user-mode network serves the same ones).
//!
//! The messages are built by hand: four fixed requests, each a header,
//! one small struct and a few attributes, are less code than a netlink
//! crate (none of which is no_std), and the builder is unit-tested.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::net::Ipv4Addr;

use rustix::fd::{AsFd, AsRawFd, OwnedFd};
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};

use crate::sys::{self, Errno};

// linux/netlink.h, linux/rtnetlink.h, linux/if_link.h, linux/if_addr.h.
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLMSG_ERROR: u16 = 2;
const RTM_NEWLINK: u16 = 16;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;
const IFLA_NET_NS_FD: u16 = 28;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const AF_INET: u8 = libc::AF_INET as u8;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_BOOT: u8 = 3;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RTN_UNICAST: u8 = 1;
const IFF_UP: u32 = libc::IFF_UP as u32;

/// One rtnetlink request: the header, the fixed part, the attributes.
#[derive(Debug)]
struct Request(Vec<u8>);

impl Request {
    /// A request of `kind` asking for an acknowledgement.
    fn new(kind: u16, flags: u16, seq: u32) -> Request {
        let mut b = Vec::with_capacity(64);
        b.extend_from_slice(&0u32.to_ne_bytes()); // length, set by `bytes`
        b.extend_from_slice(&kind.to_ne_bytes());
        b.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK | flags).to_ne_bytes());
        b.extend_from_slice(&seq.to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it
        Request(b)
    }

    /// Appends raw bytes (a fixed struct: each is a multiple of 4 long).
    fn put(mut self, data: &[u8]) -> Request {
        self.0.extend_from_slice(data);
        self
    }

    /// Appends an attribute, padded to 4 bytes.
    fn attr(mut self, kind: u16, data: &[u8]) -> Request {
        let len = 4 + data.len();
        self.0.extend_from_slice(&(len as u16).to_ne_bytes());
        self.0.extend_from_slice(&kind.to_ne_bytes());
        self.0.extend_from_slice(data);
        self.0.resize(self.0.len().next_multiple_of(4), 0);
        self
    }

    /// The message with its length set.
    fn bytes(mut self) -> Vec<u8> {
        let len = self.0.len() as u32;
        self.0[..4].copy_from_slice(&len.to_ne_bytes());
        self.0
    }
}

/// `struct ifinfomsg`: family, type, index, flags and the flags to change.
fn ifinfomsg(index: u32, flags: u32, change: u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(16);
    b.extend_from_slice(&[0, 0]); // AF_UNSPEC, padding
    b.extend_from_slice(&0u16.to_ne_bytes()); // device type
    b.extend_from_slice(&index.to_ne_bytes());
    b.extend_from_slice(&flags.to_ne_bytes());
    b.extend_from_slice(&change.to_ne_bytes());
    b
}

/// Moves link `index` into the network namespace open as `ns_fd`.
fn move_link(seq: u32, index: u32, ns_fd: i32) -> Vec<u8> {
    Request::new(RTM_NEWLINK, 0, seq)
        .put(&ifinfomsg(index, 0, 0))
        .attr(IFLA_NET_NS_FD, &(ns_fd as u32).to_ne_bytes())
        .bytes()
}

/// Sets link `index` up.
fn link_up(seq: u32, index: u32) -> Vec<u8> {
    Request::new(RTM_NEWLINK, 0, seq)
        .put(&ifinfomsg(index, IFF_UP, IFF_UP))
        .bytes()
}

/// Adds `addr/prefix_len` (with its broadcast address) to link `index`.
fn add_address(seq: u32, index: u32, addr: Ipv4Addr, prefix_len: u8) -> Vec<u8> {
    let host_bits = u32::MAX.checked_shr(u32::from(prefix_len)).unwrap_or(0);
    let broadcast = Ipv4Addr::from(u32::from(addr) | host_bits);
    let mut ifaddrmsg = alloc::vec![AF_INET, prefix_len, 0, RT_SCOPE_UNIVERSE];
    ifaddrmsg.extend_from_slice(&index.to_ne_bytes());
    Request::new(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, seq)
        .put(&ifaddrmsg)
        .attr(IFA_LOCAL, &addr.octets())
        .attr(IFA_ADDRESS, &addr.octets())
        .attr(IFA_BROADCAST, &broadcast.octets())
        .bytes()
}

/// Adds the default route through `gateway` on link `index`.
fn add_default_route(seq: u32, index: u32, gateway: Ipv4Addr) -> Vec<u8> {
    // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope,
    // type, flags.
    let mut rtmsg = alloc::vec![
        AF_INET,
        0,
        0,
        0,
        RT_TABLE_MAIN,
        RTPROT_BOOT,
        RT_SCOPE_UNIVERSE,
        RTN_UNICAST
    ];
    rtmsg.extend_from_slice(&0u32.to_ne_bytes());
    Request::new(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, seq)
        .put(&rtmsg)
        .attr(RTA_GATEWAY, &gateway.octets())
        .attr(RTA_OIF, &index.to_ne_bytes())
        .bytes()
}

/// The NIC's addresses, from `pod1.net=ADDRESS/PREFIX,GATEWAY` on the
/// kernel command line (`pod1 run` gives QEMU's user network the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// The pod's address.
    pub address: Ipv4Addr,
    /// Its prefix length.
    pub prefix_len: u8,
    /// The default gateway.
    pub gateway: Ipv4Addr,
}

impl Config {
    /// Parses the value of `pod1.net=`.
    pub fn parse(value: &str) -> Option<Config> {
        let (cidr, gateway) = value.split_once(',')?;
        let (address, prefix) = cidr.split_once('/')?;
        let prefix_len = prefix.parse().ok().filter(|p| *p <= 32)?;
        Some(Config {
            address: ipv4(address)?,
            prefix_len,
            gateway: ipv4(gateway)?,
        })
    }
}

/// `a.b.c.d`, parsed by hand: core's parser costs the init about 1 KB
/// more for forms the host never writes.
fn ipv4(s: &str) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = s.split('.');
    for o in &mut octets {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *o = p.parse().ok()?;
    }
    parts.next().is_none().then_some(Ipv4Addr::from(octets))
}

/// What the kernel answered to request `seq`: `Ok` for an
/// acknowledgement, the error it reported, or why the answer is not one.
fn answer(reply: &[u8], seq: u32) -> Result<(), String> {
    let u32_at = |at: usize| -> Option<u32> {
        let b = reply.get(at..at + 4)?;
        Some(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
    };
    let kind = reply.get(4..6).map(|b| u16::from_ne_bytes([b[0], b[1]]));
    match (kind, u32_at(8), u32_at(16)) {
        (Some(NLMSG_ERROR), Some(s), Some(code)) if s == seq => match code as i32 {
            0 => Ok(()),
            e => Err(Errno(-e).to_string()),
        },
        _ => Err("an unexpected netlink answer".to_string()),
    }
}

/// The VM's NIC, found in the VM's network namespace.
#[derive(Debug)]
pub struct Nic {
    name: String,
    index: u32,
    /// An rtnetlink socket of the namespace the NIC was found in.
    root: OwnedFd,
}

/// An rtnetlink socket of the current network namespace.
fn socket() -> Result<OwnedFd, String> {
    rustix::net::socket_with(
        AddressFamily::NETLINK,
        SocketType::RAW,
        SocketFlags::CLOEXEC,
        None, // NETLINK_ROUTE is protocol 0
    )
    .map_err(|e| format!("opening an rtnetlink socket: {}", Errno::from(e)))
}

/// Sends one request on `sock` and waits for its acknowledgement.
fn call(sock: impl AsFd, msg: &[u8], seq: u32) -> Result<(), String> {
    rustix::net::send(&sock, msg, SendFlags::empty()).map_err(|e| Errno::from(e).to_string())?;
    let mut buf = [0u8; 1024];
    let (n, _) =
        rustix::net::recv(&sock, &mut buf, RecvFlags::empty()).map_err(|e| Errno::from(e).to_string())?;
    answer(&buf[..n.min(buf.len())], seq)
}

impl Nic {
    /// The first network device that is not loopback, if any.
    pub fn find() -> Result<Option<Nic>, String> {
        let names = sys::read_dir("/sys/class/net").map_err(|e| format!("listing /sys/class/net: {e}"))?;
        // The first Ethernet device by name (ARPHRD_ETHER, `type` 1): pod1
        // gives the VM one NIC; other entries (bonding_masters, tunnels a
        // kernel may make) are not it.
        let ether = |n: &String| {
            sys::read_to_string(&format!("/sys/class/net/{n}/type")).is_ok_and(|t| t.trim() == "1")
        };
        let Some(name) = names.into_iter().filter(ether).min() else {
            return Ok(None);
        };
        let path = format!("/sys/class/net/{name}/ifindex");
        let index = sys::read_to_string(&path)
            .map_err(|e| format!("reading {path}: {e}"))?
            .trim()
            .parse()
            .map_err(|_| format!("{path} holds no number"))?;
        Ok(Some(Nic {
            name,
            index,
            root: socket()?,
        }))
    }

    /// Moves the NIC into the current network namespace (the pod's,
    /// entered after [`Nic::find`]); its index stays free there, as the
    /// namespace is new.
    pub fn move_here(&self) -> Result<(), String> {
        let ns = sys::open("/proc/self/ns/net", rustix::fs::OFlags::RDONLY, 0)
            .map_err(|e| format!("opening the pod's network namespace: {e}"))?;
        call(&self.root, &move_link(1, self.index, ns.as_raw_fd()), 1)
            .map_err(|e| format!("moving {} into the pod's network namespace: {e}", self.name))
    }

    /// Gives the NIC (in the current namespace) its address, sets it up
    /// and adds the default route.
    pub fn configure(&self, net: &Config) -> Result<(), String> {
        let sock = socket()?;
        let step = |what: &str, msg: Vec<u8>, seq: u32| {
            call(&sock, &msg, seq).map_err(|e| format!("{what} of {}: {e}", self.name))
        };
        // (The addresses are on the command line the console shows; not
        // formatting them here spares the init core's address printing.)
        step(
            "adding the pod1.net= address",
            add_address(2, self.index, net.address, net.prefix_len),
            2,
        )?;
        step("bringing up", link_up(3, self.index), 3)?;
        step(
            "adding the default route to the pod1.net= gateway",
            add_default_route(4, self.index, net.gateway),
            4,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u16_at(b: &[u8], at: usize) -> u16 {
        u16::from_ne_bytes([b[at], b[at + 1]])
    }

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }

    #[test]
    fn an_address_request_as_iproute2_sends_it() {
        let m = add_address(7, 2, Ipv4Addr::new(10, 0, 2, 15), 24);
        // header 16 + ifaddrmsg 8 + three 8-byte attributes
        assert_eq!(m.len(), 48);
        assert_eq!(u32_at(&m, 0) as usize, m.len());
        assert_eq!(u16_at(&m, 4), RTM_NEWADDR);
        assert_eq!(
            u16_at(&m, 6),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
        );
        assert_eq!(u32_at(&m, 8), 7);
        assert_eq!(&m[16..20], &[AF_INET, 24, 0, 0]);
        assert_eq!(u32_at(&m, 20), 2);
        assert_eq!((u16_at(&m, 24), u16_at(&m, 26)), (8, IFA_LOCAL));
        assert_eq!(&m[28..32], &[10, 0, 2, 15]);
        assert_eq!(u16_at(&m, 34), IFA_ADDRESS);
        assert_eq!(
            (u16_at(&m, 42), &m[44..48]),
            (IFA_BROADCAST, &[10, 0, 2, 255][..])
        );
    }

    #[test]
    fn link_and_route_requests() {
        let m = move_link(1, 3, 9);
        assert_eq!((m.len(), u16_at(&m, 4)), (40, RTM_NEWLINK));
        assert_eq!(u32_at(&m, 20), 3);
        assert_eq!(
            (u16_at(&m, 32), u16_at(&m, 34), u32_at(&m, 36)),
            (8, IFLA_NET_NS_FD, 9)
        );
        let m = link_up(2, 3);
        assert_eq!((m.len(), u32_at(&m, 24), u32_at(&m, 28)), (32, IFF_UP, IFF_UP));
        let m = add_default_route(4, 3, Ipv4Addr::new(10, 0, 2, 2));
        assert_eq!((m.len(), u16_at(&m, 4)), (44, RTM_NEWROUTE));
        assert_eq!(&m[16..24], &[AF_INET, 0, 0, 0, 254, 3, 0, 1]);
        assert_eq!((u16_at(&m, 30), &m[32..36]), (RTA_GATEWAY, &[10, 0, 2, 2][..]));
        assert_eq!((u16_at(&m, 38), u32_at(&m, 40)), (RTA_OIF, 3));
    }

    #[test]
    fn the_command_line_value() {
        assert_eq!(
            Config::parse("10.0.2.15/24,10.0.2.2"),
            Some(Config {
                address: Ipv4Addr::new(10, 0, 2, 15),
                prefix_len: 24,
                gateway: Ipv4Addr::new(10, 0, 2, 2),
            })
        );
        for bad in [
            "10.0.2.15/24",
            "10.0.2.15/33,10.0.2.2",
            "10.0.2/24,10.0.2.2",
            "10.0.2.256/24,1.2.3.4",
            "a/24,b",
            "",
        ] {
            assert_eq!(Config::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn acknowledgements_and_errors() {
        let reply = |seq: u32, code: i32| {
            let mut b = alloc::vec![0u8; 36];
            b[..4].copy_from_slice(&36u32.to_ne_bytes());
            b[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
            b[8..12].copy_from_slice(&seq.to_ne_bytes());
            b[16..20].copy_from_slice(&code.to_ne_bytes());
            b
        };
        assert_eq!(answer(&reply(5, 0), 5), Ok(()));
        assert!(answer(&reply(5, -libc::EEXIST), 5)
            .unwrap_err()
            .contains("exists"));
        assert!(answer(&reply(4, 0), 5).is_err());
        assert!(answer(&[1, 2, 3], 5).is_err());
    }
}
