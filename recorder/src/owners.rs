//! Group owners: the processes whose exit the probe records, because a fanotify group (and
//! every mark in it) ends when the last process holding its fd goes. The probe adds each
//! process that creates a group while recording; this adds, at start, those already holding
//! one (a group's fd is a link to `anon_inode:[fanotify]` in `/proc/PID/fd`), so that the end
//! of a group made before the recording began is seen too.
use std::path::Path;

use anyhow::{Context as _, anyhow};
use aya::Ebpf;
use aya::maps::HashMap;
use fantrace_schema::record::{GROUP_OWNERS_MAX, names};

const FANOTIFY_LINK: &[u8] = b"anon_inode:[fanotify]";

/// The processes under `proc` holding a fanotify group's fd. Processes that vanish or whose
/// fds cannot be read are passed over: they are either gone or not ours to see.
pub fn holders(proc: &Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir(proc) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path())
                .is_ok_and(|target| target.as_os_str().as_encoded_bytes() == FANOTIFY_LINK)
        });
        if holds {
            out.push(pid);
        }
    }
    out
}

/// Puts every current holder except the recorder into the probe's owner map; returns how many.
pub fn seed(ebpf: &mut Ebpf, own_tgid: u32) -> anyhow::Result<usize> {
    let map = ebpf
        .map_mut(names::GROUP_OWNERS_MAP)
        .ok_or_else(|| anyhow!("the probe object has no map {}", names::GROUP_OWNERS_MAP))?;
    let mut owners: HashMap<_, u32, u8> = HashMap::try_from(map)
        .with_context(|| format!("{} is not a hash map", names::GROUP_OWNERS_MAP))?;
    let mut added = 0;
    for pid in holders(Path::new("/proc")) {
        if pid == own_tgid {
            continue;
        }
        if added == GROUP_OWNERS_MAX as usize {
            tracing::warn!(
                "more than {GROUP_OWNERS_MAX} processes hold fanotify groups: the exits of the \
                 rest will not be recorded"
            );
            break;
        }
        owners
            .insert(pid, 1, 0)
            .with_context(|| format!("adding pid {pid} to {}", names::GROUP_OWNERS_MAP))?;
        added += 1;
    }
    Ok(added)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_process_holding_a_fanotify_link_and_nothing_else() {
        let dir = tempfile::tempdir().expect("temp dir");
        let proc = dir.path();
        for (pid, targets) in [
            ("41", vec!["anon_inode:[fanotify]", "/dev/null"]),
            ("42", vec!["anon_inode:[eventfd]", "anon_inode:[fanotify]x"]),
            ("self", vec!["anon_inode:[fanotify]"]),
        ] {
            let fd_dir = proc.join(pid).join("fd");
            std::fs::create_dir_all(&fd_dir).expect("fd dir");
            for (n, target) in targets.iter().enumerate() {
                std::os::unix::fs::symlink(target, fd_dir.join(n.to_string())).expect("link");
            }
        }
        std::fs::create_dir_all(proc.join("43")).expect("a process without fd dir");
        assert_eq!(holders(proc), vec![41]);
    }
}
