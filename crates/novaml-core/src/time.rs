//! The clock and human durations (`15s`, `5m`, `7d`): one reading of the wall clock and one
//! duration syntax for every crate, flag and configuration field.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{CoreError, Timestamp};

/// The wall clock in ms since the Unix epoch.
pub fn now_ms() -> Timestamp {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Timestamp)
}

/// Parses a duration like `300ms`, `15s`, `5m`, `2h`, `7d`, `1w` (a bare number is seconds).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86_400.0,
        "w" => n * 604_800.0,
        _ => return None,
    };
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

/// A configuration field's duration; the error names the field as written in the file.
pub fn config_duration(field: &str, value: &str) -> Result<Duration, CoreError> {
    parse_duration(value).ok_or_else(|| CoreError::Config {
        field: field.to_owned(),
        reason: format!("{value:?} is not a duration like 15s, 5m, 2h, 7d"),
    })
}

/// [`config_duration`] that must also be above zero.
pub fn config_positive_duration(field: &str, value: &str) -> Result<Duration, CoreError> {
    let d = config_duration(field, value)?;
    if d.is_zero() {
        return Err(CoreError::Config {
            field: field.to_owned(),
            reason: "must be positive".into(),
        });
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        for (s, secs) in [
            ("15s", 15.0),
            ("5m", 300.0),
            ("2h", 7200.0),
            ("7d", 604_800.0),
            ("250ms", 0.25),
            ("10", 10.0),
            ("1w", 604_800.0),
        ] {
            assert_eq!(
                parse_duration(s),
                Some(Duration::from_secs_f64(secs)),
                "{s}"
            );
        }
        for bad in ["", "s", "5x", "-1s", "1.2.3s"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn config_errors_name_the_field() {
        let e = config_duration("store.retention", "forever").expect_err("bad");
        assert_eq!(
            e.to_string(),
            "invalid configuration `store.retention`: \"forever\" is not a duration like 15s, 5m, 2h, 7d"
        );
        let e = config_positive_duration("detect.interval", "0s").expect_err("zero");
        assert_eq!(
            e.to_string(),
            "invalid configuration `detect.interval`: must be positive"
        );
        assert_eq!(
            config_positive_duration("x", "2m").expect("ok"),
            Duration::from_secs(120)
        );
    }

    #[test]
    fn the_clock_is_after_2020() {
        assert!(now_ms() > 1_577_836_800_000);
    }
}
