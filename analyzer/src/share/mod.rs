//! Sharing captures: `export` (a window or selection, pseudonymized or redacted, signed) writes
//! them with `write_capture`; `verify` is what the receiver runs.
pub mod export;
pub mod pseudonym;
pub mod signing;
pub mod verify;
pub mod write_capture;
