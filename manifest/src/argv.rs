//! A container's argv, resolved exactly as containerd's CRI plugin does it
//! (`WithProcessArgs` in `pkg/cri/opts/spec_opts.go`).
//!
//! Kubernetes' API server drops empty lists and the CRI call cannot tell an
//! empty list from a missing one, so `"command": []` behaves like no command
//! at all, as it does on a real cluster.

/// Why no argv could be resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoCommand;

/// Resolves argv from the container's `command`/`args` and the image's
/// Entrypoint/Cmd.
///
/// If `command` is empty: `args` default to the image's Cmd when `args` is
/// empty too, and the command is the image's Entrypoint, unless that is
/// exactly `[""]`, which counts as none. If both end up empty there is no
/// command. Otherwise argv is command followed by args.
pub fn resolve(
    command: &[String],
    args: &[String],
    entrypoint: &[String],
    cmd: &[String],
) -> Result<Vec<String>, NoCommand> {
    let mut command = command.to_vec();
    let mut args = args.to_vec();
    if command.is_empty() {
        if args.is_empty() {
            args = cmd.to_vec();
        }
        if !(entrypoint.len() == 1 && entrypoint[0].is_empty()) {
            command = entrypoint.to_vec();
        }
    }
    if command.is_empty() && args.is_empty() {
        return Err(NoCommand);
    }
    command.extend(args);
    Ok(command)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    /// (command, args, Entrypoint, Cmd) → argv, or None for "no command specified".
    #[allow(clippy::type_complexity)]
    const TABLE: &[(&[&str], &[&str], &[&str], &[&str], Option<&[&str]>)] = &[
        // The Kubernetes documentation's table ("Define a Command and Arguments for a Container"):
        // neither command nor args: the image's Entrypoint and Cmd.
        (
            &[],
            &[],
            &["/ep-1"],
            &["foo", "bar"],
            Some(&["/ep-1", "foo", "bar"]),
        ),
        // command only: command, the image's Cmd ignored.
        (&["/cmd"], &[], &["/ep-1"], &["foo", "bar"], Some(&["/cmd"])),
        // args only: the image's Entrypoint with the args.
        (
            &[],
            &["zoo", "boo"],
            &["/ep-2"],
            &["foo", "bar"],
            Some(&["/ep-2", "zoo", "boo"]),
        ),
        // both: command with args.
        (
            &["/cmd"],
            &["zoo", "boo"],
            &["/ep-2"],
            &["foo", "bar"],
            Some(&["/cmd", "zoo", "boo"]),
        ),
        // containerd's own cases:
        // no Entrypoint: the image's Cmd alone.
        (&[], &[], &[], &["sh", "-c", "x"], Some(&["sh", "-c", "x"])),
        // args only, no Entrypoint: the args alone are argv.
        (&[], &["ls", "/"], &[], &["sh"], Some(&["ls", "/"])),
        // Entrypoint [""] counts as none: Cmd alone.
        (&[], &[], &[""], &["sh"], Some(&["sh"])),
        // Entrypoint [""] with args: args alone.
        (&[], &["echo", "hi"], &[""], &["sh"], Some(&["echo", "hi"])),
        // Entrypoint [""] and no Cmd: nothing to run.
        (&[], &[], &[""], &[], None),
        // An Entrypoint of two strings, the first empty, is not [""]: kept as it is.
        (&[], &[], &["", "x"], &[], Some(&["", "x"])),
        // Empty image and nothing given.
        (&[], &[], &[], &[], None),
        // Entrypoint without Cmd.
        (&[], &[], &["/bin/true"], &[], Some(&["/bin/true"])),
        // command replaces Entrypoint, and Cmd is dropped even with no args.
        (&["echo"], &[], &[], &["ignored"], Some(&["echo"])),
        // An empty-string command element is still a command.
        (&[""], &[], &["/ep"], &["c"], Some(&[""])),
    ];

    #[test]
    fn containerd_table() {
        for (i, (command, args, ep, cmd, want)) in TABLE.iter().enumerate() {
            let got = resolve(&v(command), &v(args), &v(ep), &v(cmd));
            let want = want.map(v).ok_or(NoCommand);
            assert_eq!(
                got, want,
                "row {i}: command={command:?} args={args:?} ep={ep:?} cmd={cmd:?}"
            );
        }
    }
}
