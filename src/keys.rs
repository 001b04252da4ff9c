//! The decryption keys of one run: from the keys directories and from the payload.
//!
//! Sources, in order (imgcrypt's order: directory first, then payload):
//! * every file under each `--decryption-keys-path` ([`dir`]), classified by content
//!   ([`parse`]): private keys (PEM/DER PKCS#8, PKCS#1, SEC1, encrypted PKCS#8, legacy encrypted
//!   PEM, JWK), X.509 certificates, OpenPGP secret keys;
//! * the payload's `privkeys` (with `privkeys-passwords` by index), `x509s` and `gpg-privatekeys`
//!   (with `gpg-privatekeys-passwords` by index — by *payload* index, not shifted by the
//!   directory's keys as imgcrypt's combined list does).
//!
//! Password files: a key file `NAME` may have a password in `NAME.password` beside it (the
//! whole file, one trailing newline removed). That file is then not a key itself.
//!
//! Nothing here fails the run: what cannot be used is recorded in [`KeyRing::skipped`], and
//! reported only if no key fits the layer.

pub mod dir;
mod fast;
mod jwk;
pub mod parse;

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Private};
use openssl::x509::X509;

use crate::payload::DecryptParams;
use crate::secret::SecretBytes;
use parse::Item;

/// Suffix of a password file.
pub const PASSWORD_SUFFIX: &str = ".password";

/// Where a key came from, for messages (never the key itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A file under a keys directory.
    File(PathBuf),
    /// `Parameters[param][index]` of the payload.
    Payload {
        /// Parameter name.
        param: &'static str,
        /// Index in the list.
        index: usize,
    },
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::File(p) => write!(f, "{}", p.display()),
            KeySource::Payload { param, index } => write!(f, "payload {param}[{index}]"),
        }
    }
}

/// An RSA or EC private key.
pub struct PrivateKey {
    /// Origin.
    pub source: KeySource,
    /// The key (OpenSSL frees it with `BN_clear_free`).
    pub key: PKey<Private>,
}

impl PrivateKey {
    /// `RSA-2048`, `EC P-384`, …
    pub fn describe(&self) -> String {
        describe_key(&self.key)
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey({}, {})", self.describe(), self.source)
    }
}

/// `RSA-2048`, `EC P-384`, … for any key.
pub fn describe_key<T: openssl::pkey::HasPublic>(key: &PKey<T>) -> String {
    match key.id() {
        Id::RSA => format!("RSA-{}", key.bits()),
        Id::EC => match key.ec_key().ok().and_then(|k| k.group().curve_name()) {
            Some(Nid::X9_62_PRIME256V1) => "EC P-256".into(),
            Some(Nid::SECP384R1) => "EC P-384".into(),
            Some(Nid::SECP521R1) => "EC P-521".into(),
            _ => "EC".into(),
        },
        _ => "key".into(),
    }
}

/// An X.509 certificate (selects PKCS#7 recipients).
pub struct Certificate {
    /// Origin.
    pub source: KeySource,
    /// The certificate.
    pub cert: X509,
}

/// OpenPGP secret key material, parsed by the `pgp` key wrapper.
pub struct OpenPgpKey {
    /// Origin.
    pub source: KeySource,
    /// Binary or armored keyring bytes.
    pub bytes: SecretBytes,
    /// Passphrase for protected secret keys.
    pub password: Option<SecretBytes>,
}

/// How much a skipped entry matters to an operator whose layer did not decrypt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Relevance {
    /// Key material that could not be used: likely the key that was meant to work.
    Key,
    /// A file that could not be opened or read.
    Unreadable,
    /// An entry deliberately not read (FIFO, device, too large, dangling symlink, limits).
    NotRead,
    /// Content that is not key material (a README).
    NotAKey,
}

/// Something that could not be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Origin.
    pub source: KeySource,
    /// Reason.
    pub reason: String,
    /// How much it matters.
    pub relevance: Relevance,
}

/// Most private-key operations (RSA decryptions, ECDH derivations, PKESK decryptions) one run
/// may spend, across every wrapped key of every scheme. A real layer needs a handful; a manifest
/// listing thousands of recipients sized for the node's keys would otherwise cost seconds of
/// CPU per pull (each RSA-2048 operation is ~0.3 ms, RSA-4096 ~2 ms).
pub const MAX_PRIVATE_KEY_OPERATIONS: u32 = 1024;

/// All keys of one run.
pub struct KeyRing {
    /// RSA and EC private keys.
    pub private_keys: Vec<PrivateKey>,
    /// Certificates.
    pub certificates: Vec<Certificate>,
    /// OpenPGP secret keys.
    pub openpgp: Vec<OpenPgpKey>,
    /// What was not usable.
    pub skipped: Vec<Skipped>,
    /// Advice that does not stop decryption (loose file permissions).
    pub warnings: Vec<String>,
    /// Number of files read from the keys directories.
    pub files_read: usize,
    /// Private-key operations left in this run's budget ([`MAX_PRIVATE_KEY_OPERATIONS`]).
    operations_left: std::sync::atomic::AtomicU32,
}

impl Default for KeyRing {
    fn default() -> Self {
        Self {
            private_keys: Vec::new(),
            certificates: Vec::new(),
            openpgp: Vec::new(),
            skipped: Vec::new(),
            warnings: Vec::new(),
            files_read: 0,
            operations_left: std::sync::atomic::AtomicU32::new(MAX_PRIVATE_KEY_OPERATIONS),
        }
    }
}

/// The message of an unwrapper that ran out of the run's private-key operations.
pub const BUDGET_EXHAUSTED: &str =
    "the layer's wrapped keys call for more private-key operations than the 1024 one layer may cost; refusing the rest (a manifest with that many recipients for the node's keys is not from a normal encrypter)";

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("private_keys", &self.private_keys)
            .field("certificates", &self.certificates.len())
            .field("openpgp", &self.openpgp.len())
            .field("skipped", &self.skipped)
            .finish()
    }
}

impl KeyRing {
    /// Takes one private-key operation from the run's budget; `false` once it is spent.
    pub fn spend_operation(&self) -> bool {
        use std::sync::atomic::Ordering;
        self.operations_left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(1)
            })
            .is_ok()
    }

    /// Refills the budget: for a key ring reused across independent runs (the fuzz targets).
    pub fn reset_operation_budget(&self) {
        self.operations_left.store(
            MAX_PRIVATE_KEY_OPERATIONS,
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Loads every key from `dirs` and `params`.
    pub fn load(dirs: &[PathBuf], params: &DecryptParams, limits: &dir::Limits) -> KeyRing {
        let mut ring = KeyRing::default();
        for d in dirs {
            ring.load_dir(d, limits);
        }
        ring.load_params(params);
        ring
    }

    /// Whether there is nothing at all to decrypt with.
    pub fn is_empty(&self) -> bool {
        self.private_keys.is_empty() && self.openpgp.is_empty()
    }

    fn load_dir(&mut self, root: &Path, limits: &dir::Limits) {
        let walk = dir::walk(root, limits);
        for s in walk.skipped {
            let relevance = if s.reason.starts_with("cannot be") {
                Relevance::Unreadable
            } else {
                Relevance::NotRead
            };
            self.skipped.push(Skipped {
                source: KeySource::File(s.path),
                reason: s.reason,
                relevance,
            });
        }
        self.files_read += walk.files.len();
        let by_path: HashMap<&Path, usize> = walk
            .files
            .iter()
            .enumerate()
            .map(|(i, f)| (f.path.as_path(), i))
            .collect();
        for file in &walk.files {
            if let Some(stem) = strip_suffix(&file.path, PASSWORD_SUFFIX) {
                if by_path.contains_key(stem.as_path()) {
                    continue;
                }
            }
            let password = with_suffix(&file.path, PASSWORD_SUFFIX)
                .and_then(|p| by_path.get(p.as_path()).map(|&i| &walk.files[i]))
                .map(|f| password_from_file(&f.bytes));
            let source = KeySource::File(file.path.clone());
            let before = self.private_keys.len() + self.openpgp.len();
            self.add_items(&source, &file.bytes, password.as_ref());
            let usable = self.private_keys.len() + self.openpgp.len() > before;
            if usable && file.mode & 0o044 != 0 {
                self.warnings.push(format!(
                    "key file {} is readable by group or others (mode {:04o}); chmod 600 it \
                     (on Kubernetes, set the Secret volume's defaultMode to 0400)",
                    file.path.display(),
                    file.mode & 0o7777
                ));
            }
        }
    }

    fn load_params(&mut self, params: &DecryptParams) {
        let passwords = params.get("privkeys-passwords");
        for (index, key) in params.get("privkeys").iter().enumerate() {
            let source = KeySource::Payload {
                param: "privkeys",
                index,
            };
            let Some(bytes) = key else {
                self.skip(source, "null entry");
                continue;
            };
            let password = passwords.get(index).and_then(|p| p.clone());
            self.add_items(&source, bytes.expose(), password.as_ref());
        }
        for (index, cert) in params.get("x509s").iter().enumerate() {
            let source = KeySource::Payload {
                param: "x509s",
                index,
            };
            match cert {
                Some(bytes) => self.add_items(&source, bytes.expose(), None),
                None => self.skip(source, "null entry"),
            }
        }
        let gpg_passwords = params.get("gpg-privatekeys-passwords");
        for (index, key) in params.get("gpg-privatekeys").iter().enumerate() {
            let source = KeySource::Payload {
                param: "gpg-privatekeys",
                index,
            };
            match key {
                Some(bytes) if !bytes.is_empty() => self.openpgp.push(OpenPgpKey {
                    source,
                    bytes: bytes.clone(),
                    password: gpg_passwords.get(index).and_then(|p| p.clone()),
                }),
                _ => self.skip(source, "empty entry"),
            }
        }
        if !params.get("pkcs11-yamls").is_empty() {
            self.skip(
                KeySource::Payload {
                    param: "pkcs11-yamls",
                    index: 0,
                },
                "PKCS#11 keys are not supported by this decoder",
            );
        }
    }

    fn skip(&mut self, source: KeySource, reason: &str) {
        self.skip_as(source, reason, Relevance::Key);
    }

    fn skip_as(&mut self, source: KeySource, reason: &str, relevance: Relevance) {
        self.skipped.push(Skipped {
            source,
            reason: reason.to_string(),
            relevance,
        });
    }

    fn add_items(&mut self, source: &KeySource, bytes: &[u8], password: Option<&SecretBytes>) {
        for item in parse::parse(bytes, password.map(SecretBytes::expose)) {
            match item {
                Item::Private(key) => self.private_keys.push(PrivateKey {
                    source: source.clone(),
                    key,
                }),
                Item::Certificate(cert) => self.certificates.push(Certificate {
                    source: source.clone(),
                    cert,
                }),
                Item::OpenPgp(bytes) => self.openpgp.push(OpenPgpKey {
                    source: source.clone(),
                    bytes: SecretBytes::new(bytes),
                    password: password.cloned(),
                }),
                Item::Unusable(reason) => self.skip(source.clone(), &reason),
                Item::NotAKey(reason) => self.skip_as(source.clone(), &reason, Relevance::NotAKey),
            }
        }
    }
}

fn strip_suffix(path: &Path, suffix: &str) -> Option<PathBuf> {
    let name = path.file_name()?.to_str()?;
    let stem = name.strip_suffix(suffix)?;
    if stem.is_empty() {
        return None;
    }
    Some(path.with_file_name(stem))
}

fn with_suffix(path: &Path, suffix: &str) -> Option<PathBuf> {
    let mut name: OsString = path.file_name()?.to_owned();
    name.push(suffix);
    Some(path.with_file_name(name))
}

/// The whole file, minus one trailing `\n` or `\r\n`.
fn password_from_file(bytes: &[u8]) -> SecretBytes {
    let trimmed = bytes
        .strip_suffix(b"\r\n")
        .or_else(|| bytes.strip_suffix(b"\n"))
        .unwrap_or(bytes);
    SecretBytes::new(trimmed.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::rsa::Rsa;
    use openssl::symm::Cipher;
    use std::collections::BTreeMap;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn password_files_unlock_their_key_and_are_not_keys() {
        let tmp = tempfile::tempdir().unwrap();
        let rsa = Rsa::generate(2048).unwrap();
        let pem = rsa
            .private_key_to_pem_passphrase(Cipher::aes_128_cbc(), b"pw")
            .unwrap();
        fs::write(tmp.path().join("k.pem"), &pem).unwrap();
        fs::write(tmp.path().join("k.pem.password"), b"pw\n").unwrap();
        fs::write(tmp.path().join("locked.pem"), &pem).unwrap();
        for f in ["k.pem", "k.pem.password", "locked.pem"] {
            fs::set_permissions(tmp.path().join(f), fs::Permissions::from_mode(0o600)).unwrap();
        }
        let ring = KeyRing::load(
            &[tmp.path().to_path_buf()],
            &DecryptParams::default(),
            &dir::Limits::default(),
        );
        assert_eq!(ring.private_keys.len(), 1);
        assert!(ring.private_keys[0].source.to_string().ends_with("k.pem"));
        assert_eq!(ring.skipped.len(), 1, "{:?}", ring.skipped);
        assert!(ring.skipped[0].reason.contains("no password"));
        assert!(ring.warnings.is_empty(), "{:?}", ring.warnings);
    }

    #[test]
    fn payload_keys_use_passwords_by_index_and_loose_modes_warn() {
        let tmp = tempfile::tempdir().unwrap();
        let rsa = Rsa::generate(2048).unwrap();
        fs::write(
            tmp.path().join("open.pem"),
            rsa.private_key_to_pem().unwrap(),
        )
        .unwrap();
        fs::set_permissions(
            tmp.path().join("open.pem"),
            fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let locked = rsa
            .private_key_to_pem_passphrase(Cipher::aes_128_cbc(), b"pw")
            .unwrap();
        let mut map = BTreeMap::new();
        map.insert(
            "privkeys".to_string(),
            vec![
                Some(SecretBytes::new(locked.clone())),
                Some(SecretBytes::new(locked)),
                None,
            ],
        );
        map.insert(
            "privkeys-passwords".to_string(),
            vec![None, Some(SecretBytes::new(b"pw".to_vec()))],
        );
        map.insert(
            "pkcs11-yamls".to_string(),
            vec![Some(SecretBytes::new(b"x".to_vec()))],
        );
        let params = DecryptParams::from_map(map);
        let ring = KeyRing::load(
            &[tmp.path().to_path_buf()],
            &params,
            &dir::Limits::default(),
        );
        let sources: Vec<String> = ring
            .private_keys
            .iter()
            .map(|k| k.source.to_string())
            .collect();
        assert_eq!(sources.len(), 2, "{sources:?}");
        assert!(sources[0].ends_with("open.pem"));
        assert_eq!(sources[1], "payload privkeys[1]");
        assert_eq!(ring.private_keys[1].describe(), "RSA-2048");
        let skipped: Vec<String> = ring
            .skipped
            .iter()
            .map(|s| format!("{}: {}", s.source, s.reason))
            .collect();
        assert!(
            skipped
                .iter()
                .any(|s| s.starts_with("payload privkeys[0]: encrypted")),
            "{skipped:?}"
        );
        assert!(
            skipped
                .iter()
                .any(|s| s.starts_with("payload privkeys[2]: null")),
            "{skipped:?}"
        );
        assert!(skipped.iter().any(|s| s.contains("PKCS#11")), "{skipped:?}");
        assert_eq!(ring.warnings.len(), 1);
        assert!(
            ring.warnings[0].contains("mode 0644"),
            "{}",
            ring.warnings[0]
        );
    }
}
