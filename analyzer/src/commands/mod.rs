pub mod inspect;
pub mod playbook;
pub mod query;
pub mod replay;
pub mod shell;
