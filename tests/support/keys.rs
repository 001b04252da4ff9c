//! Test keys: generated once per test process and written in whatever format a test needs.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::SubjectKeyIdentifier;
use openssl::x509::{X509NameBuilder, X509};

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

/// A test certificate authority: issues the X.509 certificates `pkcs7` recipients are named by.
pub struct TestCa {
    pub key: PKey<Private>,
    pub cert: X509,
}

/// The CA of every test certificate (`O=ctd-decoder, CN=ctd-decoder test CA`), made once.
pub fn ca() -> &'static TestCa {
    static CA: OnceLock<TestCa> = OnceLock::new();
    CA.get_or_init(|| {
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let cert = build_cert(&key, "ctd-decoder test CA", 1, None);
        TestCa { key, cert }
    })
}

impl TestCa {
    /// A certificate for `key` (`CN=<cn>`, `serial`), valid from now for a week, with a
    /// subject key identifier. The same arguments always name the same recipient.
    pub fn issue(&self, key: &TestKey, cn: &str, serial: u32) -> X509 {
        build_cert(&key.key, cn, serial, Some(self))
    }
}

fn build_cert(key: &PKey<Private>, cn: &str, serial: u32, issuer: Option<&TestCa>) -> X509 {
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("O", "ctd-decoder").unwrap();
    name.append_entry_by_text("CN", cn).unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(issuer.map_or(&*name, |ca| ca.cert.subject_name()))
        .unwrap();
    b.set_pubkey(key).unwrap();
    let serial = BigNum::from_u32(serial).unwrap().to_asn1_integer().unwrap();
    b.set_serial_number(&serial).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(7).unwrap())
        .unwrap();
    let ski = SubjectKeyIdentifier::new()
        .build(&b.x509v3_context(None, None))
        .unwrap();
    b.append_extension(ski).unwrap();
    let signer = issuer.map_or(key, |ca| &ca.key);
    b.sign(signer, MessageDigest::sha256()).unwrap();
    b.build()
}

/// Writes `cert` as PEM to `dir/<file>` and returns `pkcs7:<path>` (skopeo's recipient syntax).
pub fn pkcs7_recipient(cert: &X509, dir: &Path, file: &str) -> String {
    fs::create_dir_all(dir).unwrap();
    let p = dir.join(file);
    fs::write(&p, cert.to_pem().unwrap()).unwrap();
    format!("pkcs7:{}", p.display())
}
