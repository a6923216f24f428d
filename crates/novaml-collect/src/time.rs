//! Timestamp parsing for imported files and command-line arguments (durations and the clock
//! are `novaml_core::time`'s).

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use novaml_core::Timestamp;

/// Below this a numeric timestamp is taken as seconds, above as milliseconds. 1e11 s is the year
/// 5138; 1e11 ms is March 1973: no real data is ambiguous.
const SECONDS_LIMIT: f64 = 1e11;

/// Parses a timestamp into ms since the Unix epoch, UTC.
///
/// Accepted: Unix seconds or milliseconds (integer or fractional), RFC 3339
/// (`2024-01-02T03:04:05Z`, `…+02:00`), and naive UTC forms `2024-01-02 03:04:05[.fff]`,
/// `2024-01-02T03:04:05[.fff]`, `2024/01/02 03:04:05`, `2024-01-02`.
pub fn parse_timestamp(s: &str) -> Option<Timestamp> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if s.bytes().all(|b| {
        b.is_ascii_digit() || b == b'.' || b == b'-' || b == b'+' || b == b'e' || b == b'E'
    }) && !s[1..].contains('-')
        && let Ok(v) = s.parse::<f64>()
    {
        if !v.is_finite() {
            return None;
        }
        let ms = if v.abs() < SECONDS_LIMIT {
            v * 1000.0
        } else {
            v
        };
        return Some(ms.round() as Timestamp);
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.timestamp_millis());
    }
    for fmt in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y/%m/%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(dt.and_utc().timestamp_millis());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|dt| dt.and_utc().timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_formats() {
        let t = 1_372_629_804_000; // 2013-06-30 22:03:24 UTC
        for s in [
            "1372629804",
            "1372629804000",
            "1372629804.0",
            "2013-06-30 22:03:24",
            "2013-06-30T22:03:24",
            "2013-06-30T22:03:24Z",
            "2013-06-30T23:03:24+01:00",
            "2013/06/30 22:03:24",
            " 2013-06-30 22:03:24.000 ",
        ] {
            assert_eq!(parse_timestamp(s), Some(t), "{s}");
        }
        assert_eq!(parse_timestamp("2013-06-30"), Some(1_372_550_400_000));
        assert_eq!(parse_timestamp("2013-06-30 22:03:24.5"), Some(t + 500));
        for bad in ["", "yesterday", "2013-13-01", "NaN", "12:00"] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }
}
