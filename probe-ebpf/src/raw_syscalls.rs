//! `--attach tracepoint`: the raw `sys_enter` / `sys_exit` tracepoints (BTF-typed). Every
//! syscall of every task passes through them, ia32 calls included, which the per-syscall
//! tracepoints (`tracepoint.rs`) do not report. They also skip the trace record those build for
//! every traced call. Every other syscall pays for a program run that compares one number, so
//! that test comes first.
use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};
use fantrace_schema::record::{Abi, syscall_nr};

use crate::{call, context, regs};

/// Which ABI's fanotify call the syscall number `nr` is, if any, as far as the number tells.
#[inline(always)]
fn watched(nr: i64) -> Option<Abi> {
    match nr {
        syscall_nr::IA32_FANOTIFY_MARK | syscall_nr::IA32_FANOTIFY_INIT => Some(Abi::Ia32),
        syscall_nr::X86_64_FANOTIFY_MARK | syscall_nr::X86_64_FANOTIFY_INIT => Some(Abi::X86_64),
        _ => None,
    }
}

/// The number means a fanotify call only in its own ABI's table: an ia32 call numbered 300
/// is `fstatat64`, a native call numbered 339 does not exist.
#[inline(always)]
fn abi_matches(task: *const u8, abi: Abi) -> bool {
    context::in_ia32_syscall(task) == (abi == Abi::Ia32)
}

#[btf_tracepoint(function = "sys_enter")]
pub fn raw_sys_enter(ctx: BtfTracePointContext) -> i32 {
    let nr: i64 = ctx.arg(1);
    let Some(abi) = watched(nr) else {
        return 0;
    };
    let task = context::task();
    if !abi_matches(task, abi) {
        return 0;
    }
    let regs: *const u8 = ctx.arg(0);
    match nr {
        syscall_nr::IA32_FANOTIFY_MARK => call::enter_mark(task, &regs::ia32_mark(regs), abi),
        syscall_nr::IA32_FANOTIFY_INIT => call::enter_init(task, &regs::ia32_init(regs), abi),
        syscall_nr::X86_64_FANOTIFY_MARK => call::enter_mark(task, &regs::x86_64_mark(regs), abi),
        _ => call::enter_init(task, &regs::x86_64_init(regs), abi),
    }
    0
}

#[btf_tracepoint(function = "sys_exit")]
pub fn raw_sys_exit(ctx: BtfTracePointContext) -> i32 {
    let regs: *const u8 = ctx.arg(0);
    let Some(abi) = watched(regs::syscall_nr(regs)) else {
        return 0;
    };
    let task = context::task();
    if abi_matches(task, abi) {
        call::exit(task, ctx.arg(1));
    }
    0
}
