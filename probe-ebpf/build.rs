use which::which;

/// Linking the probe needs the `bpf-linker` binary, a dependency cargo cannot express. Rebuild
/// when the linker found on PATH changes, so a reinstalled linker is picked up.
fn main() {
    match which("bpf-linker") {
        Ok(path) => println!("cargo:rerun-if-changed={}", path.display()),
        Err(err) => println!(
            "cargo:warning=bpf-linker not found on PATH ({err}); install it with \
             `LLVM_PREFIX=/usr/lib/llvm-22 cargo install bpf-linker --no-default-features \
             --features llvm-22` or run the README's set-up command"
        ),
    }
}
