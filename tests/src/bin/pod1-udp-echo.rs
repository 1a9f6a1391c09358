//! A UDP echo server for the network tests, copied into a test image (the
//! busybox image has no UDP server): `pod1-udp-echo PORT` answers each
//! datagram on 0.0.0.0:PORT with `echo ` and the datagram.

use std::net::UdpSocket;

fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| {
            eprintln!("usage: pod1-udp-echo PORT");
            std::process::exit(2)
        });
    let socket = UdpSocket::bind(("0.0.0.0", port)).unwrap_or_else(|e| {
        eprintln!("pod1-udp-echo: binding port {port}: {e}");
        std::process::exit(1)
    });
    let mut buf = [0u8; 2048];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let mut reply = b"echo ".to_vec();
        reply.extend_from_slice(&buf[..n]);
        let _ = socket.send_to(&reply, from);
    }
}
