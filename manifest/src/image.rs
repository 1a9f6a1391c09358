//! What pod1 takes from an image: its configuration and its user database.

use serde::{Deserialize, Serialize};

/// The parts of an OCI image config (`config` object) that decide how a
/// container runs. Empty for a `dir:` image, which has no config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `Cmd`.
    pub cmd: Vec<String>,
    /// `Env`, `NAME=value` strings.
    pub env: Vec<String>,
    /// `WorkingDir`; empty means `/`.
    pub working_dir: String,
    /// `User`: `uid`, `uid:gid`, `name` or `name:group`; empty means root.
    pub user: String,
    /// `StopSignal`, as written; empty means SIGTERM.
    #[serde(default)]
    pub stop_signal: String,
}

/// The image's `/etc/passwd` and `/etc/group`, if it has them.
#[derive(Debug, Clone, Copy, Default)]
pub struct UserDb<'a> {
    /// Contents of `/etc/passwd`.
    pub passwd: Option<&'a str>,
    /// Contents of `/etc/group`.
    pub group: Option<&'a str>,
}

impl UserDb<'_> {
    /// Finds `name` (or a numeric uid) in `/etc/passwd`: (uid, primary gid).
    fn user(&self, name: &str) -> Option<(u32, u32)> {
        self.passwd?.lines().find_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 4 || (f[0] != name && f[2] != name) {
                return None;
            }
            Some((f[2].parse().ok()?, f[3].parse().ok()?))
        })
    }

    /// Finds a group by name in `/etc/group`.
    fn group_id(&self, name: &str) -> Option<u32> {
        self.group?.lines().find_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            (f.len() >= 3 && f[0] == name).then(|| f[2].parse().ok())?
        })
    }

    /// The groups containerd adds for `uid`: its primary `gid` first, then
    /// every /etc/group entry listing the user's name (from /etc/passwd)
    /// as a member, except the group named as the user.
    pub fn member_groups(&self, uid: u32, gid: u32) -> Vec<u32> {
        let mut groups = alloc::vec![gid];
        let name = self.passwd.and_then(|p| {
            p.lines().find_map(|line| {
                let f: Vec<&str> = line.split(':').collect();
                (f.len() >= 3 && f[2] == uid.to_string()).then(|| f[0].to_string())
            })
        });
        let (Some(name), Some(group)) = (name, self.group) else {
            return groups;
        };
        for line in group.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 4 || f[0] == name || !f[3].split(',').any(|m| m.trim() == name) {
                continue;
            }
            if let Ok(g) = f[2].parse::<u32>() {
                if !groups.contains(&g) {
                    groups.push(g);
                }
            }
        }
        groups
    }

    /// Resolves an image `User` string, with `run_as_user`/`run_as_group`
    /// overriding, into (uid, gid) as containerd does: a numeric or named
    /// user, an optional `:group`; without a group the gid is the user's
    /// primary group from `/etc/passwd`, or 0.
    pub fn resolve(
        &self,
        image_user: &str,
        run_as_user: Option<u32>,
        run_as_group: Option<u32>,
    ) -> Result<(u32, u32), String> {
        let (user, group) = match image_user.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (image_user, None),
        };
        let uid = match run_as_user {
            Some(uid) => uid,
            None if user.is_empty() => 0,
            None => match user.parse::<u32>() {
                Ok(uid) => uid,
                Err(_) => self.user(user).map(|(uid, _)| uid).ok_or_else(|| {
                    format!("user {user:?} from the image's User is not in its /etc/passwd")
                })?,
            },
        };
        let gid = match (run_as_group, group) {
            (Some(gid), _) => gid,
            (None, Some(g)) if !g.is_empty() => match g.parse::<u32>() {
                Ok(gid) => gid,
                Err(_) => self
                    .group_id(g)
                    .ok_or_else(|| format!("group {g:?} from the image's User is not in its /etc/group"))?,
            },
            _ => self.user(&uid.to_string()).map_or(0, |(_, gid)| gid),
        };
        Ok((uid, gid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nwww:x:33:34:www:/var/www:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nstaff:x:50:\nwww:x:34:\n";

    #[test]
    fn users() {
        let db = UserDb {
            passwd: Some(PASSWD),
            group: Some(GROUP),
        };
        assert_eq!(db.resolve("", None, None), Ok((0, 0)));
        assert_eq!(db.resolve("1000", None, None), Ok((1000, 0)));
        assert_eq!(db.resolve("1000:1001", None, None), Ok((1000, 1001)));
        assert_eq!(db.resolve("www", None, None), Ok((33, 34)));
        assert_eq!(db.resolve("33", None, None), Ok((33, 34)));
        assert_eq!(db.resolve("www:staff", None, None), Ok((33, 50)));
        assert_eq!(db.resolve("www", Some(7), None), Ok((7, 0)));
        assert_eq!(db.resolve("www", Some(33), None), Ok((33, 34)));
        assert_eq!(db.resolve("www", None, Some(9)), Ok((33, 9)));
        assert_eq!(db.resolve("www:staff", Some(1), Some(2)), Ok((1, 2)));
        assert!(db.resolve("nobody", None, None).unwrap_err().contains("nobody"));
        assert!(db.resolve("www:wheel", None, None).unwrap_err().contains("wheel"));
        assert!(UserDb::default().resolve("www", None, None).is_err());
        assert_eq!(UserDb::default().resolve("www", Some(5), None), Ok((5, 0)));
    }
}

/// How an image is stored, named as skopeo names its transports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `oci:PATH[:TAG]`: an OCI image layout directory.
    Oci,
    /// `oci-archive:PATH[:TAG]`: a tar of an OCI image layout.
    OciArchive,
    /// `docker-archive:PATH[:REF]`: what `docker save` writes.
    DockerArchive,
    /// `dir:PATH`: a plain root filesystem, no image config.
    Dir,
}

/// A parsed `image` field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// The transport.
    pub transport: Transport,
    /// The path, relative to the manifest's directory unless absolute.
    pub path: String,
    /// The tag (`org.opencontainers.image.ref.name`) or, for a docker
    /// archive, the repo tag to pick; `None` when there is only one image.
    pub tag: Option<String>,
}

impl ImageRef {
    /// Parses `TRANSPORT:PATH[:TAG]`. As in skopeo, the path ends at the
    /// first `:` after the transport.
    pub fn parse(s: &str) -> Result<ImageRef, String> {
        let help = "use oci:PATH[:TAG], oci-archive:PATH[:TAG], docker-archive:PATH or dir:PATH";
        let (transport, rest) = s.split_once(':').unwrap_or(("", s));
        let transport = match transport {
            "oci" => Transport::Oci,
            "oci-archive" => Transport::OciArchive,
            "docker-archive" => Transport::DockerArchive,
            "dir" => Transport::Dir,
            _ => return Err(format!("{s:?} names no local image; {help}")),
        };
        let (path, tag) = match (transport, rest.split_once(':')) {
            (Transport::Dir, _) | (_, None) => (rest, None),
            (_, Some((path, tag))) => (path, Some(tag.to_string())),
        };
        if path.is_empty() {
            return Err(format!("{s:?} has an empty path; {help}"));
        }
        if tag.as_deref() == Some("") {
            return Err(format!("{s:?} has an empty tag after ':'"));
        }
        Ok(ImageRef {
            transport,
            path: path.to_string(),
            tag,
        })
    }
}

/// What an `image` field names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A local image, named with a skopeo transport (`oci:DIR:TAG`).
    Local(ImageRef),
    /// An image in a registry (`busybox:1.36`), normalised.
    Registry(crate::reference::Reference),
}

impl Source {
    /// `oci:`, `oci-archive:`, `docker-archive:` and `dir:` name local
    /// images; anything else is a registry reference, as a node reads it.
    pub fn parse(s: &str) -> Result<Source, String> {
        match s.split_once(':').map(|(t, _)| t) {
            Some("oci" | "oci-archive" | "docker-archive" | "dir") => ImageRef::parse(s).map(Source::Local),
            _ => crate::reference::Reference::parse_normalized(s).map(Source::Registry),
        }
    }
}

#[cfg(test)]
mod ref_tests {
    use super::*;

    #[test]
    fn image_refs() {
        let r = ImageRef::parse("oci:images/busybox:1.36").unwrap();
        assert_eq!(
            (r.transport, r.path.as_str(), r.tag.as_deref()),
            (Transport::Oci, "images/busybox", Some("1.36"))
        );
        let r = ImageRef::parse("oci-archive:/tmp/a.tar").unwrap();
        assert_eq!((r.transport, r.tag), (Transport::OciArchive, None));
        let r = ImageRef::parse("dir:root:fs").unwrap();
        assert_eq!(r.path, "root:fs");
        let e = ImageRef::parse("busybox:1.36").unwrap_err();
        assert!(e.contains("names no local image"), "{e}");
        let Ok(Source::Registry(r)) = Source::parse("busybox:1.36") else {
            panic!("busybox:1.36 is a registry reference")
        };
        assert_eq!(r.to_string(), "docker.io/library/busybox:1.36");
        assert!(matches!(Source::parse("oci:x:1"), Ok(Source::Local(_))));
        let e = Source::parse("localhost:5000/App").unwrap_err();
        assert!(e.contains("must be lowercase"), "{e}");
        assert!(ImageRef::parse("oci:").unwrap_err().contains("empty path"));
        assert!(ImageRef::parse("oci:x:").unwrap_err().contains("empty tag"));
    }
}
