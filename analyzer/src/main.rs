//! fantrace-analyzer: SQL over fantrace captures (the command line lives in the library).
fn main() -> std::process::ExitCode {
    fantrace_analyzer::main()
}
