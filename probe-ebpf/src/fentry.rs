//! `--attach fentry`: BPF trampolines on the syscall functions themselves, one entry/exit pair
//! per syscall and ABI. Unlike any tracepoint they cost other syscalls nothing, and the traced
//! call about a fifth of what a syscall tracepoint costs. The functions take the saved user
//! registers (`const struct pt_regs *`); the recorder resolves each name in the running
//! kernel's BTF before loading, and attaches the ia32 pair only where the kernel has one.
use aya_ebpf::{
    macros::{fentry, fexit},
    programs::{FEntryContext, FExitContext},
};
use fantrace_schema::record::Abi;

use crate::{call, context, regs};

/// fexit's return value follows the arguments in its context; these functions take one.
const RET_SLOT: usize = 1;

/// An fentry/fexit pair on one syscall function: the entry reads the arguments from the saved
/// registers with `$args` (`regs.rs`) and hands them to `$enter`; the exit hands the return
/// value to `call::exit`.
macro_rules! hook {
    ($entry:ident, $exit:ident, $function:tt, $enter:path, $args:path, $abi:expr) => {
        #[fentry(function = $function)]
        pub fn $entry(ctx: FEntryContext) -> i32 {
            let regs: *const u8 = ctx.arg(0);
            $enter(context::task(), &$args(regs), $abi);
            0
        }

        #[fexit(function = $function)]
        pub fn $exit(ctx: FExitContext) -> i32 {
            call::exit(context::task(), ctx.arg(RET_SLOT));
            0
        }
    };
}

hook!(
    mark_x64_fentry,
    mark_x64_fexit,
    "__x64_sys_fanotify_mark",
    call::enter_mark,
    regs::x86_64_mark,
    Abi::X86_64
);
hook!(
    mark_ia32_fentry,
    mark_ia32_fexit,
    "__ia32_compat_sys_fanotify_mark",
    call::enter_mark,
    regs::ia32_mark,
    Abi::Ia32
);
hook!(
    init_x64_fentry,
    init_x64_fexit,
    "__x64_sys_fanotify_init",
    call::enter_init,
    regs::x86_64_init,
    Abi::X86_64
);
hook!(
    init_ia32_fentry,
    init_ia32_fexit,
    "__ia32_sys_fanotify_init",
    call::enter_init,
    regs::ia32_init,
    Abi::Ia32
);
