//! Messages are assembled packet by packet here (PKESK by sequoia, SEIPD v1 by hand with
//! OpenSSL's AES-CFB and SHA-1), so that the Go shape and every malformed variant of it can be
//! written exactly. GnuPG- and Go-written messages are covered by `tests/integration/pgp.rs`.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::OnceLock;

use openpgp::cert::{CertBuilder, CipherSuite};
use openpgp::packet::pkesk::PKESK3;
use openpgp::serialize::SerializeInto;
use openpgp::types::SymmetricAlgorithm;
use openpgp::{Cert, Packet};
use openssl::symm::{encrypt, Cipher};

use super::*;

const OPTIONS: &[u8] = br#"{"symkey":"ERERERERERERERERERERERERERERERERERERERERERE=","digest":"sha256:0","cipheroptions":{"nonce":"/////////////////////g=="}}"#;

/// A generated certificate with a transport-encryption subkey.
struct TestCert {
    cert: Cert,
}

impl TestCert {
    fn generate(suite: CipherSuite, password: Option<&str>) -> Self {
        let (cert, _) = CertBuilder::new()
            .set_cipher_suite(suite)
            .add_userid("test <test@example.test>")
            .add_transport_encryption_subkey()
            .set_password(password.map(Password::from))
            .generate()
            .unwrap();
        TestCert { cert }
    }

    /// The encryption subkey (public parts).
    fn recipient(&self) -> Key<openpgp::packet::key::PublicParts, UnspecifiedRole> {
        self.cert
            .keys()
            .subkeys()
            .next()
            .unwrap()
            .key()
            .clone()
            .role_into_unspecified()
    }

    fn binary(&self) -> Vec<u8> {
        self.cert.as_tsk().to_vec().unwrap()
    }

    fn armored(&self) -> Vec<u8> {
        self.cert.as_tsk().armored().to_vec().unwrap()
    }

    fn public_only(&self) -> Vec<u8> {
        self.cert.to_vec().unwrap()
    }

    fn keyid(&self) -> String {
        self.recipient().keyid().to_hex()
    }
}

fn rsa() -> &'static TestCert {
    static C: OnceLock<TestCert> = OnceLock::new();
    C.get_or_init(|| TestCert::generate(CipherSuite::RSA2k, None))
}

fn rsa_other() -> &'static TestCert {
    static C: OnceLock<TestCert> = OnceLock::new();
    C.get_or_init(|| TestCert::generate(CipherSuite::RSA2k, None))
}

fn locked() -> &'static TestCert {
    static C: OnceLock<TestCert> = OnceLock::new();
    C.get_or_init(|| TestCert::generate(CipherSuite::Cv25519, Some("s3cret")))
}

fn cv25519() -> &'static TestCert {
    static C: OnceLock<TestCert> = OnceLock::new();
    C.get_or_init(|| TestCert::generate(CipherSuite::Cv25519, None))
}

fn p256() -> &'static TestCert {
    static C: OnceLock<TestCert> = OnceLock::new();
    C.get_or_init(|| TestCert::generate(CipherSuite::P256, None))
}

fn item(source: KeySource, bytes: Vec<u8>, password: Option<&str>) -> OpenPgpKey {
    OpenPgpKey {
        source,
        bytes: SecretBytes::new(bytes),
        password: password.map(|p| SecretBytes::new(p.as_bytes().to_vec())),
    }
}

fn payload(index: usize) -> KeySource {
    KeySource::Payload {
        param: "gpg-privatekeys",
        index,
    }
}

fn ring(items: Vec<OpenPgpKey>) -> KeyRing {
    let mut ring = KeyRing::default();
    ring.openpgp = items;
    ring
}

fn ring_of(cert: &TestCert) -> KeyRing {
    ring(vec![item(payload(0), cert.binary(), None)])
}

/// An OpenPGP packet with a new-format header and a five-octet length.
fn packet(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0xc0 | tag, 0xff];
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn literal(data: &[u8]) -> Vec<u8> {
    let mut body = vec![b'b', 0, 0, 0, 0, 0];
    body.extend_from_slice(data);
    packet(11, &body)
}

fn compressed(algo: u8, inner: &[u8]) -> Vec<u8> {
    let data = match algo {
        1 => {
            let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
            e.write_all(inner).unwrap();
            e.finish().unwrap()
        }
        2 => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
            e.write_all(inner).unwrap();
            e.finish().unwrap()
        }
        _ => inner.to_vec(),
    };
    let mut body = vec![algo];
    body.extend_from_slice(&data);
    packet(8, &body)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mdc {
    Valid,
    Missing,
    Wrong,
}

/// A SEIPD v1 packet: AES-256-CFB (zero IV) over prefix ‖ repeat ‖ `inner` ‖ MDC.
fn seipd(session: &[u8], inner: &[u8], mdc: Mdc) -> Vec<u8> {
    packet(18, &seipd_body(session, inner, mdc))
}

/// The body of [`seipd`].
fn seipd_body(session: &[u8], inner: &[u8], mdc: Mdc) -> Vec<u8> {
    let mut plain = vec![0x5a; 16];
    plain.extend_from_slice(&[0x5a, 0x5a]);
    plain.extend_from_slice(inner);
    if mdc != Mdc::Missing {
        plain.extend_from_slice(&[0xd3, 0x14]);
        let mut digest = openssl::sha::sha1(&plain);
        if mdc == Mdc::Wrong {
            digest[0] ^= 1;
        }
        plain.extend_from_slice(&digest);
    }
    let ciphertext = encrypt(Cipher::aes_256_cfb128(), session, Some(&[0; 16]), &plain).unwrap();
    let mut body = vec![1];
    body.extend_from_slice(&ciphertext);
    body
}

/// A packet framed the way Go's `partialLengthWriter` frames it: power-of-two partial chunks,
/// down to one octet, then a final empty chunk.
fn go_packet(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0xc0 | tag];
    let mut rest = body;
    while !rest.is_empty() {
        let k = (usize::BITS - 1 - rest.len().leading_zeros()).min(30);
        out.push(224 + k as u8);
        out.extend_from_slice(&rest[..1 << k]);
        rest = &rest[1 << k..];
    }
    out.push(0);
    out
}

/// An RSA PKESK encoded the way Go's `golang.org/x/crypto/openpgp` encodes it: the MPI's bit
/// count is 8 × the modulus length, the value left-padded with zeros. Drawn until `want` holds
/// for the padded value.
fn go_pkesk(cert: &TestCert, session: &SessionKey, want: fn(&[u8]) -> bool) -> Vec<u8> {
    let recipient = cert.recipient();
    let mpi::PublicKey::RSA { n, .. } = recipient.mpis() else {
        panic!("not RSA");
    };
    let k = n.value().len();
    for _ in 0..20_000 {
        let p = pkesk_for(cert, session);
        let mpi::Ciphertext::RSA { c } = p.esk() else {
            panic!("not RSA");
        };
        let mut value = vec![0; k - c.value().len()];
        value.extend_from_slice(c.value());
        if !want(&value) {
            continue;
        }
        let mut body = vec![3];
        body.extend_from_slice(recipient.keyid().as_bytes());
        body.push(1);
        body.extend_from_slice(&((8 * k) as u16).to_be_bytes());
        body.extend_from_slice(&value);
        return packet(1, &body);
    }
    panic!("no suitable ciphertext drawn");
}

fn session_key() -> SessionKey {
    SessionKey::from(vec![0x42; 32])
}

fn pkesk_for(cert: &TestCert, session: &SessionKey) -> PKESK3 {
    PKESK3::for_recipient(SymmetricAlgorithm::AES256, session, &cert.recipient()).unwrap()
}

fn serialize_pkesk(p: PKESK3) -> Vec<u8> {
    Packet::from(p).to_vec().unwrap()
}

/// The Go shape: PKESK for `cert`, SEIPD v1 [ `inner`, MDC ].
fn message_with(cert: &TestCert, inner: &[u8], mdc: Mdc) -> Vec<u8> {
    let session = session_key();
    let mut out = serialize_pkesk(pkesk_for(cert, &session));
    out.extend(seipd(&session, inner, mdc));
    out
}

fn message(cert: &TestCert) -> Vec<u8> {
    message_with(cert, &literal(OPTIONS), Mdc::Valid)
}

fn opens(ring: &KeyRing, blob: &[u8]) -> Vec<u8> {
    match Pgp.unwrap_key(ring, blob) {
        Ok(p) => p.expose().to_vec(),
        Err(e) => panic!("did not open: {e}"),
    }
}

fn fails(ring: &KeyRing, blob: &[u8]) -> UnwrapError {
    match Pgp.unwrap_key(ring, blob) {
        Ok(_) => panic!("unexpectedly opened"),
        Err(e) => e,
    }
}

fn malformed(ring: &KeyRing, blob: &[u8]) -> String {
    match fails(ring, blob) {
        UnwrapError::Malformed(m) => m,
        other => panic!("expected a malformed-message error, got {other:?}"),
    }
}

#[test]
fn go_shaped_messages_open_with_every_key_algorithm_and_keyring_encoding() {
    for cert in [rsa(), cv25519(), p256()] {
        let blob = message(cert);
        assert_eq!(opens(&ring_of(cert), &blob), OPTIONS);
        let armored = ring(vec![item(payload(0), cert.armored(), None)]);
        assert_eq!(opens(&armored, &blob), OPTIONS);
    }
}

#[test]
fn the_right_certificate_is_found_in_a_keyring_of_several() {
    let mut keyring = rsa_other().binary();
    keyring.extend(cv25519().binary());
    keyring.extend(rsa().binary());
    let ring = ring(vec![
        item(payload(0), p256().armored(), None),
        item(payload(1), keyring, None),
    ]);
    assert_eq!(opens(&ring, &message(rsa())), OPTIONS);
    assert_eq!(opens(&ring, &message(p256())), OPTIONS);
}

#[test]
fn zip_and_zlib_compressed_literals_open() {
    for algo in [1, 2] {
        let blob = message_with(rsa(), &compressed(algo, &literal(OPTIONS)), Mdc::Valid);
        assert_eq!(opens(&ring_of(rsa()), &blob), OPTIONS, "algorithm {algo}");
    }
}

#[test]
fn passphrase_protected_keys_need_their_passphrase() {
    let blob = message(locked());
    let with = ring(vec![item(payload(0), locked().binary(), Some("s3cret"))]);
    assert_eq!(opens(&with, &blob), OPTIONS);

    let without = ring(vec![item(payload(3), locked().binary(), None)]);
    let e = fails(&without, &blob).to_string();
    assert!(e.contains(&format!("key 0x{}", locked().keyid())), "{e}");
    assert!(
        e.contains("passphrase-protected and no passphrase was given"),
        "{e}"
    );
    assert!(e.contains("gpg-privatekeys-passwords[3]"), "{e}");

    let file = KeySource::File(PathBuf::from("/keys/locked.gpg"));
    let without = ring(vec![item(file.clone(), locked().armored(), None)]);
    let e = fails(&without, &blob).to_string();
    assert!(e.contains("put it in /keys/locked.gpg.password"), "{e}");

    let wrong = ring(vec![item(file, locked().binary(), Some("guess"))]);
    let e = fails(&wrong, &blob).to_string();
    assert!(
        e.contains("its secret key in /keys/locked.gpg did not unlock: wrong passphrase"),
        "{e}"
    );
}

#[test]
fn a_wrong_key_names_the_recipient() {
    let e = fails(&ring_of(rsa_other()), &message(rsa()));
    assert_eq!(
        e,
        UnwrapError::NoKeyFits {
            recipients: format!("1 pgp recipient: key 0x{}", rsa().keyid())
        }
    );
    assert!(e.to_string().contains("no local key opens it"), "{e}");
}

#[test]
fn without_secret_keys_nothing_is_usable() {
    let e = fails(&KeyRing::default(), &message(rsa()));
    assert!(matches!(e, UnwrapError::NoUsableKeys { .. }), "{e:?}");

    let public = ring(vec![item(payload(0), rsa().public_only(), None)]);
    let e = fails(&public, &message(rsa()));
    assert!(matches!(e, UnwrapError::NoUsableKeys { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("payload gpg-privatekeys[0] holds no OpenPGP secret keys"),
        "{e}"
    );

    let junk = ring(vec![item(payload(0), b"not a keyring".to_vec(), None)]);
    let e = fails(&junk, &message(rsa())).to_string();
    assert!(e.contains("is not"), "{e}");
}

#[test]
fn a_secret_key_stub_is_reported() {
    let subkey = rsa().recipient().fingerprint();
    let stubbed = rsa()
        .cert
        .as_tsk()
        .set_filter(|k| k.fingerprint() != subkey)
        .emit_secret_key_stubs(true)
        .to_vec()
        .unwrap();
    let e = fails(
        &ring(vec![item(payload(0), stubbed, None)]),
        &message(rsa()),
    )
    .to_string();
    assert!(e.contains("holds only a stub"), "{e}");
}

#[test]
fn anonymous_recipients_are_tried_against_every_key() {
    let session = session_key();
    let mut anonymous = pkesk_for(cv25519(), &session);
    anonymous.set_recipient(None);
    let mut other = pkesk_for(rsa_other(), &session);
    other.set_recipient(None);
    let mut blob = serialize_pkesk(other);
    blob.extend(serialize_pkesk(anonymous));
    blob.extend(seipd(&session, &literal(OPTIONS), Mdc::Valid));
    let ring = ring(vec![
        item(payload(0), rsa().binary(), None),
        item(payload(1), cv25519().binary(), None),
    ]);
    assert_eq!(opens(&ring, &blob), OPTIONS);
    let e = fails(&ring_of(p256()), &blob).to_string();
    assert!(
        e.contains("2 pgp recipients: anonymous RSA key, anonymous X25519 key")
            || e.contains("2 pgp recipients: anonymous RSA key, anonymous ECDH key"),
        "{e}"
    );
}

#[test]
fn a_later_recipient_opens_when_an_earlier_one_does_not() {
    let session = session_key();
    let mut blob = serialize_pkesk(pkesk_for(rsa_other(), &session));
    blob.extend(serialize_pkesk(pkesk_for(rsa(), &session)));
    blob.extend(seipd(&session, &literal(OPTIONS), Mdc::Valid));
    assert_eq!(opens(&ring_of(rsa()), &blob), OPTIONS);
    let e = fails(&ring_of(cv25519()), &blob).to_string();
    assert!(
        e.contains(&format!(
            "2 pgp recipients: key 0x{}, key 0x{}",
            rsa_other().keyid(),
            rsa().keyid()
        )),
        "{e}"
    );
}

#[test]
fn session_key_plaintexts_too_short_for_sequoia_are_refused_without_panicking() {
    // Valid RSA PKCS#1 v1.5 for the recipient, but holding 0, 1 or 2 octets.
    let recipient = rsa().recipient();
    let openpgp::crypto::mpi::PublicKey::RSA { e, n } = recipient.mpis() else {
        panic!("not RSA");
    };
    let public = openssl::rsa::Rsa::from_public_components(
        openssl::bn::BigNum::from_slice(n.value()).unwrap(),
        openssl::bn::BigNum::from_slice(e.value()).unwrap(),
    )
    .unwrap();
    for len in 0..3 {
        let mut c = vec![0; public.size() as usize];
        let written = public
            .public_encrypt(&vec![9; len], &mut c, openssl::rsa::Padding::PKCS1)
            .unwrap();
        let pkesk = PKESK3::new(
            Some(recipient.keyid()),
            PublicKeyAlgorithm::RSAEncryptSign,
            mpi::Ciphertext::RSA {
                c: mpi::MPI::new(&c[..written]),
            },
        )
        .unwrap();
        let mut blob = serialize_pkesk(pkesk);
        blob.extend(seipd(&session_key(), &literal(OPTIONS), Mdc::Valid));
        let e = fails(&ring_of(rsa()), &blob);
        assert!(matches!(e, UnwrapError::NoKeyFits { .. }), "{len}: {e:?}");
    }
}

#[test]
fn integrity_protection_is_required() {
    let ring = ring_of(rsa());
    let m = malformed(&ring, &message_with(rsa(), &literal(OPTIONS), Mdc::Missing));
    assert!(m.contains("fails its integrity check"), "{m}");
    let m = malformed(&ring, &message_with(rsa(), &literal(OPTIONS), Mdc::Wrong));
    assert!(m.contains("fails its integrity check (MDC mismatch"), "{m}");
    // A flipped bit in the encrypted literal body.
    let mut blob = message(rsa());
    let at = blob.len() - 100;
    blob[at] ^= 0x01;
    let m = malformed(&ring, &blob);
    assert!(m.contains("MDC mismatch"), "{m}");

    // An unprotected SED packet (tag 9), alone or after a PKESK.
    let session = session_key();
    let sed = packet(9, &[0x77; 64]);
    let m = malformed(&ring, &sed);
    assert!(m.contains("without integrity protection (SED)"), "{m}");
    let mut blob = serialize_pkesk(pkesk_for(rsa(), &session));
    blob.extend(&sed);
    let m = malformed(&ring, &blob);
    assert!(m.contains("(SED)"), "{m}");

    // SEIPD v2 (AEAD) is not what ocicrypt writes.
    let mut v2 = vec![2, 9, 2, 6];
    v2.extend([0x11; 32]);
    v2.extend([0x22; 64]);
    let mut blob = serialize_pkesk(pkesk_for(rsa(), &session));
    blob.extend(packet(18, &v2));
    let m = malformed(&ring, &blob);
    assert!(m.contains("SEIPD v2"), "{m}");
}

#[test]
fn only_one_literal_inside_the_encrypted_data_is_accepted() {
    let ring = ring_of(rsa());
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", Vec::new(), "holds no literal data packet"),
        (
            "two literals",
            [literal(OPTIONS), literal(OPTIONS)].concat(),
            "more than one literal",
        ),
        (
            "nested compression",
            compressed(2, &compressed(2, &literal(OPTIONS))),
            "compressed data packet inside the compressed data",
        ),
        (
            "uncompressed compressed packet",
            compressed(0, &literal(OPTIONS)),
            "compression algorithm",
        ),
        (
            "bzip2",
            compressed(3, &literal(OPTIONS)),
            "compression algorithm",
        ),
        (
            "a marker before the literal",
            [packet(10, b"PGP"), literal(OPTIONS)].concat(),
            "a marker packet inside the encrypted data",
        ),
        (
            "a user ID after the literal",
            [literal(OPTIONS), packet(13, b"x")].concat(),
            "a user ID packet inside the encrypted data",
        ),
    ];
    for (name, inner, expected) in cases {
        let m = malformed(&ring, &message_with(rsa(), &inner, Mdc::Valid));
        assert!(m.contains(expected), "{name}: {m}");
    }
}

#[test]
fn nothing_may_follow_the_encrypted_data() {
    let mut blob = message(rsa());
    blob.extend(literal(b"more"));
    let m = malformed(&ring_of(rsa()), &blob);
    assert!(m.contains("after the encrypted data"), "{m}");
}

#[test]
fn sizes_are_bounded() {
    let ring = ring_of(rsa());
    let big = vec![b'x'; MAX_PLAINTEXT_LEN + 1];
    let m = malformed(&ring, &message_with(rsa(), &literal(&big), Mdc::Valid));
    assert!(m.contains("larger than 64 KiB"), "{m}");
    let exact = vec![b'x'; MAX_PLAINTEXT_LEN];
    let out = opens(&ring, &message_with(rsa(), &literal(&exact), Mdc::Valid));
    assert_eq!(out.len(), MAX_PLAINTEXT_LEN);

    // 256 MiB of zeros compress to ~250 KiB; reading stops after 64 KiB of output.
    let mut bomb = Vec::new();
    {
        let mut e = flate2::write::ZlibEncoder::new(&mut bomb, flate2::Compression::best());
        let header = &literal(&[])[..];
        let mut lit = vec![0xcb, 0xff];
        lit.extend_from_slice(&((256u32 << 20) + 6).to_be_bytes());
        lit.extend_from_slice(&header[6..]);
        e.write_all(&lit).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..256 {
            e.write_all(&zeros).unwrap();
        }
        e.finish().unwrap();
    }
    let mut inner = vec![2];
    inner.extend(bomb);
    let started = std::time::Instant::now();
    let m = malformed(&ring, &message_with(rsa(), &packet(8, &inner), Mdc::Valid));
    assert!(m.contains("expands beyond 129 KiB"), "{m}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));

    let huge = vec![0u8; MAX_MESSAGE_LEN + 1];
    assert!(malformed(&ring, &huge).contains("larger than 1024 KiB"));

    let session = session_key();
    let one = serialize_pkesk(pkesk_for(cv25519(), &session));
    let mut many = one.repeat(MAX_RECIPIENTS + 1);
    many.extend(seipd(&session, &literal(OPTIONS), Mdc::Valid));
    let m = malformed(&ring, &many);
    assert!(m.contains("more than 256 recipients"), "{m}");
}

#[test]
fn other_shapes_are_refused() {
    let ring = ring_of(rsa());
    assert!(malformed(&ring, b"").contains("empty"));
    let armored = {
        let mut w = openpgp::armor::Writer::new(Vec::new(), openpgp::armor::Kind::Message).unwrap();
        w.write_all(&message(rsa())).unwrap();
        w.finalize().unwrap()
    };
    let m = malformed(&ring, &armored);
    assert!(m.contains("not a binary OpenPGP message"), "{m}");
    let only_pkesk = serialize_pkesk(pkesk_for(rsa(), &session_key()));
    assert!(malformed(&ring, &only_pkesk).contains("no encrypted data packet"));
    let m = malformed(&ring, &[literal(OPTIONS), message(rsa())].concat());
    assert!(
        m.contains("a literal data packet before the encrypted data"),
        "{m}"
    );
}

#[test]
fn no_corruption_panics_or_opens_to_something_else() {
    let ring = ring_of(cv25519());
    let blob = message(cv25519());
    for len in 0..blob.len() {
        assert!(
            Pgp.unwrap_key(&ring, &blob[..len]).is_err(),
            "truncated to {len}"
        );
    }
    for at in 0..blob.len() {
        for bit in [0x01, 0x80] {
            let mut bad = blob.clone();
            bad[at] ^= bit;
            if let Ok(out) = Pgp.unwrap_key(&ring, &bad) {
                assert_eq!(out.expose(), OPTIONS, "byte {at} bit {bit:#x}");
            }
        }
    }
}

#[test]
fn encrypted_data_too_short_for_an_mdc_is_refused_without_panicking() {
    // The quick check passes, but fewer than 22 octets follow it.
    let ring = ring_of(rsa());
    for len in 0..24 {
        let blob = message_with(rsa(), &vec![0xcb; len], Mdc::Missing);
        assert!(Pgp.unwrap_key(&ring, &blob).is_err(), "{len}");
    }
}

/// Random corruption of whole messages, and of the packets inside valid encryption (what anyone
/// with the public key can send). `PGP_FUZZ_ITERATIONS=100000` for a longer run.
#[test]
fn random_corruption_never_panics() {
    let n: usize = std::env::var("PGP_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let ring = ring(vec![
        item(payload(0), cv25519().binary(), None),
        item(payload(1), rsa().binary(), None),
    ]);
    let seeds = [
        message(cv25519()),
        message(rsa()),
        message_with(cv25519(), &compressed(2, &literal(OPTIONS)), Mdc::Valid),
        message_with(rsa(), &compressed(1, &literal(OPTIONS)), Mdc::Valid),
    ];
    let mut state = 0x1234_5678_9abc_def0u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for i in 0..n {
        let mut blob = seeds[i % seeds.len()].clone();
        for _ in 0..(1 + next() % 4) {
            let at = (next() as usize) % blob.len();
            match next() % 4 {
                0 => blob[at] ^= 1 << (next() % 8),
                1 => blob[at] = next() as u8,
                2 => blob.truncate(at.max(1)),
                _ => blob.insert(at, next() as u8),
            }
        }
        if let Ok(out) = Pgp.unwrap_key(&ring, &blob) {
            assert_eq!(out.expose(), OPTIONS);
        }
        // Structured garbage inside valid encryption (what a sender with the public key can do).
        let inners = [
            literal(OPTIONS),
            compressed(2, &literal(OPTIONS)),
            compressed(1, &literal(OPTIONS)),
        ];
        let mut inner = inners[i % inners.len()].clone();
        for _ in 0..(1 + next() % 3) {
            if inner.is_empty() {
                inner.push(next() as u8);
            }
            let at = (next() as usize) % inner.len();
            match next() % 4 {
                0 => inner[at] ^= 1 << (next() % 8),
                1 => inner[at] = next() as u8,
                2 => inner.truncate(at),
                _ => inner.insert(at, next() as u8),
            }
        }
        let mdc = if next() % 8 == 0 {
            Mdc::Missing
        } else {
            Mdc::Valid
        };
        let _ = Pgp.unwrap_key(&ring, &message_with(cv25519(), &inner, mdc));
    }
}

#[test]
fn go_framing_and_mpis_open() {
    let session = session_key();
    let mut literal_body = vec![b't', 0, 0, 0, 0, 0];
    literal_body.extend_from_slice(OPTIONS);
    let seipd = go_packet(
        18,
        &seipd_body(&session, &go_packet(11, &literal_body), Mdc::Valid),
    );
    let leading_zero_bits: fn(&[u8]) -> bool = |v| v[0] != 0 && v[0] < 0x80;
    let leading_zero_byte: fn(&[u8]) -> bool = |v| v[0] == 0;
    let minimal: fn(&[u8]) -> bool = |v| v[0] >= 0x80;
    for (name, want) in [
        ("leading zero bits", leading_zero_bits),
        ("leading zero byte", leading_zero_byte),
        ("already minimal", minimal),
    ] {
        let pkesk = go_pkesk(rsa(), &session, want);
        if name != "already minimal" {
            // Why the MPI is re-encoded: sequoia refuses it as Go writes it.
            let (p, _) = packet::next(&pkesk).unwrap();
            assert!(PKESK::from_bytes(&p.body[..]).is_err(), "{name}");
        }
        let blob = [pkesk, seipd.clone()].concat();
        assert_eq!(opens(&ring_of(rsa()), &blob), OPTIONS, "{name}");
    }
}

#[test]
fn ciphers_other_than_aes_are_refused() {
    let session = session_key();
    let pkesk =
        PKESK3::for_recipient(SymmetricAlgorithm::Twofish, &session, &rsa().recipient()).unwrap();
    let blob = [
        serialize_pkesk(pkesk),
        seipd(&session, &literal(OPTIONS), Mdc::Valid),
    ]
    .concat();
    let m = malformed(&ring_of(rsa()), &blob);
    assert!(m.contains("only AES is accepted"), "{m}");
}

#[test]
fn private_key_operations_are_bounded() {
    // Anonymous decoys for a key not in the ring, then the real recipient, also anonymous. Two
    // ECDH keys in the ring: each anonymous PKESK costs two operations, the real one two as well
    // (the other key first). The run's budget decides how many may be spent.
    use crate::keys::{BUDGET_EXHAUSTED, MAX_PRIVATE_KEY_OPERATIONS};
    let session = session_key();
    let anonymous = |cert: &TestCert| {
        let mut p = pkesk_for(cert, &session);
        p.set_recipient(None);
        serialize_pkesk(p)
    };
    let ring_with_budget = |left: u32| {
        let ring = ring(vec![
            item(payload(0), p256().binary(), None),
            item(payload(1), cv25519().binary(), None),
        ]);
        for _ in left..MAX_PRIVATE_KEY_OPERATIONS {
            assert!(ring.spend_operation());
        }
        ring
    };
    let decoys = 40;
    let mut blob = anonymous(locked()).repeat(decoys);
    blob.extend(anonymous(cv25519()));
    blob.extend(seipd(&session, &literal(OPTIONS), Mdc::Valid));
    let needed = 2 * decoys as u32 + 2;
    assert_eq!(opens(&ring_with_budget(needed), &blob), OPTIONS);
    let e = fails(&ring_with_budget(needed - 1), &blob);
    assert_eq!(e, UnwrapError::Malformed(BUDGET_EXHAUSTED.into()), "{e:?}");
}

/// Committed fixtures (`tests/data/pgp/make-fixtures.sh`, test-only key): a message written by
/// skopeo 1.9.3 (Go ocicrypt: short partial-length chunks) and GnuPG's, compressed and not, all
/// open to the plaintext GnuPG decrypted.
#[test]
fn skopeo_and_gnupg_written_fixtures_open() {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/pgp/");
    let read = |name: &str| std::fs::read(format!("{data}{name}")).unwrap();
    let ring = ring(vec![OpenPgpKey {
        source: KeySource::File(PathBuf::from("secret.gpg")),
        bytes: SecretBytes::new(read("secret.gpg")),
        password: None,
    }]);
    let plaintext = read("skopeo-1.9.3.json");
    for message in ["skopeo-1.9.3.pgp", "gpg-zlib.pgp", "gpg-plain.pgp"] {
        assert_eq!(opens(&ring, &read(message)), plaintext, "{message}");
    }
}
