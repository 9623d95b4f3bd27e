//! Keyed pseudonyms for sharing a capture with someone who must not learn user names, paths
//! or host names, but must still be able to join, group and compare.
//!
//! Each value becomes HMAC-SHA-256(key, field ‖ value), shortened: the same value and key give
//! the same pseudonym in every export and on every host, so joins and group-bys keep working;
//! another key gives output that cannot be linked to it. Paths keep their shape: each component
//! is replaced on its own, except the well-known ones in [`KEPT_COMPONENTS`], so
//! `pathname LIKE '/etc/%'` still means something. User and group ids stay numbers: root (0)
//! and nobody (65534) are kept, every other id becomes a number of 2^31 or more.
use std::collections::HashMap;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::sync::Mutex;

use anyhow::{Context as _, bail};
use hmac::{KeyInit as _, Mac as _};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Path components kept as they are: the layout of a Linux system, which tells an analyst
/// where a mark was (under /etc, in someone's .ssh) without saying whose or which file.
pub const KEPT_COMPONENTS: &[&str] = &[
    "",
    ".",
    "..",
    "bin",
    "boot",
    "dev",
    "etc",
    "home",
    "lib",
    "lib32",
    "lib64",
    "libx32",
    "media",
    "mnt",
    "opt",
    "proc",
    "root",
    "run",
    "sbin",
    "srv",
    "sys",
    "tmp",
    "usr",
    "var",
    "local",
    "share",
    "include",
    "src",
    "log",
    "cache",
    "spool",
    "libexec",
    "games",
    "x86_64-linux-gnu",
    "i386-linux-gnu",
    "aarch64-linux-gnu",
    "systemd",
    "system",
    "user",
    "ssh",
    ".ssh",
    ".config",
    ".local",
    ".cache",
    ".gnupg",
    "sudoers",
    "sudoers.d",
    "passwd",
    "shadow",
    "group",
    "gshadow",
    "hosts",
    "crontab",
    "cron.d",
    "cron.daily",
    "pam.d",
    "security",
    "ld.so.preload",
    "ld.so.conf",
    "ld.so.conf.d",
    "modules",
    "firmware",
    "kernel",
    "fd",
    "self",
    "shm",
    "pts",
    "mqueue",
    "cgroup",
    "fs",
    "debug",
    "tracing",
    "bpf",
    "docker",
    "containerd",
    "containers",
    "overlay2",
    "kubelet",
    "pods",
    "snap",
    "flatpak",
    "www",
    "html",
    "mail",
    "audit",
    "apt",
    "dpkg",
    "yum",
    "rpm",
    "init.d",
    "profile.d",
    "authorized_keys",
    "known_hosts",
    "id_rsa",
    "id_ed25519",
    "bashrc",
    ".bashrc",
    ".profile",
];

/// The fields `--pseudonymize` and `--redact` know.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub enum Field {
    /// Thread names (`comm`).
    Comm,
    /// Executable paths (`exe`).
    Exe,
    /// The pathname argument and where the marked object is (`pathname`, `pathname_raw`,
    /// `resolved_path`).
    Pathname,
    /// User ids (`uid`).
    Uid,
    /// Group ids (`gid`).
    Gid,
    /// Host names: the `host` column and every host name in the metadata.
    Host,
    /// Boot ids: the `boot_id` column and the metadata.
    BootId,
    /// Container ids (`container_id`).
    ContainerId,
    /// Command lines in the metadata (the export's own: paths and SQL in it).
    CommandLine,
}

impl Field {
    pub const ALL: [Field; 9] = [
        Field::Comm,
        Field::Exe,
        Field::Pathname,
        Field::Uid,
        Field::Gid,
        Field::Host,
        Field::BootId,
        Field::ContainerId,
        Field::CommandLine,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Field::Comm => "comm",
            Field::Exe => "exe",
            Field::Pathname => "pathname",
            Field::Uid => "uid",
            Field::Gid => "gid",
            Field::Host => "host",
            Field::BootId => "boot_id",
            Field::ContainerId => "container_id",
            Field::CommandLine => "command_line",
        }
    }

    /// What a pseudonym of this field starts with, so a reader sees at once what it stands for.
    fn prefix(self) -> &'static str {
        match self {
            Field::Comm => "comm-",
            Field::Host => "host-",
            Field::BootId => "boot-",
            Field::ContainerId => "ctr-",
            _ => "",
        }
    }
}

/// A key, loaded from or written to a file of 64 hex digits.
pub struct Pseudonymizer {
    key: [u8; 32],
    cache: Mutex<HashMap<(Field, Vec<u8>), String>>,
}

impl Pseudonymizer {
    /// Reads the key in `path`, or creates one there (mode 0600) when the file does not exist.
    /// Returns whether it was created.
    pub fn load_or_create(path: &Path) -> anyhow::Result<(Pseudonymizer, bool)> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok((Pseudonymizer::from_hex(text.trim(), path)?, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                getrandom::fill(&mut key)
                    .map_err(|e| anyhow::anyhow!("drawing a random key: {e}"))?;
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .with_context(|| format!("creating the key file {}", path.display()))?;
                writeln!(file, "{}", hex(&key))
                    .and_then(|()| file.sync_all())
                    .with_context(|| format!("writing the key file {}", path.display()))?;
                Ok((Pseudonymizer::new(key), true))
            }
            Err(e) => Err(e).with_context(|| format!("reading the key file {}", path.display())),
        }
    }

    fn from_hex(text: &str, path: &Path) -> anyhow::Result<Pseudonymizer> {
        let bytes = unhex(text).filter(|b| b.len() == 32).with_context(|| {
            format!(
                "{} does not hold a key (64 hex digits); remove it to have a new one created",
                path.display()
            )
        })?;
        let mut key = [0u8; 32];
        key.copy_from_slice(&bytes);
        Ok(Pseudonymizer::new(key))
    }

    pub fn new(key: [u8; 32]) -> Pseudonymizer {
        Pseudonymizer {
            key,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Tells which key made a set of pseudonyms without revealing it: two exports with the
    /// same fingerprint can be joined.
    pub fn fingerprint(&self) -> String {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(b"fantrace pseudonym key fingerprint\0")
            .iter()
            .zip(self.key)
            .map(|(a, b)| a ^ b)
            .collect::<Vec<u8>>();
        hex(&sha2::Sha256::digest(&digest)[..8])
    }

    fn mac(&self, field: Field, value: &[u8]) -> [u8; 32] {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(field.name().as_bytes());
        mac.update(&[0]);
        mac.update(value);
        mac.finalize().into_bytes().into()
    }

    /// A text value's pseudonym: the field's prefix and 12 hex digits (48 bits: collisions need
    /// some ten million distinct values of one field).
    pub fn text(&self, field: Field, value: &[u8]) -> String {
        let key = (field, value.to_vec());
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = cache.get(&key) {
            return p.clone();
        }
        let pseudonym = match field {
            Field::Exe | Field::Pathname => self.path(field, value),
            _ => format!("{}{}", field.prefix(), hex(&self.mac(field, value)[..6])),
        };
        if cache.len() > 1_000_000 {
            cache.clear();
        }
        cache.insert(key, pseudonym.clone());
        pseudonym
    }

    /// A path with every component not in [`KEPT_COMPONENTS`] replaced by its own pseudonym.
    fn path(&self, field: Field, value: &[u8]) -> String {
        value
            .split(|&b| b == b'/')
            .map(|component| match std::str::from_utf8(component) {
                Ok(c) if KEPT_COMPONENTS.contains(&c) => c.to_string(),
                _ => format!("p-{}", hex(&self.mac(field, component)[..6])),
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    /// A user or group id's pseudonym: 0 and 65534 stay, every other id maps into 2^31..2^32.
    pub fn id(&self, field: Field, id: u32) -> u32 {
        if id == 0 || id == 65534 {
            return id;
        }
        let mac = self.mac(field, &id.to_le_bytes());
        0x8000_0000 | (u32::from_le_bytes([mac[0], mac[1], mac[2], mac[3]]) & 0x7fff_ffff)
    }

    /// A command line with every argument that could name something replaced: paths
    /// component-wise, and the values of options that take SQL, names or ids.
    pub fn command_line(&self, line: &str) -> String {
        const VALUE_OPTIONS: &[&str] = &[
            "--where",
            "--comm",
            "--pid",
            "--uid",
            "--cgroup",
            "--exclude-comm",
            "--exclude-pid",
            "--exclude-uid",
            "--exclude-cgroup",
        ];
        let mut out = Vec::new();
        let mut hide_next = false;
        for arg in line.split(' ') {
            let shown = if hide_next {
                format!(
                    "arg-{}",
                    hex(&self.mac(Field::CommandLine, arg.as_bytes())[..6])
                )
            } else if arg.contains('/') {
                self.path(Field::Pathname, arg.as_bytes())
            } else {
                arg.to_string()
            };
            hide_next = VALUE_OPTIONS.contains(&arg);
            out.push(shown);
        }
        out.join(" ")
    }
}

pub use fantrace_schema::integrity::{hex, unhex};

/// Parses `comm,exe,...` or `all` into fields.
pub fn parse_fields(list: &str) -> anyhow::Result<Vec<Field>> {
    use clap::ValueEnum as _;
    let mut out = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if name == "all" {
            out.extend(Field::ALL);
            continue;
        }
        match Field::from_str(name, true) {
            Ok(f) => out.push(f),
            Err(_) => bail!(
                "{name:?} is not a field fantrace can pseudonymize or redact; the fields are {} \
                 (or all)",
                Field::ALL.map(Field::name).join(", ")
            ),
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_key_same_pseudonym_other_key_unlinkable() {
        let a = Pseudonymizer::new([7; 32]);
        let b = Pseudonymizer::new([8; 32]);
        let p = a.text(Field::Comm, b"sshd");
        assert!(p.starts_with("comm-") && p.len() == 17, "{p}");
        assert_eq!(p, Pseudonymizer::new([7; 32]).text(Field::Comm, b"sshd"));
        assert_ne!(p, b.text(Field::Comm, b"sshd"));
        assert_ne!(
            p,
            a.text(Field::Host, b"sshd"),
            "fields are separate domains"
        );
        assert_ne!(a.fingerprint(), b.fingerprint());
    }

    #[test]
    fn paths_keep_their_shape_and_well_known_components() {
        let p = Pseudonymizer::new([1; 32]);
        let alice = p.text(Field::Pathname, b"/home/alice/.ssh/authorized_keys");
        let parts: Vec<&str> = alice.split('/').collect();
        assert_eq!(parts[..3], ["", "home", parts[2]]);
        assert!(
            parts[2].starts_with("p-") && !alice.contains("alice"),
            "{alice}"
        );
        assert_eq!(parts[3..], [".ssh", "authorized_keys"]);
        // The same component is the same pseudonym wherever it appears.
        let other = p.text(Field::Pathname, b"/srv/alice");
        assert!(other.ends_with(parts[2]), "{other}");
        assert!(p.text(Field::Pathname, b"/etc/passwd") == "/etc/passwd");
        let raw = p.text(Field::Pathname, b"/tmp/bad-\xff\xfe");
        assert!(raw.starts_with("/tmp/p-"), "{raw}");
        assert_eq!(
            p.text(Field::Pathname, b"sub"),
            p.text(Field::Pathname, b"sub")
        );
    }

    #[test]
    fn ids_stay_numbers_and_root_stays_root() {
        let p = Pseudonymizer::new([2; 32]);
        assert_eq!(p.id(Field::Uid, 0), 0);
        assert_eq!(p.id(Field::Uid, 65534), 65534);
        let u = p.id(Field::Uid, 1000);
        assert!(u >= 0x8000_0000);
        assert_ne!(u, p.id(Field::Gid, 1000));
    }

    #[test]
    fn command_lines_lose_paths_and_filter_values() {
        let p = Pseudonymizer::new([3; 32]);
        let line = p.command_line(
            "fantrace-analyzer export -c /evidence/alice-laptop/capture --where pathname LIKE x",
        );
        assert!(
            !line.contains("alice-laptop") && line.contains("--where arg-"),
            "{line}"
        );
    }

    #[test]
    fn key_files_are_created_private_and_read_back() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        let (a, created) = Pseudonymizer::load_or_create(&path).unwrap();
        assert!(created);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (b, created) = Pseudonymizer::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(a.fingerprint(), b.fingerprint());
        std::fs::write(&path, "not a key").unwrap();
        let err = Pseudonymizer::load_or_create(&path)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("64 hex digits"), "{err}");
    }
}
