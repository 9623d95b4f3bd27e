//! Enrichment done in user space once per process, not per event: the executable path and the
//! container id from the cgroup path. A process that exits before the recorder looks gets NULLs
//! (best-effort by nature: /proc is read after the call).
use std::collections::HashMap;

use fantrace_schema::arrow::ProcessInfo;

/// Cache entries kept at most; cleared wholesale when full. A pid reused while cached keeps
/// its predecessor's exe until then: another reason these columns are best-effort.
const MAX_CACHED: usize = 16_384;

#[derive(Default)]
pub struct Enricher {
    cache: HashMap<u32, ProcessInfo>,
}

impl Enricher {
    pub fn forget(&mut self, pid: u32) {
        self.cache.remove(&pid);
    }

    pub fn lookup(&mut self, pid: u32) -> &ProcessInfo {
        if self.cache.len() >= MAX_CACHED && !self.cache.contains_key(&pid) {
            self.cache.clear();
        }
        self.cache.entry(pid).or_insert_with(|| read_process(pid))
    }
}

fn read_process(pid: u32) -> ProcessInfo {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned());
    let container_id = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .ok()
        .and_then(|c| container_id(&c));
    ProcessInfo { exe, container_id }
}

/// The 64-hex-digit id in a cgroup path as docker (`docker-<id>.scope`, `/docker/<id>`),
/// containerd (`cri-containerd-<id>`), CRI-O (`crio-<id>`) and podman (`libpod-<id>`) name it.
pub fn container_id(cgroup_file: &str) -> Option<String> {
    for line in cgroup_file.lines() {
        let path = line.rsplit(':').next().unwrap_or("");
        for component in path.split('/').rev() {
            let component = component.trim_end_matches(".scope");
            let candidate = component.rsplit(['-', ':']).next().unwrap_or(component);
            if candidate.len() == 64 && candidate.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Some(candidate.to_ascii_lowercase());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::container_id;

    #[test]
    fn container_ids_from_common_runtimes() {
        let id = "3f4e5a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7081";
        for cgroup in [
            format!("0::/system.slice/docker-{id}.scope"),
            format!("0::/docker/{id}"),
            format!("0::/kubepods.slice/kubepods-besteffort.slice/cri-containerd-{id}.scope"),
            format!("0::/machine.slice/libpod-{id}.scope/container"),
            format!("0::/kubepods/besteffort/pod1/crio-{id}"),
        ] {
            assert_eq!(container_id(&cgroup).as_deref(), Some(id), "{cgroup}");
        }
        assert_eq!(
            container_id("0::/user.slice/user-0.slice/session-1.scope"),
            None
        );
    }

    #[test]
    fn own_process_has_an_exe() {
        let mut e = super::Enricher::default();
        let info = e.lookup(std::process::id());
        assert!(
            info.exe
                .as_deref()
                .is_some_and(|p| p.contains("fantrace_recorder")),
            "{info:?}"
        );
    }
}
