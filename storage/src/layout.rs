//! The fleet's key layout: `<prefix>/host=<hostname>/date=<YYYY-MM-DD>/<segment>.parquet`.
//! Hive-style `name=value` folders are what DataFusion, Spark, Trino and DuckDB prune by, so a
//! query for one host or one night lists and reads only those folders.
use object_store::path::Path;

/// What a segment's key is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HiveKey<'a> {
    pub hostname: &'a str,
    /// The UTC day the segment starts in.
    pub date: chrono::NaiveDate,
    /// The segment's file name (`*.parquet`).
    pub file_name: &'a str,
}

/// The object key of a segment under `prefix`. Each part is one path segment: a hostname with
/// a `/` in it (not a valid hostname, but the recorder takes `--hostname` from the user) is
/// percent-encoded by `object_store`, never read as a folder.
pub fn hive_key(prefix: &Path, key: &HiveKey<'_>) -> Path {
    let host = format!("host={}", key.hostname);
    let date = format!("date={}", key.date.format("%Y-%m-%d"));
    prefix
        .clone()
        .join(host.as_str())
        .join(date.as_str())
        .join(key.file_name)
}

/// Index chunks in a segment folder start so: not `*.parquet`, so segment listings leave
/// them out, and with `_`, so dataset readers (pyarrow, Spark) skip them.
pub const INDEX_CHUNK_PREFIX: &str = "_fantrace-index-";

/// A folder's index chunk that begins with the segment `first_segment` (`*.parquet`): the
/// capture index's lines for that segment and those shipped after it to the same folder, so
/// that a reader learns each segment's time range from a few GETs instead of a GET per footer.
pub fn index_chunk_key(segment_key: &Path, first_segment: &str) -> Path {
    let stem = first_segment
        .strip_suffix(".parquet")
        .unwrap_or(first_segment);
    let name = format!("{INDEX_CHUNK_PREFIX}{stem}.jsonl");
    folder_of(segment_key).join(name.as_str())
}

/// The folder `key` is in (empty at the top of the store).
pub fn folder_of(key: &Path) -> Path {
    let parts: Vec<_> = key.parts().collect();
    Path::from_iter(parts[..parts.len().saturating_sub(1)].iter().cloned())
}

/// Whether `key` names an index chunk.
pub fn is_index_chunk(key: &Path) -> bool {
    key.filename()
        .is_some_and(|n| n.starts_with(INDEX_CHUNK_PREFIX) && n.ends_with(".jsonl"))
}

/// The UTC days whose `date=` folders may hold a segment with a call in `[lo, hi]` (ns): a
/// segment is filed under the day it started, and holds calls from at most a day before that
/// (delivered late) to at most a day after (it ends within a day: the recorder refuses
/// `--rotate-interval` over a day with `--upload`).
pub fn days_for(lo: i64, hi: i64) -> std::ops::RangeInclusive<chrono::NaiveDate> {
    let day = |ns: i64| chrono::DateTime::from_timestamp_nanos(ns).date_naive();
    let first = day(lo).pred_opt().unwrap_or(chrono::NaiveDate::MIN);
    let last = day(hi).succ_opt().unwrap_or(chrono::NaiveDate::MAX);
    first..=last
}

/// The `host=` and `date=` values of a key laid out by [`hive_key`], if it is one.
pub fn partition_values(key: &Path) -> (Option<String>, Option<String>) {
    let mut host = None;
    let mut date = None;
    for part in key.parts() {
        let part = part.as_ref();
        if let Some(v) = part.strip_prefix("host=") {
            host = Some(v.to_string());
        } else if let Some(v) = part.strip_prefix("date=") {
            date = Some(v.to_string());
        }
    }
    (host, date)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_hive_partitioned_by_host_and_day() {
        let key = hive_key(
            &Path::from("fleet/prod"),
            &HiveKey {
                hostname: "web-1",
                date: chrono::NaiveDate::from_ymd_opt(2026, 11, 26).expect("a valid date"),
                file_name: "seg-000001.parquet",
            },
        );
        assert_eq!(
            key.as_ref(),
            "fleet/prod/host=web-1/date=2026-11-26/seg-000001.parquet"
        );
        assert_eq!(
            partition_values(&key),
            (Some("web-1".into()), Some("2026-11-26".into()))
        );
    }

    #[test]
    fn index_chunks_sit_beside_their_segments() {
        let seg = Path::from("fleet/host=a/date=2026-01-02/fantrace-x-000001.parquet");
        let chunk = index_chunk_key(&seg, "fantrace-x-000001.parquet");
        assert_eq!(
            chunk.as_ref(),
            "fleet/host=a/date=2026-01-02/_fantrace-index-fantrace-x-000001.jsonl"
        );
        assert!(is_index_chunk(&chunk));
        assert!(!is_index_chunk(&seg));
    }

    #[test]
    fn a_window_lists_its_days_and_one_on_each_side() {
        let day = |y, m, d| chrono::NaiveDate::from_ymd_opt(y, m, d).expect("a valid date");
        // 2026-11-01T12:00Z for an hour.
        let lo = 1_793_534_400_000_000_000;
        let days = days_for(lo, lo + 3_600_000_000_000);
        assert_eq!(days, day(2026, 10, 31)..=day(2026, 11, 2));
    }

    #[test]
    fn a_hostname_cannot_make_extra_folders() {
        let key = hive_key(
            &Path::from(""),
            &HiveKey {
                hostname: "a/b",
                date: chrono::NaiveDate::from_ymd_opt(2026, 1, 2).expect("a valid date"),
                file_name: "s.parquet",
            },
        );
        assert_eq!(key.parts().count(), 3, "{key}");
    }
}
