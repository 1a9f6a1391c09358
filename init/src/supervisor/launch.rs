//! Launching one container: clone and prepare it (parked before exec),
//! then put it in its cgroup and release it.

use alloc::format;
use alloc::string::ToString;

use pod1_manifest::events::{Event, Stream};
use pod1_manifest::plan::oom_score_adj;

use super::checks::Purpose;
use super::logs::LogPipe;
use super::message::{self, Tail};
use super::{Error, State, Supervisor};
use crate::channel;
use crate::console;
use crate::process::{self, Ready};
use crate::{rootfs, sys, volumes};

impl Supervisor {
    /// Clones and prepares container `i`; a preparation failure counts as
    /// an exit (with the reason) and goes through the restart policy.
    pub(super) fn create(&mut self, i: usize) -> Result<(), Error> {
        let oom_score_adj = self.oom_score_adj(i);
        let pod = &self.pod;
        let c = &mut self.ctrs[i];
        c.attempt += 1;
        let runs = sys::join(&pod.state, &format!("containers/{}", c.plan.name));
        let scratch = sys::join(&runs, &c.attempt.to_string());
        // The previous run's writable layer goes: a restarted container
        // starts from its image, as in Kubernetes (volumes persist).
        let _ = sys::remove_dir_all(&sys::join(&runs, &(c.attempt - 1).to_string()));
        let volumes = volumes::mounts_of(&pod.plan.volumes, &c.plan.volume_mounts, &pod.root, &pod.state);
        let ctx = process::Context {
            plan: &c.plan,
            programs: &pod.plan.programs,
            sandbox: &pod.sandbox,
            share_pid: pod.plan.share_process_namespace,
            rootfs: rootfs::Spec {
                image: sys::join(&pod.root, c.plan.rootfs.trim_start_matches('/')),
                scratch,
                volumes,
                files: volumes::files_of(&c.plan.files, &pod.root),
                read_only: c.plan.read_only_root_filesystem,
                privileged: c.plan.privileged,
                working_dir: &c.plan.working_dir,
            },
            oom_score_adj,
        };
        // A new run: an empty termination message file, as the kubelet
        // gives each instance its own, and a new log tail when one is kept.
        message::reset(&sys::join(
            &pod.root,
            c.plan.termination_message_file.trim_start_matches('/'),
        ));
        c.tail = c.plan.fallback_to_logs.then(Tail::default);
        let child = process::create(&ctx)?;
        let name = c.plan.name.clone();
        let tail = c.tail.clone();
        for (fd, stream) in [(child.stdout, Stream::Stdout), (child.stderr, Stream::Stderr)] {
            self.pipes_made += 1;
            self.pipes.push(LogPipe::new(
                fd,
                name.clone(),
                stream,
                self.pipes_made,
                tail.clone(),
            ));
        }
        match process::wait_ready(child.sync) {
            Ready::Created => {
                self.ctrs[i].state = State::Created {
                    pid: child.pid,
                    start: child.start,
                    exec: child.exec,
                };
                channel::event(Event::ContainerCreated { container: name });
            }
            Ready::Failed(reason) => {
                console::log(&format!("container {name}: {reason}"));
                self.aborted.push(child.pid);
                self.exited(i, crate::power::INIT_FAILED, None, Some(reason));
            }
        }
        Ok(())
    }

    /// Releases container `i` to exec its command.
    pub(super) fn start(&mut self, i: usize) {
        let c = &mut self.ctrs[i];
        let (pid, start, exec) = match core::mem::replace(&mut c.state, State::Pending) {
            State::Created { pid, start, exec } => (pid, start, exec),
            other => {
                c.state = other;
                return;
            }
        };
        c.state = State::Running { pid, exec };
        let name = c.plan.name.clone();
        let programs = &self.pod.plan.programs;
        let devices = c
            .plan
            .devices
            .map(|i| (i, programs.get(i).map_or("", |p| p.as_str())));
        if let Err(e) = self.pod.cgroups.add(&name, &c.plan.limits, devices, pid) {
            // Dropping `start` makes the parked child exit unrun.
            console::log(&format!("container {name}: {e}"));
            drop(start);
            self.aborted.push(pid);
            self.exited(i, crate::power::INIT_FAILED, None, Some(e));
            return;
        }
        console::debug(&format!("container {name}: in its cgroup"));
        // The cgroup outlives runs: only kills from now on are this run's.
        self.ctrs[i].oom_kills = self.pod.cgroups.oom_kills(&name);
        if let Err(e) = process::start(start) {
            console::log(&format!("starting container {name}: {e}"));
        }
        let c = &mut self.ctrs[i];
        c.run_started_ms = crate::console::now_ms();
        // Started once its postStart hook succeeds (the kubelet runs the
        // hook before it reports the start).
        match c.plan.checks.post_start.clone() {
            Some(hook) => {
                c.post_starting = true;
                self.begin(i, Purpose::PostStart, &hook, None);
            }
            None => self.running(i),
        }
    }

    /// Container `i`'s oom_score_adj, as the kubelet computes it.
    pub(super) fn oom_score_adj(&self, i: usize) -> i32 {
        let c = &self.ctrs[i].plan;
        oom_score_adj(self.pod.plan.qos_class, c.memory_request_bytes, memory_capacity())
    }
}

/// The machine's memory (the node's capacity, as the kubelet reads it).
fn memory_capacity() -> u64 {
    let info = rustix::system::sysinfo();
    info.totalram.saturating_mul(u64::from(info.mem_unit))
}
