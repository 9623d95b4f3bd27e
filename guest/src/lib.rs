//! Another kernel than this machine's: a guest booted with virtme-ng (`vng`) under QEMU's
//! emulator, sharing this machine's root file system read-only, so the binaries built here run
//! there unchanged. `./fantrace.sh` installs what it needs (QEMU, virtme-ng, Debian's kernel)
//! under [`guest_dir`]. The end-to-end tests record in the guest and check the captures on
//! the host; the bench counts instructions there.
//!
//! The guest is emulated (TCG: `/dev/kvm` on these machines cannot run a stock kernel), so it is
//! slow. With `icount`, QEMU runs one guest instruction per virtual nanosecond, so a time
//! measured inside the guest is an instruction count: deterministic, whatever else the host is
//! doing.
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where `fantrace.sh` puts the guest's kernels and virtme-ng.
pub fn guest_dir() -> PathBuf {
    std::env::var_os("FANTRACE_GUEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/fantrace/guest"))
}

/// A guest kernel: an extracted Debian kernel package (`boot/vmlinuz-*` and `lib/modules`).
pub struct GuestKernel {
    pub name: &'static str,
    pub image: PathBuf,
    vng: PathBuf,
}

/// The Debian 12 kernel the matrix runs: the 6.1 LTS series of most Debian servers.
pub const DEBIAN_6_1: &str = "debian-6.1";

impl GuestKernel {
    /// The installed kernel `name` and the tools to boot it, or what is missing (as a sentence
    /// to show the user).
    pub fn find(name: &'static str) -> Result<GuestKernel, String> {
        let dir = guest_dir();
        let boot = dir.join(name).join("boot");
        let image = std::fs::read_dir(&boot)
            .map_err(|e| format!("{}: {e}", boot.display()))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
            })
            .ok_or_else(|| format!("no vmlinuz-* in {}", boot.display()))?;
        let vng = dir.join("venv/bin/vng");
        if !vng.exists() {
            return Err(format!(
                "{} is missing (pip install virtme-ng)",
                vng.display()
            ));
        }
        for tool in ["qemu-system-x86_64", "busybox", "udevadm", "depmod"] {
            let found = Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !found {
                return Err(format!("{tool} is not installed"));
            }
        }
        Ok(GuestKernel { name, image, vng })
    }

    /// Boots the guest, runs `command` (a shell command line) as root inside it with `shared`
    /// writable at the same path, and returns its combined output once the guest powers off.
    pub fn run(
        &self,
        command: &str,
        shared: &Path,
        icount: bool,
        timeout: Duration,
    ) -> Result<String, String> {
        let venv_bin = self.vng.parent().unwrap_or(Path::new("/"));
        let path = format!(
            "{}:{}",
            venv_bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = Command::new(&self.vng);
        cmd.env("PATH", path)
            .arg("--disable-kvm")
            .arg("--run")
            .arg(&self.image)
            .args(["--cpus", "1", "--memory", "2G"])
            .arg(format!("--rwdir={}", shared.display()));
        if icount {
            cmd.arg("--qemu-opts=-icount shift=0,sleep=off");
        }
        let mut child = cmd
            .arg("--exec")
            .arg(command)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", self.vng.display()))?;
        let started = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if started.elapsed() > timeout => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "the {} guest did not finish within {timeout:?}: {command}",
                        self.name
                    ));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(200)),
                Err(e) => return Err(format!("waiting for the guest: {e}")),
            }
        }
        let out = child
            .wait_with_output()
            .map_err(|e| format!("collecting the guest's output: {e}"))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!(
            "{} guest ran for {:.0} s",
            self.name,
            started.elapsed().as_secs_f64()
        );
        Ok(text)
    }
}
