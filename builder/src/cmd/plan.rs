//! `pod1 plan`: what will run, resolved.

use std::path::PathBuf;

use anyhow::Result;
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
    /// Another file of ConfigMaps and Secrets the pod reads (repeatable).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs `pod1 plan`.
pub fn run(args: &Args) -> Result<()> {
    use std::fmt::Write;
    let plan = Manifest::load(&args.manifest, &args.files, args.strict)?
        .assemble(crate::build::default_vm())?
        .plan;
    if args.json {
        return crate::print(&format!("{}\n", serde_json::to_string(&plan)?));
    }
    let mut out = format!(
        "pod {} (hostname {}, restartPolicy {:?}, QoS class {:?})\n",
        plan.pod, plan.hostname, plan.restart_policy, plan.qos_class
    );
    let mut show = |kind: &str, c: &ContainerPlan| -> std::fmt::Result {
        writeln!(out, "{kind} {}  image {}", c.name, c.image)?;
        writeln!(
            out,
            "  argv     {}",
            serde_json::to_string(&c.argv).unwrap_or_default()
        )?;
        writeln!(out, "  workdir  {}", c.working_dir)?;
        writeln!(out, "  user     {}:{}", c.user.uid, c.user.gid)?;
        let seccomp = match &c.seccomp {
            None => "Unconfined".to_string(),
            Some(s) => match &s.localhost_profile {
                Some(file) => format!("Localhost {file}"),
                None => format!("{:?}", s.profile),
            },
        };
        writeln!(out, "  seccomp  {seccomp}")?;
        for e in &c.env {
            writeln!(out, "  env      {e}")?;
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
