//! Shared pieces of the end-to-end suite: the record of a call the workload made and raw
//! wrappers for the syscalls it makes (`calls`), driving the real binaries (`harness`), what a
//! correct capture looks like (`checks`), and running the recording part in a guest kernel
//! (`guest`), and the kernel's fdinfo as the judge of mark state (`truth`).
pub mod calls;
pub mod checks;
pub mod cluster;
pub mod forensic;
pub mod guest;
pub mod harness;
pub mod lifecycle;
pub mod object_store_server;
pub mod truth;
