//! `--since` / `--until` values: an absolute time (RFC 3339, or a date) or a span back from
//! now (`90s`, `15m`, `1h`, `2d`, `1w`), as people type them into a shell.
use chrono::{DateTime, NaiveDate, Utc};

/// A point in time, in nanoseconds since the Unix epoch.
pub fn parse(text: &str, now: DateTime<Utc>) -> Result<i64, String> {
    let t = text.trim();
    if let Some(ago) = relative(t) {
        let ns = ago?;
        return now
            .timestamp_nanos_opt()
            .and_then(|n| n.checked_sub(ns))
            .ok_or_else(|| format!("{text:?} reaches before 1677 or after 2262"));
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return dt
            .timestamp_nanos_opt()
            .ok_or_else(|| format!("{text:?} is outside 1677..2262"));
    }
    if let Ok(day) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return day
            .and_hms_opt(0, 0, 0)
            .and_then(|d| d.and_utc().timestamp_nanos_opt())
            .ok_or_else(|| format!("{text:?} is outside 1677..2262"));
    }
    Err(format!(
        "{text:?} is not a time: give RFC 3339 (2026-11-25T09:00:00Z), a date (2026-11-25) or \
         a span back from now (90s, 15m, 1h, 2d, 1w)"
    ))
}

/// `Some` when `t` looks like a span (digits then one unit letter).
fn relative(t: &str) -> Option<Result<i64, String>> {
    let unit = t.chars().last()?;
    let digits = &t[..t.len() - unit.len_utf8()];
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let seconds: i64 = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3_600,
        'd' => 86_400,
        'w' => 604_800,
        _ => return None,
    };
    Some(
        digits
            .parse::<i64>()
            .ok()
            .and_then(|n| n.checked_mul(seconds))
            .and_then(|s| s.checked_mul(1_000_000_000))
            .ok_or_else(|| format!("{t:?} is too long a span")),
    )
}

/// The `time` literal DataFusion compares with, for `ns`.
pub fn sql_literal(ns: i64) -> String {
    format!("arrow_cast({ns}, 'Timestamp(Nanosecond, Some(\"UTC\"))')")
}

/// The window `--since SINCE --until UNTIL` name, as ns since the epoch, inclusive at both
/// ends (`--until` is exclusive); `None` when neither is given.
pub fn window(
    since: Option<&str>,
    until: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Option<(i64, i64)>, String> {
    let since = since.map(|t| parse(t, now)).transpose()?;
    let until = until.map(|t| parse(t, now)).transpose()?;
    if since.is_none() && until.is_none() {
        return Ok(None);
    }
    Ok(Some((
        since.unwrap_or(i64::MIN),
        until.map_or(i64::MAX, |u| u.saturating_sub(1)),
    )))
}

/// An RFC 3339 time as fantrace writes it (`2026-11-01T00:00:00.000000000Z`), in ns since
/// the epoch, read without a general parser (a year of segments has a million of them); any
/// other spelling goes through chrono's.
pub fn parse_written(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let fixed = b.len() == 30
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'.'
        && b[29] == b'Z';
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        text.get(range.clone())?.bytes().try_fold(0u32, |n, d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    if fixed {
        let day =
            chrono::NaiveDate::from_ymd_opt(number(0..4)? as i32, number(5..7)?, number(8..10)?)?;
        let at = day.and_hms_nano_opt(
            number(11..13)?,
            number(14..16)?,
            number(17..19)?,
            number(20..29)?,
        )?;
        return at.and_utc().timestamp_nanos_opt();
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()?
        .timestamp_nanos_opt()
}

/// RFC 3339 with nanoseconds, as segment metadata spells times.
pub fn rfc3339(ns: i64) -> String {
    DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_chrono_reads_them() {
        for text in [
            "2026-11-01T00:00:00.000000000Z",
            "2027-04-18T23:59:59.999999999Z",
            "1970-01-01T00:00:00.000000001Z",
            "2026-11-01T00:00:00Z",
            "2026-11-01T01:00:00.5+01:00",
        ] {
            let chrono = chrono::DateTime::parse_from_rfc3339(text)
                .unwrap()
                .timestamp_nanos_opt();
            assert_eq!(parse_written(text), chrono, "{text}");
        }
        assert_eq!(parse_written("2026-13-01T00:00:00.000000000Z"), None);
        assert_eq!(parse_written("2026-11-01T00:00:00.00000000xZ"), None);
    }

    #[test]
    fn absolute_relative_and_wrong() {
        let now = DateTime::parse_from_rfc3339("2026-11-26T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let at = |s: &str| parse(s, now);
        assert_eq!(at("1h"), at("2026-11-26T11:00:00Z"));
        assert_eq!(at("2d"), at("2026-11-24T12:00:00+00:00"));
        assert_eq!(at("2026-11-26"), at("2026-11-26T00:00:00Z"));
        assert_eq!(at("90s").unwrap(), at("2026-11-26T11:58:30Z").unwrap());
        for bad in ["1x", "h", "yesterday", "1e-300", "99999999999999999999d"] {
            let err = at(bad).unwrap_err();
            assert!(err.contains(bad), "{err}");
        }
    }
}
