//! One recorder per capture directory: an exclusive lock on `DIR/.lock`, held while recording,
//! with the owner's pid in it. Two recorders on one directory would each store every call and
//! prune each other's segments; the second one gets a clear error instead. The kernel drops the
//! lock when its holder dies, however it dies, so a crash never leaves the directory locked; a
//! pid left in the file by one that did not stop cleanly is reported.
use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

pub const LOCK_FILE: &str = ".lock";

pub struct CaptureLock {
    file: File,
    path: PathBuf,
}

impl CaptureLock {
    pub fn acquire(dir: &Path) -> anyhow::Result<CaptureLock> {
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(&path)
            .with_context(|| format!("opening the capture lock {}", path.display()))?;
        let mut previous = String::new();
        let _ = file.read_to_string(&mut previous);
        let owner: Option<i32> = previous
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok());
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                bail!(
                    "{} is being recorded by another fantrace-recorder{} (it holds {}); stop it, \
                     or give this one another --output",
                    dir.display(),
                    owner.map_or(String::new(), |p| format!(" (pid {p})")),
                    path.display()
                );
            }
            return Err(err).with_context(|| format!("locking {}", path.display()));
        }
        if let Some(pid) = owner {
            tracing::warn!(
                "the recorder that used {} before (pid {pid}) did not stop cleanly: it was killed \
                 or crashed, so its last segment may be missing (`fantrace-analyzer verify` tells)",
                dir.display()
            );
        }
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)).map(drop))
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .and_then(|()| file.sync_all())
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(CaptureLock { file, path })
    }
}

impl Drop for CaptureLock {
    /// A clean stop empties the file: a pid found there later means a recorder that died.
    fn drop(&mut self) {
        if self
            .file
            .set_len(0)
            .and_then(|()| self.file.sync_all())
            .is_err()
        {
            tracing::warn!("could not clear {}", self.path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_and_a_dead_ones_pid_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let first = CaptureLock::acquire(dir.path()).unwrap();
        // flock locks belong to the open file description: a second open conflicts.
        let err = CaptureLock::acquire(dir.path()).err().unwrap().to_string();
        assert!(
            err.contains("being recorded by another fantrace-recorder")
                && err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(first);
        assert_eq!(
            std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap(),
            ""
        );
        std::fs::write(dir.path().join(LOCK_FILE), "999999\n").unwrap();
        let again = CaptureLock::acquire(dir.path());
        assert!(again.is_ok(), "a dead holder's lock is taken over");
    }
}
