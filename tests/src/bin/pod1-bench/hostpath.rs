//! hostPath volumes (virtio-fs, a virtiofsd on the host) against the same
//! work on an emptyDir (the VM's own tmpfs): 10,000 small files written and
//! read back, and one 200 MB file written and read back. The container
//! prints a mark between steps; the times are the guest's, from the `ms` of
//! those lines' log events. Before each read the guest drops its caches
//! (the container is privileged for that), so a hostPath read goes to the
//! host (whose own page cache still holds the files); an emptyDir's files
//! are the tmpfs itself and stay.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use pod1_manifest::events::{Event, Record};
use pod1_tests::pod_dir;

/// The steps, each between two marks: (label, from, to).
const STEPS: &[(&str, &str, &str)] = &[
    ("write 10,000 small files", "start", "small-written"),
    ("read them back (`cat`)", "small-dropped", "small-read"),
    (
        "write one 200 MB file (`dd`, 1 MiB blocks)",
        "small-read",
        "big-written",
    ),
    ("read it back", "big-dropped", "big-read"),
];

const SCRIPT: &str = "mkdir -p /d/small; echo mark start; \
    i=0; while [ $i -lt 10000 ]; do echo $i > /d/small/$i; i=$((i+1)); done; sync; echo mark small-written; \
    echo 3 > /proc/sys/vm/drop_caches; echo mark small-dropped; \
    cat /d/small/* > /dev/null; echo mark small-read; \
    dd if=/dev/zero of=/d/big bs=1M count=200 2>/dev/null; sync; echo mark big-written; \
    echo 3 > /proc/sys/vm/drop_caches; echo mark big-dropped; \
    dd if=/d/big of=/dev/null bs=1M 2>/dev/null; echo mark big-read";

/// Runs the workload on `volume` (a volume source); returns the guest ms of each step.
fn workload(pod1: &Path, kernel: &Path, name: &str, volume: serde_json::Value) -> Vec<f64> {
    let mut v = volume;
    v["name"] = "d".into();
    let m = serde_json::json!({"metadata": {"name": name}, "spec": {"restartPolicy": "Never", "volumes": [v],
        "containers": [{"name": "c", "image": "oci:../busybox", "command": ["sh", "-c", SCRIPT],
                        "securityContext": {"privileged": true},
                        "volumeMounts": [{"name": "d", "mountPath": "/d"}]}]}});
    let manifest = pod_dir(name, &m.to_string()).join("pod.json");
    let out = Command::new(pod1)
        .arg("run")
        .arg(&manifest)
        .arg("--kernel")
        .arg(kernel)
        .args(["--json", "--memory", "1G", "--timeout", "1200"])
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "{name} failed");
    let marks: Vec<(String, f64)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Record>(l).ok())
        .filter_map(|r| match r.event {
            Event::Log { line, .. } => Some((line.strip_prefix("mark ")?.to_string(), r.ms as f64)),
            _ => None,
        })
        .collect();
    let at = |m: &str| marks.iter().find(|(n, _)| n == m).map(|(_, t)| *t).expect(m);
    STEPS.iter().map(|(_, from, to)| at(to) - at(from)).collect()
}

/// The table for one kernel (markdown).
pub fn table(pod1: &Path, kname: &str, kernel: &Path) -> String {
    eprintln!("bench: hostPath against emptyDir ({kname})");
    let dir = pod1_tests::fixtures()
        .join(format!("hp-bench-{kname}"))
        .join("shared");
    let _ = std::fs::remove_dir_all(&dir);
    let host = workload(
        pod1,
        kernel,
        &format!("hp-bench-{kname}"),
        serde_json::json!({"hostPath": {"path": "shared", "type": "DirectoryOrCreate"}}),
    );
    let _ = std::fs::remove_dir_all(&dir);
    let empty = workload(
        pod1,
        kernel,
        &format!("ed-bench-{kname}"),
        serde_json::json!({"emptyDir": {}}),
    );
    let mut md = String::new();
    let _ = writeln!(
        md,
        "| step ({kname} kernel) | hostPath (virtio-fs) | emptyDir (tmpfs) | ratio |\n|---|---|---|---|"
    );
    for (((label, _, _), h), e) in STEPS.iter().zip(&host).zip(&empty) {
        let _ = writeln!(
            md,
            "| {label} | {:.2} s | {:.2} s | {:.1}× |",
            h / 1000.0,
            e / 1000.0,
            h / e
        );
    }
    md
}
