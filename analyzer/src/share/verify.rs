//! `verify`: is this capture what was recorded (or exported), all of it, unchanged? Re-computes
//! every segment's digests and follows each recording's chain (see
//! `fantrace_schema::integrity`): altered data or metadata, missing, extra, duplicated,
//! renamed or foreign segments, row counts that do not match, gaps in time, and, with
//! `--pubkey`, signatures. Prints a verdict; exits 0 only when everything checks out.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::bail;
use fantrace_schema::integrity::metadata_digest;
use fantrace_schema::metadata as keys;

use crate::share::signing::PublicKey;
use fantrace_engine::capture::{self, CaptureArgs, Segment};

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub capture: CaptureArgs,
    /// Require every segment to be signed by this ed25519 public key (the `.pub` file of
    /// `fantrace-analyzer keygen`).
    #[arg(long, value_name = "FILE")]
    pub pubkey: Option<PathBuf>,
    /// The longest time between consecutive segments of one recording that is not a gap.
    #[arg(long, default_value_t = 2.0, value_name = "SECONDS")]
    pub max_gap: f64,
}

/// One segment as found on disk and as its metadata describes it.
struct Checked<'a> {
    segment: &'a Segment,
    file_sha256: String,
    problems: Vec<String>,
    notes: Vec<String>,
}

fn time(segment: &Segment, key: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    segment
        .meta(key)
        .and_then(|v| chrono::DateTime::parse_from_rfc3339(v).ok())
}

/// The sequence number a recorder or export file name carries (`...-000042.parquet`).
fn seq_in_name(path: &Path) -> Option<u64> {
    let stem = path.file_stem()?.to_string_lossy().into_owned();
    let digits = stem.rsplit('-').next()?;
    (digits.len() == 6 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

async fn check_segment<'a>(
    segment: &'a Segment,
    key: Option<&PublicKey>,
) -> anyhow::Result<Checked<'a>> {
    let data_bytes = segment.meta_u64(keys::DATA_BYTES);
    let (file_sha256, data_sha256) = capture::segment_digests(segment, data_bytes).await?;
    let mut checked = Checked {
        segment,
        file_sha256,
        problems: Vec::new(),
        notes: Vec::new(),
    };
    let sealed = [keys::RECORDING_ID, keys::DATA_SHA256, keys::METADATA_SHA256]
        .iter()
        .all(|k| segment.meta(k).is_some());
    if !sealed {
        checked.problems.push(format!(
            "not sealed (schema version {}: written before fantrace sealed segments), so it \
             cannot be checked",
            segment.schema_version
        ));
        return Ok(checked);
    }
    if data_sha256.as_deref() != segment.meta(keys::DATA_SHA256) {
        checked
            .problems
            .push("its data was changed after it was written (data digest differs)".into());
    }
    let footer = capture::footer(segment).await.ok();
    let row_groups: Vec<i64> = footer
        .as_ref()
        .map(|m| m.row_groups().iter().map(|rg| rg.num_rows()).collect())
        .unwrap_or_default();
    let digest = metadata_digest(segment.metadata.iter(), &row_groups);
    if Some(digest.as_str()) != segment.meta(keys::METADATA_SHA256) {
        checked.problems.push(
            "its metadata or row counts were changed after it was written (metadata digest \
             differs)"
                .into(),
        );
    }
    if let (Some(footer), Some(bytes)) = (&footer, data_bytes)
        && let Some(problem) = fantrace_schema::integrity::layout_problem(footer, bytes)
    {
        checked.problems.push(format!(
            "its footer was changed after it was written: {problem}"
        ));
    }
    let rows: i64 = row_groups.iter().sum();
    match segment.meta_u64(keys::EVENTS_WRITTEN) {
        Some(w) if w as i64 == rows => {}
        Some(w) => checked.problems.push(format!(
            "it says it holds {w} call(s) but holds {rows} row(s)"
        )),
        None => checked
            .problems
            .push("it does not say how many calls it holds".into()),
    }
    if let (Some(start), Some(end), Some(lo), Some(hi)) = (
        time(segment, keys::SEGMENT_START),
        time(segment, keys::SEGMENT_END),
        time(segment, keys::TIME_MIN),
        time(segment, keys::TIME_MAX),
    ) && (lo < start || hi > end)
    {
        checked.problems.push(format!(
            "its rows ({lo} .. {hi}) fall outside its window ({start} .. {end})"
        ));
    }
    if let (Some(n), Some(s)) = (
        seq_in_name(&segment.path),
        segment.meta_u64(keys::SEGMENT_SEQ),
    ) && n != s
    {
        checked.problems.push(format!(
            "its file name says segment {n}, its metadata segment {s}: renamed"
        ));
    }
    match (key, segment.meta(keys::SIGNATURE)) {
        (Some(key), Some(_)) if segment.meta(keys::SIGNING_KEY) != Some(key.hex().as_str()) => {
            checked.problems.push(format!(
                "it is signed by another key ({}), not the one given",
                segment.meta(keys::SIGNING_KEY).unwrap_or("unnamed")
            ));
        }
        (Some(key), Some(sig)) => {
            if let Err(e) = key.check(&digest, sig) {
                checked
                    .problems
                    .push(format!("its signature is not valid for the given key: {e}"));
            }
        }
        (Some(_), None) => checked
            .problems
            .push("it is not signed, and --pubkey requires every segment to be".into()),
        (None, Some(_)) => checked.notes.push(format!(
            "signed by key {} (not checked: pass --pubkey)",
            segment.meta(keys::SIGNING_KEY).unwrap_or("?")
        )),
        (None, None) => {}
    }
    Ok(checked)
}

/// Checks each recording's chain; returns problems and notes that concern several segments.
fn check_chains(
    checked: &[Checked<'_>],
    max_gap: f64,
) -> (Vec<String>, Vec<String>, BTreeMap<String, Vec<usize>>) {
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    let mut recordings: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, c) in checked.iter().enumerate() {
        if let Some(r) = c.segment.meta(keys::RECORDING_ID) {
            recordings.entry(r.to_string()).or_default().push(i);
        }
    }
    for (recording, members) in &mut recordings {
        let seq = |i: usize| {
            checked[i]
                .segment
                .meta_u64(keys::SEGMENT_SEQ)
                .unwrap_or(u64::MAX)
        };
        members.sort_by_key(|&i| (seq(i), checked[i].segment.path.clone()));
        let short = &recording[..recording.len().min(8)];
        let name = |i: usize| checked[i].segment.path.display().to_string();
        // Copies of one segment.
        let mut kept: Vec<usize> = Vec::new();
        for &i in members.iter() {
            match kept.last() {
                Some(&j) if seq(j) == seq(i) => {
                    if checked[j].file_sha256 == checked[i].file_sha256 {
                        problems.push(format!(
                            "recording {short}: segment {} appears twice ({} and {})",
                            seq(i),
                            name(j),
                            name(i)
                        ));
                    } else {
                        problems.push(format!(
                            "recording {short}: two different files claim to be segment {} \
                             ({} and {})",
                            seq(i),
                            name(j),
                            name(i)
                        ));
                    }
                }
                _ => kept.push(i),
            }
        }
        let first = kept.first().map(|&i| seq(i)).unwrap_or(0);
        if first > 0 {
            let keep = kept
                .first()
                .and_then(|&i| checked[i].segment.meta(keys::COMMAND_LINE))
                .is_some_and(|c| c.split(' ').any(|a| a == "--keep"));
            if keep {
                notes.push(format!(
                    "recording {short}: segments 0..{} are absent; its recorder ran with --keep, \
                     which removes old segments",
                    first - 1
                ));
            } else {
                problems.push(format!(
                    "recording {short}: its first {first} segment(s) (0..{}) are missing",
                    first - 1
                ));
            }
        }
        for pair in kept.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            if seq(b) != seq(a) + 1 {
                problems.push(format!(
                    "recording {short}: segment(s) {}..{} between {} and {} are missing",
                    seq(a) + 1,
                    seq(b) - 1,
                    name(a),
                    name(b)
                ));
                continue;
            }
            if checked[b].segment.meta(keys::PREV_SEGMENT_SHA256)
                != Some(checked[a].file_sha256.as_str())
            {
                problems.push(format!(
                    "recording {short}: {} does not follow {}: that file was changed after the \
                     next segment was written, or is not the segment that preceded it",
                    name(b),
                    name(a)
                ));
            }
            if let (Some(end), Some(start)) = (
                time(checked[a].segment, keys::SEGMENT_END),
                time(checked[b].segment, keys::SEGMENT_START),
            ) {
                let gap = (start - end).num_milliseconds() as f64 / 1000.0;
                if gap > max_gap {
                    problems.push(format!(
                        "recording {short}: {gap:.1} s with no segment between {} (ended {end}) \
                         and {} (started {start})",
                        name(a),
                        name(b)
                    ));
                }
            }
        }
        if let Some(&last) = kept.last() {
            let reason = checked[last].segment.meta(keys::STOP_REASON).unwrap_or("");
            if reason.starts_with("rotated") || reason == "export: continued" {
                problems.push(format!(
                    "recording {short}: its last segment {} says \"{reason}\": later segments \
                     are missing, or the recorder was killed before it could write its last one",
                    name(last)
                ));
            }
        }
    }
    (problems, notes, recordings)
}

pub async fn run(mut args: VerifyArgs) -> anyhow::Result<()> {
    // Every input is looked at: an unreadable one is a finding, not a reason to stop.
    args.capture.skip_bad = true;
    let loaded = capture::load_all(
        &args.capture,
        capture::Checks {
            seal: false,
            // Every file is opened and checked: an index line is not evidence.
            index: false,
            memory_limit: None,
        },
    )
    .await?;
    let key = args.pubkey.as_deref().map(PublicKey::load).transpose()?;
    let mut checked = Vec::new();
    for segment in &loaded.segments {
        checked.push(check_segment(segment, key.as_ref()).await?);
    }
    let (chain_problems, chain_notes, recordings) = check_chains(&checked, args.max_gap);
    let mut problems: Vec<String> = loaded
        .bad
        .iter()
        .map(|b| format!("unreadable: {b}"))
        .collect();
    for c in &checked {
        for p in &c.problems {
            problems.push(format!("{}: {p}", c.segment.path.display()));
        }
    }
    problems.extend(chain_problems);
    let mut notes: Vec<String> = checked
        .iter()
        .flat_map(|c| {
            c.notes
                .iter()
                .map(move |n| format!("{}: {n}", c.segment.path.display()))
        })
        .collect();
    notes.extend(chain_notes);
    let rows: u64 = checked
        .iter()
        .filter_map(|c| c.segment.meta_u64(keys::EVENTS_WRITTEN))
        .sum();
    let mut hosts: Vec<&str> = checked
        .iter()
        .filter_map(|c| c.segment.meta(keys::HOSTNAME))
        .collect();
    hosts.sort();
    hosts.dedup();
    println!(
        "{} segment(s), {} recording(s), {} host(s), {rows} call(s)",
        checked.len(),
        recordings.len(),
        hosts.len()
    );
    for (recording, members) in &recordings {
        let first = &checked[members[0]];
        let last = &checked[*members.last().unwrap_or(&members[0])];
        println!(
            "  recording {recording}: {} segment(s), host {}, {} .. {}",
            members.len(),
            first.segment.meta(keys::HOSTNAME).unwrap_or("?"),
            first.segment.meta(keys::SEGMENT_START).unwrap_or("?"),
            last.segment.meta(keys::SEGMENT_END).unwrap_or("?")
        );
    }
    for n in &notes {
        println!("note: {n}");
    }
    if problems.is_empty() {
        println!(
            "OK: every digest matches, every chain is complete{}",
            if key.is_some() {
                ", every signature is valid"
            } else {
                ""
            }
        );
        return Ok(());
    }
    for p in &problems {
        println!("PROBLEM: {p}");
    }
    bail!(
        "verification failed: {} problem(s); this capture is not what was recorded, or not all \
         of it",
        problems.len()
    )
}
