//! Signatures that let a responder prove an exported capture is what its exporter wrote:
//! ed25519 over each segment's metadata digest (which covers its data digest and every
//! `fantrace.*` key; see `fantrace_schema::integrity`). Keys are files of hex digits: the
//! secret one (mode 0600) stays with the exporter, the `.pub` one travels with the capture.
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};

use crate::share::pseudonym::{hex, unhex};

/// Creates a new key pair: `path` (secret, 0600) and `path.pub`. Refuses to overwrite.
pub fn generate(path: &Path) -> anyhow::Result<PathBuf> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("drawing a random key: {e}"))?;
    let key = SigningKey::from_bytes(&seed);
    let public = public_path(path);
    for (file, text, mode) in [
        (path.to_path_buf(), hex(&seed), 0o600),
        (public.clone(), hex(key.verifying_key().as_bytes()), 0o644),
    ] {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&file)
            .with_context(|| format!("creating {} (it must not exist yet)", file.display()))?;
        writeln!(f, "{text}")
            .and_then(|()| f.sync_all())
            .with_context(|| format!("writing {}", file.display()))?;
    }
    Ok(public)
}

pub fn public_path(secret: &Path) -> PathBuf {
    let mut name = secret.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

fn read_hex32(path: &Path, what: &str) -> anyhow::Result<[u8; 32]> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the {what} {}", path.display()))?;
    let bytes = unhex(text.trim())
        .filter(|b| b.len() == 32)
        .with_context(|| {
            format!(
                "{} is not an ed25519 {what} (64 hex digits); make a key pair with \
             `fantrace-analyzer keygen FILE`",
                path.display()
            )
        })?;
    let mut out = [0u8; 32];
    out.copy_from_slice(&bytes);
    Ok(out)
}

pub struct Signer(SigningKey);

impl Signer {
    pub fn load(path: &Path) -> anyhow::Result<Signer> {
        Ok(Signer(SigningKey::from_bytes(&read_hex32(
            path,
            "secret key",
        )?)))
    }

    pub fn public_hex(&self) -> String {
        hex(self.0.verifying_key().as_bytes())
    }

    /// The signature (hex) of a metadata digest.
    pub fn sign(&self, digest_hex: &str) -> String {
        hex(&self.0.sign(digest_hex.as_bytes()).to_bytes())
    }
}

pub struct PublicKey(VerifyingKey);

impl PublicKey {
    pub fn load(path: &Path) -> anyhow::Result<PublicKey> {
        let bytes = read_hex32(path, "public key")?;
        VerifyingKey::from_bytes(&bytes)
            .map(PublicKey)
            .map_err(|e| {
                anyhow::anyhow!("{} is not a valid ed25519 public key: {e}", path.display())
            })
    }

    pub fn hex(&self) -> String {
        hex(self.0.as_bytes())
    }

    /// Whether `signature_hex` is this key's signature of `digest_hex`.
    pub fn check(&self, digest_hex: &str, signature_hex: &str) -> anyhow::Result<()> {
        let bytes = unhex(signature_hex)
            .filter(|b| b.len() == 64)
            .context("the signature is not 128 hex digits")?;
        let mut sig = [0u8; 64];
        sig.copy_from_slice(&bytes);
        if self
            .0
            .verify(digest_hex.as_bytes(), &Signature::from_bytes(&sig))
            .is_err()
        {
            bail!("the signature does not match this key and digest");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_checks_only_with_its_key_and_digest() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("k");
        let public = generate(&secret).unwrap();
        assert!(generate(&secret).is_err(), "never overwrites a key");
        let signer = Signer::load(&secret).unwrap();
        let key = PublicKey::load(&public).unwrap();
        assert_eq!(key.hex(), signer.public_hex());
        let sig = signer.sign("abc");
        key.check("abc", &sig).unwrap();
        assert!(key.check("abd", &sig).is_err());
        let other = dir.path().join("other");
        let other_key = PublicKey::load(&generate(&other).unwrap()).unwrap();
        assert!(other_key.check("abc", &sig).is_err());
    }
}
