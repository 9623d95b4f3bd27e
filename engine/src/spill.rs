//! Where queries too large for `--memory-limit` spill: a directory this process owns, removed
//! when it exits, and removed by the next run when the process that owned it was killed.
//!
//! DataFusion's default is the system temporary directory, where a SIGKILLed query left
//! 627 MB of spill files nobody would ever remove.
use std::fs::File;
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// The spill directory of this process. It holds an exclusive lock on `owner.lock` inside it
/// for as long as it lives: a directory whose lock can be taken belongs to no running process.
pub struct SpillDir {
    path: PathBuf,
    _lock: File,
}

impl SpillDir {
    /// Creates `<tmp>/fantrace-analyzer-<uid>/<pid>/` (0700), first removing the directories
    /// that killed runs left there.
    pub fn create() -> anyhow::Result<SpillDir> {
        // SAFETY: getuid has no preconditions.
        let uid = unsafe { libc::getuid() };
        let base = std::env::temp_dir().join(format!("fantrace-analyzer-{uid}"));
        create_private_dir(&base)?;
        remove_stale(&base);
        let path = base.join(std::process::id().to_string());
        let _ = std::fs::remove_dir_all(&path);
        create_private_dir(&path)?;
        let lock_path = path.join("owner.lock");
        let lock = File::create(&lock_path)
            .with_context(|| format!("creating the spill lock {}", lock_path.display()))?;
        if !try_lock(&lock) {
            anyhow::bail!(
                "{}: locked by another process; set TMPDIR to another directory",
                lock_path.display()
            );
        }
        Ok(SpillDir { path, _lock: lock })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SpillDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn create_private_dir(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _};
    match std::fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // Someone else's directory of that name in a shared /tmp is not ours to spill in.
            let meta = std::fs::symlink_metadata(path)
                .with_context(|| format!("checking the spill directory {}", path.display()))?;
            // SAFETY: getuid has no preconditions.
            let uid = unsafe { libc::getuid() };
            if !meta.is_dir() || meta.uid() != uid {
                anyhow::bail!(
                    "{}: exists but is not a directory owned by this user; remove it or set \
                     TMPDIR to another directory",
                    path.display()
                );
            }
            Ok(())
        }
        Err(e) => Err(e).with_context(|| {
            format!(
                "creating the spill directory {}; set TMPDIR to a writable directory",
                path.display()
            )
        }),
    }
}

fn try_lock(file: &File) -> bool {
    // SAFETY: flock on a descriptor we own.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

/// Removes every per-process directory under `base` whose owner is gone.
fn remove_stale(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        if !dir.is_dir() {
            continue;
        }
        let stale = match File::open(dir.join("owner.lock")) {
            Ok(lock) => try_lock(&lock),
            // A directory without a lock was being created or is not ours: leave it unless
            // its process is gone.
            Err(_) => entry
                .file_name()
                .to_str()
                .and_then(|pid| pid.parse::<u32>().ok())
                .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()),
        };
        if stale {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_dead_owners_directory_is_removed_and_a_live_ones_kept() {
        let tmp = tempfile::tempdir().unwrap();
        // SAFETY: the test sets TMPDIR for this process before anything reads it.
        unsafe { std::env::set_var("TMPDIR", tmp.path()) };
        let live = super::SpillDir::create().unwrap();
        let base = live.path().parent().unwrap().to_path_buf();
        let dead = base.join("999999999");
        std::fs::create_dir(&dead).unwrap();
        std::fs::write(dead.join("owner.lock"), "").unwrap();
        std::fs::write(dead.join("spill-0.arrow"), vec![0u8; 1024]).unwrap();
        super::remove_stale(&base);
        assert!(live.path().exists(), "a running process's directory stays");
        let path = live.path().to_path_buf();
        drop(live);
        assert!(!path.exists(), "removed on exit");
        let next = super::SpillDir::create().unwrap();
        assert!(!dead.exists(), "a killed run's spill files are removed");
        assert!(next.path().exists());
    }
}
