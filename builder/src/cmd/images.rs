//! `pod1 images`: what the local image store holds.

use std::fmt::Write;
use std::time::{Duration, SystemTime};

use anyhow::Result;
use pod1_manifest::reference::Reference;

use crate::image::store::{ImageStore, Listed};

/// List the images in the local store ($POD1_CACHE/images).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print a JSON array with full values (name, repository, tag, digest,
    /// id, created, size in bytes) instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `pod1 images`.
pub fn run(args: &Args) -> Result<()> {
    let store = ImageStore::open_default()?;
    let mut images = store.list()?;
    images.sort_by(|a, b| a.name.cmp(&b.name));
    if args.json {
        let rows: Vec<serde_json::Value> = images.iter().map(json_row).collect();
        return crate::print(&format!("{}\n", serde_json::to_string_pretty(&rows)?));
    }
    crate::print(&table(&images, SystemTime::now()))
}

/// REPOSITORY and TAG of a name (`<none>` for an unnamed entry or a digest).
fn split_name(name: Option<&str>) -> (String, String) {
    let none = || "<none>".to_string();
    match name.map(Reference::parse_normalized) {
        Some(Ok(r)) => (r.name(), r.tag.clone().unwrap_or_else(none)),
        Some(Err(_)) => (name.unwrap_or_default().to_string(), none()),
        None => (none(), none()),
    }
}

fn json_row(l: &Listed) -> serde_json::Value {
    let (repository, tag) = split_name(l.name.as_deref());
    serde_json::json!({
        "name": l.name, "repository": repository, "tag": tag, "digest": l.digest,
        "id": l.id, "created": l.created, "size": l.size,
    })
}

/// The first 12 hex digits of a digest, as docker shows IDs.
fn short(digest: &str) -> String {
    let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
    hex.chars().take(12).collect()
}

/// The table docker and podman print.
fn table(images: &[Listed], now: SystemTime) -> String {
    let mut rows = vec![[
        "REPOSITORY".to_string(),
        "TAG".to_string(),
        "DIGEST".to_string(),
        "IMAGE ID".to_string(),
        "CREATED".to_string(),
        "SIZE".to_string(),
    ]];
    for l in images {
        let (repository, tag) = split_name(l.name.as_deref());
        let created = l
            .created
            .as_deref()
            .and_then(parse_time)
            .map_or("N/A".to_string(), |t| match now.duration_since(t) {
                Ok(d) => format!("{} ago", human_duration(d)),
                Err(_) => "Less than a second ago".to_string(),
            });
        rows.push([
            repository,
            tag,
            short(&l.digest),
            l.id.as_deref().map_or("<none>".to_string(), short),
            created,
            l.size.map_or("N/A".to_string(), human_size),
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            let _ = write!(line, "{cell:<w$}   ", w = widths[i]);
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// An RFC 3339 time, with `Z` or a numeric offset.
fn parse_time(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    let n = b.len();
    if n > 6 && matches!(b[n - 6], b'+' | b'-') && b[n - 3] == b':' {
        let hours: u64 = s.get(n - 5..n - 3)?.parse().ok()?;
        let minutes: u64 = s.get(n - 2..)?.parse().ok()?;
        let local = humantime::parse_rfc3339_weak(s.get(..n - 6)?).ok()?;
        let offset = Duration::from_secs(hours * 3600 + minutes * 60);
        return if b[n - 6] == b'+' {
            local.checked_sub(offset)
        } else {
            local.checked_add(offset)
        };
    }
    humantime::parse_rfc3339_weak(s).ok()
}

/// How long ago, in docker's words (go-units' HumanDuration).
fn human_duration(d: Duration) -> String {
    let seconds = d.as_secs();
    let minutes = seconds / 60;
    let hours = (d.as_secs_f64() / 3600.0 + 0.5) as u64;
    match () {
        _ if seconds < 1 => "Less than a second".to_string(),
        _ if seconds == 1 => "1 second".to_string(),
        _ if seconds < 60 => format!("{seconds} seconds"),
        _ if minutes == 1 => "About a minute".to_string(),
        _ if minutes < 60 => format!("{minutes} minutes"),
        _ if hours == 1 => "About an hour".to_string(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", seconds / 3600 / 24 / 365),
    }
}

/// A size in docker's words: decimal units, three significant digits (`2.15MB`).
pub(crate) fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 999.5 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    let decimals = match value {
        v if v >= 99.95 => 0,
        v if v >= 9.995 => 1,
        _ => 2,
    };
    let mut text = format!("{value:.decimals$}");
    if text.contains('.') {
        text = text.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{text}{}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sizes_as_docker_prints_them() {
        let cases = [
            (0, "0B"),
            (999, "999B"),
            (1000, "1kB"),
            (2_150_000, "2.15MB"),
            (72_800_000, "72.8MB"),
            (1_200_000_000, "1.2GB"),
            (123_456_789, "123MB"),
        ];
        for (n, want) in cases {
            assert_eq!(human_size(n), want, "{n}");
        }
    }

    #[test]
    fn durations_as_docker_prints_them() {
        let cases = [
            (0, "Less than a second"),
            (1, "1 second"),
            (59, "59 seconds"),
            (60, "About a minute"),
            (45 * 60, "45 minutes"),
            (3600, "About an hour"),
            (5 * 3600, "5 hours"),
            (3 * 86400, "3 days"),
            (20 * 86400, "2 weeks"),
            (100 * 86400, "3 months"),
            (800 * 86400, "2 years"),
        ];
        for (s, want) in cases {
            assert_eq!(human_duration(Duration::from_secs(s)), want, "{s}");
        }
    }

    #[test]
    fn times_with_offsets() {
        let utc = parse_time("2024-05-01T12:00:00Z").unwrap();
        assert_eq!(parse_time("2024-05-01T14:00:00+02:00"), Some(utc));
        assert_eq!(
            parse_time("2024-05-01T11:30:00.123456789-00:30")
                .unwrap()
                .duration_since(utc)
                .unwrap()
                .as_millis(),
            123
        );
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn table_columns() {
        let now = parse_time("2024-05-04T12:00:00Z").unwrap();
        let l = Listed {
            name: Some("docker.io/library/busybox:1.36".into()),
            digest: format!("sha256:{}", "ab".repeat(32)),
            id: Some(format!("sha256:{}", "cd".repeat(32))),
            created: Some("2024-05-01T12:00:00Z".into()),
            size: Some(2_150_000),
        };
        let text = table(&[l], now);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("REPOSITORY  "), "{text}");
        let cells: Vec<&str> = lines[1]
            .split("   ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        assert_eq!(
            cells,
            [
                "docker.io/library/busybox",
                "1.36",
                "abababababab",
                "cdcdcdcdcdcd",
                "3 days ago",
                "2.15MB"
            ],
            "{text}"
        );
    }
}
