//! The fanotify_mark probe.
//!
//! Entry points, one file per way of attaching: `fentry.rs` (BPF trampolines on the syscall
//! functions, where the kernel has them), `tracepoint.rs` (the syscall tracepoints) and
//! `raw_syscalls.rs` (the raw `sys_enter`/`sys_exit` tracepoints, for ia32 calls in
//! tracepoint mode). Each finds the arguments (`regs.rs` reads them from saved registers) and
//! hands them to `call.rs`: at entry the caller's context (`context.rs`) and the pathname go
//! into a per-thread pending record, at exit the return value is added and the record plus
//! only the path bytes read go to the ring buffer (`maps.rs`). `owner_exit.rs` records the exit
//! of every process that created a fanotify group.
//!
//! The kernel's own view of groups and marks: `files.rs` finds the group a call's fd names and
//! the object a dirfd is open on, `snapshot.rs` reads a group's marks after each successful mark
//! call, `hooks.rs` (fentry mode) hooks the kernel's path resolution, group release and its own
//! mark removals, and `scan.rs` is the iterator that lists every fanotify fd on the machine.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod call;
#[cfg(target_arch = "bpf")]
mod context;
#[cfg(target_arch = "bpf")]
mod fentry;
#[cfg(target_arch = "bpf")]
mod files;
#[cfg(target_arch = "bpf")]
mod hooks;
#[cfg(target_arch = "bpf")]
mod maps;
#[cfg(target_arch = "bpf")]
mod owner_exit;
#[cfg(target_arch = "bpf")]
mod raw_syscalls;
#[cfg(target_arch = "bpf")]
mod regs;
#[cfg(target_arch = "bpf")]
mod scan;
#[cfg(target_arch = "bpf")]
mod snapshot;
#[cfg(target_arch = "bpf")]
mod tracepoint;

#[cfg(not(target_arch = "bpf"))]
fn main() {
    // The probe only exists for the BPF target; this keeps host-side `cargo check` of the
    // workspace building.
}

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any path that could reach here, so it is never executed.
    loop {}
}

#[cfg(target_arch = "bpf")]
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
