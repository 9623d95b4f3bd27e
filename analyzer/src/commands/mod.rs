pub mod export;
pub mod inspect;
pub mod playbook;
pub mod query;
pub mod replay;
pub mod shell;
pub mod verify;
pub mod views;
