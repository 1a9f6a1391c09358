//! Redirects against real servers (see `redirect`).

use super::tests::{read_request, refusing_port, run};
use super::*;
use std::io::Write;
use std::net::TcpListener;
use std::sync::Arc;
use std::thread::{self, JoinHandle};

type Answer = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// A server on 127.0.0.1 for `n` connections: each request's target
/// picks the answer; its thread returns the requests.
fn server(n: usize, answer: Answer) -> (u16, JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = thread::spawn(move || {
        (0..n)
            .map(|_| {
                let (mut conn, _) = listener.accept().unwrap();
                let request = String::from_utf8(read_request(&mut conn)).unwrap();
                let target = request.split(' ').nth(1).unwrap_or_default().to_string();
                conn.write_all(answer(&target).as_bytes()).unwrap();
                request
            })
            .collect()
    });
    (port, handle)
}

fn to(status: &str, location: &str) -> String {
    format!("HTTP/1.1 {status}\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n")
}

fn plain(status: &str) -> String {
    format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n")
}

/// A check of `path` on `port` with `headers`, run to its end; the
/// outcome and the status a hook looks at.
fn check(
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
    client: Client,
) -> (Result<(), String>, Option<u16>) {
    let handler = Handler::Http {
        host: "127.0.0.1".into(),
        port,
        path: path.into(),
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
    };
    match NetCheck::start(&handler, None, client) {
        Ok(mut c) => (run(&mut c, 5000).expect("the check finished"), c.status()),
        Err(e) => (Err(e), None),
    }
}

fn probe(port: u16, path: &str, headers: &[(&str, &str)]) -> Result<(), String> {
    check(port, path, headers, Client::Probe).0
}

#[test]
fn a_redirect_on_the_same_host_is_followed_and_its_end_decides() {
    // /app/healthz -> 302 "login" (relative) -> 404: the probe fails, as
    // the kubelet's does; the second request carries the handler's
    // headers again, its Host (no scheme in the Location) and the Referer.
    let (port, requests) = server(
        2,
        Arc::new(|t| match t {
            "/app/healthz" => to("302 Found", "login"),
            _ => plain("404 Not Found"),
        }),
    );
    let got = probe(port, "/app/healthz", &[("X-Id", "7"), ("Host", "web.local")]);
    assert_eq!(got, Err("HTTP probe failed with statuscode: 404".into()));
    let requests = requests.join().unwrap();
    let second = &requests[1];
    assert!(
        second.starts_with("GET /app/login HTTP/1.1\r\nHost: web.local\r\n"),
        "{second}"
    );
    assert!(second.contains("X-Id: 7\r\n"), "{second}");
    assert!(
        second.contains(&format!("Referer: http://127.0.0.1:{port}/app/healthz\r\n")),
        "{second}"
    );
    // Without a redirect to follow, the 302 itself would have succeeded.
}

#[test]
fn an_absolute_location_sets_the_host_and_later_hops_keep_the_url_authority() {
    // 301 to http://127.0.0.1:OTHER/ready (absolute: the custom Host goes),
    // then a relative 302 there (the Host stays the URL's), then 200.
    let (other, second) = server(
        2,
        Arc::new(|t| match t {
            "/ready" => to("302 Found", "/done"),
            _ => plain("200 OK"),
        }),
    );
    let (port, first) = server(
        1,
        Arc::new(move |_| {
            to(
                "301 Moved Permanently",
                &format!("http://127.0.0.1:{other}/ready"),
            )
        }),
    );
    let headers = [("Host", "web.local"), ("Referer", "http://mine/")];
    assert_eq!(probe(port, "/", &headers), Ok(()));
    first.join().unwrap();
    let r = second.join().unwrap();
    assert!(
        r[0].starts_with(&format!("GET /ready HTTP/1.1\r\nHost: 127.0.0.1:{other}\r\n")),
        "{}",
        r[0]
    );
    assert!(
        r[1].starts_with(&format!("GET /done HTTP/1.1\r\nHost: 127.0.0.1:{other}\r\n")),
        "{}",
        r[1]
    );
    // A Referer the handler set is kept.
    assert!(
        r[1].contains("Referer: http://mine/\r\n") && !r[1].contains("Referer: http://127"),
        "{}",
        r[1]
    );
    // A scheme-relative Location keeps the custom Host.
    let (other, second) = server(1, Arc::new(|_| plain("200 OK")));
    let (port, first) = server(
        1,
        Arc::new(move |_| to("302 Found", &format!("//127.0.0.1:{other}/x"))),
    );
    assert_eq!(probe(port, "/", &[("Host", "web.local")]), Ok(()));
    first.join().unwrap();
    let r = &second.join().unwrap()[0];
    assert!(r.starts_with("GET /x HTTP/1.1\r\nHost: web.local\r\n"), "{r}");
}

#[test]
fn another_host_ends_the_probe_as_a_success_and_ten_requests_are_the_most() {
    let (port, requests) = server(1, Arc::new(|_| to("302 Found", "http://10.9.9.9/elsewhere")));
    assert_eq!(probe(port, "/", &[]), Ok(()));
    assert_eq!(requests.join().unwrap().len(), 1);
    // A loop: ten requests, then Go's error naming the last Location.
    let (port, requests) = server(10, Arc::new(|t| to("307 Temporary Redirect", &format!("{t}x"))));
    let got = probe(port, "/l", &[]);
    assert_eq!(
        got,
        Err("Get \"/lxxxxxxxxxx\": stopped after 10 redirects".into())
    );
    assert_eq!(requests.join().unwrap().len(), 10);
    // A redirect to a port that refuses: the failure names the new URL.
    let (dead, dead_port) = refusing_port();
    let (port, requests) = server(
        1,
        Arc::new(move |_| to("302 Found", &format!("//127.0.0.1:{dead_port}/x"))),
    );
    let want = format!(
        "Get \"http://127.0.0.1:{dead_port}/x\": dial tcp 127.0.0.1:{dead_port}: connect: connection refused"
    );
    assert_eq!(probe(port, "/", &[]), Err(want));
    requests.join().unwrap();
    drop(dead);
}

#[test]
fn heads_without_a_location_or_of_any_size() {
    // No header at all after the status line: the 302 is the answer.
    let (port, requests) = server(1, Arc::new(|_| "HTTP/1.1 302 Found\r\n\r\n".into()));
    assert_eq!(check(port, "/", &[], Client::Probe), (Ok(()), Some(302)));
    requests.join().unwrap();
    // A 40 KiB cookie before the Location: still followed.
    let (port, requests) = server(
        2,
        Arc::new(|t| match t {
            "/" => format!(
                "HTTP/1.1 302 Found\r\nSet-Cookie: {}\r\nLocation: /in\r\n\r\n",
                "c".repeat(40 << 10)
            ),
            _ => plain("503 Service Unavailable"),
        }),
    );
    assert_eq!(
        probe(port, "/", &[]),
        Err("HTTP probe failed with statuscode: 503".into())
    );
    assert_eq!(requests.join().unwrap().len(), 2);
}

#[test]
fn hooks_follow_redirects_too_and_any_final_answer_is_theirs() {
    // The kubelet's hook client checks redirects as its prober: a hook
    // redirected to a port that refuses fails; one that ends at a 404 was
    // answered (the hook succeeds on any answer: status() says one came).
    let (dead, dead_port) = refusing_port();
    let (port, requests) = server(
        1,
        Arc::new(move |_| to("302 Found", &format!("http://127.0.0.1:{dead_port}/"))),
    );
    let (outcome, status) = check(port, "/", &[], Client::Hook);
    assert!(outcome.is_err() && status.is_none(), "{outcome:?} {status:?}");
    requests.join().unwrap();
    drop(dead);
    let (port, requests) = server(
        2,
        Arc::new(|t| match t {
            "/" => to("303 See Other", "/gone"),
            _ => plain("404 Not Found"),
        }),
    );
    let (outcome, status) = check(port, "/", &[], Client::Hook);
    assert_eq!((outcome.is_err(), status), (true, Some(404)));
    let r = requests.join().unwrap();
    assert!(r[1].contains("User-Agent: kube-lifecycle/1.34\r\n"), "{}", r[1]);
}
