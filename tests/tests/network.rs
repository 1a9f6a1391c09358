//! VM tests of the pod's network on both guest kernels: published TCP and
//! UDP ports reached from the host, the host's loopback reached from the
//! pod as host.containers.internal, the DNS configuration, `--network
//! none`, `hostNetwork`, and host ports refused before the VM boots.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use pod1_tests::{bin, free_port, image_with, kernels, pod1_run, pod1_spawn, pod_dir};

/// How long a step may wait on a TCG boot before the test fails.
const PATIENCE: Duration = Duration::from_secs(120);

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A pod of one container `c` of `image` (a path under the fixtures)
/// running `script`, with `extra` merged into its spec and `ports` on
/// the container.
fn pod(name: &str, image: &str, script: &str, ports: serde_json::Value, extra: serde_json::Value) -> PathBuf {
    let mut manifest = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 5,
                 "containers": [{"name": "c", "image": image, "command": ["sh", "-c", script], "ports": ports}]}
    });
    for (k, v) in extra.as_object().unwrap() {
        manifest["spec"][k] = v.clone();
    }
    pod_dir(name, &manifest.to_string()).join("pod.json")
}

/// An HTTP GET of `path` on 127.0.0.1:`port`, retried until it answers.
fn http_get(port: u16, path: &str, until: Instant) -> String {
    loop {
        let attempt = (|| -> std::io::Result<String> {
            let mut s = TcpStream::connect(("127.0.0.1", port))?;
            s.set_read_timeout(Some(Duration::from_secs(10)))?;
            write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
            let mut text = String::new();
            s.read_to_string(&mut text)?;
            Ok(text)
        })();
        match attempt {
            Ok(text) if text.starts_with("HTTP/1.") => return text,
            _ if Instant::now() > until => panic!("no HTTP answer on port {port}: {attempt:?}"),
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

#[test]
fn published_ports_and_the_host_reached_from_the_pod() {
    let image = image_with("net-image", &["pod1-udp-echo"]);
    let image = format!("dir:../{}", image.file_name().unwrap().to_string_lossy());
    for (kernel_name, kernel) in kernels() {
        let (http, udp) = (free_port(), free_udp_port());
        // A server on the host's loopback the pod reaches by name: the pod
        // waits on it, so the test decides when the pod ends.
        let host = TcpListener::bind("127.0.0.1:0").unwrap();
        let host_port = host.local_addr().unwrap().port();
        let script = format!(
            "mkdir /www && echo \"hello from $(hostname)\" > /www/index.html
             httpd -p 80 -h /www
             pod1-udp-echo 5300 &
             grep nameserver /etc/resolv.conf
             grep -F host.containers.internal /etc/hosts | tr '\\t' '|'
             echo \"eth0 $(ip -o -4 addr show eth0 | awk '{{print $4}}')\"
             echo \"route $(ip route | grep default)\"
             echo \"host said $(nc host.containers.internal {host_port})\""
        );
        let ports = serde_json::json!([
            {"name": "http", "containerPort": 80, "hostPort": http},
            {"containerPort": 5300, "hostPort": udp, "protocol": "UDP"}]);
        let manifest = pod("net", &image, &script, ports, serde_json::json!({}));
        let mut child = pod1_spawn(&manifest, &kernel, &["--timeout", "240"]);
        let until = Instant::now() + PATIENCE;
        host.set_nonblocking(true).unwrap();
        let mut from_pod = loop {
            match host.accept() {
                Ok((s, _)) => break s,
                Err(_) if Instant::now() < until => std::thread::sleep(Duration::from_millis(100)),
                Err(e) => {
                    let _ = child.kill();
                    let out = child.wait_with_output().unwrap();
                    panic!(
                        "{kernel_name}: the pod never reached the host ({e}): {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            }
        };
        // The pod is up: its server answers through the published port...
        let page = http_get(http, "/index.html", until);
        assert!(page.ends_with("hello from net\n"), "{kernel_name}: {page}");
        // ...and its UDP server through the published UDP port.
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        let mut buf = [0u8; 64];
        let reply = loop {
            sock.send_to(b"ping", ("127.0.0.1", udp)).unwrap();
            match sock.recv_from(&mut buf) {
                Ok((n, _)) => break String::from_utf8_lossy(&buf[..n]).into_owned(),
                Err(_) if Instant::now() < until => {}
                Err(e) => panic!("{kernel_name}: no UDP answer on port {udp}: {e}"),
            }
        };
        assert_eq!(reply, "echo ping", "{kernel_name}");
        from_pod.set_nonblocking(false).unwrap();
        from_pod.write_all(b"bye\n").unwrap();
        drop(from_pod);
        let out = child.wait_with_output().unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert_eq!(out.status.code(), Some(0), "{kernel_name}: {stderr}");
        let lines = pod1_tests::lines_of(&stdout, "c");
        for want in [
            "nameserver 10.0.2.3",
            "10.0.2.2|host.containers.internal",
            "eth0 10.0.2.15/24",
            "route default via 10.0.2.2 dev eth0 ",
            "host said bye",
        ] {
            assert!(lines.contains(&want), "{kernel_name}: no {want:?} in {lines:?}");
        }
        let published = format!("pod1: published 127.0.0.1:{http} -> 80/tcp (container c, port http)");
        assert!(stderr.contains(&published), "{kernel_name}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "pod1: published 127.0.0.1:{udp} -> 5300/udp (container c)"
            )),
            "{kernel_name}: {stderr}"
        );
    }
}

#[test]
fn network_none_leaves_loopback_alone() {
    let script =
        "ip -o link | awk -F': ' '{print \"link \" $2}'; echo \"resolv $(wc -c < /etc/resolv.conf)\"; \
                  grep -c host.containers.internal /etc/hosts || true";
    let manifest = pod(
        "no-net",
        "oci:../busybox:latest",
        script,
        serde_json::json!([]),
        serde_json::json!({}),
    );
    for (name, kernel) in kernels() {
        let r = pod1_run(&manifest, &kernel, &["--network", "none"]);
        assert_eq!(r.code, 0, "{name}: {}", r.stderr);
        assert_eq!(r.lines_of("c"), ["link lo", "resolv 0", "0"], "{name}");
    }
}

#[test]
fn host_network_keeps_the_nic_in_the_vms_namespace() {
    // The pod shares the VM's namespace: the NIC is configured there, and
    // a port is published at its own number (the API server's default).
    let port = free_port();
    let script = "echo \"eth0 $(ip -o -4 addr show eth0 | awk '{print $4}')\"";
    let manifest = pod(
        "host-net",
        "oci:../busybox:latest",
        script,
        serde_json::json!([{"containerPort": port}]),
        serde_json::json!({"hostNetwork": true}),
    );
    for (name, kernel) in kernels() {
        let r = pod1_run(&manifest, &kernel, &[]);
        assert_eq!(r.code, 0, "{name}: {}", r.stderr);
        assert_eq!(r.lines_of("c"), ["eth0 10.0.2.15/24"], "{name}");
        assert!(
            r.stderr
                .contains(&format!("published 127.0.0.1:{port} -> {port}/tcp")),
            "{name}: {}",
            r.stderr
        );
    }
}

#[test]
fn a_taken_host_port_is_refused_before_the_vm_boots() {
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let manifest = pod(
        "taken",
        "oci:../busybox:latest",
        "echo never",
        serde_json::json!([{"containerPort": 80, "hostPort": port}]),
        serde_json::json!({}),
    );
    let (_, kernel) = &kernels()[0];
    let r = pod1_run(&manifest, kernel, &[]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(
        r.stderr
            .contains(&format!("127.0.0.1:{port}/tcp is already in use")),
        "{}",
        r.stderr
    );
    assert!(!r.booted(), "it booted: {}", r.stderr);
    // -p on top of a manifest is checked the same way; without a network
    // nothing can be published.
    let manifest = pod(
        "taken-p",
        "oci:../busybox:latest",
        "echo never",
        serde_json::json!([]),
        serde_json::json!({}),
    );
    let r = pod1_run(&manifest, kernel, &["-p", &format!("{port}:80")]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(r.stderr.contains("is already in use"), "{}", r.stderr);
    let r = pod1_run(&manifest, kernel, &["--network", "none", "-p", "8080:80"]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(r.stderr.contains("no port can be published"), "{}", r.stderr);
}

#[test]
fn the_one_liner_publishes_a_port() {
    let port = free_port();
    let image = format!("oci:{}:latest", pod1_tests::fixtures().join("busybox").display());
    let dry = Command::new(bin("pod1"))
        .args([
            "run",
            "--image",
            &image,
            "-p",
            &format!("{port}:80"),
            "--dry-run",
            "-o",
            "json",
            "--",
            "true",
        ])
        .output()
        .unwrap();
    assert!(dry.status.success(), "{}", String::from_utf8_lossy(&dry.stderr));
    let pod: serde_json::Value = serde_json::from_slice(&dry.stdout).unwrap();
    assert_eq!(
        pod["spec"]["containers"][0]["ports"],
        serde_json::json!([{"containerPort": 80, "hostPort": port}])
    );
    let (name, kernel) = &kernels()[0];
    let mut child = Command::new(bin("pod1"))
        .args(["run", "--kernel"])
        .arg(kernel)
        .args([
            "--timeout",
            "240",
            "--image",
            &image,
            "--name",
            "web",
            "-p",
            &format!("{port}:80"),
        ])
        .args([
            "--",
            "sh",
            "-c",
            "mkdir /www && echo one-liner > /www/i && httpd -f -p 80 -h /www",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let page = http_get(port, "/i", Instant::now() + PATIENCE);
    assert!(page.ends_with("one-liner\n"), "{name}: {page}");
    // Ctrl-C stops the pod (httpd ends on SIGTERM), and pod1 reports it.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .collect::<Vec<_>>();
    let status = child.wait().unwrap();
    assert!(
        stderr
            .iter()
            .any(|l| l == &format!("pod1: published 127.0.0.1:{port} -> 80/tcp (container web)")),
        "{status}: {stderr:?}"
    );
    assert!(
        stderr.iter().any(|l| l.contains("stopping the pod")),
        "{stderr:?}"
    );
}
