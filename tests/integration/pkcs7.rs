//! `pkcs7` recipients: layers encrypted by skopeo (Go ocicrypt) for X.509 certificates decrypt
//! byte-identical with every kind of key source that can open them, and a wrong key fails with
//! one line naming the recipient.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ctd_decoder::encoding::decode_std;
use openssl::x509::X509;

use crate::interop::source;
use crate::support::decoder::Decoder;
use crate::support::keys::{self, TestKey};
use crate::support::oci::{self, FoundLayer};
use crate::support::{scratch, skopeo};

const PKCS7: &str = "org.opencontainers.image.enc.keys.pkcs7";
const JWE: &str = "org.opencontainers.image.enc.keys.jwe";

/// Serial of the main test certificate, as the decoder prints it.
const SERIAL: u32 = 0x5eed_c0de;
const SERIAL_TEXT: &str = "serial 0x5EEDC0DE";

/// rsa2048 and its certificate from the test CA.
fn alice() -> (TestKey, &'static X509) {
    static CERT: OnceLock<X509> = OnceLock::new();
    let key = keys::rsa2048();
    let cert = CERT.get_or_init(|| keys::ca().issue(&key, "alice", SERIAL));
    (key, cert)
}

/// rsa2048b and its certificate.
fn bob() -> (TestKey, &'static X509) {
    static CERT: OnceLock<X509> = OnceLock::new();
    let key = keys::rsa2048_b();
    let cert = CERT.get_or_init(|| keys::ca().issue(&key, "bob", 0xb0b));
    (key, cert)
}

/// The sample image encrypted by skopeo for `recipients` (`jwe:…`, `pkcs7:…`).
fn encrypt(name: &str, recipients: &[String]) -> Vec<FoundLayer> {
    let src = source();
    let dst = scratch(&format!("enc-{name}")).join("image");
    skopeo::encrypt(
        &src.dir,
        &dst,
        "latest",
        recipients,
        &["--dest-oci-accept-uncompressed-layers"],
    );
    let layers = oci::read_layout(&dst, "latest");
    assert_eq!(layers.len(), src.layers.len());
    for (enc, orig) in layers.iter().zip(&src.layers) {
        assert_eq!(enc.media_type, format!("{}+encrypted", orig.media_type));
        assert!(enc.annotations.contains_key(PKCS7), "{name}: no pkcs7 key");
    }
    layers
}

/// The sample image encrypted for alice's certificate only.
fn layers() -> &'static [FoundLayer] {
    static L: OnceLock<Vec<FoundLayer>> = OnceLock::new();
    L.get_or_init(|| {
        let dir = scratch("pkcs7-certs");
        let recipient = keys::pkcs7_recipient(alice().1, &dir, "alice.pem");
        encrypt("pkcs7", &[recipient])
    })
}

/// A keys directory holding `files`, each mode 0600.
fn keys_dir(name: &str, files: &[(&str, Vec<u8>)]) -> PathBuf {
    let dir = scratch(&format!("keys-pkcs7-{name}"));
    for (file, bytes) in files {
        TestKey::write_private(&dir, file, bytes);
    }
    dir
}

/// A payload as `ctr-enc --key <k> --dec-recipient <c>` sends it.
fn payload(layer: &FoundLayer, privkeys: &[Vec<u8>], x509s: &[Vec<u8>]) -> Vec<u8> {
    let mut params = BTreeMap::new();
    if !privkeys.is_empty() {
        params.insert(
            "privkeys".to_string(),
            privkeys.iter().cloned().map(Some).collect(),
        );
        params.insert("privkeys-passwords".to_string(), vec![None; privkeys.len()]);
    }
    params.insert(
        "x509s".to_string(),
        x509s.iter().cloned().map(Some).collect::<Vec<_>>(),
    );
    ctd_decoder::payload::encode(&params, &layer.descriptor())
}

fn decrypt(layer: &FoundLayer, keys: Option<&Path>, payload: Vec<u8>) -> Vec<u8> {
    let mut d = Decoder::new();
    if let Some(dir) = keys {
        d = d.keys(dir);
    }
    d.media_type(&layer.media_type)
        .payload(payload)
        .stdin(layer.blob.clone())
        .run()
        .ok()
}

/// Every layer of `layers` decrypts to the original blob with `keys` and the payload `make`.
fn check_all(
    what: &str,
    layers: &[FoundLayer],
    keys: Option<&Path>,
    make: impl Fn(&FoundLayer) -> Vec<u8>,
) {
    for (enc, orig) in layers.iter().zip(&source().layers) {
        let out = decrypt(enc, keys, make(enc));
        assert!(
            out == orig.blob,
            "{what}: {} decrypted to different bytes",
            enc.media_type
        );
    }
}

#[test]
fn skopeo_writes_the_go_encoder_quirks() {
    for layer in layers() {
        let blob = decode_std(&layer.annotations[PKCS7]).unwrap();
        // ContentInfo { envelopedData, [0] { EnvelopedData { version 0, SET { recipient } … } } }
        assert_eq!(
            &blob[4..15],
            &[0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03]
        );
        // rsaEncryption without a NULL parameter.
        let rsa = [
            0x30, 0x0b, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
        ];
        assert!(contains(&blob, &rsa));
        // aes-128-gcm, parameters primitive universal 16 holding SEQUENCE { [4] nonce, 16 }.
        let gcm = [
            0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x06,
        ];
        let at = find(&blob, &gcm).expect("aes-128-gcm");
        let params = &blob[at + gcm.len()..];
        assert_eq!(&params[..6], &[0x10, 0x13, 0x30, 0x11, 0x84, 0x0c]);
        assert_eq!(&params[18..21], &[0x02, 0x01, 0x10]);
        // encryptedContent: constructed [0] wrapping one OCTET STRING, to the end of the blob.
        // (Private options and tag are 128 to 255 bytes: one-byte long-form lengths.)
        let content = &params[21..];
        assert_eq!(&content[..2], &[0xa0, 0x81]);
        let inner = &content[3..];
        assert_eq!(&inner[..2], &[0x04, 0x81]);
        assert_eq!(inner.len(), 3 + usize::from(inner[2]));
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    find(haystack, needle).is_some()
}

#[test]
fn key_and_certificate_files_in_the_keys_directory() {
    let (key, cert) = alice();
    let dir = keys_dir(
        "files",
        &[
            ("alice.key", key.pkcs8_pem()),
            ("alice.crt", cert.to_pem().unwrap()),
        ],
    );
    check_all("keys dir", layers(), Some(&dir), |l| l.cri_payload());
    // DER encodings of both work as well.
    let dir = keys_dir(
        "der",
        &[
            ("alice.der", key.traditional_der()),
            ("alice.cer", cert.to_der().unwrap()),
        ],
    );
    check_all("keys dir DER", layers(), Some(&dir), |l| l.cri_payload());
}

#[test]
fn key_in_the_keys_directory_certificate_in_the_payload() {
    let (key, cert) = alice();
    let dir = keys_dir("key-only-dir", &[("alice.pem", key.pkcs8_pem())]);
    let pem = cert.to_pem().unwrap();
    check_all("x509s", layers(), Some(&dir), |l| {
        payload(l, &[], std::slice::from_ref(&pem))
    });
}

#[test]
fn key_and_certificate_both_in_the_payload() {
    // ctr-enc --key alice.pem --dec-recipient alice.crt: no keys directory at all.
    let (key, cert) = alice();
    let der = cert.to_der().unwrap();
    let private = key.traditional_pem();
    check_all("privkeys + x509s", layers(), None, |l| {
        payload(
            l,
            std::slice::from_ref(&private),
            std::slice::from_ref(&der),
        )
    });
}

#[test]
fn key_alone_without_any_certificate() {
    let (key, _) = alice();
    let dir = keys_dir("no-cert", &[("alice.pem", key.pkcs8_pem())]);
    check_all("key only", layers(), Some(&dir), |l| l.cri_payload());
    // Someone else's certificate beside it changes nothing.
    let dir = keys_dir(
        "other-cert",
        &[
            ("alice.pem", key.pkcs8_pem()),
            ("bob.crt", bob().1.to_pem().unwrap()),
        ],
    );
    check_all("key + other cert", layers(), Some(&dir), |l| {
        l.cri_payload()
    });
}

#[test]
fn one_pem_bundle_with_key_and_certificate() {
    let (key, cert) = alice();
    let mut bundle = cert.to_pem().unwrap();
    bundle.extend(key.pkcs8_pem());
    let dir = keys_dir("bundle", &[("alice-bundle.pem", bundle)]);
    check_all("bundle", layers(), Some(&dir), |l| l.cri_payload());
}

#[test]
fn a_wrong_key_fails_in_one_line_naming_the_recipient() {
    let (wrong, wrong_cert) = bob();
    let dir = keys_dir(
        "wrong",
        &[
            ("bob.pem", wrong.pkcs8_pem()),
            ("bob.crt", wrong_cert.to_pem().unwrap()),
        ],
    );
    for layer in layers() {
        let o = Decoder::new()
            .keys(&dir)
            .media_type(&layer.media_type)
            .payload(layer.cri_payload())
            .stdin(layer.blob.clone())
            .run();
        let line = o.failed().to_string();
        for needle in [
            "none of the local keys (RSA-2048) opens its layer key",
            "pkcs7[0]: no local key opens it",
            "1 pkcs7 recipient: issuer CN=ctd-decoder test CA",
            SERIAL_TEXT,
            "(RSA-2048)",
        ] {
            assert!(line.contains(needle), "{needle:?} not in: {line}");
        }
        assert!(o.stdout.is_empty(), "{} bytes on stdout", o.stdout.len());
    }
    // Only a certificate, no private key: said so, on one line.
    let dir = keys_dir("cert-only", &[("alice.crt", alice().1.to_pem().unwrap())]);
    let layer = &layers()[1];
    let o = Decoder::new()
        .keys(&dir)
        .media_type(&layer.media_type)
        .payload(layer.cri_payload())
        .stdin(layer.blob.clone())
        .run();
    let line = o.failed();
    assert!(line.contains("no usable private key"), "{line}");
}

#[test]
fn two_pkcs7_recipients_open_with_each_key_alone() {
    let dir = scratch("pkcs7-two-certs");
    let recipients = [
        keys::pkcs7_recipient(alice().1, &dir, "alice.pem"),
        keys::pkcs7_recipient(bob().1, &dir, "bob.pem"),
    ];
    let layers = encrypt("pkcs7-two", &recipients);
    // One EnvelopedData with two recipient infos, not two comma-joined blobs.
    assert!(!layers[0].annotations[PKCS7].contains(','));
    for (name, (key, cert)) in [("alice", alice()), ("bob", bob())] {
        let dir = keys_dir(
            &format!("two-{name}"),
            &[
                ("k.pem", key.pkcs8_pem()),
                ("c.pem", cert.to_pem().unwrap()),
            ],
        );
        check_all(name, &layers, Some(&dir), |l| l.cri_payload());
        let dir = keys_dir(&format!("two-{name}-alone"), &[("k.pem", key.pkcs8_pem())]);
        check_all(name, &layers, Some(&dir), |l| l.cri_payload());
    }
}

#[test]
fn jwe_and_pkcs7_recipients_in_one_run_open_with_each_key_alone() {
    let p256 = keys::p256();
    let (rsa, cert) = alice();
    let dir = scratch("pkcs7-mixed");
    let recipients = [
        p256.jwe_recipient(&dir),
        keys::pkcs7_recipient(cert, &dir, "alice.pem"),
    ];
    let layers = encrypt("pkcs7-mixed", &recipients);
    for layer in &layers {
        assert!(layer.annotations.contains_key(JWE));
    }
    // Only the EC key: jwe opens it (pkcs7 has no RSA key to try).
    let dir = keys_dir("mixed-ec", &[("ec.pem", p256.pkcs8_pem())]);
    check_all("jwe key", &layers, Some(&dir), |l| l.cri_payload());
    // Only the RSA key and its certificate: jwe has no fitting key, pkcs7 opens it.
    let dir = keys_dir(
        "mixed-rsa",
        &[
            ("rsa.pem", rsa.pkcs8_pem()),
            ("rsa.crt", cert.to_pem().unwrap()),
        ],
    );
    check_all("pkcs7 key", &layers, Some(&dir), |l| l.cri_payload());
    // And the RSA key in the payload, the certificate nowhere.
    let private = rsa.traditional_pem();
    check_all("pkcs7 payload key", &layers, None, |l| {
        l.payload_with_keys(std::slice::from_ref(&private), &[None])
    });
}
