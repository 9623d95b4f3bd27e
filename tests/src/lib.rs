//! Shared pieces of the end-to-end suite: the record of a call the workload made, and raw
//! wrappers for the syscalls it makes.
pub mod calls;
pub mod harness;
