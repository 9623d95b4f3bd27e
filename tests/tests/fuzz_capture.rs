//! Fuzzing capture opening and the first query: random damage to a real segment (byte
//! changes, bit flips, zeroed runs, truncation), each mutant opened and queried by the
//! optimized analyzer, for a bounded time (`FANTRACE_FUZZ_SECONDS`, 120 by default;
//! `FANTRACE_FUZZ_SEED` replays a run).
//!
//! Fails on any panic, crash or hang, and on any mutant that changes the answer when the user
//! asked for checking (`--verify-data --no-stats`: the seal covers the rows and the metadata,
//! and no footer statistic or page index is trusted). Answers changed silently without
//! checking are counted and printed, by where the damage was: what the seal cannot catch
//! without being asked to read the whole file.
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use fantrace_tests::harness::{
    Bounded, record_one_segment, release_bin, require_probe, run_bounded, sealed_data_bytes,
};

const SQL: &str = "SELECT * FROM calls ORDER BY time, tid, syscall";

/// xorshift64*: reproducible from the printed seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn query(segment: &Path, checked: bool) -> Bounded {
    let mut cmd = Command::new(release_bin("fantrace-analyzer"));
    if checked {
        cmd.arg("--no-stats");
    }
    cmd.args(["query", "--format", "csv", "-c"]).arg(segment);
    if checked {
        cmd.arg("--verify-data");
    }
    cmd.arg(SQL);
    run_bounded(&mut cmd, Duration::from_secs(30))
}

#[derive(Default, Debug)]
struct Tally {
    mutants: u64,
    refused: u64,
    unchanged: u64,
    silent_in_data: u64,
    silent_in_footer: u64,
}

#[test]
fn damaged_segments_never_crash_hang_or_change_a_checked_answer() {
    if !require_probe("damaged_segments_never_crash_hang_or_change_a_checked_answer") {
        return;
    }
    let seconds: u64 = std::env::var("FANTRACE_FUZZ_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(120);
    let seed: u64 = std::env::var("FANTRACE_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    eprintln!("fuzzing for {seconds} s, FANTRACE_FUZZ_SEED={seed}");
    let tmp = tempfile::tempdir().unwrap();
    let seed_segment = record_one_segment(tmp.path());
    let original = std::fs::read(&seed_segment).unwrap();
    let data_end = sealed_data_bytes(&seed_segment);
    let baseline = query(&seed_segment, true);
    assert_eq!(baseline.code, Some(0), "{baseline:?}");
    let mutant = tmp.path().join("mutant.parquet");
    let failures = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-failures");
    let mut rng = Rng(seed);
    let mut tally = Tally::default();
    let mut problems = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < deadline {
        let mut bytes = original.clone();
        let at = rng.below(bytes.len());
        let what = match rng.below(10) {
            0..=5 => {
                bytes[at] = rng.next() as u8;
                "byte set"
            }
            6..=7 => {
                bytes[at] ^= 1 << rng.below(8);
                "bit flipped"
            }
            8 => {
                let end = (at + 8).min(bytes.len());
                bytes[at..end].fill(0);
                "8 bytes zeroed"
            }
            _ => {
                bytes.truncate(at);
                "truncated"
            }
        };
        if bytes == original {
            continue;
        }
        tally.mutants += 1;
        std::fs::write(&mutant, &bytes).unwrap();
        let label = format!("{what} at byte {at} of {}", original.len());
        let plain = query(&mutant, false);
        let mut keep = |why: &str, run: &Bounded| {
            std::fs::create_dir_all(&failures).unwrap();
            let kept = failures.join(format!("mutant-{seed}-{}.parquet", tally.mutants));
            std::fs::write(&kept, &bytes).unwrap();
            problems.push(format!(
                "{why}: {label} (kept as {}): {run:?}",
                kept.display()
            ));
        };
        if plain.crashed() || plain.timed_out {
            keep("crash or hang", &plain);
            continue;
        }
        if plain.code != Some(0) {
            tally.refused += 1;
            continue;
        }
        if plain.stdout == baseline.stdout {
            tally.unchanged += 1;
            continue;
        }
        if at < data_end {
            tally.silent_in_data += 1;
        } else {
            tally.silent_in_footer += 1;
        }
        let checked = query(&mutant, true);
        if checked.crashed() || checked.timed_out {
            keep("crash or hang when checking", &checked);
        } else if checked.code == Some(0) && checked.stdout != baseline.stdout {
            keep(
                "an answer changed despite --verify-data --no-stats",
                &checked,
            );
        }
    }
    eprintln!("{tally:?}");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(tally.mutants > 0);
}
