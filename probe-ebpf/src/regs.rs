//! Syscall arguments read from the saved user registers (`struct pt_regs`), for the entry
//! points that get the registers rather than a tracepoint record: the syscall functions
//! (`__x64_sys_*`, `__ia32_compat_sys_*`) and the raw `sys_enter` tracepoint. Which registers
//! hold which argument is the ABI's calling convention; the field offsets come from the
//! running kernel's BTF like every other kernel field the probe reads.
use fantrace_schema::record::KernelOffset;

use crate::call::{InitArgs, MarkArgs};
use crate::context::load;

#[inline(always)]
fn reg(regs: *const u8, which: KernelOffset) -> u64 {
    load::<u64>(regs, which).unwrap_or(0)
}

/// The native x86-64 convention: di, si, dx, r10, r8.
#[inline(always)]
pub fn x86_64_mark(regs: *const u8) -> MarkArgs {
    MarkArgs {
        fanotify_fd: reg(regs, KernelOffset::PtRegsDi) as i32,
        flags: reg(regs, KernelOffset::PtRegsSi) as u32,
        mask: reg(regs, KernelOffset::PtRegsDx),
        dirfd: reg(regs, KernelOffset::PtRegsR10) as i32,
        pathname: reg(regs, KernelOffset::PtRegsR8) as *const u8,
    }
}

#[inline(always)]
pub fn x86_64_init(regs: *const u8) -> InitArgs {
    InitArgs {
        flags: reg(regs, KernelOffset::PtRegsDi) as u32,
        event_f_flags: reg(regs, KernelOffset::PtRegsSi) as u32,
    }
}

/// The ia32 convention: bx, cx, dx, si, di, bp, each 32 bits wide. `fanotify_mark`'s 64-bit
/// mask arrives as two halves, low first (`compat_sys_fanotify_mark`'s mask0, mask1 on a
/// little-endian machine), so the call takes six registers; the pathname is a 32-bit pointer.
#[inline(always)]
pub fn ia32_mark(regs: *const u8) -> MarkArgs {
    let low = reg(regs, KernelOffset::PtRegsDx) & 0xffff_ffff;
    let high = reg(regs, KernelOffset::PtRegsSi) & 0xffff_ffff;
    MarkArgs {
        fanotify_fd: reg(regs, KernelOffset::PtRegsBx) as i32,
        flags: reg(regs, KernelOffset::PtRegsCx) as u32,
        mask: (high << 32) | low,
        dirfd: reg(regs, KernelOffset::PtRegsDi) as i32,
        pathname: (reg(regs, KernelOffset::PtRegsBp) & 0xffff_ffff) as *const u8,
    }
}

#[inline(always)]
pub fn ia32_init(regs: *const u8) -> InitArgs {
    InitArgs {
        flags: reg(regs, KernelOffset::PtRegsBx) as u32,
        event_f_flags: reg(regs, KernelOffset::PtRegsCx) as u32,
    }
}

/// The syscall number in the saved registers (what `sys_exit` was called for).
#[inline(always)]
pub fn syscall_nr(regs: *const u8) -> i64 {
    reg(regs, KernelOffset::PtRegsOrigAx) as i64
}
