//! Entry points of the fanotify_mark probe.
//!
//! `sys_enter_fanotify_mark` copies the arguments, the process context and the pathname string
//! into a per-thread pending record; `sys_exit_fanotify_mark` adds the return value and submits
//! the header plus only the path bytes read to the ring buffer.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod context;
#[cfg(target_arch = "bpf")]
mod maps;
#[cfg(target_arch = "bpf")]
mod probe;

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
