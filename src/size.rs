//! Byte sizes as users write them on the command line and in scenarios: `16MiB`, `512KiB`,
//! `1GiB`, `64MB`, `1000000`, `1.5MiB`. Binary (KiB = 1024) and decimal (KB = 1000) suffixes
//! both mean what they say; a bare number is bytes.

/// Why a size did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid size {0:?}; write bytes with a unit, e.g. 16MiB, 512KiB or 1GB")]
pub struct SizeError(pub String);

const UNITS: [(&str, u64); 9] = [
    ("GiB", 1 << 30),
    ("MiB", 1 << 20),
    ("KiB", 1 << 10),
    ("GB", 1_000_000_000),
    ("MB", 1_000_000),
    ("KB", 1_000),
    ("kB", 1_000),
    ("B", 1),
    ("", 1),
];

/// Parses a size in bytes; fractions of a unit round down to whole bytes.
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let t = text.trim();
    let bad = || SizeError(text.to_owned());
    let (number, unit) = UNITS
        .iter()
        .find_map(|&(suffix, unit)| t.strip_suffix(suffix).map(|n| (n.trim(), unit)))
        .ok_or_else(bad)?;
    if number.is_empty() || number.starts_with(['-', '+']) {
        return Err(bad());
    }
    if let Ok(n) = number.parse::<u64>() {
        return n.checked_mul(unit).ok_or_else(bad);
    }
    let f: f64 = number.parse().map_err(|_| bad())?;
    let bytes = f * unit as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

/// The shortest exact binary form: `16MiB`, `1536KiB`, `1000B`.
pub fn format_size(bytes: u64) -> String {
    for (suffix, unit) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if bytes >= unit && bytes.is_multiple_of(unit) {
            return format!("{}{suffix}", bytes / unit);
        }
    }
    format!("{bytes}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_mean_what_they_say() {
        assert_eq!(parse_size("16MiB").unwrap(), 16 << 20);
        assert_eq!(parse_size("1 GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("64MB").unwrap(), 64_000_000);
        assert_eq!(parse_size("1.5KiB").unwrap(), 1536);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert_eq!(parse_size("12B").unwrap(), 12);
        for bad in [
            "",
            "MiB",
            "-1MiB",
            "1TiB",
            "lots",
            "nan",
            "1e30GiB",
            "99999999999999GiB",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn formats_round_trip() {
        for n in [0, 1, 1000, 1024, 1536, 16 << 20, 3 << 30, (1 << 20) + 1] {
            assert_eq!(parse_size(&format_size(n)).unwrap(), n);
        }
        assert_eq!(format_size(16 << 20), "16MiB");
    }
}
