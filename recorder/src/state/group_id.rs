//! Group ids: one number per fanotify group, the same on every row about it whichever fd or
//! process it is seen through, stable for the boot, and never the kernel's address of it.
//!
//! An id is a keyed hash (HMAC-SHA-256, first 48 bits) of the group's address and the time it
//! was made. The key is random, made by the first recorder of a boot and kept root-only in
//! `/run/fantrace` (tmpfs, gone at the next boot), so ids cannot be turned back into kernel
//! addresses. The time tells apart two groups the kernel placed at one address in turn; a
//! recorder notes each group's time there, so one that starts later gives a group it finds the
//! id the earlier one gave it. A group made while no recorder ran has no time noted and gets
//! time 0.
use std::collections::HashMap;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::PathBuf;

use hmac::{KeyInit as _, Mac as _};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Where ids are kept for the boot.
const DIR: &str = "/run/fantrace";

pub struct GroupIds {
    key: [u8; 32],
    /// Keyed hash of a group's address -> the boot time (ns) it was made at.
    born: HashMap<u64, u64>,
    file: Option<PathBuf>,
    dirty: bool,
}

impl GroupIds {
    /// The boot's key and the times noted so far; a fresh key, kept in memory only, when
    /// `/run/fantrace` cannot be written (ids then hold for this recorder's run).
    pub fn open(boot_id: &str) -> GroupIds {
        let file = (!boot_id.is_empty()
            && boot_id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'))
        .then(|| PathBuf::from(DIR).join(format!("groups-{boot_id}")));
        if let Some(found) = file.as_deref().and_then(|f| read(f).ok()) {
            return GroupIds { file, ..found };
        }
        let mut key = [0u8; 32];
        if getrandom::fill(&mut key).is_err() {
            // Without a random key ids are still ids, only guessable: the time of day keys them.
            key[..16].copy_from_slice(
                &std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos()
                    .to_le_bytes(),
            );
        }
        let mut ids = GroupIds {
            key,
            born: HashMap::new(),
            file,
            dirty: true,
        };
        ids.save();
        ids
    }

    fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    fn address_hash(&self, address: u64) -> u64 {
        let digest = self.mac(&[b"address", &address.to_le_bytes()]);
        u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
    }

    fn id_of(&self, address: u64, born_ns: u64) -> u64 {
        let digest = self.mac(&[b"group", &address.to_le_bytes(), &born_ns.to_le_bytes()]);
        u64::from_le_bytes(digest[..8].try_into().expect("8 bytes")) >> 16
    }

    /// The id of a group made at `born_ns` (its `fanotify_init`), which from now on is the one
    /// at `address`.
    pub fn created(&mut self, address: u64, born_ns: u64) -> u64 {
        let slot = self.address_hash(address);
        self.born.insert(slot, born_ns);
        self.dirty = true;
        self.id_of(address, born_ns)
    }

    /// The id of the group at `address`, whose making was not seen: the time an earlier
    /// recorder noted, or 0. Also whether a time was noted.
    pub fn found(&mut self, address: u64) -> (u64, Option<u64>) {
        let slot = self.address_hash(address);
        let born = self.born.get(&slot).copied();
        if born.is_none() {
            self.born.insert(slot, 0);
            self.dirty = true;
        }
        (
            self.id_of(address, born.unwrap_or(0)),
            born.filter(|&b| b != 0),
        )
    }

    /// The group at `address` is gone; the address may hold another one next.
    pub fn ended(&mut self, address: u64) {
        if self.born.remove(&self.address_hash(address)).is_some() {
            self.dirty = true;
        }
    }

    /// Writes the noted times if they changed (root-only, replaced atomically). Failing only
    /// costs a later recorder the ids of groups it finds.
    pub fn save(&mut self) {
        if !self.dirty {
            return;
        }
        let Some(path) = self.file.clone() else {
            return;
        };
        let mut text = hex(&self.key);
        text.push('\n');
        for (slot, born) in &self.born {
            text.push_str(&format!("{slot:016x} {born}\n"));
        }
        let write = || -> std::io::Result<()> {
            std::fs::DirBuilder::new()
                .mode(0o700)
                .recursive(true)
                .create(DIR)?;
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(text.as_bytes())?;
            std::fs::rename(&tmp, &path)
        };
        match write() {
            Ok(()) => self.dirty = false,
            Err(e) => tracing::debug!("not keeping group ids in {}: {e}", path.display()),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn read(path: &std::path::Path) -> std::io::Result<GroupIds> {
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "malformed group id file");
    let text = std::fs::read_to_string(path)?;
    let mut lines = text.lines();
    let key_hex = lines.next().ok_or_else(bad)?;
    let mut key = [0u8; 32];
    if key_hex.len() != 64 {
        return Err(bad());
    }
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&key_hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    let mut born = HashMap::new();
    for line in lines {
        let (slot, time) = line.split_once(' ').ok_or_else(bad)?;
        born.insert(
            u64::from_str_radix(slot, 16).map_err(|_| bad())?,
            time.parse().map_err(|_| bad())?,
        );
    }
    Ok(GroupIds {
        key,
        born,
        file: None,
        dirty: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids_in(dir: &std::path::Path) -> GroupIds {
        let mut ids = GroupIds::open("");
        ids.file = Some(dir.join("groups"));
        ids.dirty = true;
        ids
    }

    #[test]
    fn one_group_one_id_and_a_reused_address_another() {
        let dir = tempfile::tempdir().unwrap();
        let mut ids = ids_in(dir.path());
        let first = ids.created(0xffff_8880_1234_5600, 1_000);
        assert_eq!(ids.found(0xffff_8880_1234_5600).0, first);
        assert!(first < 1 << 48, "48-bit ids: {first}");
        ids.ended(0xffff_8880_1234_5600);
        let second = ids.created(0xffff_8880_1234_5600, 2_000);
        assert_ne!(first, second, "a new group at the same address");
    }

    #[test]
    fn a_later_recorder_gives_a_group_the_same_id() {
        let dir = tempfile::tempdir().unwrap();
        let mut ids = ids_in(dir.path());
        let made = ids.created(0xffff_8880_0000_1000, 42);
        let (unseen, noted) = ids.found(0xffff_8880_0000_2000);
        assert_eq!(noted, None);
        ids.save();
        let text = std::fs::read_to_string(dir.path().join("groups")).unwrap();
        assert!(
            !text.contains("ffff88800000"),
            "no kernel address is written: {text}"
        );
        let mut later = read(&dir.path().join("groups")).unwrap();
        assert_eq!(later.found(0xffff_8880_0000_1000), (made, Some(42)));
        assert_eq!(later.found(0xffff_8880_0000_2000).0, unseen);
    }
}
