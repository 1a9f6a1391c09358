//! `pod1 plan`: what will run, resolved.

use std::path::PathBuf;

use anyhow::Result;
use pod1_manifest::plan::{Checks, Handler};
use pod1_manifest::ContainerPlan;

use crate::build::Manifest;

/// Print what the pod will run: each container's argv, env, working directory and user.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pod manifest (YAML or JSON).
    pub manifest: PathBuf,
    /// Refuse fields pod1 would ignore (they are warnings otherwise).
    #[arg(long)]
    pub strict: bool,
    /// Pull registry images: always, missing (only absent ones) or never;
    /// replaces every container's imagePullPolicy [default: the manifest's].
    #[arg(long, value_name = "WHEN")]
    pub pull: Option<crate::image::policy::PullFlag>,
    /// Another file of ConfigMaps and Secrets the pod reads (repeatable).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// The network the pod is built for: user (a NIC; /etc/hosts,
    /// resolv.conf and status.podIP follow) or none (loopback only).
    #[arg(long, value_enum, default_value_t = crate::net::Mode::User, value_name = "MODE")]
    pub network: crate::net::Mode,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs `pod1 plan`.
pub fn run(args: &Args) -> Result<()> {
    use std::fmt::Write;
    let manifest = Manifest::load(&args.manifest, &args.files, args.strict, args.pull)?;
    let assembled =
        manifest.assemble(crate::build::default_vm().with_network(crate::net::for_mode(args.network)))?;
    let plan = assembled.plan;
    if args.json {
        return crate::print(&format!("{}\n", serde_json::to_string(&plan)?));
    }
    let mut out = format!(
        "pod {} (hostname {}, restartPolicy {:?}, QoS class {:?})\n",
        plan.pod, plan.hostname, plan.restart_policy, plan.qos_class
    );
    match &plan.network {
        Some(n) => writeln!(out, "network  {}/{} via {}", n.address, n.prefix_len, n.gateway)?,
        None => writeln!(out, "network  none (loopback only)")?,
    }
    for p in &plan.ports {
        writeln!(out, "publish  {}", crate::net::describe(p))?;
    }
    let volumes = plan.volumes.clone();
    let mut show = |kind: &str, c: &ContainerPlan| -> std::fmt::Result {
        writeln!(out, "{kind} {}  image {}", c.name, c.image)?;
        if let Some(l) = manifest.located.get(&c.image) {
            writeln!(out, "  pulled   {} {}", l.name, l.target.digest())?;
        }
        writeln!(
            out,
            "  argv     {}",
            serde_json::to_string(&c.argv).unwrap_or_default()
        )?;
        writeln!(out, "  workdir  {}", c.working_dir)?;
        let groups: Vec<String> = c.user.additional_gids.iter().map(u32::to_string).collect();
        writeln!(
            out,
            "  user     {}:{} (groups {}){}",
            c.user.uid,
            c.user.gid,
            groups.join(","),
            if c.no_new_privileges { ", no_new_privs" } else { "" }
        )?;
        if let Some(why) = &c.refused {
            writeln!(out, "  REFUSED  {why}")?;
        }
        for m in &c.volume_mounts {
            let sub = m
                .sub_path
                .as_deref()
                .map(|p| format!(" (subPath {p})"))
                .unwrap_or_default();
            let ro = if m.read_only { " read-only" } else { "" };
            let host = volumes
                .iter()
                .find(|v| v.name == m.name)
                .and_then(|v| v.host_path.as_ref())
                .map(|h| format!(" (host {})", h.path))
                .unwrap_or_default();
            writeln!(out, "  mount    {} at {}{sub}{ro}{host}", m.name, m.mount_path)?;
        }
        let seccomp = match &c.seccomp {
            None => "Unconfined".to_string(),
            Some(s) => match &s.localhost_profile {
                Some(file) => format!("Localhost {file}"),
                None => format!("{:?}", s.profile),
            },
        };
        writeln!(out, "  seccomp  {seccomp}")?;
        for line in checks(&c.checks) {
            writeln!(out, "  {line}")?;
        }
        // A Secret's value is not printed (--json holds the plan as is).
        let secret = assembled.secret_env.get(&c.name);
        for e in &c.env {
            let name = e.split('=').next().unwrap_or("");
            match secret.is_some_and(|names| names.iter().any(|n| n == name)) {
                true => writeln!(out, "  env      {name}=<from a Secret>")?,
                false => writeln!(out, "  env      {e}")?,
            }
        }
        Ok(())
    };
    for c in &plan.init_containers {
        show("init container", c)?;
    }
    for c in &plan.containers {
        show("container", c)?;
    }
    crate::print(&out)
}

/// A handler as `pod1 plan` shows it.
fn handler(h: &Handler) -> String {
    match h {
        Handler::Exec { command } => format!("exec {}", serde_json::to_string(command).unwrap_or_default()),
        Handler::Http {
            host,
            port,
            path,
            headers,
        } => {
            let extra: String = headers.iter().map(|(k, v)| format!(" [{k}: {v}]")).collect();
            format!("httpGet http://{host}:{port}{path}{extra}")
        }
        Handler::Tcp { host, port } => format!("tcpSocket {host}:{port}"),
        Handler::Sleep { seconds } => format!("sleep {seconds}s"),
    }
}

/// One line per probe and hook: `liveness httpGet http://10.0.2.15:80/ every 10s ...`.
fn checks(c: &Checks) -> Vec<String> {
    let probes = [
        ("startup", &c.startup),
        ("liveness", &c.liveness),
        ("readiness", &c.readiness),
    ];
    let mut lines: Vec<String> = probes
        .into_iter()
        .filter_map(|(kind, p)| p.as_ref().map(|p| (kind, p)))
        .map(|(kind, p)| {
            let grace = p
                .termination_grace_period_seconds
                .map(|g| format!(", grace {g}s"))
                .unwrap_or_default();
            format!(
                "{kind:<9} {} after {}s, every {}s (timeout {}s, {} to succeed, {} to fail{grace})",
                handler(&p.handler),
                p.initial_delay_seconds,
                p.period_seconds,
                p.timeout_seconds,
                p.success_threshold,
                p.failure_threshold
            )
        })
        .collect();
    for (kind, h) in [("postStart", &c.post_start), ("preStop", &c.pre_stop)] {
        if let Some(h) = h {
            lines.push(format!("{kind:<9} {}", handler(h)));
        }
    }
    lines
}
