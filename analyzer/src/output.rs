//! Where results go when they are written to disk: a file or directory readable by its owner
//! only (captures hold paths and process names), never over an existing one unless asked,
//! built under a temporary name beside the destination and renamed into place only once it
//! is complete and on disk, so a failure or an interrupt leaves nothing half-written behind.
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

/// `--output` and `--force`, shared by every command that writes results.
#[derive(clap::Args, Debug, Clone)]
pub struct OutputArgs {
    /// Write the result to this path instead of standard output (created mode 0600).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Replace the output if it exists (without it, an existing output is an error).
    #[arg(long)]
    pub force: bool,
}

fn refuse_existing(dest: &Path, force: bool) -> anyhow::Result<()> {
    match std::fs::symlink_metadata(dest) {
        Ok(_) if !force => bail!(
            "{} already exists; pass --force to replace it, or choose another --output",
            dest.display()
        ),
        Ok(meta) if meta.file_type().is_symlink() => bail!(
            "{} is a symbolic link; refusing to write through it",
            dest.display()
        ),
        Ok(_) | Err(_) => Ok(()),
    }
}

/// The directory that will hold `dest`, which must exist.
fn parent_of(dest: &Path) -> anyhow::Result<PathBuf> {
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !parent.is_dir() {
        bail!(
            "cannot write {}: its directory {} does not exist",
            dest.display(),
            parent.display()
        );
    }
    Ok(parent)
}

fn temporary_name(dest: &Path) -> anyhow::Result<PathBuf> {
    let parent = parent_of(dest)?;
    let name = dest
        .file_name()
        .with_context(|| format!("{} names no file", dest.display()))?
        .to_string_lossy()
        .into_owned();
    Ok(parent.join(format!(".{name}.{}.partial", std::process::id())))
}

/// Moves `tmp` to `dest`; an existing `dest` (file or directory, allowed by `--force`) is moved
/// aside first and removed once the new one is in place, so there is always one or the other.
fn replace(tmp: &Path, dest: &Path, force: bool) -> anyhow::Result<()> {
    refuse_existing(dest, force)?;
    let old = dest.with_file_name(format!(
        ".{}.replaced.{}",
        dest.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        std::process::id()
    ));
    let moved_aside = force && std::fs::symlink_metadata(dest).is_ok();
    if moved_aside {
        std::fs::rename(dest, &old)
            .with_context(|| format!("moving the old {} aside", dest.display()))?;
    }
    std::fs::rename(tmp, dest)
        .with_context(|| format!("renaming {} to {}", tmp.display(), dest.display()))?;
    if moved_aside {
        let removed = if old.is_dir() {
            std::fs::remove_dir_all(&old)
        } else {
            std::fs::remove_file(&old)
        };
        removed.with_context(|| format!("removing the replaced {}", old.display()))?;
    }
    sync_dir(&parent_of(dest)?)
}

fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("fsync of directory {}", dir.display()))
}

/// An output file being written; it appears at its destination only on [`commit`](Self::commit).
pub struct PendingFile {
    tmp: PathBuf,
    dest: PathBuf,
    force: bool,
    file: Option<File>,
}

impl PendingFile {
    pub fn create(dest: &Path, force: bool) -> anyhow::Result<PendingFile> {
        refuse_existing(dest, force)?;
        let tmp = temporary_name(dest)?;
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        Ok(PendingFile {
            tmp,
            dest: dest.to_path_buf(),
            force,
            file: Some(file),
        })
    }

    /// The file to write to (a clone of the handle; the original stays for the fsync).
    pub fn file(&self) -> anyhow::Result<File> {
        self.file
            .as_ref()
            .context("the output file is already committed")?
            .try_clone()
            .with_context(|| format!("duplicating the descriptor of {}", self.tmp.display()))
    }

    pub fn commit(mut self) -> anyhow::Result<PathBuf> {
        let file = self.file.take().context("committed twice")?;
        file.sync_all()
            .with_context(|| format!("fsync of {}", self.tmp.display()))?;
        drop(file);
        // Checked again: another writer may have created it meanwhile.
        replace(&self.tmp, &self.dest, self.force)?;
        Ok(self.dest.clone())
    }
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// An output directory (an exported capture) being filled; it appears at its destination only
/// on [`commit`](Self::commit). With `force`, an existing destination is replaced then.
pub struct PendingDir {
    tmp: PathBuf,
    dest: PathBuf,
    force: bool,
    committed: bool,
}

impl PendingDir {
    pub fn create(dest: &Path, force: bool) -> anyhow::Result<PendingDir> {
        refuse_existing(dest, force)?;
        let tmp = temporary_name(dest)?;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        Ok(PendingDir {
            tmp,
            dest: dest.to_path_buf(),
            force,
            committed: false,
        })
    }

    /// Where the files go while they are written.
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    pub fn commit(mut self) -> anyhow::Result<PathBuf> {
        sync_dir(&self.tmp)?;
        replace(&self.tmp, &self.dest, self.force)?;
        self.committed = true;
        Ok(self.dest.clone())
    }
}

impl Drop for PendingDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn a_file_appears_whole_private_and_only_once() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.csv");
        let pending = PendingFile::create(&dest, false).unwrap();
        pending.file().unwrap().write_all(b"a\n").unwrap();
        assert!(!dest.exists(), "nothing at the destination before commit");
        pending.commit().unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"a\n");
        let mode = std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let err = PendingFile::create(&dest, false).err().unwrap().to_string();
        assert!(
            err.contains("already exists") && err.contains("--force"),
            "{err}"
        );
        let again = PendingFile::create(&dest, true).unwrap();
        again.file().unwrap().write_all(b"b\n").unwrap();
        again.commit().unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"b\n");
        // An abandoned write leaves nothing behind.
        let other = dir.path().join("other.csv");
        drop(PendingFile::create(&other, false).unwrap());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_directory_is_replaced_only_with_force() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("export");
        let pending = PendingDir::create(&dest, false).unwrap();
        std::fs::write(pending.path().join("a"), b"1").unwrap();
        pending.commit().unwrap();
        assert!(PendingDir::create(&dest, false).is_err());
        let pending = PendingDir::create(&dest, true).unwrap();
        std::fs::write(pending.path().join("b"), b"2").unwrap();
        pending.commit().unwrap();
        assert!(dest.join("b").exists() && !dest.join("a").exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
