//! `replay`: the capture in time order as one strace-like line per call (with the group, the
//! object the kernel marked and the mark after it), and one per change the kernel made on its
//! own, optionally paced as recorded. Selection is SQL run by DataFusion; this file only renders the rows.
use std::time::Duration;

use anyhow::Context as _;
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Int32Type, Int64Type, UInt32Type, UInt64Type};
use fantrace_schema::decode::{CallView, KernelView, strace_line};

use crate::commands::selection::Selection;
use fantrace_engine::capture::CaptureArgs;
use fantrace_engine::session::{self, SessionOptions};

#[derive(clap::Args, Debug)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub capture: CaptureArgs,
    #[command(flatten)]
    pub selection: Selection,
    /// Pace the output as recorded, this many times faster (0: as fast as possible; at least
    /// 0.001, a thousand times slower than recorded).
    #[arg(long, default_value_t = 0.0, value_parser = parse_speed)]
    pub speed: f64,
}

fn parse_speed(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|e| format!("{s:?} is not a number: {e}"))?;
    if v == 0.0 || (v.is_finite() && (0.001..=1e9).contains(&v)) {
        Ok(v)
    } else {
        Err(format!(
            "{s:?}: the speed is 0 (no pacing) or between 0.001 and 1e9 times the recorded pace"
        ))
    }
}

/// The selecting statement: every filter is in the WHERE clause for DataFusion to push down.
fn replay_sql(clause: &str) -> String {
    format!(
        "SELECT arrow_cast(syscall, 'Utf8') AS syscall, arrow_cast(time, 'Int64') AS t, \
         arrow_cast(comm, 'Utf8') AS comm, pid, tid, uid, \
         fanotify_fd, flags, mask, dirfd, arrow_cast(pathname, 'Utf8') AS pathname, arrow_cast(pathname_raw, 'Binary') AS pathname_raw, \
         arrow_cast(pathname_status, 'Utf8') AS pathname_status, ret, \
         arrow_cast(abi, 'Utf8') AS abi, group_id, arrow_cast(object, 'Utf8') AS object, \
         arrow_cast(resolved_path, 'Utf8') AS resolved_path, mark_mask, mark_ignored_mask, \
         arrow_cast(object_source, 'Utf8') AS object_source \
         FROM calls{clause} ORDER BY time, tid"
    )
}

pub async fn run(args: ReplayArgs, opts: SessionOptions) -> anyhow::Result<()> {
    let now = chrono::Utc::now();
    let mut captures = args.capture.clone();
    captures.window = args.selection.window(now)?;
    let (_, ctx) = session::open_captures(&captures, &opts).await?;
    let selection = args.selection.resolve(&ctx, now).await?;
    let batches = session::run_sql(&ctx, &replay_sql(&selection.clause)).await?;
    let mut previous: Option<i64> = None;
    for batch in &batches {
        for line in render(batch)? {
            if args.speed > 0.0 {
                if let Some(prev) = previous {
                    let gap = (line.0 - prev).max(0) as f64 / args.speed;
                    tokio::time::sleep(Duration::from_nanos(gap as u64)).await;
                }
                previous = Some(line.0);
            }
            println!("{}", line.1);
        }
    }
    Ok(())
}

fn text(a: &arrow::array::StringArray, i: usize) -> Option<&str> {
    (!a.is_null(i)).then(|| a.value(i))
}

fn number(a: &arrow::array::UInt64Array, i: usize) -> Option<u64> {
    (!a.is_null(i)).then(|| a.value(i))
}

/// Each row as (time in ns, rendered line).
fn render(batch: &RecordBatch) -> anyhow::Result<Vec<(i64, String)>> {
    let col = |name: &str| {
        batch
            .column_by_name(name)
            .with_context(|| format!("replay query lost column {name}"))
    };
    let syscall = col("syscall")?.as_string::<i32>();
    let t = col("t")?.as_primitive::<Int64Type>();
    let comm = col("comm")?.as_string::<i32>();
    let pid = col("pid")?.as_primitive::<UInt32Type>();
    let tid = col("tid")?.as_primitive::<UInt32Type>();
    let uid = col("uid")?.as_primitive::<UInt32Type>();
    let fd = col("fanotify_fd")?.as_primitive::<Int32Type>();
    let flags = col("flags")?.as_primitive::<UInt32Type>();
    let mask = col("mask")?.as_primitive::<UInt64Type>();
    let dirfd = col("dirfd")?.as_primitive::<Int32Type>();
    let path = col("pathname")?.as_string::<i32>();
    let raw = col("pathname_raw")?;
    let raw = match raw.data_type() {
        DataType::Binary => raw.as_binary::<i32>().clone(),
        other => anyhow::bail!("pathname_raw has type {other}, expected Binary"),
    };
    let status = col("pathname_status")?.as_string::<i32>();
    let ret = col("ret")?.as_primitive::<Int64Type>();
    let abi = col("abi")?.as_string::<i32>();
    let group_id = col("group_id")?.as_primitive::<UInt64Type>();
    let object = col("object")?.as_string::<i32>();
    let resolved = col("resolved_path")?.as_string::<i32>();
    let mark_mask = col("mark_mask")?.as_primitive::<UInt64Type>();
    let mark_ignored = col("mark_ignored_mask")?.as_primitive::<UInt64Type>();
    let source = col("object_source")?.as_string::<i32>();
    let mut out = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        let bytes: Option<&[u8]> = if !raw.is_null(i) {
            Some(raw.value(i))
        } else if !path.is_null(i) {
            Some(path.value(i).as_bytes())
        } else {
            None
        };
        let line = strace_line(&CallView {
            syscall: syscall.value(i),
            time_ns: t.value(i),
            comm: comm.value(i),
            pid: pid.value(i),
            tid: tid.value(i),
            uid: uid.value(i),
            fanotify_fd: fd.value(i),
            flags: flags.value(i),
            mask: mask.value(i),
            dirfd: dirfd.value(i),
            path: bytes,
            path_status: status.value(i),
            ret: ret.value(i),
            abi: (!abi.is_null(i)).then(|| abi.value(i)),
            kernel: KernelView {
                group_id: number(group_id, i),
                object: text(object, i),
                resolved_path: text(resolved, i),
                mark_mask: number(mark_mask, i),
                mark_ignored_mask: number(mark_ignored, i),
                source: text(source, i),
            },
        });
        out.push((t.value(i), line));
    }
    Ok(out)
}
