//! The commands that read captures: SQL (`query`, `shell`), the strace-like `replay`,
//! `inspect`, the shipped `playbook`, and `views` for other engines.
pub mod inspect;
pub mod playbook;
pub mod query;
pub mod replay;
pub mod selection;
pub mod shell;
pub mod shell_completion;
pub mod views;
