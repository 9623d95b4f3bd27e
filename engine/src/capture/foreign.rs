//! Decoding foreign input without letting a dependency's panic end the analyzer.
//!
//! Capture files come from anywhere, and the Parquet and Arrow decoders panic on some damaged
//! input (arrow-ipc on a corrupt embedded schema: "Type NONE not supported"). A panic while
//! decoding one file becomes an error naming that file; one anywhere else in a command becomes
//! an error exit that says what happened, not a crash with a backtrace.
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;

thread_local! {
    /// Set while a panic is expected to be caught and reported as an error.
    static CAUGHT: Cell<bool> = const { Cell::new(false) };
}

/// Installs the process's panic hook: silent for panics [`decode`] or [`guard`] turn into
/// errors, the default report for any other (a bug of ours, in a thread of ours).
pub fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !CAUGHT.with(Cell::get) {
                default(info);
            }
        }));
    });
}

/// Marks the calling thread as one whose panics are caught and reported by [`guard`].
pub fn mark_thread_caught() {
    CAUGHT.with(|c| c.set(true));
}

/// What a panic said, as text.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}

/// Runs `f`, which decodes foreign bytes; a panic inside it is returned as its message.
pub fn decode<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    let was = CAUGHT.with(|c| c.replace(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    CAUGHT.with(|c| c.set(was));
    result.map_err(|payload| panic_message(payload.as_ref()))
}

/// [`decode`] for a whole command: a panic on any of the engine's threads (marked by
/// [`mark_thread_caught`]) reaches here, and the command ends with an error, not a crash.
pub fn guard<T>(f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    decode(f).unwrap_or_else(|panic| {
        Err(anyhow::anyhow!(
            "a decoder inside the query engine failed ({panic}); a damaged segment is the \
             likely cause: `fantrace-analyzer verify` names it, --skip-bad leaves out those \
             it can detect"
        ))
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_panic_while_decoding_is_an_error() {
        super::install_panic_hook();
        let r: Result<(), String> = super::decode(|| panic!("Type NONE not supported"));
        assert_eq!(r.unwrap_err(), "Type NONE not supported");
        assert_eq!(super::decode(|| 7), Ok(7));
    }
}
