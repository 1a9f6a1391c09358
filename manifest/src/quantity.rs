//! Kubernetes resource quantities (`128Mi`, `500m`, `1.5`, `2G`).

use serde::Deserialize;

/// A quantity as written: a JSON string or number.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Quantity {
    /// `"128Mi"`, `"500m"`.
    Text(String),
    /// `2`, `0.5`.
    Number(f64),
}

impl Quantity {
    /// The quantity in thousandths (`500m` → 500, `2` → 2000, `1Ki` → 1_024_000),
    /// rounded up as Kubernetes rounds, or `None` if it is not a valid quantity.
    pub fn millis(&self) -> Option<u128> {
        match self {
            Quantity::Number(n) if n.is_finite() && *n >= 0.0 => Some((n * 1000.0).ceil() as u128),
            Quantity::Number(_) => None,
            Quantity::Text(s) => parse_millis(s),
        }
    }

    /// The quantity as a whole count (bytes, pids), rounded up.
    pub fn whole(&self) -> Option<u64> {
        self.millis().and_then(|m| u64::try_from(m.div_ceil(1000)).ok())
    }
}

/// Parses `<decimal><suffix>` into thousandths of a unit.
fn parse_millis(s: &str) -> Option<u128> {
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    if num.is_empty() || num == "." {
        return None;
    }
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if frac.contains('.') || frac.len() > 9 {
        return None;
    }
    // Work in units of 10^-9 so fractions stay exact. A number too large
    // for that is not a quantity (it overflowed: a panic in debug builds, a
    // wrapped, wrong value in release ones).
    let frac: u128 = if frac.is_empty() {
        0
    } else {
        frac.parse::<u128>().ok()? * 10u128.pow(9 - frac.len() as u32)
    };
    let nanos = int
        .parse::<u128>()
        .ok()?
        .checked_mul(1_000_000_000)?
        .checked_add(frac)?;
    let (mul, div): (u128, u128) = match suffix {
        "" => (1, 1),
        "m" => (1, 1000),
        "k" => (1_000, 1),
        "M" => (1_000_000, 1),
        "G" => (1_000_000_000, 1),
        "T" => (1_000_000_000_000, 1),
        "P" => (1_000_000_000_000_000, 1),
        "E" => (1_000_000_000_000_000_000, 1),
        "Ki" => (1 << 10, 1),
        "Mi" => (1 << 20, 1),
        "Gi" => (1 << 30, 1),
        "Ti" => (1 << 40, 1),
        "Pi" => (1 << 50, 1),
        "Ei" => (1 << 60, 1),
        _ => return None,
    };
    // value in millis = nanos * mul / div / 10^6, rounded up
    Some((nanos.checked_mul(mul)?).div_ceil(div * 1_000_000))
}

#[cfg(test)]
mod tests {
    use super::Quantity::{Number, Text};

    #[test]
    fn quantities() {
        assert_eq!(Text("500m".into()).millis(), Some(500));
        assert_eq!(Text("1.5".into()).millis(), Some(1500));
        assert_eq!(Number(2.0).millis(), Some(2000));
        assert_eq!(Text("128Mi".into()).whole(), Some(128 << 20));
        assert_eq!(Text("1G".into()).whole(), Some(1_000_000_000));
        assert_eq!(Text("0.5Ki".into()).whole(), Some(512));
        assert_eq!(Text("1m".into()).whole(), Some(1));
        assert_eq!(Text("12Xi".into()).millis(), None);
        assert_eq!(Text("".into()).millis(), None);
        assert_eq!(Text("1.2.3".into()).millis(), None);
        assert_eq!(Number(-1.0).millis(), None);
        // Found by fuzzing (fuzz/regressions/manifest/): fits in a u128, but
        // not once in units of 10^-9.
        assert_eq!(Text("12222222222222222222222222222228Mi".into()).millis(), None);
        assert_eq!(Text(u128::MAX.to_string()).millis(), None);
        assert_eq!(
            Text("340282366920938463463374607431.999999999".into()).millis(),
            None
        );
    }
}
