//! Checks on the capture directory, made before the probe is loaded so that a bad destination
//! costs nothing and leaves nothing behind.
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

/// The capture directory, validated. It is created (mode 0700) only by [`Destination::create`].
pub struct Destination {
    pub dir: PathBuf,
    exists: bool,
}

impl Destination {
    /// `dir` must be a real directory owned by us, or not exist yet inside one that does;
    /// neither it nor the directory holding it may be a symbolic link (`link/` and `link/sub`
    /// would write through one as surely as `link`).
    pub fn check(dir: &Path) -> anyhow::Result<Destination> {
        // Components drop a trailing slash, which would make the checks below follow a link.
        let dir: PathBuf = dir.components().collect();
        let dir = dir.as_path();
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty())
            && std::fs::symlink_metadata(parent).is_ok_and(|m| m.file_type().is_symlink())
        {
            bail!(
                "the directory {} that would hold the capture {} is a symbolic link; refusing \
                 to follow it (pass the real path)",
                parent.display(),
                dir.display()
            );
        }
        match std::fs::symlink_metadata(dir) {
            Ok(meta) => {
                if meta.file_type().is_symlink() {
                    bail!(
                        "capture directory {} is a symbolic link; refusing to follow it (pass \
                         the real path)",
                        dir.display()
                    );
                }
                if !meta.is_dir() {
                    bail!("{} exists and is not a directory", dir.display());
                }
                check_owner_and_access(dir, &meta)?;
                Ok(Destination {
                    dir: dir.to_path_buf(),
                    exists: true,
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let parent = match dir.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p,
                    _ => Path::new("."),
                };
                let meta = std::fs::metadata(parent).with_context(|| {
                    format!(
                        "the directory {} that would hold the capture {} does not exist or \
                         cannot be read; create it first",
                        parent.display(),
                        dir.display()
                    )
                })?;
                if !meta.is_dir() {
                    bail!("{} is not a directory", parent.display());
                }
                check_owner_and_access(parent, &meta)?;
                Ok(Destination {
                    dir: dir.to_path_buf(),
                    exists: false,
                })
            }
            Err(e) => Err(e).with_context(|| format!("cannot inspect {}", dir.display())),
        }
    }

    /// Creates the directory (0700) if it did not exist; returns whether it did. Another
    /// process creating it meanwhile is no error: it is checked again, as if it had been there.
    pub fn create(&self) -> anyhow::Result<bool> {
        if self.exists {
            return Ok(false);
        }
        match std::fs::DirBuilder::new().mode(0o700).create(&self.dir) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Destination::check(&self.dir)?;
                Ok(false)
            }
            Err(e) => {
                Err(e).with_context(|| format!("creating capture directory {}", self.dir.display()))
            }
        }
    }

    /// Undoes [`create`](Self::create) after a failed start: removes the directory if this
    /// recorder made it and nothing but its lock is in it.
    pub fn remove_if_created(&self, created: bool) {
        if created {
            let _ = std::fs::remove_file(self.dir.join(crate::lock::LOCK_FILE));
            let _ = std::fs::remove_dir(&self.dir);
        }
    }
}

fn check_owner_and_access(dir: &Path, meta: &std::fs::Metadata) -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if meta.uid() != euid {
        bail!(
            "{} is owned by uid {}, not by the recorder's uid {euid}; a capture must live in a \
             directory only its recorder controls (chown it or pick another)",
            dir.display(),
            meta.uid()
        );
    }
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
        .with_context(|| format!("{} contains a NUL byte", dir.display()))?;
    // SAFETY: c is a valid NUL-terminated path.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) } != 0 {
        let err = std::io::Error::last_os_error();
        bail!(
            "{} is not writable: {err} (read-only file system or missing permission)",
            dir.display()
        );
    }
    Ok(())
}
