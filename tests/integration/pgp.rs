//! `pgp` recipients: layers encrypted by skopeo (Go ocicrypt) for keys that GnuPG generated,
//! opened with the secret keys GnuPG exports, in every format and from every passphrase source.
//! skopeo 1.9.3's Go OpenPGP (golang.org/x/crypto/openpgp) encrypts to RSA keys only, so ECC keys
//! are covered by GnuPG-written messages for the same layer.
//!
//! Every GnuPG home (`support::gnupg`) is a fresh 0700 directory whose agent is killed when the
//! home is dropped, also when a test panics; all GnuPG work happens while building the fixtures.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ctd_decoder::encoding::{decode_std, encode_std};

use crate::interop::{decrypt_cri, source};
use crate::support::decoder::{Decoder, Outcome};
use crate::support::gnupg::{GnupgHome, GpgKey};
use crate::support::keys::{self, TestKey};
use crate::support::oci::{self, FoundLayer};
use crate::support::{scratch, skopeo};

const PGP: &str = "org.opencontainers.image.enc.keys.pgp";
const JWE: &str = "org.opencontainers.image.enc.keys.jwe";
const PASSPHRASE: &str = "correct horse battery staple";

impl GnupgHome {
    /// skopeo-encrypts the sample image for `recipients`, reading `pgp:` keys from this home.
    fn skopeo_encrypt(&self, name: &str, recipients: &[String]) -> Vec<FoundLayer> {
        let dst = scratch(&format!("enc-pgp-{name}")).join("image");
        skopeo::encrypt_with_env(
            &source().dir,
            &dst,
            "latest",
            recipients,
            &["--dest-oci-accept-uncompressed-layers"],
            &[("GNUPGHOME", &self.dir)],
        );
        let layers = oci::read_layout(&dst, "latest");
        assert_eq!(layers.len(), source().layers.len());
        for (enc, orig) in layers.iter().zip(&source().layers) {
            assert_eq!(enc.media_type, format!("{}+encrypted", orig.media_type));
            assert!(
                enc.annotations.contains_key(PGP),
                "{name}: no pgp recipient"
            );
        }
        layers
    }
}

struct Fixture {
    /// RSA-2048, no passphrase.
    plain: GpgKey,
    /// RSA-2048, protected by [`PASSPHRASE`].
    locked: GpgKey,
    for_plain: Vec<FoundLayer>,
    for_locked: Vec<FoundLayer>,
    /// One skopeo run with `jwe:<rsa2048>` and `pgp:<plain>`.
    for_jwe_and_pgp: Vec<FoundLayer>,
    /// `gpg --list-packets` of the first layer's pgp message for `plain`.
    packet_dump: String,
    /// One skopeo run with `jwe:<rsa2048>`, `pkcs7:<cert of rsa2048b>` and `pgp:<plain>`.
    for_three_schemes: Vec<FoundLayer>,
    /// The certificate of the pkcs7 recipient (rsa2048b).
    pkcs7_cert: openssl::x509::X509,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        // RSA keys only in this home: skopeo's Go OpenPGP drops an RSA key that is followed by
        // an EdDSA key in the exported public keyring.
        let home = GnupgHome::new("pgp-gnupg-rsa");
        let plain = home.generate("plain@ctd-decoder.test", "", "rsa2048", "rsa2048");
        let locked = home.generate("locked@ctd-decoder.test", PASSPHRASE, "rsa2048", "rsa2048");
        let for_plain = home.skopeo_encrypt("plain", &[format!("pgp:{}", plain.email)]);
        let message = decode_std(&for_plain[0].annotations[PGP]).unwrap();
        let packet_dump = String::from_utf8(home.gpg("", &["--list-packets"], &message)).unwrap();
        let for_locked = home.skopeo_encrypt("locked", &[format!("pgp:{}", locked.email)]);
        let pubs = scratch("pgp-jwe-pub");
        let for_jwe_and_pgp = home.skopeo_encrypt(
            "jwe-and-pgp",
            &[
                keys::rsa2048().jwe_recipient(&pubs),
                format!("pgp:{}", plain.email),
            ],
        );
        let pkcs7_cert = keys::ca().issue(&keys::rsa2048_b(), "three-schemes", 0x3e3);
        let for_three_schemes = home.skopeo_encrypt(
            "three-schemes",
            &[
                keys::rsa2048().jwe_recipient(&pubs),
                keys::pkcs7_recipient(&pkcs7_cert, &pubs, "three.pem"),
                format!("pgp:{}", plain.email),
            ],
        );
        Fixture {
            plain,
            locked,
            for_plain,
            for_locked,
            for_jwe_and_pgp,
            packet_dump,
            for_three_schemes,
            pkcs7_cert,
        }
    })
}

/// A keys directory holding `files` (name, bytes), each mode 0600.
fn keys_dir(name: &str, files: &[(&str, &[u8])]) -> PathBuf {
    let dir = scratch(&format!("keys-pgp-{name}")).join("keys");
    for (file, bytes) in files {
        TestKey::write_private(&dir, file, bytes);
    }
    dir
}

/// The fd-3 payload of `ctr-enc --key <keyring>`: `gpg-privatekeys` and, by index, passwords.
fn gpg_payload(layer: &FoundLayer, keyrings: &[&[u8]], passwords: &[Option<&str>]) -> Vec<u8> {
    let mut params = BTreeMap::new();
    params.insert(
        "gpg-privatekeys".to_string(),
        keyrings.iter().map(|k| Some(k.to_vec())).collect(),
    );
    if !passwords.is_empty() {
        params.insert(
            "gpg-privatekeys-passwords".to_string(),
            passwords
                .iter()
                .map(|p| p.map(|p| p.as_bytes().to_vec()))
                .collect(),
        );
    }
    ctd_decoder::payload::encode(&params, &layer.descriptor())
}

fn run(layer: &FoundLayer, keys: Option<&Path>, payload: Vec<u8>) -> Outcome {
    let mut decoder = Decoder::new();
    if let Some(dir) = keys {
        decoder = decoder.keys(dir);
    }
    decoder
        .media_type(&layer.media_type)
        .payload(payload)
        .stdin(layer.blob.clone())
        .run()
}

/// Asserts that every layer decrypts to the original blob.
fn assert_all_open(layers: &[FoundLayer], what: &str, open: impl Fn(&FoundLayer) -> Vec<u8>) {
    for (enc, orig) in layers.iter().zip(&source().layers) {
        assert!(
            open(enc) == orig.blob,
            "{what}: {} decrypted to different bytes",
            enc.media_type
        );
    }
}

/// Asserts a one-line failure containing every needle and not the passphrase.
fn assert_fails(outcome: &Outcome, needles: &[&str]) -> String {
    let line = outcome.failed().to_string();
    for n in needles {
        assert!(line.contains(n), "expected {n:?} in: {line}");
    }
    assert!(!line.contains(PASSPHRASE), "passphrase in: {line}");
    assert!(outcome.stdout.is_empty());
    line
}

/// What Go ocicrypt writes (protocol.md §4.3), as GnuPG sees it: a v3 RSA PKESK for the
/// encryption subkey, SEIPD with a SHA-1 MDC, and inside it, uncompressed, a literal packet.
#[test]
fn skopeo_pgp_message_shape() {
    let f = fixture();
    let dump = &f.packet_dump;
    let packets: Vec<&str> = dump.lines().filter(|l| l.starts_with(':')).collect();
    assert_eq!(
        packets,
        [
            ":pubkey enc packet: version 3, algo 1, keyid ".to_string() + &f.plain.encryption_keyid,
            ":encrypted data packet:".to_string(),
            ":literal data packet:".to_string(),
        ],
        "{dump}"
    );
    assert!(dump.contains("mdc_method: 2"), "{dump}");
}

#[test]
fn skopeo_pgp_binary_keyring_in_the_keys_directory() {
    let f = fixture();
    let dir = keys_dir("binary", &[("plain.gpg", &f.plain.binary)]);
    assert_all_open(&f.for_plain, "binary keyring", |l| decrypt_cri(l, &dir));
}

#[test]
fn skopeo_pgp_armored_keyring_in_the_keys_directory() {
    let f = fixture();
    assert!(f
        .plain
        .armored
        .starts_with(b"-----BEGIN PGP PRIVATE KEY BLOCK-----"));
    let dir = keys_dir("armored", &[("plain.asc", &f.plain.armored)]);
    assert_all_open(&f.for_plain, "armored keyring", |l| decrypt_cri(l, &dir));
}

#[test]
fn skopeo_pgp_protected_key_with_a_password_file_beside_it() {
    let f = fixture();
    let password_file = format!("{PASSPHRASE}\n");
    for (name, keyring) in [
        ("locked.gpg", &f.locked.binary),
        ("locked.asc", &f.locked.armored),
    ] {
        let password_name = format!("{name}.password");
        let dir = keys_dir(
            name,
            &[(name, keyring), (&password_name, password_file.as_bytes())],
        );
        assert_all_open(&f.for_locked, name, |l| decrypt_cri(l, &dir));
    }
}

#[test]
fn skopeo_pgp_protected_key_in_the_payload_with_its_passphrase() {
    let f = fixture();
    assert_all_open(&f.for_locked, "payload", |l| {
        run(
            l,
            None,
            gpg_payload(l, &[&f.locked.binary], &[Some(PASSPHRASE)]),
        )
        .ok()
    });
    // Passwords go by payload index even when the keys directory also holds keyrings (Go would
    // pair this passphrase with the directory's keyring, protocol.md §2.4).
    let dir = keys_dir("payload-and-dir", &[("plain.gpg", &f.plain.binary)]);
    assert_all_open(&f.for_locked, "payload after directory", |l| {
        run(
            l,
            Some(&dir),
            gpg_payload(l, &[&f.locked.binary], &[Some(PASSPHRASE)]),
        )
        .ok()
    });
}

#[test]
fn skopeo_pgp_protected_key_without_a_passphrase_says_one_is_missing() {
    let f = fixture();
    let layer = &f.for_locked[0];
    let dir = keys_dir("no-password", &[("locked.gpg", &f.locked.binary)]);
    let o = run(layer, Some(&dir), layer.cri_payload());
    assert_fails(
        &o,
        &[
            &format!("1 pgp recipient: key 0x{}", f.locked.encryption_keyid),
            "locked.gpg is passphrase-protected and no passphrase was given",
            "locked.gpg.password",
        ],
    );
    let o = run(layer, None, gpg_payload(layer, &[&f.locked.binary], &[]));
    assert_fails(
        &o,
        &[
            "payload gpg-privatekeys[0] is passphrase-protected",
            "gpg-privatekeys-passwords[0]",
        ],
    );
}

#[test]
fn skopeo_pgp_wrong_passphrase_says_so() {
    let f = fixture();
    let layer = &f.for_locked[1];
    let o = run(
        layer,
        None,
        gpg_payload(layer, &[&f.locked.armored], &[Some("Tr0ub4dor&3")]),
    );
    assert_fails(
        &o,
        &[
            &format!("key 0x{}", f.locked.encryption_keyid),
            "did not unlock: wrong passphrase",
        ],
    );
}

#[test]
fn skopeo_pgp_wrong_key_names_the_pgp_recipient() {
    let f = fixture();
    let layer = &f.for_plain[0];
    let dir = keys_dir(
        "wrong",
        &[
            ("locked.gpg", &f.locked.binary),
            ("locked.gpg.password", PASSPHRASE.as_bytes()),
        ],
    );
    let o = run(layer, Some(&dir), layer.cri_payload());
    let line = assert_fails(
        &o,
        &[
            "none of the local keys (1 OpenPGP keyring(s)) opens its layer key",
            &format!(
                "pgp[0]: no local key opens it (it is for 1 pgp recipient: key 0x{})",
                f.plain.encryption_keyid
            ),
        ],
    );
    assert!(!line.contains(&f.locked.encryption_keyid), "{line}");
}

#[test]
fn skopeo_jwe_and_pgp_recipients_open_with_either_key_alone() {
    let f = fixture();
    for layer in &f.for_jwe_and_pgp {
        assert!(layer.annotations.contains_key(JWE), "no jwe recipient");
    }
    let rsa = keys::rsa2048().keys_dir(&scratch("keys-pgp-jwe"));
    assert_all_open(&f.for_jwe_and_pgp, "jwe key", |l| decrypt_cri(l, &rsa));
    let pgp = keys_dir("jwe-and-pgp", &[("plain.gpg", &f.plain.binary)]);
    assert_all_open(&f.for_jwe_and_pgp, "pgp key", |l| decrypt_cri(l, &pgp));
}

/// GnuPG decrypts skopeo's message, then encrypts the same private options to ECC keys
/// (compressed, as GnuPG does by default, and not): the decoder opens both.
#[test]
fn gnupg_written_messages_for_ecc_keys_open() {
    let f = fixture();
    let home = GnupgHome::new("pgp-gnupg-ecc");
    home.gpg("", &["--import"], &f.plain.binary);
    let cv25519 = home.generate("cv25519@ctd-decoder.test", "", "ed25519", "cv25519");
    let nistp256 = home.generate(
        "nistp256@ctd-decoder.test",
        PASSPHRASE,
        "nistp256",
        "nistp256",
    );
    for (index, layer) in f.for_plain.iter().enumerate() {
        let go_message = decode_std(&layer.annotations[PGP]).unwrap();
        let options = home.gpg("", &["--decrypt"], &go_message);
        assert!(options.starts_with(b"{\"symkey\":"), "not private options");
        for (key, password) in [(&cv25519, None), (&nistp256, Some(PASSPHRASE))] {
            for compression in [None, Some("none")] {
                let mut args = vec!["--trust-model", "always", "--encrypt"];
                args.extend(["--recipient", key.email]);
                if let Some(algo) = compression {
                    args.extend(["--compress-algo", algo]);
                }
                let message = home.gpg("", &args, &options);
                let mut rewrapped = layer.clone();
                rewrapped
                    .annotations
                    .insert(PGP.to_string(), encode_std(&message));
                let out = run(
                    &rewrapped,
                    None,
                    gpg_payload(&rewrapped, &[&key.binary], &[password]),
                )
                .ok();
                assert!(
                    out == source().layers[index].blob,
                    "{} compression {compression:?}: different bytes",
                    key.email
                );
            }
        }
    }
}

/// One layer with jwe, pkcs7 and pgp recipients (a single skopeo run), opened by every kind of
/// key that can open it, alone, from the keys directory and from the payload.
#[test]
fn skopeo_jwe_pkcs7_and_pgp_recipients_open_with_every_kind_of_key() {
    let f = fixture();
    for layer in &f.for_three_schemes {
        for scheme in [JWE, PGP, "org.opencontainers.image.enc.keys.pkcs7"] {
            assert!(layer.annotations.contains_key(scheme), "no {scheme}");
        }
    }
    let jwe = keys::rsa2048();
    let pkcs7 = keys::rsa2048_b();
    let cert_pem = f.pkcs7_cert.to_pem().unwrap();
    let dirs: Vec<(&str, PathBuf)> = vec![
        (
            "jwe pkcs8 pem",
            keys_dir("three-jwe", &[("jwe.pem", &jwe.pkcs8_pem())]),
        ),
        (
            "jwe pkcs1 der",
            keys_dir("three-jwe-der", &[("jwe.der", &jwe.traditional_der())]),
        ),
        (
            "pkcs7 key and certificate",
            keys_dir(
                "three-pkcs7",
                &[("p7.pem", &pkcs7.pkcs8_pem()), ("p7.crt", &cert_pem)],
            ),
        ),
        (
            "pkcs7 key alone",
            keys_dir("three-pkcs7-alone", &[("p7.pem", &pkcs7.traditional_pem())]),
        ),
        (
            "pgp binary keyring",
            keys_dir("three-pgp", &[("k.gpg", &f.plain.binary)]),
        ),
        (
            "pgp armored keyring",
            keys_dir("three-pgp-asc", &[("k.asc", &f.plain.armored)]),
        ),
    ];
    for (what, dir) in &dirs {
        assert_all_open(&f.for_three_schemes, what, |l| decrypt_cri(l, dir));
    }
    // The same keys in the payload only, as ctr-enc --key sends them.
    assert_all_open(&f.for_three_schemes, "payload jwe key", |l| {
        run(l, None, l.payload_with_keys(&[jwe.pkcs8_pem()], &[None])).ok()
    });
    assert_all_open(&f.for_three_schemes, "payload pgp keyring", |l| {
        run(l, None, gpg_payload(l, &[&f.plain.binary], &[])).ok()
    });
    assert_all_open(
        &f.for_three_schemes,
        "payload pkcs7 key and certificate",
        |l| {
            let mut params = BTreeMap::new();
            params.insert("privkeys".to_string(), vec![Some(pkcs7.pkcs8_der())]);
            params.insert(
                "x509s".to_string(),
                vec![Some(f.pkcs7_cert.to_der().unwrap())],
            );
            run(
                l,
                None,
                ctd_decoder::payload::encode(&params, &l.descriptor()),
            )
            .ok()
        },
    );
    // A key for none of the three fails, naming all three schemes' recipients.
    let other = keys_dir("three-none", &[("other.pem", &keys::p256().pkcs8_pem())]);
    let o = run(
        &f.for_three_schemes[0],
        Some(&other),
        f.for_three_schemes[0].cri_payload(),
    );
    assert_fails(&o, &["jwe[0]", "pkcs7[0]", "pgp[0]"]);
}
