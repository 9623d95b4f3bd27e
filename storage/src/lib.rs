//! Where captures live besides local disk. The recorder ships segments to a bucket and the
//! analyzer and cluster read them back, so all three must agree on two things kept here: how a
//! URL and the environment become an object store, and the fleet's key layout.
pub mod layout;
pub mod location;
pub mod upload_check;

pub use layout::{HiveKey, hive_key, index_chunk_key};
pub use location::{Location, StorageError, open};
