//! fantrace-analyzer: SQL over fantrace captures (the command line lives in the library).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    fantrace_analyzer::main()
}
