//! fantrace-analyzer: SQL over fantrace captures (the command line lives in the library).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (its place in `mi_option_t`, v2 and v3 alike).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> std::process::ExitCode {
    // Never give freed pages back while the command runs: a scan of 100,000 segments
    // allocates and frees large decompression contexts per file, and purging them made the
    // kernel zero the same pages again (a full count took 33 s instead of 23 s). Peak memory
    // is the same: the pages are reused.
    // SAFETY: sets a process-wide allocator option; no allocation is in flight yet.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    fantrace_analyzer::main()
}
