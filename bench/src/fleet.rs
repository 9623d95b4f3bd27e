//! The fleet: shipping a capture to an S3-compatible server (Garage on loopback) against
//! copying it to local disk, and the five forensic queries over the bucket by the analyzer
//! alone against a Ballista cluster of one and two executors. On one 2-core machine the
//! cluster can only show its overhead (planning stages, shipping plans, shuffling through
//! Arrow Flight); the README gives the shape of the scale-out.
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, bail};
use fantrace_tests::cluster::Cluster;
use fantrace_tests::object_store_server::{BUCKET, Garage};

use crate::capture_cost::Bench;
use crate::report::Row;
use crate::stats::median;
use crate::synth::{self, SynthArgs};

/// Hosts in the synthetic fleet capture.
const HOSTS: u64 = 4;

impl Bench {
    pub fn fleet(&self, events: u64) -> anyhow::Result<Vec<Row>> {
        let garage_bin = fantrace_tests::object_store_server::garage_binary("bench fleet")
            .context("garage is not installed: ./fantrace.sh bench installs it")?;
        let capture = self.work.join(format!(
            "fleet-v{}-{events}",
            fantrace_schema::metadata::CURRENT_SCHEMA_VERSION
        ));
        let done = capture.join(".complete");
        if !done.exists() {
            let _ = std::fs::remove_dir_all(&capture);
            eprintln!("  generating a {HOSTS}-host capture of {events} events");
            synth::run(&SynthArgs {
                start: synth::T0,
                output: capture.clone(),
                events,
                segment_rows: (events / 40).max(1),
                hosts: HOSTS,
                span: synth::DAY_NS,
                rotate: None,
            })?;
            std::fs::write(&done, b"")?;
        }
        let server_dir = self.work.join("fleet-garage");
        let _ = std::fs::remove_dir_all(&server_dir);
        let garage = Garage::start(&garage_bin, &server_dir);
        let env = garage.client_env();
        let mut rows = Vec::new();

        // Upload (the recorder's uploader: PUT, HEAD, ETag check, local delete) against a copy
        // to local disk with fsync, of the same segments.
        let (segments, bytes) = segment_files(&capture)?;
        let mut up = Vec::new();
        let mut local = Vec::new();
        for run in 0..self.repeat {
            let staging = self.work.join("fleet-staging");
            copy_segments(&capture, &staging)?;
            let started = Instant::now();
            let out = Command::new(self.bin_dir.join("fantrace-recorder"))
                .arg("--output")
                .arg(&staging)
                .args([
                    "--upload",
                    &format!("s3://{BUCKET}/bench-{run}/"),
                    "--upload-only",
                ])
                .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
                .output()
                .context("running fantrace-recorder --upload-only")?;
            up.push(started.elapsed().as_secs_f64());
            if !out.status.success() {
                bail!("upload failed: {}", String::from_utf8_lossy(&out.stderr));
            }
            let copy_to = self.work.join("fleet-copy");
            let started = Instant::now();
            copy_segments(&capture, &copy_to)?;
            local.push(started.elapsed().as_secs_f64());
            let _ = std::fs::remove_dir_all(&copy_to);
            let _ = std::fs::remove_dir_all(&staging);
        }
        let (up, local) = (median(&up), median(&local));
        let rate = |s: f64| {
            format!(
                "{:.0} segments/s, {:.0} MB/s",
                segments as f64 / s,
                bytes as f64 / s / 1e6
            )
        };
        eprintln!(
            "  upload {}: {}; local copy: {}",
            segments,
            rate(up),
            rate(local)
        );
        rows.push(
            Row::new(
                format!(
                    "upload {segments} segments ({:.0} MB) to S3 (Garage, loopback), verified",
                    bytes as f64 / 1e6
                ),
                rate(up),
            )
            .peer(
                format!("local disk copy + fsync: {}", rate(local)),
                Some(up / local),
            ),
        );

        // The forensic queries over the bucket of the last run.
        let url = format!("s3://{BUCKET}/bench-0/");
        let queries = crate::queries::forensic();
        let time = |cluster: Option<&str>, sql: &str| -> anyhow::Result<(f64, BTreeSet<String>)> {
            let mut times = Vec::new();
            let mut answer = BTreeSet::new();
            for _ in 0..self.repeat {
                let mut cmd = Command::new(self.bin_dir.join("fantrace-analyzer"));
                if let Some(c) = cluster {
                    cmd.args(["--cluster", c]);
                }
                cmd.args(["query", "-c", &url, "--format", "csv", sql])
                    .envs(env.iter().map(|(k, v)| (*k, v.as_str())));
                let started = Instant::now();
                let out = cmd.output().context("running fantrace-analyzer")?;
                times.push(started.elapsed().as_secs_f64());
                if !out.status.success() {
                    bail!("{sql}: {}", String::from_utf8_lossy(&out.stderr));
                }
                answer = String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .map(str::to_string)
                    .collect();
            }
            Ok((median(&times), answer))
        };
        let mut alone = Vec::new();
        for q in &queries {
            alone.push(time(None, &q.sql)?);
        }
        let mut on_cluster: Vec<Vec<f64>> = vec![Vec::new(); queries.len()];
        for executors in [1, 2] {
            let cluster = Cluster::start(
                &self.bin_dir.join("fantrace-cluster"),
                executors,
                2,
                &env,
                &self.work.join(format!("fleet-cluster-{executors}")),
            );
            let cluster_url = cluster.url();
            for (i, q) in queries.iter().enumerate() {
                let (seconds, answer) = time(Some(&cluster_url), &q.sql)?;
                if answer != alone[i].1 {
                    bail!(
                        "the cluster of {executors} executor(s) answered {} differently",
                        q.name
                    );
                }
                on_cluster[i].push(seconds);
            }
        }
        for (i, q) in queries.iter().enumerate() {
            let (one, two) = (on_cluster[i][0], on_cluster[i][1]);
            rows.push(
                Row::new(
                    format!("fleet query on Ballista, {}: 1 / 2 executors", q.name),
                    format!("{one:.2} s / {two:.2} s"),
                )
                .peer(
                    format!("analyzer alone over S3 {:.2} s", alone[i].0),
                    Some(two / alone[i].0),
                ),
            );
        }
        drop(garage);
        Ok(rows)
    }
}

/// The number and total size of a capture's segments.
fn segment_files(dir: &Path) -> anyhow::Result<(u64, u64)> {
    let mut n = 0;
    let mut bytes = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().ends_with(".parquet") {
            n += 1;
            bytes += entry.metadata()?.len();
        }
    }
    Ok((n, bytes))
}

/// Copies the segments to `to` (made afresh) and fsyncs each, as a local capture is written.
fn copy_segments(from: &Path, to: &Path) -> anyhow::Result<()> {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_string_lossy().ends_with(".parquet") {
            let target = to.join(&name);
            std::fs::copy(entry.path(), &target)?;
            std::fs::File::open(&target)?.sync_all()?;
        }
    }
    Ok(())
}
