//! `--attach tracepoint --ia32 off`: the `syscalls:sys_{enter,exit}_fanotify_{mark,init}`
//! tracepoints. They see native calls only (the kernel does not report ia32 calls through
//! them), but cost other syscalls less than the raw syscall tracepoints (`raw_syscalls.rs`):
//! while attached, every syscall takes the kernel's traced slow path and a bitmap test, not a
//! program run.
use aya_ebpf::{EbpfContext as _, macros::tracepoint, programs::TracePointContext};
use fantrace_schema::record::Abi;

use crate::call::{self, InitArgs, MarkArgs};
use crate::context;

/// A tracepoint record field, loaded directly: the verifier checks context reads at constant
/// offsets, so no `bpf_probe_read_kernel` call is needed (aya's `read_at` makes one).
#[inline(always)]
fn arg<T: Copy>(ctx: &TracePointContext, offset: usize) -> T {
    unsafe { core::ptr::read_volatile(ctx.as_ptr().cast::<u8>().add(offset).cast::<T>()) }
}

// Field offsets in the syscall tracepoints' records (see
// /sys/kernel/tracing/events/syscalls/sys_{enter,exit}_fanotify_mark/format). Every argument
// occupies a full 8-byte slot.
const ARG_FANOTIFY_FD: usize = 16;
const ARG_FLAGS: usize = 24;
const ARG_MASK: usize = 32;
const ARG_DFD: usize = 40;
const ARG_PATHNAME: usize = 48;
const EXIT_RET: usize = 16;
// sys_enter_fanotify_init: flags, event_f_flags.
const INIT_ARG_FLAGS: usize = 16;
const INIT_ARG_EVENT_F_FLAGS: usize = 24;

#[tracepoint(category = "syscalls", name = "sys_enter_fanotify_mark")]
pub fn fanotify_mark_enter(ctx: TracePointContext) -> u32 {
    let args = MarkArgs {
        fanotify_fd: arg::<u64>(&ctx, ARG_FANOTIFY_FD) as i32,
        flags: arg::<u64>(&ctx, ARG_FLAGS) as u32,
        mask: arg::<u64>(&ctx, ARG_MASK),
        dirfd: arg::<u64>(&ctx, ARG_DFD) as i32,
        pathname: arg::<u64>(&ctx, ARG_PATHNAME) as *const u8,
    };
    call::enter_mark(context::task(), &args, Abi::X86_64);
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_fanotify_mark")]
pub fn fanotify_mark_exit(ctx: TracePointContext) -> u32 {
    call::exit(context::task(), arg::<i64>(&ctx, EXIT_RET));
    0
}

#[tracepoint(category = "syscalls", name = "sys_enter_fanotify_init")]
pub fn fanotify_init_enter(ctx: TracePointContext) -> u32 {
    let args = InitArgs {
        flags: arg::<u64>(&ctx, INIT_ARG_FLAGS) as u32,
        event_f_flags: arg::<u64>(&ctx, INIT_ARG_EVENT_F_FLAGS) as u32,
    };
    call::enter_init(context::task(), &args, Abi::X86_64);
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_fanotify_init")]
pub fn fanotify_init_exit(ctx: TracePointContext) -> u32 {
    call::exit(context::task(), arg::<i64>(&ctx, EXIT_RET));
    0
}
