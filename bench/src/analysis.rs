//! What querying costs: fantrace-analyzer against DuckDB on the same 10-million-event
//! capture, and the analyzer's start-up to its first row.
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::bail;

use crate::capture_cost::Bench;
use crate::queries::{self, forensic};
use crate::report::Row;
use crate::stats::{geomean, median};
use crate::synth::{self, SynthArgs};

impl Bench {
    /// Writes (or reuses) the synthetic capture of `events` rows.
    pub fn synthetic(&self, events: u64) -> anyhow::Result<PathBuf> {
        // A new schema version writes different files: never reuse an older one's. ("s":
        // sealed segments, schema 4 before it was final wrote none; "n": named as the
        // recorder names them.)
        let dir = self.work.join(format!(
            "synthetic-v{}n-{events}",
            fantrace_schema::metadata::CURRENT_SCHEMA_VERSION
        ));
        let done = dir.join(".complete");
        if !done.exists() {
            if dir.exists() {
                std::fs::remove_dir_all(&dir)?;
            }
            eprintln!(
                "  generating a synthetic capture of {events} events in {}",
                dir.display()
            );
            synth::run(&SynthArgs {
                start: synth::T0,
                output: dir.clone(),
                events,
                segment_rows: 2_000_000,
                hosts: 1,
                span: synth::DAY_NS,
                rotate: None,
            })?;
            std::fs::write(&done, b"")?;
        }
        Ok(dir)
    }

    pub fn queries(&self, capture: &Path) -> anyhow::Result<Vec<Row>> {
        let qs = forensic();
        let duck = if self.duckdb {
            Some(queries::duckdb(capture, &qs, self.repeat)?)
        } else {
            None
        };
        let mut rows = Vec::new();
        let mut ratios = Vec::new();
        for q in &qs {
            let ours = queries::analyzer(&self.bin_dir, capture, &q.sql, self.repeat)?;
            let ours_s = median(&ours.seconds);
            let mut row = Row::new(
                format!("query: {}", q.name),
                format!(
                    "{ours_s:.3} s ({:.3} s with process start-up)",
                    median(&ours.process_seconds)
                ),
            );
            if let Some(theirs) = duck.as_ref().and_then(|d| d.get(q.name)) {
                if theirs.rows != ours.rows || (theirs.checksum - ours.checksum).abs() > 0.5 {
                    bail!(
                        "{}: the engines disagree (fantrace {} rows, checksum {}; DuckDB {} rows, checksum {})",
                        q.name,
                        ours.rows,
                        ours.checksum,
                        theirs.rows,
                        theirs.checksum
                    );
                }
                let theirs_s = median(&theirs.seconds);
                ratios.push(ours_s / theirs_s);
                row = row.peer(format!("DuckDB {theirs_s:.3} s"), Some(ours_s / theirs_s));
            }
            eprintln!("  {}: {ours_s:.3} s, {} rows", q.name, ours.rows);
            rows.push(row);
        }
        let summary = Row::new(
            "analyzer vs DuckDB, 5 forensic queries over 10M events (geometric mean)",
            if ratios.is_empty() {
                "—".to_string()
            } else {
                format!("{:.2}x DuckDB's time", geomean(&ratios))
            },
        );
        let summary = if ratios.is_empty() {
            summary.peer("DuckDB missing", None).target("≤ 1.0", false)
        } else {
            let g = geomean(&ratios);
            summary.peer("DuckDB", Some(g)).target("≤ 1.0", g <= 1.0)
        };
        rows.insert(0, summary);
        Ok(rows)
    }

    /// Process start to exit for a one-row query over the capture, the way a responder's
    /// first command runs.
    pub fn startup(&self, capture: &Path) -> anyhow::Result<Row> {
        let sql = "SELECT pid, comm, pathname FROM events LIMIT 1";
        let ours = queries::startup(
            || {
                let mut cmd = Command::new(self.bin_dir.join("fantrace-analyzer"));
                cmd.args(["query", "--format", "csv", "--capture"])
                    .arg(capture)
                    .arg(sql);
                cmd
            },
            self.repeat * 2,
        )?;
        let row = Row::new(
            "analyzer start-up to first row, trivial query",
            format!("{:.0} ms", ours * 1e3),
        )
        .target("≤ 50 ms", ours <= 0.050);
        if !self.duckdb {
            return Ok(row.peer("DuckDB missing", None));
        }
        let script = format!(
            "import duckdb; print(duckdb.sql(\"SELECT pid, comm, pathname FROM read_parquet('{}') \
             WHERE syscall = 'fanotify_mark' LIMIT 1\").fetchall())",
            capture.join("*.parquet").display()
        );
        let theirs = queries::startup(
            || {
                let mut cmd = Command::new("python3");
                cmd.args(["-c", &script]);
                cmd
            },
            self.repeat * 2,
        )?;
        Ok(row.peer(
            format!("python3 + DuckDB {:.0} ms", theirs * 1e3),
            Some(ours / theirs),
        ))
    }
}
