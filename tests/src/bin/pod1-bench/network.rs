//! The network's rows: the time from `pod1 run` to the first HTTP answer
//! from a published port.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pod1_tests::{free_port, pod_dir, run};

/// One GET of `/i` on 127.0.0.1:`port`: whether an HTTP answer came.
/// Each try is short: QEMU accepts a connection on the host before the
/// guest's network is up, and such a connection waits unanswered (a 5 s
/// read timeout measured that wait: 5.1 s on both kernels).
fn answered(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(250)));
    if s.write_all(b"GET /i HTTP/1.0\r\n\r\n").is_err() {
        return false;
    }
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text.starts_with("HTTP/1.")
}

/// Seconds from starting `pod1 run` on a built web pod to the first HTTP
/// answer through its published port, `runs` times (the VM is killed
/// after each).
pub fn first_answer(pod1: &Path, kernel: &Path, runs: usize) -> Vec<f64> {
    let port = free_port();
    let m = serde_json::json!({"metadata": {"name": "web"}, "spec": {"restartPolicy": "Never", "containers": [
        {"name": "web", "image": "oci:../busybox", "ports": [{"containerPort": 80, "hostPort": port}],
         "command": ["sh", "-c", "mkdir /www && echo hi > /www/i && exec httpd -f -p 80 -h /www"]}]}});
    let manifest = pod_dir("web", &m.to_string()).join("pod.json");
    let img = manifest.with_file_name("web.img");
    run(Command::new(pod1).arg("build").arg(&manifest).arg("-o").arg(&img));
    let mut times = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let mut child = Command::new(pod1)
            .arg("run")
            .arg(&img)
            .arg("--kernel")
            .arg(kernel)
            .args(["--timeout", "120"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        while !answered(port) {
            assert!(
                t.elapsed() < Duration::from_secs(120),
                "no HTTP answer from the web pod"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        times.push(t.elapsed().as_secs_f64());
        // QEMU dies with pod1 (its parent-death signal).
        let _ = child.kill();
        let _ = child.wait();
        // Until QEMU is gone the port is still taken, and the next run
        // would refuse to start.
        let freed = Instant::now();
        while std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
            assert!(
                freed.elapsed() < Duration::from_secs(30),
                "port {port} stays taken"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    times
}
