//! fantrace-engine: SQL over fantrace captures, without a command line. The analyzer's
//! commands and `fantrace-cluster`'s scheduler and executors build on it, so every process
//! that plans or runs a query registers the same tables, views, functions and object stores.
//!
//! Layers, bottom up: `capture` finds segments and checks them before anything reads them;
//! `sql` holds the functions fantrace adds to DataFusion; `marks` derives the mark state;
//! `session` puts them together into one read-only DataFusion session (locally, or on a
//! Ballista cluster through `cluster` and `fleet_stores`).
pub mod capture;
pub mod cluster;
pub mod fleet_stores;
pub mod marks;
pub mod session;
pub mod spill;
pub mod sql;
pub mod timespec;

/// A byte count as the options take it: digits and an optional K, M or G suffix.
pub fn parse_bytes(s: &str) -> Result<usize, String> {
    let (digits, mult) = match s.char_indices().last() {
        Some((i, 'K' | 'k')) => (&s[..i], 1usize << 10),
        Some((i, 'M' | 'm')) => (&s[..i], 1 << 20),
        Some((i, 'G' | 'g')) => (&s[..i], 1 << 30),
        _ => (s, 1),
    };
    digits
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("{s:?} is not a byte count like 512M or 2G"))
}
