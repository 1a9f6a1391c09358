//! VM tests: Kubernetes manifests as users write them (YAML streams,
//! Lists, ConfigMaps and Secrets, the downward API, a "restricted" pod, a
//! Job), run through `pod1 run` on both guest kernels.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

use std::path::{Path, PathBuf};

use pod1_tests::{fixtures, kernels, pod1_run, workspace, Ran};

/// Writes `text` as `name` in a directory of the fixtures, next to which
/// `oci:../busybox` is the test image.
fn manifest(dir: &str, name: &str, text: &str) -> PathBuf {
    let dir = fixtures().join(dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `path` on every kernel; each run must exit with `code`.
fn run_everywhere(path: &Path, args: &[&str], code: i32) -> Vec<(&'static str, Ran)> {
    kernels()
        .into_iter()
        .map(|(name, kernel)| {
            let r = pod1_run(path, &kernel, args);
            assert_eq!(r.code, code, "{name}: stdout {}\nstderr {}", r.stdout, r.stderr);
            (name, r)
        })
        .collect()
}

const SECRET_POD: &str = r#"# A Secret and the pod that reads it, in one stream.
apiVersion: v1
kind: Secret
metadata: {name: creds}
type: Opaque
data:
  password: aHVudGVyMg==   # hunter2
stringData:
  user: admin
---
apiVersion: v1
kind: Pod
metadata:
  name: secret-pod
  resourceVersion: "12345"
spec:
  restartPolicy: Never
  nodeSelector: {disk: ssd}
  tolerations: [{key: dedicated, operator: Exists}]
  priorityClassName: high
  hostAliases:
  - {ip: 10.1.2.3, hostnames: [foo.remote, bar.remote]}
  volumes:
  - name: creds
    secret:
      secretName: creds
      defaultMode: 0400
      items: [{key: password, path: db/password}]
  containers:
  - name: c
    image: oci:../busybox:latest
    ports: [{containerPort: 8080}]
    env:
    - name: DB_USER
      valueFrom: {secretKeyRef: {name: creds, key: user}}
    command: [sh, -c]
    args:
    - |
      echo "mode $(stat -c %a /etc/creds/..data/db/password)"
      echo "secret $(cat /etc/creds/db/password) for $DB_USER"
      echo "fs $(stat -f -c %T /etc/creds/db/password)"
      touch /etc/creds/x 2>/dev/null && echo "creds writable" || echo "creds read-only"
      grep -F foo.remote /etc/hosts | tr '\t' '|'
      grep -F secret-pod /etc/hosts | tr '\t' '|'
      echo "hostname $(cat /etc/hostname)"
      grep nameserver /etc/resolv.conf
      echo bye > /dev/termination-log && echo "termination log writable"
    volumeMounts: [{name: creds, mountPath: /etc/creds}]
"#;

#[test]
fn a_secret_and_a_pod_in_one_yaml_stream() {
    let path = manifest("secret-pod", "pod.yaml", SECRET_POD);
    for (name, r) in run_everywhere(&path, &[], 0) {
        let lines = r.lines_of("c");
        for want in [
            "mode 400",
            "secret hunter2 for admin",
            "fs tmpfs",
            "creds read-only",
            "10.1.2.3|foo.remote|bar.remote",
            "10.0.2.15|secret-pod",
            "hostname secret-pod",
            "nameserver 10.0.2.3",
            "termination log writable",
        ] {
            assert!(
                lines.contains(&want),
                "{name}: no {want:?} in {lines:?}\n{}",
                r.stderr
            );
        }
        // The scheduler-only fields run, each named in one warning.
        for field in [
            "metadata.resourceVersion",
            "spec.nodeSelector",
            "spec.tolerations",
            "spec.priorityClassName",
        ] {
            let warning = format!("pod1: warning: document 2 (Pod secret-pod): {field} is ignored: ");
            assert_eq!(
                r.stderr.matches(&warning).count(),
                1,
                "{name}: {field}: {}",
                r.stderr
            );
        }
        // A containerPort alone publishes nothing, as on a node.
        assert!(!r.stderr.contains("published"), "{name}: {}", r.stderr);
    }
    // --strict refuses what would be ignored, before any VM boots.
    let (_, kernel) = &kernels()[0];
    let r = pod1_run(&path, kernel, &["--strict"]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("metadata.resourceVersion: pod1 would ignore it"),
        "{}",
        r.stderr
    );
}

const LIST: &str = r#"apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: settings}
  data:
    LOG_LEVEL: debug
    app.conf: |
      listen=8080
- apiVersion: v1
  kind: Pod
  metadata: {name: list-pod}
  spec:
    restartPolicy: Never
    volumes:
    - name: conf
      configMap:
        name: settings
        items: [{key: app.conf, path: conf/app.conf, mode: 0640}]
    containers:
    - name: c
      image: oci:../busybox:latest
      envFrom: [{prefix: CFG_, configMapRef: {name: settings}}]
      env: [{name: LEVEL, value: "level=$(CFG_LOG_LEVEL)"}]
      command: [sh, -c]
      args:
      - |
        echo "$LEVEL"
        echo "cfg vars $(tr '\0' '\n' < /proc/1/environ | grep -c ^CFG_)"
        echo "conf $(cat /etc/app/conf/app.conf) $(stat -c %a /etc/app/..data/conf/app.conf)"
        echo "top $(ls /etc/app | tr '\n' ' ')"
        echo "one $(cat /etc/one.conf)"
        echo "extra $EXTRA"
      volumeMounts:
      - {name: conf, mountPath: /etc/app}
      - {name: conf, mountPath: /etc/one.conf, subPath: conf/app.conf}
"#;

#[test]
fn a_list_with_a_config_map_through_env_from_items_and_sub_path() {
    let path = manifest("list", "list.yaml", LIST);
    // One more variable from a Secret in another file (-f).
    let extra = manifest(
        "list",
        "extra.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: more}\nstringData: {EXTRA: from-f}\n",
    );
    let text = LIST.replace(
        "env: [{name: LEVEL",
        "env: [{name: EXTRA, valueFrom: {secretKeyRef: {name: more, key: EXTRA}}}, {name: LEVEL",
    );
    std::fs::write(&path, text).unwrap();
    for (name, r) in run_everywhere(&path, &["-f", extra.to_str().unwrap()], 0) {
        let lines = r.lines_of("c");
        for want in [
            "level=debug",
            "cfg vars 2",
            "conf listen=8080 640",
            "top conf ",
            "one listen=8080",
            "extra from-f",
        ] {
            assert!(
                lines.contains(&want),
                "{name}: no {want:?} in {lines:?}\n{}",
                r.stderr
            );
        }
    }
    // Without the extra file the pod cannot start: a clear error, no boot.
    let (_, kernel) = &kernels()[0];
    let r = pod1_run(&path, kernel, &[]);
    assert_eq!(r.code, 125);
    assert!(r.stderr.contains("Secret \"more\" not found"), "{}", r.stderr);
}

const DOWNWARD: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: downward
  namespace: team
  labels: {app: web, tier: "front end"}
  annotations: {build: "42"}
spec:
  restartPolicy: Never
  serviceAccountName: robot
  volumes:
  - name: info
    downwardAPI:
      items:
      - {path: labels, fieldRef: {fieldPath: metadata.labels}}
      - {path: annotations, fieldRef: {fieldPath: metadata.annotations}}
      - {path: mem_limit, resourceFieldRef: {containerName: c, resource: limits.memory, divisor: 1Mi}}
  containers:
  - name: c
    image: oci:../busybox:latest
    resources: {limits: {memory: 64Mi, cpu: 500m}}
    volumeMounts: [{name: info, mountPath: /etc/info}]
    env:
    - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: POD_NS, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
    - {name: POD_UID, valueFrom: {fieldRef: {fieldPath: metadata.uid}}}
    - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    - {name: SA, valueFrom: {fieldRef: {fieldPath: spec.serviceAccountName}}}
    - {name: TIER, valueFrom: {fieldRef: {fieldPath: "metadata.labels['tier']"}}}
    - {name: CPU_MILLI, valueFrom: {resourceFieldRef: {resource: limits.cpu, divisor: 1m}}}
    - {name: MEM_REQ, valueFrom: {resourceFieldRef: {resource: requests.memory}}}
    - {name: NODE_MEM_MI, valueFrom: {resourceFieldRef: {containerName: c, resource: limits.ephemeral-storage, divisor: 1Mi}}}
    command: [sh, -c]
    args:
    - |
      echo "env $POD_NAME $POD_NS $POD_IP $SA $TIER $CPU_MILLI $MEM_REQ $NODE_MEM_MI"
      echo "uid $(echo $POD_UID | tr 0-9a-f x)"
      sed 's/^/file /' /etc/info/labels; echo
      sed 's/^/file /' /etc/info/annotations; echo
      echo "mem_limit $(cat /etc/info/mem_limit)"
"#;

#[test]
fn downward_api_env_and_volume() {
    let path = manifest("downward", "pod.yaml", DOWNWARD);
    for (name, r) in run_everywhere(&path, &["--memory", "640M"], 0) {
        let lines = r.lines_of("c");
        for want in [
            // No ephemeral-storage limit: the node's (half the VM's memory).
            "env downward team 10.0.2.15 robot front end 500 67108864 320",
            "uid xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
            "file app=\"web\"",
            "file tier=\"front end\"",
            "file build=\"42\"",
            "mem_limit 64",
        ] {
            assert!(
                lines.contains(&want),
                "{name}: no {want:?} in {lines:?}\n{}",
                r.stderr
            );
        }
    }
}

const RESTRICTED: &str = r#"# Written to the Pod Security Standards' "restricted" profile.
apiVersion: v1
kind: Pod
metadata: {name: restricted}
spec:
  restartPolicy: Never
  securityContext:
    runAsNonRoot: true
    runAsUser: 1000
    runAsGroup: 3000
    fsGroup: 2000
    supplementalGroups: [4000]
    seccompProfile: {type: RuntimeDefault}
  volumes: [{name: data, emptyDir: {}}]
  containers:
  - name: c
    image: oci:../busybox:latest
    securityContext:
      allowPrivilegeEscalation: false
      capabilities: {drop: [ALL]}
      readOnlyRootFilesystem: true
    volumeMounts: [{name: data, mountPath: /data}]
    command: [sh, -c]
    args:
    - |
      echo "ids $(id -u) $(id -g) $(id -G)"
      grep -E '^(NoNewPrivs|Seccomp|CapEff):' /proc/self/status | tr -s '\t ' ' '
      echo "data $(stat -c '%g %a' /data)"
      touch /data/f && echo "file $(stat -c %g /data/f)"
      touch /f 2>/dev/null || echo "root read-only"
"#;

#[test]
fn a_restricted_pod_runs_unchanged_and_run_as_non_root_refuses_root() {
    let path = manifest("restricted", "pod.yaml", RESTRICTED);
    for (name, r) in run_everywhere(&path, &[], 0) {
        let lines = r.lines_of("c");
        for want in [
            "ids 1000 3000 3000 2000 4000",
            "NoNewPrivs: 1",
            "Seccomp: 2",
            "CapEff: 0000000000000000",
            "data 2000 2777",
            "file 2000",
            "root read-only",
        ] {
            assert!(
                lines.contains(&want),
                "{name}: no {want:?} in {lines:?}\n{}",
                r.stderr
            );
        }
    }
    // The image runs as root: the container is refused as the kubelet
    // refuses it, and the pod fails with 126.
    let root = RESTRICTED.replace("    runAsUser: 1000\n", "");
    let path = manifest("restricted-root", "pod.yaml", &root);
    for (name, r) in run_everywhere(&path, &[], 126) {
        assert!(
            r.stderr
                .contains("container has runAsNonRoot and image will run as root"),
            "{name}: {}",
            r.stderr
        );
        assert!(
            r.lines_of("c").is_empty(),
            "{name}: the container ran: {}",
            r.stdout
        );
    }
}

#[test]
fn the_examples_run() {
    for (dir, file, container, want) in [
        ("configmap", "pod.yaml", "greeter", "Hello, world! (from greeter)"),
        ("job", "job.yaml", "pi", "3.14159265358979323844"),
    ] {
        let text = std::fs::read_to_string(workspace().join("examples").join(dir).join(file)).unwrap();
        let path = manifest(
            &format!("example-{dir}"),
            file,
            &text.replace("oci:../images/busybox", "oci:../busybox"),
        );
        for (name, r) in run_everywhere(&path, &[], 0) {
            assert!(
                r.lines_of(container).contains(&want),
                "{name}: {dir}: {}\n{}",
                r.stdout,
                r.stderr
            );
        }
    }
}

const FLAKY_JOB: &str = r#"apiVersion: batch/v1
kind: Job
metadata: {name: flaky}
spec:
  backoffLimit: 2
  template:
    metadata:
      annotations: {pod1/restart-backoff-ms: "10"}
    spec:
      restartPolicy: Never
      volumes: [{name: v, emptyDir: {}}]
      containers:
      - name: c
        image: oci:../busybox:latest
        command: [sh, -c, 'echo "attempt as $(cat /etc/hostname)"; exit 3']
"#;

#[test]
fn a_failing_job_is_retried_up_to_its_backoff_limit() {
    let path = manifest("job-never", "job.yaml", FLAKY_JOB);
    let (_, kernel) = &kernels()[0];
    // restartPolicy Never: the pod is booted again, backoffLimit times.
    let r = pod1_run(&path, kernel, &[]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert_eq!(
        r.lines_of("c")
            .iter()
            .filter(|l| l.starts_with("attempt as flaky-"))
            .count(),
        3,
        "{}",
        r.stdout
    );
    assert!(
        r.stderr.contains("running it again (2 of backoffLimit 2)"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("BackoffLimitExceeded"), "{}", r.stderr);
    // A pod that succeeds is not run again.
    let ok = manifest("job-ok", "job.yaml", &FLAKY_JOB.replace("exit 3", "exit 0"));
    let r = pod1_run(&ok, kernel, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.lines_of("c").len(), 1, "{}", r.stdout);
    // restartPolicy OnFailure: the containers restart in the one VM until
    // the pod's restarts reach backoffLimit.
    let on_failure = manifest(
        "job-onfailure",
        "job.yaml",
        &FLAKY_JOB.replace("restartPolicy: Never", "restartPolicy: OnFailure"),
    );
    let r = pod1_run(&on_failure, kernel, &["--json"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    let boots = r
        .events()
        .iter()
        .filter(|e| matches!(e, pod1_manifest::events::Event::InitStarted { .. }))
        .count();
    let exits: Vec<u32> = r
        .events()
        .iter()
        .filter_map(|e| match e {
            pod1_manifest::events::Event::ContainerExited { restarts, .. } => Some(*restarts),
            _ => None,
        })
        .collect();
    assert_eq!((boots, exits), (1, vec![0, 1, 2]), "{}", r.stdout);
}
