//! The one definition of a fantrace event.
//!
//! `record` is shared, byte for byte, by the eBPF probe and the recorder (no_std). With the
//! `user` feature, `arrow` derives the Arrow schema and row builders from it, `flags` holds the
//! fanotify name tables used for decoding, `metadata` names the Parquet key-value keys and
//! `index` is the line a capture directory keeps per segment.
#![cfg_attr(not(feature = "user"), no_std)]

pub mod errno;
pub mod flags;
pub mod record;

#[cfg(feature = "user")]
pub mod arrow;
#[cfg(feature = "user")]
pub mod decode;
#[cfg(feature = "user")]
pub mod index;
#[cfg(feature = "user")]
pub mod integrity;
#[cfg(feature = "user")]
pub mod layout;
#[cfg(feature = "user")]
pub mod metadata;
#[cfg(feature = "user")]
pub mod object;
