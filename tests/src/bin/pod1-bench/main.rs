//! `scripts/bench.sh`: measures pod1 against the floor and the peers, side
//! by side in one run (A B A B …), and prints one markdown table.
//!
//! Usage: `pod1-bench [--runs N] [--out FILE] [--only hostpath|network]` (`--only`
//! prints that section's table alone and writes nothing). Needs root, QEMU, crun, both
//! guest kernels in the cache and the example busybox image (scripts/setup.sh).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark that cannot measure should stop loudly

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pod1_manifest::events::{Event, Record};
use pod1_tests::{bin, fixtures, kernels, pod_dir, run, sh, workspace};

mod hostpath;
mod network;
mod throughput;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn timed(cmd: &mut Command) -> (Duration, std::process::Output) {
    let t = Instant::now();
    let out = cmd.output().unwrap();
    (t.elapsed(), out)
}

fn events(stdout: &[u8]) -> Vec<Record> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// `ms` of the first event matching `f`.
fn at(recs: &[Record], f: impl Fn(&Event) -> bool) -> Option<f64> {
    recs.iter().find(|r| f(&r.event)).map(|r| r.ms as f64)
}

/// The bracketed printk time (ms) of the first console line containing `what`.
fn printk_ms(console: &str, what: &str) -> Option<f64> {
    let line = console.lines().find(|l| l.contains(what))?;
    let t = line.split_once('[')?.1.split_once(']')?.0.trim();
    t.parse::<f64>().ok().map(|s| s * 1000.0)
}

/// Boots `img` once with the guest clock tied to its instruction count
/// (`-icount shift=0,sleep=off`: 1 ns per instruction, idle time skipped to
/// the next timer). Returns the kernel's "Run /init" and "Power down" times
/// and the init's events, all in guest ms: exact and repeatable, whatever
/// else the machine is doing, but blind to QEMU's translation cost.
fn guest_time(pod1: &Path, img: &Path, kernel: &Path, qemu: &Path, serial: bool) -> (f64, f64, Vec<Record>) {
    let out = Command::new(pod1)
        .arg("run")
        .args(if serial { &["--channel", "serial"][..] } else { &[] })
        .arg(img)
        .arg("--kernel")
        .arg(kernel)
        .arg("--qemu")
        .arg(qemu)
        .args([
            "--json",
            "--console",
            "--append",
            "loglevel=7",
            "--timeout",
            "300",
        ])
        .output()
        .unwrap();
    let console = String::from_utf8_lossy(&out.stderr);
    let run = printk_ms(&console, "Run /init as init process").expect("no 'Run /init' on the console");
    let down = printk_ms(&console, "reboot: Power down").expect("no 'Power down' on the console");
    (run, down, events(&out.stdout))
}

fn pod(name: &str, containers: usize, command: &str) -> PathBuf {
    let cs: Vec<_> = (0..containers)
        .map(|i| serde_json::json!({"name": format!("c{i}"), "image": "oci:../busybox", "command": ["sh", "-c", command]}))
        .collect();
    let m =
        serde_json::json!({"metadata": {"name": name}, "spec": {"restartPolicy": "Never", "containers": cs}});
    pod_dir(name, &m.to_string()).join("pod.json")
}

/// Resident memory (VmRSS, KiB) of `pid`.
fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Runs a host-mode pod of `n` sleeping containers; returns (outer init RSS,
/// pod init RSS) in KiB once all have started.
fn host_memory(n: usize) -> (u64, u64) {
    let manifest = pod(&format!("mem{n}"), n, "sleep 30");
    let tree = manifest.parent().unwrap().join("tree");
    run(Command::new(bin("pod1"))
        .arg("build")
        .arg(&manifest)
        .arg("--tree")
        .arg(&tree));
    let events = manifest.parent().unwrap().join("events");
    let mut child = Command::new(bin("pod1-init"))
        .arg("--root")
        .arg(&tree)
        .arg("--events")
        .arg(&events)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(&events).unwrap_or_default();
        if text.matches("\"container_started\"").count() >= n || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let outer = rss_kib(child.id()).unwrap_or(0);
    let inner = children(child.id())
        .first()
        .and_then(|&p| rss_kib(p))
        .unwrap_or(0);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .ok();
    let _ = child.wait();
    (outer, inner)
}

struct Row(String, String, String, String);

/// crun refuses this host's hybrid cgroup layout, so it runs in a mount
/// namespace of its own with a pure cgroup2 hierarchy at /sys/fs/cgroup,
/// made in the child before exec; and with `--cgroup-manager=disabled`
/// (its eBPF device filter needs RLIMIT_MEMLOCK, denied here). pod1-init
/// runs in the host's namespace, where it skips cgroups too (not cgroup2),
/// so neither side pays for cgroups.
fn crun_command() -> Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new("crun");
    cmd.arg("--cgroup-manager=disabled");
    // SAFETY: the closure runs between fork and exec in a child of this
    // single-threaded program and only makes raw system calls with static
    // NUL-terminated strings.
    unsafe {
        cmd.pre_exec(|| {
            let ok = libc::unshare(libc::CLONE_NEWNS) == 0
                && libc::mount(
                    std::ptr::null(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ) == 0
                && libc::mount(
                    c"cgroup2".as_ptr(),
                    c"/sys/fs/cgroup".as_ptr(),
                    c"cgroup2".as_ptr(),
                    0,
                    std::ptr::null(),
                ) == 0;
            if ok {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    cmd
}

fn main() {
    let mut runs = 9usize;
    let mut out_file = workspace().join("BENCHMARKS.md");
    let mut only = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => runs = args.next().and_then(|v| v.parse().ok()).expect("--runs N"),
            "--out" => out_file = PathBuf::from(args.next().expect("--out FILE")),
            "--only" => only = args.next(),
            _ => panic!("usage: pod1-bench [--runs N] [--out FILE] [--only hostpath|network]"),
        }
    }
    if only.as_deref() == Some("network") {
        for (kname, kernel) in kernels() {
            let mut t = network::first_answer(&bin("pod1"), &kernel, runs);
            println!("{kname}: first HTTP answer {:.2} s, runs {t:.2?}", median(&mut t));
        }
        return;
    }
    if only.as_deref() == Some("hostpath") {
        for (kname, kernel) in kernels() {
            println!("{}", hostpath::table(&bin("pod1"), kname, &kernel));
        }
        return;
    }
    let started = Instant::now();
    let pod1 = bin("pod1");
    let hello = pod("hello", 1, "echo hello from pod1");
    let dir = hello.parent().unwrap().to_path_buf();
    let hello_img = dir.join("hello.img");
    run(Command::new(&pod1)
        .arg("build")
        .arg(&hello)
        .arg("-o")
        .arg(&hello_img));
    // The same pod without a network: no NIC, no module, no configuration.
    let hello_none_img = dir.join("hello-none.img");
    run(Command::new(&pod1)
        .arg("build")
        .arg(&hello)
        .args(["--network", "none", "-o"])
        .arg(&hello_none_img));
    // The floor: one static init that prints a line and powers off.
    let floor_img = dir.join("floor.img");
    sh(&format!(
        "cd {d} && rm -rf floor && mkdir -p floor/dev && mknod floor/dev/console c 5 1 && cp {f} floor/init &&
         cd floor && find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -9 > ../floor.img",
        d = dir.display(),
        f = bin("pod1-floor-init").display()
    ));
    let mut rows: Vec<Row> = Vec::new();
    let mut timeline = String::new();
    let mut guest = String::new();
    let icount = dir.join("qemu-icount");
    std::fs::write(
        &icount,
        "#!/bin/sh\nexec qemu-system-x86_64 -icount shift=0,sleep=off \"$@\"\n",
    )
    .unwrap();
    sh(&format!("chmod +x {}", icount.display()));
    eprintln!("bench: boots, {runs} interleaved runs per kernel");
    for (kname, kernel) in kernels() {
        let boot = |img: &Path, json: bool, serial: bool| {
            let mut c = Command::new(&pod1);
            c.arg("run")
                .arg(img)
                .arg("--kernel")
                .arg(&kernel)
                .args(["--timeout", "120"]);
            if json {
                c.arg("--json");
            }
            if serial {
                c.args(["--channel", "serial"]);
            }
            timed(c.stderr(Stdio::null()))
        };
        let (mut pod_t, mut floor_t, mut serial_t) = (Vec::new(), Vec::new(), Vec::new());
        let mut none_t = Vec::new();
        let mut marks: Vec<Vec<f64>> = vec![Vec::new(); 5];
        boot(&floor_img, false, false); // warm the page cache
        for _ in 0..runs {
            let (t, o) = boot(&hello_img, true, false);
            assert_eq!(o.status.code(), Some(0), "hello pod failed on {kname}");
            pod_t.push(t.as_secs_f64());
            let recs = events(&o.stdout);
            let points = [
                at(&recs, |e| matches!(e, Event::InitStarted { .. })),
                at(&recs, |e| matches!(e, Event::SandboxReady {})),
                at(&recs, |e| matches!(e, Event::ContainerCreated { .. })),
                at(&recs, |e| matches!(e, Event::ContainerStarted { .. })),
                at(&recs, |e| matches!(e, Event::PodExited { .. })),
            ];
            for (m, p) in marks.iter_mut().zip(points) {
                m.push(p.unwrap_or(f64::NAN));
            }
            let (t, _) = boot(&floor_img, false, false);
            floor_t.push(t.as_secs_f64());
            let (t, o) = boot(&hello_none_img, false, false);
            assert_eq!(
                o.status.code(),
                Some(0),
                "hello pod without a network failed on {kname}"
            );
            none_t.push(t.as_secs_f64());
            let (t, o) = boot(&hello_img, false, true);
            assert_eq!(o.status.code(), Some(0), "hello pod over ttyS1 failed on {kname}");
            serial_t.push(t.as_secs_f64());
        }
        let (p, f, ps) = (median(&mut pod_t), median(&mut floor_t), median(&mut serial_t));
        let pn = median(&mut none_t);
        // median sorted the runs: first and last are the extremes.
        let spread = |v: &[f64]| format!("{:.2}–{:.2}", v[0], v[v.len() - 1]);
        rows.push(Row(
            format!("1. Boot, QEMU start to exit ({kname} kernel)"),
            format!("hello pod {p:.2} s ({})", spread(&pod_t)),
            format!("floor init {f:.2} s ({})", spread(&floor_t)),
            format!("{:.2}× (target ≤ 1.10)", p / f),
        ));
        rows.push(Row(
            format!("1. Boot, the hello pod with `--network none` (no NIC; {kname})"),
            format!("hello pod {pn:.2} s ({})", spread(&none_t)),
            format!("floor init {f:.2} s (the runs above)"),
            format!(
                "{:.2}×; the NIC costs {:+.0} ms ({:+.1}%)",
                pn / f,
                (p - pn) * 1000.0,
                (p / pn - 1.0) * 100.0
            ),
        ));
        rows.push(Row(
            format!("1. Boot, the same over ttyS1 (`--channel serial`: no virtio-serial device or modules; {kname})"),
            format!("hello pod {ps:.2} s ({})", spread(&serial_t)),
            format!("floor init {f:.2} s (the runs above)"),
            format!("{:.2}×; the virtio channel's hello pod is {:.2}× this", ps / f, p / ps),
        ));
        let m: Vec<f64> = marks.iter_mut().map(|v| median(v)).collect();
        let _ = writeln!(
            timeline,
            "| {kname} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
            m[0], m[1], m[2], m[3], m[4]
        );
        let (f_run, f_down, _) = guest_time(&pod1, &floor_img, &kernel, &icount, false);
        let (run, down, recs) = guest_time(&pod1, &hello_img, &kernel, &icount, false);
        let (s_run, s_down, _) = guest_time(&pod1, &hello_img, &kernel, &icount, true);
        let stages = [
            at(&recs, |e| matches!(e, Event::InitStarted { .. })),
            at(&recs, |e| matches!(e, Event::SandboxReady {})),
            at(&recs, |e| matches!(e, Event::ContainerCreated { .. })),
            at(&recs, |e| matches!(e, Event::ContainerStarted { .. })),
            at(&recs, |e| matches!(e, Event::PodExited { .. })),
        ];
        let steps: Vec<String> = stages
            .windows(2)
            .map(|w| match (w[0], w[1]) {
                (Some(a), Some(b)) => format!("{:.0}", b - a),
                _ => "?".into(),
            })
            .collect();
        let _ = writeln!(
            guest,
            "| {kname} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {} |",
            f_down - f_run,
            down - run,
            s_down - s_run,
            run,
            s_run,
            steps.join(" | ")
        );
    }

    eprintln!("bench: sizes");
    let init_size = std::fs::metadata(bin("pod1-init")).unwrap().len();
    let img_size = std::fs::metadata(&hello_img).unwrap().len();
    let bb = Command::new("bash")
        .args(["-c", "gzip -9 -c /bin/busybox | wc -c"])
        .output()
        .unwrap();
    let bb_gz: u64 = String::from_utf8_lossy(&bb.stdout).trim().parse().unwrap();
    rows.push(Row(
        "3. Size: pod1-init (static, stripped)".into(),
        format!("{:.2} MB", init_size as f64 / 1e6),
        "tini-static 0.71 MB, catatonit 0.70 MB, kata-agent 14.8 MB".into(),
        format!(
            "target ≤ 1.0 MB: {}",
            if init_size <= 1_000_000 { "met" } else { "not met" }
        ),
    ));
    rows.push(Row(
        "3. Size: hello initramfs (gzip)".into(),
        format!("{:.2} MB", img_size as f64 / 1e6),
        format!("busybox alone, gzip -9: {:.2} MB", bb_gz as f64 / 1e6),
        format!("{:.2}×", img_size as f64 / bb_gz as f64),
    ));

    eprintln!("bench: container start on this host, pod1-init vs crun");
    let truepod = pod("true", 1, "true");
    let tree = truepod.parent().unwrap().join("tree");
    run(Command::new(&pod1)
        .arg("build")
        .arg(&truepod)
        .arg("--tree")
        .arg(&tree));
    let bundle = truepod.parent().unwrap().join("bundle");
    sh(&format!(
        "rm -rf {b} && mkdir -p {b} && cp -a {r} {b}/rootfs && cd {b} && crun spec &&
         python3 -c 'import json; c=json.load(open(\"config.json\")); c[\"process\"][\"terminal\"]=False; c[\"process\"][\"args\"]=[\"true\"]; json.dump(c, open(\"config.json\",\"w\"))'",
        b = bundle.display(),
        r = fixtures().join("rootfs").display()
    ));
    let (mut ours, mut crun) = (Vec::new(), Vec::new());
    for i in 0..runs * 4 {
        let (t, o) = timed(
            Command::new(bin("pod1-init"))
                .arg("--root")
                .arg(&tree)
                .arg("--events")
                .arg("/dev/null")
                .stderr(Stdio::null()),
        );
        assert!(o.status.success(), "pod1-init host run failed");
        ours.push(t.as_secs_f64() * 1000.0);
        let (t, o) = timed(
            crun_command()
                .arg("run")
                .arg("-b")
                .arg(&bundle)
                .arg(format!("pod1-bench-{i}")),
        );
        assert!(
            o.status.success(),
            "crun run failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        crun.push(t.as_secs_f64() * 1000.0);
    }
    let (o, c) = (median(&mut ours), median(&mut crun));
    rows.push(Row(
        "4. Container start+exit on a host (`true`)".into(),
        format!("pod1-init {o:.1} ms (sandbox + container)"),
        format!("crun run {c:.1} ms (both without cgroups: this host's hybrid layout)"),
        format!("{:.2}× crun (target ≤ 0.8×)", o / c),
    ));

    eprintln!("bench: build time");
    let mut bt = Vec::new();
    let out = dir.join("b.img");
    run(Command::new(&pod1).arg("build").arg(&hello).arg("-o").arg(&out));
    for _ in 0..runs * 2 {
        let (t, o) = timed(Command::new(&pod1).arg("build").arg(&hello).arg("-o").arg(&out));
        assert!(o.status.success());
        bt.push(t.as_secs_f64());
    }
    let b = median(&mut bt);
    rows.push(Row(
        "5. `pod1 build` of the hello pod, warm".into(),
        format!("{b:.3} s"),
        "u-root: 7 s".into(),
        format!("target ≤ 0.35 s: {}", if b <= 0.35 { "met" } else { "not met" }),
    ));

    eprintln!("bench: memory and scale");
    let (outer, inner) = host_memory(10);
    rows.push(Row(
        "6. Init resident memory, 10 running containers (host mode)".into(),
        format!("pod init {:.2} MB", inner as f64 / 1024.0),
        format!("outer process {:.2} MB", outer as f64 / 1024.0),
        format!("target ≤ 2 MB: {}", if inner <= 2048 { "met" } else { "not met" }),
    ));
    let (minimal_name, minimal) = kernels().remove(0);
    for n in [10usize, 50, 100] {
        let manifest = pod(&format!("scale{n}"), n, "sleep 1");
        let (_, o) = timed(
            Command::new(&pod1)
                .arg("run")
                .arg(&manifest)
                .arg("--kernel")
                .arg(&minimal)
                .args(["--json", "--timeout", "300", "--memory", "1G"])
                .stderr(Stdio::null()),
        );
        let recs = events(&o.stdout);
        let last = recs
            .iter()
            .filter(|r| matches!(r.event, Event::ContainerStarted { .. }))
            .map(|r| r.ms)
            .max()
            .unwrap_or(0);
        let ready = at(&recs, |e| matches!(e, Event::SandboxReady {})).unwrap_or(0.0) as u64;
        let started = recs
            .iter()
            .filter(|r| matches!(r.event, Event::ContainerStarted { .. }))
            .count();
        assert_eq!(started, n, "all {n} containers started");
        let (_, mem) = host_memory(n);
        rows.push(Row(
            format!("7. Scale: {n} containers ({minimal_name} kernel)"),
            format!(
                "boot to all started {:.2} s (sandbox ready to all started {} ms)",
                last as f64 / 1000.0,
                last - ready
            ),
            format!("pod init {:.2} MB (host mode)", mem as f64 / 1024.0),
            format!(
                "{:.1} ms per container after the sandbox",
                (last - ready) as f64 / n as f64
            ),
        ));
    }

    eprintln!("bench: pod1 run to the first HTTP answer from a published port");
    for (kname, kernel) in kernels() {
        let mut t = network::first_answer(&pod1, &kernel, runs);
        let m = median(&mut t);
        rows.push(Row(
            format!("10. `pod1 run` to the first HTTP answer through a `hostPort` (busybox httpd; {kname}; polled every 0.1 s, each try given 0.25 s)"),
            format!("{m:.2} s ({:.2}–{:.2})", t[0], t[t.len() - 1]),
            "the hello pod's boot, row 1".into(),
            "".into(),
        ));
    }

    let mut tput = String::new();
    for (kname, kernel) in kernels() {
        let _ = writeln!(tput, "{}", throughput::table(&pod1, kname, &kernel));
    }

    let mut volumes = String::new();
    for (kname, kernel) in kernels() {
        let _ = writeln!(volumes, "{}", hostpath::table(&pod1, kname, &kernel));
    }

    let qemu = Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .unwrap();
    let qemu = String::from_utf8_lossy(&qemu.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default();
    let date = String::from_utf8(
        Command::new("date")
            .arg("-u")
            .arg("+%Y-%m-%d %H:%M UTC")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let mut md = String::new();
    let _ = writeln!(md, "# pod1 benchmarks\n");
    let _ = writeln!(
        md,
        "Measured {} by `./scripts/bench.sh` in {:.0} s.",
        date.trim(),
        started.elapsed().as_secs_f64()
    );
    let _ = writeln!(
        md,
        "Machine: {} CPUs ({cpu}), host kernel {}; {qemu}; guest kernels: {}. \
         Boots run under TCG (no usable KVM here), machine `pc`. Medians of {runs} interleaved runs \
         (A B A B …) unless noted, boots with their min–max; container start {} runs each, build {} runs.\n",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        String::from_utf8_lossy(&Command::new("uname").arg("-r").output().unwrap().stdout).trim(),
        kernels()
            .iter()
            .map(|(n, p)| format!("{n} ({})", p.display()))
            .collect::<Vec<_>>()
            .join(", "),
        runs * 4,
        runs * 2,
    );
    let _ = writeln!(
        md,
        "| measure | pod1 | reference | ratio / target |\n|---|---|---|---|"
    );
    for Row(a, b, c, d) in &rows {
        let _ = writeln!(md, "| {a} | {b} | {c} | {d} |");
    }
    let _ = writeln!(
        md,
        "\n2. Boot timeline of the hello pod, ms since the kernel started (CLOCK_BOOTTIME), medians:\n\n\
         | kernel | init started | sandbox ready | container created | container started | pod exited |\n|---|---|---|---|---|---|\n{timeline}"
    );
    let _ = writeln!(
        md,
        "\n2b. Guest time, one boot each under `-icount shift=0,sleep=off` (1 ns per guest instruction, \
         idle skipped to the next timer): exact and repeatable, but blind to QEMU's translation cost, \
         which is most of a TCG boot. Guest ms from the kernel's \"Run /init\" to \"Power down\" (printk \
         time), and between the init's events (whole ms):\n\n\
         | kernel | floor: Run /init → power down | hello pod: Run /init → power down | the same over ttyS1 | hello pod: boot to Run /init | over ttyS1: boot to Run /init | init started → sandbox ready | → container created | → container started | → pod exited |\n\
         |---|---|---|---|---|---|---|---|---|---|\n{guest}"
    );
    let _ = writeln!(
        md,
        "\n8. Container output to a reader of `pod1 run`'s stdout, from the first byte there to pod1's exit \
         (one run each; sizes are the base64 output). Under TCG the container's own `urandom | base64` and \
         `seq` are the limit; `cat` of prepared bytes shows what the channel carries. The host pipe is the \
         same bytes through `base64 < file | cat > /dev/null` (or `seq | cat`) on this host.\n\n{tput}"
    );
    let _ = writeln!(
        md,
        "\n9. A hostPath volume (virtio-fs, one virtiofsd on the host) against an emptyDir (the VM's tmpfs), \
         the same workload in one privileged busybox container (one run each, guest time between marks the \
         container prints; the guest drops its caches before each read, so hostPath reads reach the host, \
         whose page cache holds the files; `sync` ends each write).\n\n{volumes}"
    );
    print!("{md}");
    std::fs::write(&out_file, &md).unwrap();
    eprintln!("bench: wrote {}", out_file.display());
}
