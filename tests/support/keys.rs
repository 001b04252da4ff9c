//! Test keys: generated once per test process and written in whatever format a test needs.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use openssl::ec::{EcGroup, EcKey};
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;

/// A generated key pair.
#[derive(Clone)]
pub struct TestKey {
    pub name: &'static str,
    pub key: PKey<Private>,
}

fn cached(
    cell: &'static OnceLock<TestKey>,
    name: &'static str,
    make: fn() -> PKey<Private>,
) -> TestKey {
    cell.get_or_init(|| TestKey { name, key: make() }).clone()
}

pub fn rsa2048() -> TestKey {
    static K: OnceLock<TestKey> = OnceLock::new();
    cached(&K, "rsa2048", || {
        PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap()
    })
}
pub fn rsa2048_b() -> TestKey {
    static K: OnceLock<TestKey> = OnceLock::new();
    cached(&K, "rsa2048b", || {
        PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap()
    })
}
pub fn rsa4096() -> TestKey {
    static K: OnceLock<TestKey> = OnceLock::new();
    cached(&K, "rsa4096", || {
        PKey::from_rsa(Rsa::generate(4096).unwrap()).unwrap()
    })
}
fn ec(nid: Nid) -> PKey<Private> {
    PKey::from_ec_key(EcKey::generate(&EcGroup::from_curve_name(nid).unwrap()).unwrap()).unwrap()
}
pub fn p256() -> TestKey {
    static K: OnceLock<TestKey> = OnceLock::new();
    cached(&K, "p256", || ec(Nid::X9_62_PRIME256V1))
}
pub fn p384() -> TestKey {
    static K: OnceLock<TestKey> = OnceLock::new();
    cached(&K, "p384", || ec(Nid::SECP384R1))
}
pub fn p521() -> TestKey {
    static K: OnceLock<TestKey> = OnceLock::new();
    cached(&K, "p521", || ec(Nid::SECP521R1))
}

impl TestKey {
    pub fn public_pem(&self) -> Vec<u8> {
        self.key.public_key_to_pem().unwrap()
    }
    pub fn pkcs8_pem(&self) -> Vec<u8> {
        self.key.private_key_to_pem_pkcs8().unwrap()
    }
    /// PKCS#1 for RSA, SEC1 for EC ("traditional" PEM).
    pub fn traditional_pem(&self) -> Vec<u8> {
        match self.key.rsa() {
            Ok(r) => r.private_key_to_pem().unwrap(),
            Err(_) => self.key.ec_key().unwrap().private_key_to_pem().unwrap(),
        }
    }
    pub fn pkcs8_der(&self) -> Vec<u8> {
        self.key.private_key_to_pkcs8().unwrap()
    }
    pub fn traditional_der(&self) -> Vec<u8> {
        match self.key.rsa() {
            Ok(r) => r.private_key_to_der().unwrap(),
            Err(_) => self.key.ec_key().unwrap().private_key_to_der().unwrap(),
        }
    }

    /// Writes the public key as PEM to `dir/<name>.pub.pem` and returns `jwe:<path>`.
    pub fn jwe_recipient(&self, dir: &Path) -> String {
        let p = dir.join(format!("{}.pub.pem", self.name));
        fs::write(&p, self.public_pem()).unwrap();
        format!("jwe:{}", p.display())
    }

    /// Writes `bytes` as `dir/<file>` with mode 0600 and returns the path.
    pub fn write_private(dir: &Path, file: &str, bytes: &[u8]) -> PathBuf {
        fs::create_dir_all(dir).unwrap();
        let p = dir.join(file);
        fs::write(&p, bytes).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        p
    }

    /// A keys directory holding just this key as PKCS#8 PEM.
    pub fn keys_dir(&self, parent: &Path) -> PathBuf {
        let dir = parent.join(format!("keys-{}", self.name));
        Self::write_private(&dir, "key.pem", &self.pkcs8_pem());
        dir
    }
}
