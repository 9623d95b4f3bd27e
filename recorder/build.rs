//! Builds the eBPF probe (`probe-ebpf`) for `bpfel-unknown-none` and leaves the object in
//! `OUT_DIR`, where `src/probe.rs` embeds it with `include_bytes_aligned!`.
//!
//! Cargo cannot yet express "this crate needs that crate's binary built for another target"
//! (artifact dependencies are unstable: rust-lang/cargo#12374, #12375, #12385), so this script
//! runs a nested `cargo +nightly build -Z build-std=core` through `aya-build`. The cost: the probe
//! is rebuilt whenever anything under `probe-ebpf/` changes, and the build needs the nightly
//! toolchain with `rust-src` and `bpf-linker` on PATH (the README's set-up command installs both).
use anyhow::{Context as _, anyhow};

fn main() -> anyhow::Result<()> {
    let metadata = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("reading the workspace metadata to find the probe crate")?;
    let probe = metadata
        .packages
        .iter()
        .find(|p| p.name.as_str() == "fantrace-probe-ebpf")
        .ok_or_else(|| anyhow!("package fantrace-probe-ebpf is not in the workspace"))?;
    let root_dir = probe
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("{} has no parent directory", probe.manifest_path))?;
    // The schema crate is compiled into the probe too; aya-build only watches the probe's dir.
    println!("cargo:rerun-if-changed=../schema/src");
    aya_build::build_ebpf(
        [aya_build::Package {
            name: probe.name.as_str(),
            root_dir: root_dir.as_str(),
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
    .context(
        "building the eBPF probe failed; it needs `rustup component add rust-src --toolchain \
         nightly` and bpf-linker (run the README's set-up command)",
    )
}
