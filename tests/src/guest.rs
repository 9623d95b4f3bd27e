//! The test side of running in a guest kernel: a test that finds [`GUEST_OUT_ENV`] set is
//! running inside the guest and records; the same test on the host boots the guest and checks.
use std::path::PathBuf;

pub use fantrace_guest::{DEBIAN_6_1, GuestKernel};

/// Set inside the guest: the directory the guest side writes its results to. A test that sees
/// it records and returns; the host side of the same test then checks what it wrote.
pub const GUEST_OUT_ENV: &str = "FANTRACE_GUEST_OUT";

pub fn guest_out() -> Option<PathBuf> {
    std::env::var_os(GUEST_OUT_ENV).map(PathBuf::from)
}

/// The guest kernel, or (outside CI) `None` with a note; in CI a missing prerequisite fails.
pub fn require_guest(test: &str, name: &'static str) -> Option<GuestKernel> {
    match GuestKernel::find(name) {
        Ok(k) => Some(k),
        Err(why) if crate::harness::in_ci() => panic!(
            "{test}: CI=true but the {name} guest cannot run: {why}; `./fantrace.sh test` \
             installs it"
        ),
        Err(why) => {
            eprintln!("{test}: NOT RUN: the {name} guest cannot run: {why}");
            None
        }
    }
}
