//! `httpGet` and `tcpSocket` checks (probes and lifecycle hooks), run by
//! the init itself from inside the pod's network namespace, as the
//! kubelet's prober runs them from the node: a non-blocking socket the
//! supervisor's poll(2) loop drives, so a slow or silent server never
//! holds PID 1.
//!
//! What the kubelet does, and where this differs (pkg/probe/tcp,
//! pkg/probe/http and Go's net/http client):
//! - tcp: connecting is success; the socket is closed at once.
//! - http: one `GET` over HTTP/1.1 with `Connection: close`; the status
//!   line decides: 200..=399 is success, anything else fails with
//!   `HTTP probe failed with statuscode: N`. Only the status line is read
//!   (the kubelet reads headers and up to 10 KiB of body, which it only
//!   logs), and the head of a redirect (see `redirect`, `head`): one to
//!   the same host is followed and the answer it ends at decides, one to
//!   another host is a success, as the kubelet's warning is, and so is
//!   one to https (the kubelet would follow it over TLS). Hooks follow
//!   redirects as probes do (the kubelet's hook client has the prober's
//!   redirect check). A 1xx answer fails (Go's client skips 100..=199 but
//!   101 and reads the next answer).
//! - The request carries the kubelet's headers (`Host`, `User-Agent:
//!   kube-probe/1.34`, `Accept: */*`, `Connection: close`) and then the
//!   handler's, in the manifest's order (Go's client sorts them by name;
//!   servers do not care), names in Go's canonical case (`x-id` is sent as
//!   `X-Id`).
//! - Failures are worded as the kubelet reports them (Go's error strings:
//!   `dial tcp 10.0.2.15:8080: connect: connection refused`, prefixed with
//!   `Get "URL": ` for http). The timeout is the caller's: it drops a
//!   check that is still going and reports [`NetCheck::timed_out`].
//! - IPv4 addresses only (the plan gives the pod's IP when the manifest
//!   names no host; no DNS in the init).
//! - The kubelet's dialer sets `SO_LINGER` to 1 s, which would make
//!   close(2) wait for the peer: not here, a close must never block PID 1.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::net::{Ipv4Addr, SocketAddrV4};

use pod1_manifest::plan::Handler;
use rustix::event::PollFlags;
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::OFlags;
use rustix::io::Errno as RawErrno;
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};
use rustix::thread::LinkNameSpaceType;

use crate::process::go_desc;
use head::{Head, Scan};
use redirect::Redirect;
use wire::{request, request_target, status_code};

mod head;
mod redirect;
mod wire;
use crate::sys::{self, Errno};

/// The `User-Agent` the kubelet's probes send (`kube-probe/MAJOR.MINOR`):
/// the Kubernetes version whose Pod API pod1 follows.
pub const PROBE_AGENT: &str = "kube-probe/1.34";
/// The `User-Agent` of the kubelet's HTTP lifecycle hooks.
pub const HOOK_AGENT: &str = "kube-lifecycle/1.34";
/// The most of the answer kept while looking for the end of its status
/// line, or of a redirect's head (the kubelet allows 10 MB of headers; a
/// status line is a few dozen bytes, a redirect's head a few hundred).
const MAX_HEAD: usize = 8192;
/// What an answer that has been read but not needed may still give at
/// the end (see [`NetCheck::drain`]).
const DRAIN: usize = 16 * 1024;
/// Go's prefix for an error after the request went out on a connection
/// that then broke.
const BROKEN: &str = "net/http: HTTP/1.x transport connection broken: ";

/// Who makes the request: the `User-Agent` it sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    Probe,
    Hook,
}

impl Client {
    fn agent(self) -> &'static str {
        match self {
            Client::Probe => PROBE_AGENT,
            Client::Hook => HOOK_AGENT,
        }
    }
}

/// Where a check is.
#[derive(Debug)]
enum Stage {
    /// connect(2) is under way: POLLOUT and SO_ERROR tell how it went.
    Connecting,
    /// Writing the request (it may take several POLLOUTs).
    Sending,
    /// Reading the answer up to the end of its status line.
    Receiving,
    /// Finished, with the outcome.
    Done(Result<(), String>),
}

/// One `httpGet` or `tcpSocket` check in progress (see the module's
/// documentation). Dropping it closes its socket.
#[derive(Debug)]
pub struct NetCheck {
    sock: OwnedFd,
    /// The address dialled, as Go prints it: `10.0.2.15:8080`.
    addr: String,
    /// The URL of an http check (Go's client starts its errors with
    /// `Get "URL": `); `None` for tcp.
    url: Option<String>,
    /// The request, and how much of it has gone out.
    request: Vec<u8>,
    sent: usize,
    /// The answer's first bytes ([`MAX_HEAD`] of room), and how
    /// many have come.
    answer: Vec<u8>,
    got: usize,
    stage: Stage,
    /// The answer's status code, once read.
    status: Option<u16>,
    /// How far the status line has been looked for in `answer`.
    scanned: usize,
    /// A redirect's status code and head, while the head is read.
    head: Option<(u16, Head)>,
    /// The address every request goes to (a redirect is followed on the
    /// same host only).
    ip: Ipv4Addr,
    /// What a redirect needs to make the next request; `None` for tcp.
    follow: Option<alloc::boxed::Box<Follow>>,
}

/// What a redirect needs to make the next request.
#[derive(Debug)]
struct Follow {
    /// Where to make the next socket.
    netns: Option<String>,
    /// The handler's headers (Go's client sends the first request's again).
    headers: Vec<(String, String)>,
    agent: &'static str,
    /// The first URL's host: a redirect elsewhere is not followed.
    host: String,
    /// The current request's URL authority and target.
    authority: String,
    target: String,
    /// The `Host` the current request sent in place of its authority.
    host_override: Option<String>,
    /// Requests made so far.
    requests: usize,
}

impl NetCheck {
    /// Begins checking `handler` (`Handler::Http` or `Handler::Tcp`; any
    /// other is an error). The socket is made in the network namespace
    /// pinned at `netns` (`None`: this process's own): setns there,
    /// socket(2), setns back; a socket keeps the namespace it was made
    /// in, and the init is single-threaded, so nothing else runs in the
    /// other namespace meanwhile. `Err` ends the check at once as a
    /// failure, with its message (a host that is not an IPv4 address,
    /// socket(2) failing, a connection refused at once).
    /// `client` decides the default `User-Agent` and whether redirects
    /// are followed (see the `redirect` module).
    pub fn start(handler: &Handler, netns: Option<&str>, client: Client) -> Result<NetCheck, String> {
        let (host, port, http) = match handler {
            Handler::Tcp { host, port } => (host, *port, None),
            Handler::Http {
                host,
                port,
                path,
                headers,
            } => (host, *port, Some((path, headers))),
            _ => return Err("only an httpGet or a tcpSocket check runs over the network".to_string()),
        };
        // Go's net.JoinHostPort: an IPv6 literal goes in brackets. (Numbers
        // are printed as u32 throughout: the init has that code already.)
        let addr = if host.contains(':') {
            format!("[{host}]:{}", u32::from(port))
        } else {
            format!("{host}:{}", u32::from(port))
        };
        let agent = client.agent();
        let (url, request, follow) = match http {
            None => (None, Vec::new(), None),
            Some((path, headers)) => {
                let target = request_target(path);
                // Go's URL shows no path when the manifest gives none.
                let shown = if path.is_empty() { "" } else { target.as_str() };
                let url = format!("http://{addr}{shown}");
                // (The first Host wins, as in `request`.)
                let host_override = headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case("host"))
                    .map(|(_, v)| v.trim_matches([' ', '\t']).to_string())
                    .filter(|h| !h.is_empty());
                let follow = Some(alloc::boxed::Box::new(Follow {
                    netns: netns.map(str::to_string),
                    headers: headers.clone(),
                    agent,
                    host: host.clone(),
                    authority: addr.clone(),
                    target: target.clone(),
                    host_override,
                    requests: 1,
                }));
                match request(&target, &addr, headers, agent) {
                    Ok(r) => (Some(url), r, follow),
                    Err(e) => return Err(with_url(Some(&url), e)),
                }
            }
        };
        let Some(ip) = ipv4(host) else {
            let cause = format!(
                "dial tcp {addr}: the host is not an IPv4 address (pod1 connects to IPv4 addresses only)"
            );
            return Err(with_url(url.as_deref(), cause));
        };
        let sock = new_socket(netns, &addr, url.as_deref())?;
        let answer = match url {
            Some(_) => alloc::vec![0; MAX_HEAD],
            None => Vec::new(),
        };
        let mut check = NetCheck {
            sock,
            addr,
            url,
            request,
            sent: 0,
            answer,
            got: 0,
            stage: Stage::Connecting,
            status: None,
            scanned: 0,
            head: None,
            ip,
            follow,
        };
        match check.connect(ip, port) {
            Stage::Done(Err(e)) => Err(e),
            _ => Ok(check),
        }
    }

    /// Starts connecting this check's socket: `Connecting`, or the
    /// failure.
    fn connect(&mut self, ip: Ipv4Addr, port: u16) -> Stage {
        match rustix::net::connect(&self.sock, &SocketAddrV4::new(ip, port)) {
            // Connected (or under way): `advance` finds out which, the
            // same way in both cases.
            Ok(()) | Err(RawErrno::INPROGRESS) | Err(RawErrno::INTR) => Stage::Connecting,
            Err(e) => Stage::Done(Err(self.fail(self.dial_error(e)))),
        }
    }

    /// The descriptor to poll and the events it waits for now.
    pub fn poll_fd(&self) -> (BorrowedFd<'_>, PollFlags) {
        let events = match self.stage {
            Stage::Receiving => PollFlags::IN,
            // (A finished check's socket is ready at once: `advance` then
            // repeats the outcome.)
            Stage::Connecting | Stage::Sending | Stage::Done(_) => PollFlags::OUT,
        };
        (self.sock.as_fd(), events)
    }

    /// Moves the check on; call it when poll(2) reported the descriptor
    /// ready (any revents, errors and hangups included). `None`: not
    /// finished, poll again (with [`NetCheck::poll_fd`]'s events, which may
    /// have changed). `Some`: the outcome; the caller drops the check.
    pub fn advance(&mut self) -> Option<Result<(), String>> {
        loop {
            let next = match &self.stage {
                Stage::Connecting => self.connecting(),
                Stage::Sending => self.sending(),
                Stage::Receiving => self.receiving(),
                Stage::Done(outcome) => return Some(outcome.clone()),
            };
            self.stage = next?;
        }
    }

    /// The HTTP status code of the answer, once its status line was read
    /// (an HTTP hook succeeds with any: the kubelet's hook handler checks
    /// only that the request was answered).
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// The failure message for a check that outlived its timeout, as the
    /// kubelet words it.
    pub fn timed_out(&self) -> String {
        match &self.url {
            None => format!("dial tcp {}: i/o timeout", self.addr),
            Some(url) => format!(
                "Get {url:?}: context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
            ),
        }
    }

    /// Whether the connection is made: the next stage, or `None` while
    /// it is still under way (poll woke for something else).
    fn connecting(&self) -> Option<Stage> {
        let failed = match rustix::net::sockopt::socket_error(&self.sock) {
            Ok(Ok(())) => match rustix::net::getpeername(&self.sock) {
                Ok(_) => None,
                Err(RawErrno::NOTCONN) => return None,
                Err(e) => Some(e),
            },
            Ok(Err(e)) | Err(e) => Some(e),
        };
        Some(match (failed, &self.url) {
            (Some(e), _) => Stage::Done(Err(self.fail(self.dial_error(e)))),
            (None, None) => Stage::Done(Ok(())),
            (None, Some(_)) => Stage::Sending,
        })
    }

    /// Writes what is left of the request: the next stage once it has all
    /// gone, `None` while the socket's buffer is full.
    fn sending(&mut self) -> Option<Stage> {
        while self.sent < self.request.len() {
            // NOSIGNAL: a peer that has gone is an error here, not SIGPIPE.
            match rustix::net::send(&self.sock, &self.request[self.sent..], SendFlags::NOSIGNAL) {
                Ok(0) | Err(RawErrno::AGAIN) => return None,
                Ok(n) => self.sent += n,
                Err(RawErrno::INTR) => {}
                Err(e) => return Some(Stage::Done(Err(self.fail(self.io_error("write", e))))),
            }
        }
        Some(Stage::Receiving)
    }

    /// Reads the answer: the outcome (or the next request's stage) once
    /// what decides it has come (or the answer fails), `None` while more
    /// is to come.
    fn receiving(&mut self) -> Option<Stage> {
        loop {
            // A redirect's head is read through the buffer's start.
            let in_head = self.head.is_some();
            let start = if in_head { 0 } else { self.got };
            let room = &mut self.answer[start..];
            let cause = match rustix::net::recv(&self.sock, room, RecvFlags::empty()) {
                Ok((0, _)) if start == 0 && !in_head => "EOF".to_string(),
                Ok((0, _)) => format!("{BROKEN}unexpected EOF"),
                Ok((n, _)) => {
                    let decided = match in_head {
                        true => self.read_head(0, n),
                        false => {
                            self.got += n;
                            self.judge()
                        }
                    };
                    if let Some(stage) = decided {
                        return Some(stage);
                    }
                    if self.head.is_some() || self.got < self.answer.len() {
                        continue;
                    }
                    let cause = format!(
                        "{BROKEN}net/http: server response headers exceeded {MAX_HEAD} bytes; aborted"
                    );
                    return Some(Stage::Done(Err(self.fail(cause))));
                }
                Err(RawErrno::AGAIN) => return None,
                Err(RawErrno::INTR) => continue,
                // Go reports a read error before the first byte as it is,
                // one after it as a broken connection.
                Err(e) if start == 0 && !in_head => self.io_error("read", e),
                Err(e) => format!("{BROKEN}{}", self.io_error("read", e)),
            };
            return Some(Stage::Done(Err(self.fail(cause))));
        }
    }

    /// What the answer read so far decides: its status line does (200..=399
    /// succeeds), except that a redirect to follow needs its head (for the
    /// `Location`). `None`: more is needed.
    fn judge(&mut self) -> Option<Stage> {
        let from = self.scanned;
        let Some(eol) = self.answer[from..self.got].iter().position(|b| *b == b'\n') else {
            self.scanned = self.got;
            return None;
        };
        let eol = from + eol;
        let code = status_code(&self.answer[..eol]);
        let outcome = match &code {
            &Ok(code) if self.follow.is_some() && redirect::follows(code) => {
                // (follows() is true for three-digit codes only.)
                self.head = Some((code as u16, Head::default()));
                return self.read_head(eol + 1, self.got);
            }
            Ok(code) if (200..=399).contains(code) => Ok(()),
            Ok(code) => Err(format!("HTTP probe failed with statuscode: {code}")),
            Err(e) => Err(self.fail(format!("{BROKEN}{e}"))),
        };
        self.status = code.ok().and_then(|c| u16::try_from(c).ok());
        self.drain();
        Some(Stage::Done(outcome))
    }

    /// Reads `answer[from..to]` into the redirect's head: once it is
    /// complete, the next request's first stage or the outcome.
    fn read_head(&mut self, from: usize, to: usize) -> Option<Stage> {
        let (code, head) = self.head.as_mut()?;
        let code = *code;
        let too_big = match head.feed(&self.answer[from..to]) {
            Scan::More => return None,
            Scan::End => None,
            Scan::TooBig => Some(format!(
                "server response headers exceeded {} bytes; aborted",
                head::MAX_BYTES
            )),
            Scan::LongLocation => Some(format!(
                "a Location header over {} bytes (pod1's bound)",
                head::MAX_LINE
            )),
        };
        let location = head.location().map(str::to_string);
        self.head = None;
        if let Some(e) = too_big {
            return Some(Stage::Done(Err(self.fail(format!("{BROKEN}net/http: {e}")))));
        }
        self.drain();
        Some(match location {
            Some(location) => self.redirect(code, &location),
            // Go keeps a redirect without a Location as the answer.
            None => self.answered(code),
        })
    }

    /// The check ends with a redirect's answer: a success (the kubelet's
    /// warning), and the status a hook looks at.
    fn answered(&mut self, code: u16) -> Stage {
        self.status = Some(code);
        Stage::Done(Ok(()))
    }

    /// Follows a redirect (answered with `code`) to `location` (see the
    /// `redirect` module): the next request's first stage, or the outcome.
    fn redirect(&mut self, code: u16, location: &str) -> Stage {
        let Some(f) = &self.follow else {
            return Stage::Done(Err("a redirect without what following it needs".to_string()));
        };
        let next = match redirect::resolve(location, &f.authority, &f.host, &f.target) {
            // Another host (or https): the redirect is the answer.
            Redirect::Stop => return self.answered(code),
            Redirect::Invalid(e) => return Stage::Done(Err(self.fail(e))),
            Redirect::Follow(next) => next,
        };
        if f.requests >= redirect::MAX_REQUESTS {
            return Stage::Done(Err(with_url(
                Some(location),
                "stopped after 10 redirects".to_string(),
            )));
        }
        // Go's client sends the first request's headers again (a Host
        // among them is never sent as such), a custom Host only while the
        // Locations name no scheme, and the URL it comes from as the
        // Referer unless the handler set one.
        let host_override = f
            .host_override
            .clone()
            .filter(|h| next.schemeless && *h != f.authority);
        let mut headers: Vec<(String, String)> = f
            .headers
            .iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case("host"))
            .cloned()
            .collect();
        if !headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("referer") && !v.is_empty())
        {
            headers.push(("Referer".to_string(), self.url.clone().unwrap_or_default()));
        }
        let host_header = host_override.as_deref().unwrap_or(&next.authority);
        let request = match request(&next.target, host_header, &headers, f.agent) {
            Ok(r) => r,
            Err(e) => return Stage::Done(Err(with_url(Some(&next.url), e))),
        };
        let sock = match new_socket(f.netns.as_deref(), &next.addr, Some(&next.url)) {
            Ok(s) => s,
            Err(e) => return Stage::Done(Err(e)),
        };
        if let Some(f) = &mut self.follow {
            f.authority = next.authority;
            f.target = next.target;
            f.host_override = host_override;
            f.requests += 1;
        }
        self.sock = sock;
        self.addr = next.addr;
        self.url = Some(next.url);
        self.request = request;
        self.sent = 0;
        self.got = 0;
        self.scanned = 0;
        self.status = None;
        self.connect(self.ip, next.port)
    }

    /// Reads (and drops) what has already come of the rest of the answer,
    /// a bounded amount: a socket closed with unread data resets the
    /// connection, which the server may log as an error; drained, it ends
    /// with a FIN as the kubelet's does.
    fn drain(&mut self) {
        let mut left = DRAIN;
        while left > 0 {
            match rustix::net::recv(&self.sock, &mut self.answer[..], RecvFlags::DONTWAIT) {
                Ok((0, _)) | Err(_) => return,
                Ok((n, _)) => left = left.saturating_sub(n),
            }
        }
    }

    /// `cause` as the kubelet reports it: behind `Get "URL": ` for http.
    fn fail(&self, cause: String) -> String {
        with_url(self.url.as_deref(), cause)
    }

    /// A failed connect, as Go's dialer words it.
    fn dial_error(&self, e: RawErrno) -> String {
        format!("dial tcp {}: connect: {}", self.addr, go_desc(Errno::from(e)))
    }

    /// A failed read or write on the connection, as Go's net.OpError
    /// words it: `read tcp 10.0.2.15:41234->10.0.2.15:8080: read:
    /// connection reset by peer`.
    fn io_error(&self, op: &str, e: RawErrno) -> String {
        let local = rustix::net::getsockname(&self.sock)
            .ok()
            .and_then(|a| SocketAddrV4::try_from(a).ok());
        let desc = go_desc(Errno::from(e));
        match local {
            Some(l) => {
                // (Octets by hand: core's address printing costs the init
                // more than these few bytes.)
                let [a, b, c, d] = l.ip().octets().map(u32::from);
                let port = u32::from(l.port());
                format!("{op} tcp {a}.{b}.{c}.{d}:{port}->{}: {op}: {desc}", self.addr)
            }
            None => format!("{op} tcp {}: {op}: {desc}", self.addr),
        }
    }
}

/// `cause` behind `Get "URL": ` (Go's url.Error) when there is a URL.
fn with_url(url: Option<&str>, cause: String) -> String {
    match url {
        Some(url) => format!("Get {url:?}: {cause}"),
        None => cause,
    }
}

/// A socket for dialling `addr` (for `url`), made in the namespace pinned
/// at `netns`; the error as the check reports it.
fn new_socket(netns: Option<&str>, addr: &str, url: Option<&str>) -> Result<OwnedFd, String> {
    socket_in(netns).map_err(|f| match f {
        Failure::Setup(e) => e,
        Failure::Socket(e) => with_url(url, format!("dial tcp {addr}: socket: {}", go_desc(e))),
    })
}

/// Why no socket was made.
#[derive(Debug)]
enum Failure {
    /// Entering or leaving the namespace failed (the init's problem).
    Setup(String),
    /// socket(2) failed (reported as Go's dialer would).
    Socket(Errno),
}

/// A non-blocking TCP socket of the network namespace pinned at `netns`
/// (`None`: the current one).
fn socket_in(netns: Option<&str>) -> Result<OwnedFd, Failure> {
    let socket = || {
        rustix::net::socket_with(
            AddressFamily::INET,
            SocketType::STREAM,
            SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|e| Failure::Socket(e.into()))
    };
    let Some(path) = netns else {
        return socket();
    };
    let open = |path: &str| {
        sys::open(path, OFlags::RDONLY, 0)
            .map_err(|e| Failure::Setup(format!("opening the network namespace {path}: {e}")))
    };
    let setns = |ns: &OwnedFd, path: &str, what: &str| {
        rustix::thread::move_into_link_name_space(ns.as_fd(), Some(LinkNameSpaceType::Network))
            .map_err(|e| Failure::Setup(format!("{what} the network namespace {path}: {}", Errno::from(e))))
    };
    // This thread's namespace, to come back to.
    let home_path = "/proc/thread-self/ns/net";
    let home = open(home_path)?;
    let there = open(path)?;
    setns(&there, path, "entering")?;
    let sock = socket();
    // Back whatever socket() did (were this to fail, the init would make
    // its other sockets in the pod's namespace: it says so).
    setns(&home, home_path, "returning to")?;
    sock
}

/// `a.b.c.d` as Go's parser takes it: four decimal numbers up to 255,
/// without leading zeros. Hand-written, as in `net`: core's parser costs
/// the init about 1 KB more.
fn ipv4(s: &str) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = s.split('.');
    for o in &mut octets {
        let p = parts.next()?.as_bytes();
        let digits = !p.is_empty() && p.len() <= 3 && p.iter().all(u8::is_ascii_digit);
        if !digits || (p.len() > 1 && p[0] == b'0') {
            return None;
        }
        let n = p.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
        *o = u8::try_from(n).ok()?;
    }
    parts.next().is_none().then_some(Ipv4Addr::from(octets))
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod redirect_tests;
