//! What fantrace adds to DataFusion's SQL: functions that decode fanotify values (from the
//! `schema` tables), the mark-state aggregate, and safer forms of built-ins whose cost grows
//! with their arguments (`count(DISTINCT nested)`, `repeat`, `lpad`, ...), and the per-segment `stats` table.
pub mod bounded_functions;
pub mod count_distinct;
pub mod functions;
pub mod mark_fold;
pub mod stats;
