//! The events the init reports to the host, and the host's requests.
//!
//! In the VM each [`Record`] travels as JSON in an event frame of the
//! channel (see [`crate::channel`]), container output as output frames
//! that `pod1 run` turns back into [`Event::Log`] records; in host mode
//! (`pod1-init --root`) the records are written one JSON object per line.
//!
//! ```
//! use pod1_manifest::events::{Event, Record};
//! let line = r#"{"event":"container_started","container":"web","pid":12,"ms":840}"#;
//! let rec: Record = serde_json::from_str(line).unwrap();
//! assert_eq!(rec.ms, 840);
//! assert!(matches!(rec.event, Event::ContainerStarted { pid: 12, .. }));
//! ```

use alloc::string::String;
use serde::{Deserialize, Serialize};

/// One line of the channel: an event and when it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// What happened.
    #[serde(flatten)]
    pub event: Event,
    /// Milliseconds since the VM booted (CLOCK_BOOTTIME).
    pub ms: u64,
}

/// Which output stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// How the pod ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Every container that had to succeed did.
    Succeeded,
    /// A container failed, the pod was stopped, or the init itself failed.
    Failed,
}

/// A container's probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeKind {
    /// `livenessProbe`.
    Liveness,
    /// `readinessProbe`.
    Readiness,
    /// `startupProbe`.
    Startup,
}

impl ProbeKind {
    /// As the kubelet's messages name it (`Liveness probe failed: ...`).
    pub fn title(self) -> &'static str {
        match self {
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
            ProbeKind::Startup => "Startup",
        }
    }
}

/// A container's lifecycle hooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookKind {
    /// `lifecycle.postStart`.
    PostStart,
    /// `lifecycle.preStop`.
    PreStop,
}

/// An event, tagged by `"event"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The init runs; `argv0` is the path the kernel started it as.
    InitStarted {
        /// `/init`, `/sbin/init`, ...
        argv0: String,
        /// Whether it runs as PID 1 (in a VM) or on a host.
        pid1: bool,
    },
    /// The pod's namespaces exist, are pinned, and are configured.
    SandboxReady {},
    /// A container is prepared and waits to exec.
    ContainerCreated {
        /// Container name.
        container: String,
    },
    /// A container's process was released to exec its command.
    ContainerStarted {
        /// Container name.
        container: String,
        /// Its pid in the pod's PID namespace, where the pod's init (the pause) is PID 1.
        pid: i32,
    },
    /// A container that will not be started (a CreateContainerConfigError:
    /// the plan refuses it). It counts as failed, with exit code 126.
    ContainerWaiting {
        /// Container name.
        container: String,
        /// Kubernetes' reason, e.g. `CreateContainerConfigError`.
        reason: String,
        /// Why, in the kubelet's words.
        message: String,
    },
    /// A line a container wrote.
    Log {
        /// Container name.
        container: String,
        /// stdout or stderr.
        stream: Stream,
        /// The line without its newline (invalid UTF-8 replaced).
        line: String,
    },
    /// A container's process ended.
    ContainerExited {
        /// Container name.
        container: String,
        /// Its exit code; 128+N when killed by signal N.
        exit_code: i32,
        /// The signal that killed it, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signal: Option<i32>,
        /// How often it has been restarted before this exit.
        restarts: u32,
        /// Why, when the container never got to run its command.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// The OOM killer killed in its cgroup during this run (the
        /// kubelet's reason `OOMKilled`).
        #[serde(default, skip_serializing_if = "core::ops::Not::not")]
        oom_killed: bool,
        /// Its termination message (`terminationMessagePath`, or its log's
        /// tail under `FallbackToLogsOnError`), as the kubelet reads it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// A probe's result changed (its threshold of successes or failures
    /// was reached): a startup probe passed, the container became ready or
    /// unready, a liveness or startup probe failed.
    ContainerProbe {
        /// Container name.
        container: String,
        /// Which probe.
        probe: ProbeKind,
        /// Its new result.
        success: bool,
        /// What the last check said (a failure's reason, an exec check's output).
        #[serde(default, skip_serializing_if = "String::is_empty")]
        message: String,
    },
    /// A lifecycle hook failed (the kubelet's FailedPostStartHook and
    /// FailedPreStopHook events). A failed postStart kills the container.
    HookFailed {
        /// Container name.
        container: String,
        /// Which hook.
        hook: HookKind,
        /// Why.
        message: String,
    },
    /// The init kills a running container on its own (the kubelet's
    /// `Killing` event): a failed liveness or startup probe, a failed
    /// postStart hook. Its exit follows.
    ContainerKilling {
        /// Container name.
        container: String,
        /// Why, in the kubelet's words (`Container web failed liveness
        /// probe, will be restarted`).
        message: String,
    },
    /// The pod is finished; the VM powers off next.
    PodExited {
        /// Succeeded or Failed.
        phase: Phase,
        /// The exit code `pod1 run` gives (DESIGN's table).
        exit_code: i32,
        /// The pod was stopped because its `activeDeadlineSeconds` ran
        /// out (Kubernetes' reason `DeadlineExceeded`).
        #[serde(default, skip_serializing_if = "core::ops::Not::not")]
        deadline_exceeded: bool,
    },
    /// The init failed; the pod ends with exit code 125.
    Error {
        /// What went wrong.
        message: String,
    },
}

impl Event {
    /// The event with each free-text field (names, reasons, messages,
    /// lines) cut to at most `max` bytes (at a character boundary), so
    /// that any event fits in one frame of the channel.
    pub fn bounded(mut self, max: usize) -> Event {
        fn cut(s: &mut String, max: usize) {
            if s.len() > max {
                let mut end = max;
                while !s.is_char_boundary(end) {
                    end -= 1;
                }
                s.truncate(end);
            }
        }
        match &mut self {
            Event::InitStarted { argv0, .. } => cut(argv0, max),
            Event::ContainerCreated { container } | Event::ContainerStarted { container, .. } => {
                cut(container, max)
            }
            Event::Log { container, line, .. } => {
                cut(container, max);
                cut(line, max);
            }
            Event::ContainerExited {
                container,
                reason,
                message,
                ..
            } => {
                cut(container, max);
                for text in [reason, message].into_iter().flatten() {
                    cut(text, max);
                }
            }
            Event::ContainerWaiting {
                container,
                reason,
                message,
            } => {
                cut(container, max);
                cut(reason, max);
                cut(message, max);
            }
            Event::ContainerProbe {
                container, message, ..
            }
            | Event::HookFailed {
                container, message, ..
            }
            | Event::ContainerKilling { container, message } => {
                cut(container, max);
                cut(message, max);
            }
            Event::Error { message } => cut(message, max),
            Event::SandboxReady {} | Event::PodExited { .. } => {}
        }
        self
    }
}

/// A request from the host to the init, one JSON object per line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum Request {
    /// Stop the pod gracefully (as on SIGTERM).
    Stop,
    /// The host has read everything up to `pod_exited`: the VM may power
    /// off (powering off sooner would lose what the host had not yet read).
    Ack,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format() {
        let rec = Record {
            event: Event::ContainerExited {
                container: "web".into(),
                exit_code: 137,
                signal: Some(9),
                restarts: 0,
                reason: None,
                oom_killed: false,
                message: None,
            },
            ms: 5,
        };
        let json = serde_json::to_string(&rec).unwrap();
        assert_eq!(
            json,
            r#"{"event":"container_exited","container":"web","exit_code":137,"signal":9,"restarts":0,"ms":5}"#
        );
        assert_eq!(serde_json::from_str::<Record>(&json).unwrap(), rec);
        let oom = r#"{"event":"container_exited","container":"web","exit_code":137,"restarts":0,"oom_killed":true,"ms":5}"#;
        assert!(matches!(
            serde_json::from_str::<Record>(oom).unwrap().event,
            Event::ContainerExited { oom_killed: true, .. }
        ));
        let end = Record {
            event: Event::PodExited {
                phase: Phase::Failed,
                exit_code: 124,
                deadline_exceeded: true,
            },
            ms: 9,
        };
        let json = serde_json::to_string(&end).unwrap();
        assert_eq!(
            json,
            r#"{"event":"pod_exited","phase":"Failed","exit_code":124,"deadline_exceeded":true,"ms":9}"#
        );
        assert_eq!(serde_json::from_str::<Record>(&json).unwrap(), end);
        let ready = serde_json::to_string(&Record {
            event: Event::SandboxReady {},
            ms: 1,
        })
        .unwrap();
        assert_eq!(ready, r#"{"event":"sandbox_ready","ms":1}"#);
        assert_eq!(
            serde_json::to_string(&Request::Stop).unwrap(),
            r#"{"request":"stop"}"#
        );
        assert_eq!(
            serde_json::to_string(&Request::Ack).unwrap(),
            r#"{"request":"ack"}"#
        );
    }

    #[test]
    fn bounded_cuts_text_at_a_character_boundary() {
        let e = Event::Error {
            message: "é".repeat(10),
        };
        assert_eq!(
            e.bounded(5),
            Event::Error {
                message: "éé".into()
            }
        );
        let e = Event::ContainerExited {
            container: "c".into(),
            exit_code: 1,
            signal: None,
            restarts: 0,
            reason: Some("x".repeat(100)),
            oom_killed: true,
            message: Some("y".repeat(100)),
        };
        assert!(matches!(e.bounded(10),
            Event::ContainerExited { reason: Some(r), message: Some(m), .. } if r.len() == 10 && m.len() == 10));
    }
}
