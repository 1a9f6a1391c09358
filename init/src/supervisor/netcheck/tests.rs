//! NetCheck against real sockets, driven with poll(2).

use super::*;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::fd::FromRawFd;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rustix::event::PollFd;

/// What a client sent, up to the end of its request's head.
pub(super) fn read_request(conn: &mut std::net::TcpStream) -> Vec<u8> {
    let mut request = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    while !request.ends_with(b"\r\n\r\n") {
        match conn.read(&mut buf).unwrap() {
            0 => break,
            n => request.extend_from_slice(&buf[..n]),
        }
    }
    request
}

/// Drives `check` with poll(2) until it finishes; `None` if `ms` pass
/// first.
pub(super) fn run(check: &mut NetCheck, ms: u64) -> Option<Result<(), String>> {
    let deadline = Instant::now() + Duration::from_millis(ms);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ready = {
            let (fd, events) = check.poll_fd();
            let mut fds = [PollFd::from_borrowed_fd(fd, events)];
            let timeout = sys::timespec_ms(left.as_millis() as u64);
            rustix::event::poll(&mut fds, Some(&timeout)).expect("poll")
        };
        if ready == 0 {
            return None;
        }
        if let Some(outcome) = check.advance() {
            return Some(outcome);
        }
    }
}

/// Starts `handler` and drives it to the end (a failure `start`
/// reports at once counts as the outcome).
fn outcome(handler: &Handler, netns: Option<&str>) -> Result<(), String> {
    match NetCheck::start(handler, netns, Client::Probe) {
        Ok(mut check) => run(&mut check, 5000).expect("the check finished"),
        Err(e) => Err(e),
    }
}

fn tcp(port: u16) -> Handler {
    Handler::Tcp {
        host: "127.0.0.1".into(),
        port,
    }
}

fn http(port: u16, headers: &[(&str, &str)]) -> Handler {
    Handler::Http {
        host: "127.0.0.1".into(),
        port,
        path: "/healthz".into(),
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
    }
}

/// A port of 127.0.0.1 that refuses connections: bound, never
/// listening (nothing else can take it while the socket lives).
pub(super) fn refusing_port() -> (OwnedFd, u16) {
    let s = rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
    rustix::net::bind(&s, &SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = SocketAddrV4::try_from(rustix::net::getsockname(&s).unwrap())
        .unwrap()
        .port();
    (s, port)
}

/// What a test server does once it has read the request.
enum Then {
    /// Closes the connection.
    Close,
    /// Waits for the client to close it.
    Hold,
}

/// A server on 127.0.0.1 for one connection: reads the request (up to
/// its blank line), sends `pieces` with a pause between them, then
/// closes or holds; its thread returns the request it read.
fn serve_on(listener: TcpListener, pieces: Vec<Vec<u8>>, then: Then) -> JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        conn.set_nodelay(true).unwrap();
        let request = read_request(&mut conn);
        for (i, p) in pieces.iter().enumerate() {
            if i > 0 {
                thread::sleep(Duration::from_millis(30));
            }
            conn.write_all(p).unwrap();
        }
        if let Then::Hold = then {
            // Until the client closes (or the read times out).
            let _ = conn.read(&mut [0u8; 4096]);
        }
        request
    })
}

fn serve(pieces: &[&[u8]], then: Then) -> (u16, JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let pieces = pieces.iter().map(|p| p.to_vec()).collect();
    (port, serve_on(listener, pieces, then))
}

fn answer(status: &str) -> Vec<u8> {
    format!("HTTP/1.1 {status}\r\nContent-Length: 2\r\n\r\nok").into_bytes()
}

#[test]
fn tcp_connected_is_success() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut check = NetCheck::start(&tcp(port), None, Client::Probe).unwrap();
    assert_eq!(run(&mut check, 5000), Some(Ok(())));
    // It really connected: the listener has the connection, which
    // ends as soon as the check goes.
    let (mut conn, _) = listener.accept().unwrap();
    drop(check);
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(conn.read(&mut [0u8; 8]).unwrap(), 0);
}

#[test]
fn tcp_refused() {
    let (_refuser, port) = refusing_port();
    assert_eq!(
        outcome(&tcp(port), None),
        Err(format!("dial tcp 127.0.0.1:{port}: connect: connection refused"))
    );
    assert_eq!(
        outcome(&http(port, &[]), None),
        Err(format!(
            "Get \"http://127.0.0.1:{port}/healthz\": dial tcp 127.0.0.1:{port}: connect: connection refused"
        ))
    );
}

#[test]
fn http_status_decides() {
    for (status, ok) in [
        ("200 OK", true),
        ("204 No Content", true),
        ("302 Found", true),
        ("399 Whatever", true),
        ("199 Early", false),
        ("400 Bad Request", false),
        ("500 Internal Server Error", false),
    ] {
        let (port, server) = serve(&[&answer(status)], Then::Close);
        let code = &status[..3];
        let want = if ok {
            Ok(())
        } else {
            Err(format!("HTTP probe failed with statuscode: {code}"))
        };
        assert_eq!(outcome(&http(port, &[]), None), want, "{status}");
        server.join().unwrap();
    }
}

#[test]
fn an_answer_in_pieces() {
    let (port, server) = serve(&[b"HTT", b"P/1.1 2", b"04 No Content\r", b"\n\r\n"], Then::Hold);
    assert_eq!(outcome(&http(port, &[]), None), Ok(()));
    server.join().unwrap();
    let (port, server) = serve(&[b"HTTP/1.1 50", b"3 Unavailable\r\n\r\n"], Then::Hold);
    assert_eq!(
        outcome(&http(port, &[]), None),
        Err("HTTP probe failed with statuscode: 503".into())
    );
    server.join().unwrap();
}

#[test]
fn a_server_that_closes_before_the_status_line() {
    let url = |port: u16| format!("Get \"http://127.0.0.1:{port}/healthz\": ");
    let (port, server) = serve(&[], Then::Close);
    assert_eq!(outcome(&http(port, &[]), None), Err(format!("{}EOF", url(port))));
    server.join().unwrap();
    let (port, server) = serve(&[b"HTTP/1.1 20"], Then::Close);
    assert_eq!(
        outcome(&http(port, &[]), None),
        Err(format!("{}{BROKEN}unexpected EOF", url(port)))
    );
    server.join().unwrap();
}

#[test]
fn a_status_line_over_the_head_bound() {
    // One that just fits (its \n is the last byte of the room) passes...
    let reason = "x".repeat(MAX_HEAD - "HTTP/1.1 200 \r\n".len());
    let fits = format!("HTTP/1.1 200 {reason}\r\n\r\n");
    // (In two pieces, the first leaving room for one byte only.)
    let (first, rest) = fits.as_bytes().split_at(MAX_HEAD - 1);
    let (port, server) = serve(&[first, rest], Then::Hold);
    assert_eq!(outcome(&http(port, &[]), None), Ok(()));
    server.join().unwrap();
    // ...one byte more does not.
    let over = format!("HTTP/1.1 200 {reason}x\r\n\r\n");
    let (port, server) = serve(&[over.as_bytes()], Then::Hold);
    assert_eq!(
        outcome(&http(port, &[]), None),
        Err(format!(
            "Get \"http://127.0.0.1:{port}/healthz\": {BROKEN}net/http: server response headers exceeded {MAX_HEAD} bytes; aborted"
        ))
    );
    server.join().unwrap();
}

#[test]
fn a_malformed_status_line() {
    let (port, server) = serve(&[b"SSH-2.0-OpenSSH_9.2\r\n"], Then::Hold);
    assert_eq!(
        outcome(&http(port, &[]), None),
        Err(format!(
            "Get \"http://127.0.0.1:{port}/healthz\": {BROKEN}malformed HTTP response \"SSH-2.0-OpenSSH_9.2\""
        ))
    );
    server.join().unwrap();
    let cases: [(&[u8], Result<u32, &str>); 8] = [
        (b"HTTP/1.1 200 OK\r", Ok(200)),
        (b"HTTP/1.0 404", Ok(404)),
        (b"HTTP/2.0   301 Moved", Ok(301)),
        (b"HTTP/1.1 OK", Err("malformed HTTP status code \"OK\"")),
        (b"HTTP/1.1 2000 OK", Err("malformed HTTP status code \"2000\"")),
        (b"HTTP/1.1 +20 OK", Err("malformed HTTP status code \"+20\"")),
        (b"HTTX/1.1 200 OK", Err("malformed HTTP version \"HTTX/1.1\"")),
        (b"garbage", Err("malformed HTTP response \"garbage\"")),
    ];
    for (line, want) in cases {
        assert_eq!(status_code(line), want.map_err(String::from), "{line:?}");
    }
}

#[test]
fn the_request_the_server_receives() {
    let (port, server) = serve(&[&answer("200 OK")], Then::Close);
    assert_eq!(outcome(&http(port, &[]), None), Ok(()));
    assert_eq!(
        String::from_utf8(server.join().unwrap()).unwrap(),
        format!(
            "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: kube-probe/1.34\r\n\
             Accept: */*\r\nConnection: close\r\n\r\n"
        )
    );
    let headers = [
        ("x-first", "1"),
        ("host", "example.com"),
        ("X-Second", " two\t"),
        ("USER-AGENT", "checker/2"),
        ("accept", "text/plain"),
        ("X-First", "again"),
    ];
    let (port, server) = serve(&[&answer("200 OK")], Then::Close);
    assert_eq!(outcome(&http(port, &headers), None), Ok(()));
    assert_eq!(
        String::from_utf8(server.join().unwrap()).unwrap(),
        "GET /healthz HTTP/1.1\r\nHost: example.com\r\nUser-Agent: checker/2\r\nConnection: close\r\n\
         X-First: 1\r\nX-Second: two\r\nAccept: text/plain\r\nX-First: again\r\n\r\n"
    );
}

#[test]
fn request_rules() {
    let req = |target: &str, headers: &[(&str, &str)]| {
        let headers: Vec<_> = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        request(target, "10.0.2.15:80", &headers, PROBE_AGENT).map(|r| String::from_utf8(r).unwrap())
    };
    const TAIL: &str = "Connection: close\r\n\r\n";
    // An empty Accept removes every Accept, an empty User-Agent the
    // header, an empty Host leaves the default; framing headers never
    // go out from the list.
    assert_eq!(
        req(
            "/",
            &[
                ("Accept", ""),
                ("accept", "x/y"),
                ("User-Agent", ""),
                ("Host", ""),
                ("Content-Length", "5"),
                ("transfer-encoding", "chunked"),
            ]
        ),
        Ok(format!("GET / HTTP/1.1\r\nHost: 10.0.2.15:80\r\n{TAIL}"))
    );
    assert_eq!(
        req("/", &[("x y", "1")]),
        Err("net/http: invalid header field name \"x y\"".into())
    );
    assert_eq!(
        req("/", &[("", "1")]).unwrap_err(),
        "net/http: invalid header field name \"\""
    );
    assert_eq!(
        req("/", &[("x-a", "1\r\nX-Injected: 1")]),
        Err("net/http: invalid header field value for \"X-A\"".into())
    );
    assert!(req("/", &[("x-tab", "a\tb")]).is_ok());
    // The target: a leading slash, escapes, no fragment.
    assert_eq!(request_target(""), "/");
    assert_eq!(request_target("healthz"), "/healthz");
    assert_eq!(
        request_target("/a b/\"é\"?q=1&r=[2]#frag"),
        "/a%20b/%22%C3%A9%22?q=1&r=[2]"
    );
    // An invalid header ends the check at once, with the URL.
    assert_eq!(
        NetCheck::start(&http(1, &[("bad:name", "1")]), None, Client::Probe).unwrap_err(),
        "Get \"http://127.0.0.1:1/healthz\": net/http: invalid header field name \"bad:name\""
    );
}

#[test]
fn a_large_request_goes_out_in_several_writes() {
    // The server's receive buffer and the check's send buffer made
    // small, and the server reads only after a pause: the request
    // (1 MiB of headers) cannot go out in one write.
    let l = rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
    rustix::net::sockopt::set_socket_recv_buffer_size(&l, 4096).unwrap();
    rustix::net::bind(&l, &SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)).unwrap();
    rustix::net::listen(&l, 1).unwrap();
    let port = SocketAddrV4::try_from(rustix::net::getsockname(&l).unwrap())
        .unwrap()
        .port();
    // SAFETY: the descriptor is ours and handed over once.
    let listener = unsafe { TcpListener::from_raw_fd(rustix::fd::IntoRawFd::into_raw_fd(l)) };
    let big = "y".repeat(64 * 1024);
    let headers: Vec<(String, &str)> = (0..16).map(|i| (format!("X-Big-{i}"), big.as_str())).collect();
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), *v)).collect();
    let server = thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        thread::sleep(Duration::from_millis(200));
        let mut conn = conn;
        conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let request = read_request(&mut conn);
        conn.write_all(&answer("200 OK")).unwrap();
        request.len()
    });
    let mut check = NetCheck::start(&http(port, &headers), None, Client::Probe).unwrap();
    rustix::net::sockopt::set_socket_send_buffer_size(&check.sock, 4096).unwrap();
    let len = check.request.len();
    assert!(len > 16 * 64 * 1024);
    assert_eq!(run(&mut check, 10_000), Some(Ok(())));
    assert_eq!(server.join().unwrap(), len);
}

#[test]
fn a_server_that_never_answers() {
    let (port, server) = serve(&[], Then::Hold);
    let mut check = NetCheck::start(&http(port, &[]), None, Client::Probe).unwrap();
    // Connected and sent, then nothing more comes: poll times out.
    assert_eq!(run(&mut check, 300), None);
    assert!(matches!(check.stage, Stage::Receiving));
    assert_eq!(check.advance(), None);
    assert_eq!(check.advance(), None);
    assert_eq!(
        check.timed_out(),
        format!(
            "Get \"http://127.0.0.1:{port}/healthz\": context deadline exceeded \
             (Client.Timeout exceeded while awaiting headers)"
        )
    );
    // Dropping it closes the connection: the server sees its end.
    drop(check);
    assert!(server.join().unwrap().starts_with(b"GET /healthz HTTP/1.1\r\n"));
}

#[test]
fn a_connection_still_under_way() {
    // A listener whose accept queue (backlog 0) is full after one
    // connection: the kernel drops the next SYN, so the check's
    // connect stays under way.
    let l = rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
    rustix::net::bind(&l, &SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)).unwrap();
    rustix::net::listen(&l, 0).unwrap();
    let port = SocketAddrV4::try_from(rustix::net::getsockname(&l).unwrap())
        .unwrap()
        .port();
    let _first = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut check = NetCheck::start(&tcp(port), None, Client::Probe).unwrap();
    assert_eq!(run(&mut check, 300), None);
    // Called without poll's word (as after a spurious wake-up), it
    // finds the connection still under way.
    assert_eq!(check.advance(), None);
    assert!(matches!(check.stage, Stage::Connecting));
    assert_eq!(
        check.timed_out(),
        format!("dial tcp 127.0.0.1:{port}: i/o timeout")
    );
}

#[test]
fn only_ipv4_hosts_and_network_handlers() {
    for host in [
        "localhost",
        "10.0.2",
        "10.0.2.15.1",
        "256.0.0.1",
        "010.0.0.1",
        "",
        "::1",
    ] {
        let handler = Handler::Tcp {
            host: host.into(),
            port: 80,
        };
        let shown = if host.contains(':') {
            format!("[{host}]:80")
        } else {
            format!("{host}:80")
        };
        assert_eq!(
            NetCheck::start(&handler, None, Client::Probe).unwrap_err(),
            format!(
                "dial tcp {shown}: the host is not an IPv4 address (pod1 connects to IPv4 addresses only)"
            ),
            "{host}"
        );
    }
    let handler = Handler::Http {
        host: "web".into(),
        port: 8080,
        path: "/".into(),
        headers: Vec::new(),
    };
    assert!(NetCheck::start(&handler, None, Client::Probe)
        .unwrap_err()
        .starts_with("Get \"http://web:8080/\": dial tcp web:8080: the host is not"));
    assert_eq!(ipv4("0.0.0.0"), Some(Ipv4Addr::UNSPECIFIED));
    assert_eq!(ipv4("10.0.2.255"), Some(Ipv4Addr::new(10, 0, 2, 255)));
    for other in [
        Handler::Exec {
            command: vec!["true".into()],
        },
        Handler::Sleep { seconds: 1 },
    ] {
        assert!(NetCheck::start(&other, None, Client::Probe).is_err());
    }
}

/// A child process in a network namespace of its own, listening on
/// 127.0.0.1:`port` there; killed and reaped on drop.
struct Listener(i32);

impl Listener {
    fn new(port: u16) -> Listener {
        let mut fds = [0; 2];
        // SAFETY: fds has room for the two descriptors.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: the test harness is multi-threaded: the child calls
        // only async-signal-safe functions (no allocation) until it
        // is killed or _exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            // SAFETY: in the child, as above.
            unsafe { listen_in_new_netns(port, fds[1]) }
        }
        let child = Listener(pid);
        // SAFETY: fds[1] is ours; the read end wraps fds[0], ours too.
        unsafe { libc::close(fds[1]) };
        // SAFETY: as above.
        let mut ready = unsafe { std::fs::File::from_raw_fd(fds[0]) };
        let mut byte = [0u8; 1];
        assert_eq!(ready.read(&mut byte).unwrap(), 1);
        assert_eq!(
            byte[0], 1,
            "the child could not listen in a new network namespace"
        );
        child
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        // SAFETY: kill and waitpid take no pointers but the (null)
        // status.
        unsafe {
            libc::kill(self.0, libc::SIGKILL);
            libc::waitpid(self.0, std::ptr::null_mut(), 0);
        }
    }
}

/// The forked child: a new network namespace with `lo` up, a listener
/// on 127.0.0.1:`port` in it, then 1 (or 0 on failure) written to
/// `ready`, then it waits to be killed.
///
/// # Safety
/// Called only in a child just forked: it never returns, and calls
/// only async-signal-safe functions.
unsafe fn listen_in_new_netns(port: u16, ready: i32) -> ! {
    #[repr(C)]
    struct IfReq {
        name: [libc::c_char; libc::IFNAMSIZ],
        flags: libc::c_short,
        _pad: [u8; 22],
    }
    // SAFETY: (the whole body) plain system calls on memory of this
    // stack frame; see the function's contract.
    unsafe {
        // Only `ready` stays open: other tests' sockets, inherited,
        // must not outlive their owners' close.
        libc::dup2(ready, 3);
        libc::close_range(4, u32::MAX, 0);
        let ok = (|| {
            if libc::unshare(libc::CLONE_NEWNET) != 0 {
                return false;
            }
            let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
            let mut req = IfReq {
                name: [0; libc::IFNAMSIZ],
                flags: 0,
                _pad: [0; 22],
            };
            req.name[0] = b'l' as libc::c_char;
            req.name[1] = b'o' as libc::c_char;
            if libc::ioctl(s, libc::SIOCGIFFLAGS, &mut req as *mut IfReq) != 0 {
                return false;
            }
            req.flags |= libc::IFF_UP as libc::c_short;
            if libc::ioctl(s, libc::SIOCSIFFLAGS, &mut req as *mut IfReq) != 0 {
                return false;
            }
            let l = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            let addr = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: port.to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_be_bytes([127, 0, 0, 1]).to_be(),
                },
                sin_zero: [0; 8],
            };
            let len = core::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            libc::bind(l, &addr as *const libc::sockaddr_in as *const libc::sockaddr, len) == 0
                && libc::listen(l, 16) == 0
        })();
        libc::write(3, [u8::from(ok)].as_ptr().cast(), 1);
        loop {
            libc::pause();
        }
    }
}

/// This thread's network namespace (its inode).
fn my_netns() -> u64 {
    std::fs::metadata("/proc/thread-self/ns/net")
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .unwrap()
}

#[test]
fn the_socket_is_made_in_the_pinned_namespace() {
    // The port refuses here; the child listens on it in its own
    // namespace.
    let (_refuser, port) = refusing_port();
    let child = Listener::new(port);
    let netns = format!("/proc/{}/ns/net", child.0);
    let before = my_netns();
    assert_eq!(outcome(&tcp(port), Some(&netns)), Ok(()));
    assert_eq!(my_netns(), before, "the check came back to its namespace");
    assert_eq!(
        outcome(&tcp(port), None),
        Err(format!("dial tcp 127.0.0.1:{port}: connect: connection refused"))
    );
    // A namespace that is not there ends the check at once.
    assert_eq!(
        NetCheck::start(&tcp(port), Some("/nonexistent/ns/net"), Client::Probe).unwrap_err(),
        "opening the network namespace /nonexistent/ns/net: No such file or directory (os error 2)"
    );
    drop(child);
}
