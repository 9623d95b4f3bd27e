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
