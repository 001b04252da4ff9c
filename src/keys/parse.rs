//! Recognising what a key file holds.
//!
//! One file may hold several things (a PEM bundle of a key and its certificate). Everything that
//! is recognised but cannot be used — a public key, an encrypted key without a password, an
//! Ed25519 key — comes back as [`Item::Unusable`] with a reason for the operator; nothing here is
//! fatal. Private-key parsing is OpenSSL's (PKCS#8, PKCS#1, SEC1, encrypted PKCS#8, legacy
//! encrypted PEM); the password callback never prompts.

use openssl::ec::EcKey;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::X509;

use super::jwk::{self, JwkOutcome};
use crate::der::{self, tag};

/// Smallest RSA modulus accepted. NIST has disallowed RSA-1024 since 2013 and josekit refuses
/// smaller keys for RSA-OAEP.
pub const MIN_RSA_BITS: u32 = 2048;

/// At most this many PEM blocks are looked at in one file.
const MAX_PEM_BLOCKS: usize = 64;

/// One thing found in a key file.
pub enum Item {
    /// An RSA or EC private key usable for unwrapping.
    Private(PKey<Private>),
    /// An X.509 certificate (PKCS#7 recipients are picked by certificate).
    Certificate(X509),
    /// OpenPGP key material (binary or armored), parsed by the `pgp` key wrapper.
    OpenPgp(Vec<u8>),
    /// A key, certificate or keyring that cannot be used, with the reason (a public key, an
    /// encrypted key without its password, an unsupported key type).
    Unusable(String),
    /// Not key material at all (a README, an empty file), with what it looked like.
    NotAKey(String),
}

impl std::fmt::Debug for Item {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Item::Private(k) => write!(f, "Private({:?}, {} bits)", k.id(), k.bits()),
            Item::Certificate(_) => f.write_str("Certificate"),
            Item::OpenPgp(b) => write!(f, "OpenPgp({} bytes)", b.len()),
            Item::Unusable(r) => write!(f, "Unusable({r})"),
            Item::NotAKey(r) => write!(f, "NotAKey({r})"),
        }
    }
}

/// Classifies `bytes`. `password` decrypts encrypted private keys.
pub fn parse(bytes: &[u8], password: Option<&[u8]>) -> Vec<Item> {
    let trimmed = trim_start(bytes);
    if trimmed.is_empty() {
        return vec![Item::NotAKey("empty file".into())];
    }
    if trimmed.starts_with(b"{") {
        return match jwk::parse(trimmed) {
            Some(outcomes) => outcomes
                .into_iter()
                .map(|o| match o {
                    JwkOutcome::Private(k) => check_private(k),
                    JwkOutcome::Unusable(r) => Item::Unusable(r),
                })
                .collect(),
            None => vec![Item::NotAKey("JSON that is not a JWK".into())],
        };
    }
    if contains(bytes, b"-----BEGIN ") {
        return parse_pem(bytes, password);
    }
    parse_der(bytes, password)
}

fn trim_start(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    &bytes[start..]
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A PEM block: its label and the full text from `-----BEGIN` to the end of `-----END ...-----`.
#[derive(Debug, PartialEq, Eq)]
pub struct PemBlock<'a> {
    /// The label, e.g. `PRIVATE KEY`.
    pub label: &'a str,
    /// The whole block, armour lines included.
    pub text: &'a [u8],
}

/// Splits `bytes` into PEM blocks (at most [`MAX_PEM_BLOCKS`]); text between blocks is ignored.
pub fn pem_blocks(bytes: &[u8]) -> Vec<PemBlock<'_>> {
    let mut out = Vec::new();
    let mut rest = bytes;
    let mut offset = 0;
    while out.len() < MAX_PEM_BLOCKS {
        let Some(begin) = find(rest, b"-----BEGIN ") else {
            break;
        };
        let after = &rest[begin + 11..];
        let Some(label_end) = find(after, b"-----") else {
            break;
        };
        let Ok(label) = std::str::from_utf8(&after[..label_end]) else {
            break;
        };
        if label.contains('\n') || label.len() > 64 {
            rest = &rest[begin + 11..];
            offset += begin + 11;
            continue;
        }
        let end_marker = format!("-----END {label}-----");
        let Some(end) = find(after, end_marker.as_bytes()) else {
            break;
        };
        let block_start = offset + begin;
        let block_end = offset + begin + 11 + end + end_marker.len();
        out.push(PemBlock {
            label,
            text: &bytes[block_start..block_end],
        });
        offset = block_end;
        rest = &bytes[block_end..];
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn parse_pem(bytes: &[u8], password: Option<&[u8]>) -> Vec<Item> {
    let blocks = pem_blocks(bytes);
    if blocks.is_empty() {
        return vec![Item::NotAKey("PEM armour without a complete block".into())];
    }
    let mut items = Vec::new();
    for block in blocks {
        let item = match block.label {
            "PRIVATE KEY" | "RSA PRIVATE KEY" | "EC PRIVATE KEY" | "ENCRYPTED PRIVATE KEY" => {
                pem_private_key(&block, password)
            }
            "CERTIFICATE" | "X509 CERTIFICATE" | "TRUSTED CERTIFICATE" => {
                match X509::from_pem(block.text) {
                    Ok(cert) => Item::Certificate(cert),
                    Err(_) => Item::Unusable("malformed PEM certificate".into()),
                }
            }
            "PGP PRIVATE KEY BLOCK" => Item::OpenPgp(block.text.to_vec()),
            "PGP PUBLIC KEY BLOCK" => Item::Unusable("OpenPGP public key, not a secret key".into()),
            "PUBLIC KEY" | "RSA PUBLIC KEY" | "EC PUBLIC KEY" => {
                Item::Unusable("public key, not a private key".into())
            }
            other => Item::NotAKey(format!("PEM block {other:?} is not a key or certificate")),
        };
        items.push(item);
    }
    items
}

fn pem_private_key(block: &PemBlock<'_>, password: Option<&[u8]>) -> Item {
    let encrypted =
        block.label == "ENCRYPTED PRIVATE KEY" || contains(block.text, b"Proc-Type: 4,ENCRYPTED");
    if !encrypted {
        if let Some(key) = pem_body(block).and_then(|der| super::fast::private_key(&der)) {
            return check_private(key);
        }
    }
    let result = PKey::private_key_from_pem_callback(block.text, |buf| match password {
        Some(p) if p.len() <= buf.len() => {
            buf[..p.len()].copy_from_slice(p);
            Ok(p.len())
        }
        _ => Err(openssl::error::ErrorStack::get()),
    });
    match result {
        Ok(key) => check_private(key),
        Err(_) if encrypted && password.is_none() => Item::Unusable(NEEDS_PASSWORD.into()),
        Err(_) if encrypted => Item::Unusable("encrypted private key: wrong password".into()),
        Err(_) => Item::Unusable(format!("malformed PEM {}", block.label)),
    }
}

/// Reason given for an encrypted key that came without a password.
pub const NEEDS_PASSWORD: &str =
    "encrypted private key and no password (put it in a .password file beside the key, or send privkeys-passwords)";

/// The DER inside a PEM block without headers, wiped on drop.
fn pem_body(block: &PemBlock<'_>) -> Option<zeroize::Zeroizing<Vec<u8>>> {
    let text = std::str::from_utf8(block.text).ok()?;
    let start = text.find('\n')? + 1;
    let end = text.rfind("-----END")?;
    let body = text.get(start..end)?;
    if body.contains(':') {
        return None;
    }
    let compact: zeroize::Zeroizing<String> =
        zeroize::Zeroizing::new(body.chars().filter(|c| !c.is_ascii_whitespace()).collect());
    crate::encoding::decode_std(&compact)
        .ok()
        .map(zeroize::Zeroizing::new)
}

fn parse_der(bytes: &[u8], password: Option<&[u8]>) -> Vec<Item> {
    if let Some(key) = super::fast::private_key(bytes) {
        return vec![check_private(key)];
    }
    if let Ok(key) = PKey::private_key_from_pkcs8(bytes) {
        return vec![check_private(key)];
    }
    if let Ok(rsa) = Rsa::private_key_from_der(bytes) {
        if let Ok(key) = PKey::from_rsa(rsa) {
            return vec![check_private(key)];
        }
    }
    if let Ok(ec) = EcKey::private_key_from_der(bytes) {
        if let Ok(key) = PKey::from_ec_key(ec) {
            return vec![check_private(key)];
        }
    }
    if is_encrypted_pkcs8(bytes) {
        return match password {
            None => vec![Item::Unusable(NEEDS_PASSWORD.into())],
            Some(p) => match PKey::private_key_from_pkcs8_passphrase(bytes, p) {
                Ok(key) => vec![check_private(key)],
                Err(_) => vec![Item::Unusable(
                    "encrypted private key: wrong password".into(),
                )],
            },
        };
    }
    if let Ok(cert) = X509::from_der(bytes) {
        return vec![Item::Certificate(cert)];
    }
    if let Some(item) = sniff_openpgp(bytes) {
        return vec![item];
    }
    if PKey::public_key_from_der(bytes).is_ok() {
        return vec![Item::Unusable("public key, not a private key".into())];
    }
    vec![Item::NotAKey(
        "not a recognised private key, certificate or OpenPGP keyring".into(),
    )]
}

/// `EncryptedPrivateKeyInfo ::= SEQUENCE { SEQUENCE { OID, params }, OCTET STRING }` with a
/// PKCS#5 (1.2.840.113549.1.5.*) or PKCS#12 PBE (1.2.840.113549.1.12.1.*) algorithm.
fn is_encrypted_pkcs8(bytes: &[u8]) -> bool {
    let check = || -> Result<bool, der::DerError> {
        let mut outer = der::Reader::new(bytes).read_tag(tag::SEQUENCE)?.reader();
        let mut alg = outer.read_tag(tag::SEQUENCE)?.reader();
        let oid = alg.read_tag(tag::OID)?.value;
        outer.read_tag(tag::OCTET_STRING)?;
        let pkcs5 = der::oid("1.2.840.113549.1.5");
        let pkcs12 = der::oid("1.2.840.113549.1.12.1");
        Ok(oid.starts_with(&pkcs5) || oid.starts_with(&pkcs12))
    };
    check().unwrap_or(false)
}

/// Binary OpenPGP: the first packet is a secret key (tag 5) or public key (tag 6).
fn sniff_openpgp(bytes: &[u8]) -> Option<Item> {
    let first = *bytes.first()?;
    if first & 0x80 == 0 {
        return None;
    }
    let packet_tag = if first & 0x40 != 0 {
        first & 0x3f
    } else {
        (first >> 2) & 0x0f
    };
    match packet_tag {
        5 => Some(Item::OpenPgp(bytes.to_vec())),
        6 => Some(Item::Unusable(
            "OpenPGP public key, not a secret key".into(),
        )),
        _ => None,
    }
}

/// Keeps RSA of at least [`MIN_RSA_BITS`] and EC on P-256/384/521, the keys ocicrypt can use.
fn check_private(key: PKey<Private>) -> Item {
    match key.id() {
        Id::RSA if key.bits() >= MIN_RSA_BITS => Item::Private(key),
        Id::RSA => Item::Unusable(format!(
            "RSA key of {} bits; at least {MIN_RSA_BITS} bits are required",
            key.bits()
        )),
        Id::EC => {
            let nid = key.ec_key().ok().and_then(|ec| ec.group().curve_name());
            match nid {
                Some(Nid::X9_62_PRIME256V1 | Nid::SECP384R1 | Nid::SECP521R1) => Item::Private(key),
                _ => Item::Unusable("EC key on a curve other than P-256, P-384 or P-521".into()),
            }
        }
        Id::ED25519 => Item::Unusable("Ed25519 keys cannot unwrap ocicrypt layer keys".into()),
        Id::DSA => Item::Unusable("DSA keys cannot unwrap ocicrypt layer keys".into()),
        _ => Item::Unusable("a private key of a type ocicrypt does not use".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::ec::EcGroup;
    use openssl::symm::Cipher;

    fn only(items: Vec<Item>) -> Item {
        assert_eq!(items.len(), 1, "{items:?}");
        items.into_iter().next().unwrap()
    }

    fn is_private(item: &Item) -> bool {
        matches!(item, Item::Private(_))
    }

    fn unusable(item: Item) -> String {
        match item {
            Item::Unusable(r) | Item::NotAKey(r) => r,
            other => panic!("expected unusable, got {other:?}"),
        }
    }

    #[test]
    fn every_private_key_encoding() {
        let rsa = Rsa::generate(2048).unwrap();
        let pkey = PKey::from_rsa(rsa.clone()).unwrap();
        let ec = EcKey::generate(&EcGroup::from_curve_name(Nid::SECP384R1).unwrap()).unwrap();
        let ec_pkey = PKey::from_ec_key(ec.clone()).unwrap();
        let encodings: Vec<(&str, Vec<u8>)> = vec![
            ("pkcs8 pem", pkey.private_key_to_pem_pkcs8().unwrap()),
            ("pkcs1 pem", rsa.private_key_to_pem().unwrap()),
            ("pkcs8 der", pkey.private_key_to_pkcs8().unwrap()),
            ("pkcs1 der", rsa.private_key_to_der().unwrap()),
            ("sec1 pem", ec.private_key_to_pem().unwrap()),
            ("sec1 der", ec.private_key_to_der().unwrap()),
            ("ec pkcs8 pem", ec_pkey.private_key_to_pem_pkcs8().unwrap()),
        ];
        for (name, bytes) in encodings {
            assert!(is_private(&only(parse(&bytes, None))), "{name}");
        }
    }

    #[test]
    fn encrypted_keys_need_the_right_password() {
        let rsa = Rsa::generate(2048).unwrap();
        let pkey = PKey::from_rsa(rsa.clone()).unwrap();
        let cipher = Cipher::aes_256_cbc();
        let pkcs8_pem = pkey
            .private_key_to_pem_pkcs8_passphrase(cipher, b"s3cret")
            .unwrap();
        let legacy_pem = rsa
            .private_key_to_pem_passphrase(cipher, b"s3cret")
            .unwrap();
        let pkcs8_der = pkey
            .private_key_to_pkcs8_passphrase(cipher, b"s3cret")
            .unwrap();
        for (name, bytes) in [
            ("pkcs8 pem", pkcs8_pem),
            ("legacy pem", legacy_pem),
            ("pkcs8 der", pkcs8_der),
        ] {
            assert!(is_private(&only(parse(&bytes, Some(b"s3cret")))), "{name}");
            assert_eq!(
                unusable(only(parse(&bytes, None))),
                NEEDS_PASSWORD,
                "{name}"
            );
            assert!(
                unusable(only(parse(&bytes, Some(b"wrong")))).contains("wrong password"),
                "{name}"
            );
        }
    }

    #[test]
    fn unusable_things_say_why() {
        let rsa = Rsa::generate(1024).unwrap();
        assert!(
            unusable(only(parse(&rsa.private_key_to_pem().unwrap(), None))).contains("1024 bits")
        );
        let rsa = Rsa::generate(2048).unwrap();
        assert!(
            unusable(only(parse(&rsa.public_key_to_pem().unwrap(), None))).contains("public key")
        );
        let k = PKey::from_rsa(rsa).unwrap();
        assert!(unusable(only(parse(&k.public_key_to_der().unwrap(), None))).contains("public key"));
        let ed = PKey::generate_ed25519().unwrap();
        assert!(
            unusable(only(parse(&ed.private_key_to_pem_pkcs8().unwrap(), None)))
                .contains("Ed25519")
        );
        let k1 = EcKey::generate(&EcGroup::from_curve_name(Nid::SECP256K1).unwrap()).unwrap();
        assert!(unusable(only(parse(&k1.private_key_to_pem().unwrap(), None))).contains("curve"));
        assert_eq!(unusable(only(parse(b"  \n", None))), "empty file");
        assert!(unusable(only(parse(b"# keys live here\n", None))).contains("not a recognised"));
        assert!(
            unusable(only(parse(b"-----BEGIN PRIVATE KEY-----\nAAAA\n", None))).contains("PEM")
        );
        assert!(unusable(only(parse(
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            None
        )))
        .contains("malformed"));
    }

    #[test]
    fn a_bundle_yields_every_block() {
        let rsa = Rsa::generate(2048).unwrap();
        let pkey = PKey::from_rsa(rsa).unwrap();
        let mut name = openssl::x509::X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "test").unwrap();
        let name = name.build();
        let mut b = openssl::x509::X509Builder::new().unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&pkey).unwrap();
        b.set_serial_number(
            &openssl::bn::BigNum::from_u32(7)
                .unwrap()
                .to_asn1_integer()
                .unwrap(),
        )
        .unwrap();
        b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(1).unwrap())
            .unwrap();
        b.sign(&pkey, openssl::hash::MessageDigest::sha256())
            .unwrap();
        let cert = b.build();
        let mut bundle = b"comment\n".to_vec();
        bundle.extend(pkey.private_key_to_pem_pkcs8().unwrap());
        bundle.extend(cert.to_pem().unwrap());
        let items = parse(&bundle, None);
        assert_eq!(items.len(), 2);
        assert!(is_private(&items[0]));
        assert!(matches!(items[1], Item::Certificate(_)), "{items:?}");
        assert!(matches!(
            only(parse(&cert.to_der().unwrap(), None)),
            Item::Certificate(_)
        ));
    }

    #[test]
    fn pem_scanner_handles_junk() {
        assert!(pem_blocks(b"-----BEGIN X-----").is_empty());
        assert!(pem_blocks(b"-----BEGIN \n-----END -----").is_empty());
        let two = b"a-----BEGIN A-----\nx\n-----END A-----b-----BEGIN B-----\n-----END B-----";
        let blocks = pem_blocks(two);
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].label, "A");
        assert_eq!(blocks[1].text, b"-----BEGIN B-----\n-----END B-----");
    }
}
