//! Host-tier test helpers: build an unpacked initramfs tree with a busybox
//! image in a temp dir, write a plan, run `pod1-init --root` on it (as
//! root, in real namespaces) and read back its events.
//!
//! Fixture: the image is Debian's busybox-static (`/bin/busybox`) copied to
//! `ROOT/pod1/images/busybox/bin/busybox` with one symlink per applet (from
//! `busybox --list`), plus `/etc/passwd` and `/etc/group`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pod1_manifest::events::{Event, Phase, Record, Stream};
use pod1_manifest::plan::{
    Backoff, ContainerPlan, Limits, MountPlan, QosClass, Seccomp, User, VolumePlan, DEFAULT_CAPABILITIES,
};
use pod1_manifest::pod::{RestartPolicy, SeccompProfileType};
use pod1_manifest::Plan;

/// Where the image sits inside the tree.
pub const IMAGE: &str = "/pod1/images/busybox";

/// Fails clearly when not root: these tests need real namespaces.
pub fn require_root() {
    let uid = fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("Uid:")
                .map(|v| v.split_whitespace().next().unwrap_or("").to_string())
        })
        .unwrap();
    assert_eq!(
        uid, "0",
        "the host-tier tests of pod1-init must run as root (they create namespaces and mounts)"
    );
}

/// A container running `sh -c script` in the busybox image as root.
pub fn sh(name: &str, script: &str) -> ContainerPlan {
    ContainerPlan {
        name: name.into(),
        image: "dir:busybox".into(),
        image_id: String::new(),
        rootfs: IMAGE.into(),
        argv: vec!["sh".into(), "-c".into(), script.into()],
        env: vec![
            "PATH=/usr/sbin:/usr/bin:/sbin:/bin".into(),
            "HOSTNAME=test".into(),
        ],
        working_dir: "/".into(),
        user: User {
            uid: 0,
            gid: 0,
            additional_gids: vec![],
        },
        read_only_root_filesystem: false,
        privileged: false,
        capabilities: DEFAULT_CAPABILITIES.iter().map(|s| s.to_string()).collect(),
        volume_mounts: vec![],
        limits: Limits::default(),
        memory_request_bytes: None,
        seccomp: None,
        // As the builder sets it for a container that is not privileged.
        no_new_privileges: true,
        files: vec![],
        sidecar: false,
        stop_signal: 15,
        termination_message_file: format!("/pod1/termination/{name}"),
        fallback_to_logs: false,
        termination_message_max: 4096,
        refused: None,
        devices: None,
        checks: Default::default(),
    }
}

/// Mounts volume `name` at `path` in `c`.
pub fn mount(mut c: ContainerPlan, name: &str, path: &str) -> ContainerPlan {
    c.volume_mounts.push(MountPlan {
        name: name.into(),
        mount_path: path.into(),
        read_only: false,
        sub_path: None,
    });
    c
}

/// A pod of `containers`, restartPolicy Never, fast backoff, grace 2 s.
pub fn pod(containers: Vec<ContainerPlan>) -> Plan {
    Plan {
        pod: "testpod".into(),
        hostname: "testpod".into(),
        restart_policy: RestartPolicy::Never,
        init_containers: vec![],
        containers,
        termination_grace_period_seconds: 2,
        share_process_namespace: false,
        host_network: false,
        host_ipc: false,
        sysctls: vec![],
        volumes: vec![],
        backoff: Backoff {
            initial_ms: 100,
            max_ms: 400,
            reset_ms: 600_000,
        },
        qos_class: QosClass::BestEffort,
        backoff_limit: None,
        programs: vec![],
        network: Default::default(),
        active_deadline_seconds: None,
        ports: Default::default(),
    }
}

/// One BPF instruction in the plan's hex form (`struct sock_filter`, little-endian).
pub fn insn(code: u16, jt: u8, jf: u8, k: u32) -> String {
    let mut b = code.to_le_bytes().to_vec();
    b.extend([jt, jf]);
    b.extend(k.to_le_bytes());
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A seccomp program (for [`Plan::programs`]) under which mkdir and
/// mkdirat fail with EACCES and everything else is allowed.
pub fn deny_mkdir_program() -> String {
    [
        insn(0x20, 0, 0, 0),                                 // ld [nr]
        insn(0x15, 2, 0, libc::SYS_mkdir as u32),            // jeq mkdir → deny
        insn(0x15, 1, 0, libc::SYS_mkdirat as u32),          // jeq mkdirat → deny
        insn(0x06, 0, 0, 0x7fff_0000),                       // ret ALLOW
        insn(0x06, 0, 0, 0x0005_0000 | libc::EACCES as u32), // ret ERRNO(EACCES)
    ]
    .concat()
}

/// A Localhost seccomp profile whose program is `Plan::programs[index]`.
pub fn deny_mkdir(index: usize) -> Seccomp {
    Seccomp {
        profile: SeccompProfileType::Localhost,
        localhost_profile: Some("deny-mkdir.json".into()),
        flags: 0,
        program: Some(index),
    }
}

/// The value of the first `Key:` line in lines of /proc/self/status,
/// whitespace normalised (`Groups:\t10 20 ` is `10 20`).
pub fn status_value(lines: &[String], key: &str) -> String {
    lines
        .iter()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key}: line in {lines:#?}"))
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Adds an emptyDir volume.
pub fn volume(plan: &mut Plan, name: &str) {
    plan.volumes.push(VolumePlan {
        name: name.into(),
        size_limit_bytes: None,
        source: None,
        fs_group: None,
        host_path: None,
    });
}

/// A fresh directory under the temp dir (mode 0700, as tempfile makes
/// them), removed with everything in it when dropped. Not the tempfile
/// crate: as a dev-dependency it would turn on rustix's and libc's std
/// features in the no_std binary these tests run (cargo unifies them).
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        use std::os::unix::fs::DirBuilderExt;
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("{prefix}.{}.{n}.{nanos}", std::process::id()));
        fs::DirBuilder::new().mode(0o700).create(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A built tree and the events file of one run.
#[derive(Debug)]
pub struct Tree {
    pub dir: TempDir,
}

impl Tree {
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn events_path(&self) -> PathBuf {
        self.dir.path().join("events.jsonl")
    }
}

/// Builds the tree (busybox image + plan).
pub fn tree(plan: &Plan) -> Tree {
    require_root();
    let dir = TempDir::new("pod1-init-test");
    let image = dir.path().join(IMAGE.trim_start_matches('/'));
    fs::create_dir_all(image.join("bin")).unwrap();
    fs::create_dir_all(image.join("etc")).unwrap();
    fs::create_dir_all(image.join("tmp")).unwrap();
    fs::copy("/bin/busybox", image.join("bin/busybox")).expect("busybox-static is needed at /bin/busybox");
    let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            symlink("busybox", image.join("bin").join(applet)).unwrap();
        }
    }
    fs::write(
        image.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n",
    )
    .unwrap();
    fs::write(image.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
    let plan_path = dir.path().join(pod1_manifest::plan::PLAN_PATH);
    fs::create_dir_all(plan_path.parent().unwrap()).unwrap();
    fs::write(&plan_path, serde_json::to_string_pretty(plan).unwrap()).unwrap();
    Tree { dir }
}

/// A finished run.
#[derive(Debug)]
pub struct Outcome {
    pub code: i32,
    pub events: Vec<Record>,
    pub stderr: String,
}

impl Outcome {
    pub fn logs(&self, container: &str) -> Vec<String> {
        logs(&self.events, container, None)
    }

    pub fn stdout(&self, container: &str) -> Vec<String> {
        logs(&self.events, container, Some(Stream::Stdout))
    }

    /// (exit_code, signal) of each exit of `container`.
    pub fn exits(&self, container: &str) -> Vec<(i32, Option<i32>)> {
        self.events
            .iter()
            .filter_map(|r| match &r.event {
                Event::ContainerExited {
                    container: c,
                    exit_code,
                    signal,
                    ..
                } if c == container => Some((*exit_code, *signal)),
                _ => None,
            })
            .collect()
    }

    pub fn pod_exit(&self) -> (Phase, i32) {
        let last = self
            .events
            .last()
            .unwrap_or_else(|| panic!("no events; stderr: {}", self.stderr));
        match &last.event {
            Event::PodExited { phase, exit_code, .. } => (*phase, *exit_code),
            other => panic!("last event is {other:?}, not pod_exited; all: {:#?}", self.events),
        }
    }

    /// Names of the events in order, for ordering checks.
    pub fn kinds(&self) -> Vec<String> {
        self.events.iter().map(|r| describe(&r.event)).collect()
    }

    /// Where the first event described as `kind` (or starting so) is.
    pub fn position(&self, kind: &str) -> usize {
        let kinds = self.kinds();
        kinds
            .iter()
            .position(|x| x.starts_with(kind))
            .unwrap_or_else(|| panic!("{kind} in {kinds:#?}"))
    }
}

pub fn describe(e: &Event) -> String {
    match e {
        Event::InitStarted { .. } => "init_started".into(),
        Event::SandboxReady {} => "sandbox_ready".into(),
        Event::ContainerCreated { container } => format!("created {container}"),
        Event::ContainerStarted { container, .. } => format!("started {container}"),
        Event::ContainerWaiting {
            container, reason, ..
        } => format!("waiting {container} {reason}"),
        Event::Log { container, line, .. } => format!("log {container}: {line}"),
        Event::ContainerExited {
            container, exit_code, ..
        } => format!("exited {container} {exit_code}"),
        Event::PodExited { exit_code, .. } => format!("pod_exited {exit_code}"),
        Event::Error { message } => format!("error {message}"),
        Event::ContainerProbe {
            container,
            probe,
            success,
            ..
        } => format!("probe {container} {} {success}", probe.title()),
        Event::HookFailed { container, hook, .. } => format!("hook_failed {container} {hook:?}"),
        Event::ContainerKilling { container, message } => format!("killing {container}: {message}"),
    }
}

pub fn logs(events: &[Record], container: &str, stream: Option<Stream>) -> Vec<String> {
    events
        .iter()
        .filter_map(|r| match &r.event {
            Event::Log {
                container: c,
                stream: s,
                line,
            } if c == container && stream.map_or(true, |want| want == *s) => Some(line.clone()),
            _ => None,
        })
        .collect()
}

/// Parses an events file; every line must be a Record.
pub fn read_events(path: &Path) -> Vec<Record> {
    let text = fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad event line {l:?}: {e}")))
        .collect()
}

/// A running init.
#[derive(Debug)]
pub struct Running {
    pub tree: Tree,
    pub child: Child,
}

/// Starts the init on the tree.
pub fn spawn(plan: &Plan) -> Running {
    spawn_env(plan, &[])
}

/// Starts the init on the tree with extra environment variables.
pub fn spawn_env(plan: &Plan, env: &[(&str, &str)]) -> Running {
    spawn_tree(tree(plan), env)
}

/// Starts the init on a tree made by [`tree`] (and changed by the test).
pub fn spawn_tree(tree: Tree, env: &[(&str, &str)]) -> Running {
    let child = Command::new(env!("CARGO_BIN_EXE_pod1-init"))
        .envs(env.iter().copied())
        .arg("--root")
        .arg(tree.root())
        .arg("--events")
        .arg(tree.events_path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    Running { tree, child }
}

/// How long any test waits for anything before declaring the init hung.
pub const HANG: Duration = Duration::from_secs(60);

impl Running {
    /// Waits until the events so far satisfy `pred`.
    pub fn wait_for(&mut self, what: &str, pred: impl Fn(&[Record]) -> bool) {
        let start = Instant::now();
        loop {
            let ev = read_events(&self.tree.events_path());
            if pred(&ev) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("init exited ({status}) before {what}; events: {:#?}", ev);
            }
            assert!(
                start.elapsed() < HANG,
                "timed out waiting for {what}; events: {ev:#?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        let r = unsafe { libc::kill(self.child.id() as i32, sig) };
        assert_eq!(r, 0);
    }

    /// Waits for the init to exit (killing it if it hangs).
    pub fn finish(mut self) -> Outcome {
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if start.elapsed() > HANG {
                let _ = self.child.kill();
                let ev = read_events(&self.tree.events_path());
                panic!("pod1-init hung; events: {ev:#?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stderr = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut stderr);
        }
        let events = read_events(&self.tree.events_path());
        Outcome {
            code: status.code().unwrap_or(-1),
            events,
            stderr,
        }
    }
}

/// Runs the plan to the end.
pub fn run(plan: &Plan) -> Outcome {
    spawn(plan).finish()
}

/// Checks the invariants of every run: starts with init_started and
/// sandbox_ready, ends with pod_exited, no error, logs before pod_exited,
/// and the process exit code matches the event.
pub fn check(o: &Outcome) {
    let kinds = o.kinds();
    assert_eq!(
        kinds.first().map(String::as_str),
        Some("init_started"),
        "{kinds:#?}\n{}",
        o.stderr
    );
    assert_eq!(
        kinds.get(1).map(String::as_str),
        Some("sandbox_ready"),
        "{kinds:#?}\n{}",
        o.stderr
    );
    assert!(
        !kinds.iter().any(|k| k.starts_with("error")),
        "{kinds:#?}\n{}",
        o.stderr
    );
    let (_, code) = o.pod_exit();
    assert_eq!(code, o.code, "process exit code vs pod_exited; {kinds:#?}");
}
