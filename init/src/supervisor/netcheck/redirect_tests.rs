//! A probe's redirects against real servers (see `redirect`).

use super::tests::{read_request, run};
use super::*;
use std::io::Write;
use std::net::TcpListener;
use std::thread::{self, JoinHandle};

/// A server on 127.0.0.1 for `n` connections: each request's target
/// picks the answer through `answer`; its thread returns the requests.
fn server(n: usize, answer: fn(&str, u16) -> String) -> (u16, JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = thread::spawn(move || {
        (0..n)
            .map(|_| {
                let (mut conn, _) = listener.accept().unwrap();
                let request = String::from_utf8(read_request(&mut conn)).unwrap();
                let target = request.split(' ').nth(1).unwrap_or_default().to_string();
                conn.write_all(answer(&target, port).as_bytes()).unwrap();
                request
            })
            .collect()
    });
    (port, handle)
}

fn to(status: &str, location: &str) -> String {
    format!("HTTP/1.1 {status}\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n")
}

fn probe(port: u16, path: &str, headers: &[(&str, &str)], client: Client) -> Result<(), String> {
    let handler = Handler::Http {
        host: "127.0.0.1".into(),
        port,
        path: path.into(),
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
    };
    let mut check = NetCheck::start(&handler, None, client)?;
    run(&mut check, 5000).expect("the check finished")
}

#[test]
fn a_redirect_on_the_same_host_is_followed_and_its_end_decides() {
    // /healthz -> 302 ./login (relative) -> 404: the probe fails, as the
    // kubelet's does; each request carries the headers again, the Host the
    // handler named (relative redirects keep it) and the Referer.
    let (port, requests) = server(2, |t, _| match t {
        "/app/healthz" => to("302 Found", "login"),
        _ => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".into(),
    });
    let got = probe(
        port,
        "/app/healthz",
        &[("X-Id", "7"), ("Host", "web.local")],
        Client::Probe,
    );
    assert_eq!(got, Err("HTTP probe failed with statuscode: 404".into()));
    let requests = requests.join().unwrap();
    assert!(
        requests[1].starts_with("GET /app/login HTTP/1.1\r\nHost: web.local\r\n"),
        "{}",
        requests[1]
    );
    assert!(requests[1].contains("X-Id: 7\r\n"), "{}", requests[1]);
    let referer = format!("Referer: http://127.0.0.1:{port}/app/healthz\r\n");
    assert!(requests[1].contains(&referer), "{}", requests[1]);
    // To an absolute URL on another port of the same host, which answers.
    let (other, second) = server(1, |_, _| "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".into());
    let (port, first) = server(1, |_, _| {
        let other = OTHER.load(core::sync::atomic::Ordering::Relaxed);
        to(
            "301 Moved Permanently",
            &format!("http://127.0.0.1:{other}/ready"),
        )
    });
    OTHER.store(other, core::sync::atomic::Ordering::Relaxed);
    assert_eq!(probe(port, "/", &[("Host", "web.local")], Client::Probe), Ok(()));
    first.join().unwrap();
    let r = &second.join().unwrap()[0];
    // An absolute Location's own authority is the Host.
    assert!(
        r.starts_with(&format!("GET /ready HTTP/1.1\r\nHost: 127.0.0.1:{other}\r\n")),
        "{r}"
    );
}

static OTHER: core::sync::atomic::AtomicU16 = core::sync::atomic::AtomicU16::new(0);

#[test]
fn another_host_ends_the_probe_as_a_success_and_ten_requests_are_the_most() {
    let (port, requests) = server(1, |_, _| to("302 Found", "http://10.9.9.9/elsewhere"));
    assert_eq!(probe(port, "/", &[], Client::Probe), Ok(()));
    assert_eq!(requests.join().unwrap().len(), 1);
    // A loop: ten requests, then Go's error naming the last Location.
    let (port, requests) = server(10, |t, _| to("307 Temporary Redirect", &format!("{t}x")));
    let got = probe(port, "/l", &[], Client::Probe);
    assert_eq!(
        got,
        Err("Get \"/lxxxxxxxxxx\": stopped after 10 redirects".into())
    );
    assert_eq!(requests.join().unwrap().len(), 10);
    // A redirect to a port that refuses: the failure names the new URL.
    let (dead, port_of_dead) = {
        let s = rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
        rustix::net::bind(&s, &SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)).unwrap();
        let p = SocketAddrV4::try_from(rustix::net::getsockname(&s).unwrap())
            .unwrap()
            .port();
        (s, p)
    };
    OTHER.store(port_of_dead, core::sync::atomic::Ordering::Relaxed);
    let (port, requests) = server(1, |_, _| {
        let p = OTHER.load(core::sync::atomic::Ordering::Relaxed);
        to("302 Found", &format!("//127.0.0.1:{p}/x"))
    });
    let got = probe(port, "/", &[], Client::Probe);
    let want = format!(
        "Get \"http://127.0.0.1:{port_of_dead}/x\": dial tcp 127.0.0.1:{port_of_dead}: connect: connection refused"
    );
    assert_eq!(got, Err(want));
    requests.join().unwrap();
    drop(dead);
}

#[test]
fn hooks_and_locationless_redirects_are_not_followed() {
    // A hook's request stops at the redirect (only a probe follows).
    let (port, requests) = server(1, |_, _| to("302 Found", "/gone"));
    assert_eq!(probe(port, "/", &[], Client::Hook), Ok(()));
    assert_eq!(requests.join().unwrap().len(), 1);
    // A 302 without a Location is the answer: success.
    let (port, requests) = server(1, |_, _| "HTTP/1.1 302 Found\r\nContent-Length: 0\r\n\r\n".into());
    assert_eq!(probe(port, "/", &[], Client::Probe), Ok(()));
    assert_eq!(requests.join().unwrap().len(), 1);
}
