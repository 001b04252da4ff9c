use std::sync::OnceLock;

use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::hash::MessageDigest;
use openssl::rsa::Rsa;
use openssl::stack::Stack;
use openssl::symm;
use openssl::x509::extension::SubjectKeyIdentifier;
use openssl::x509::{X509NameBuilder, X509};

use super::*;
use crate::keys::{Certificate, KeySource, PrivateKey};

/// Valid private options (protocol.md §3.5's known-answer options).
const OPTIONS: &[u8] = br#"{"symkey":"ERERERERERERERERERERERERERERERERERERERERERE=","digest":"sha256:509ddb85fdf92f197d32570c005cdcb6dffa398f088bd1a013459f6fb1f730ef","cipheroptions":{"nonce":"/////////////////////g=="}}"#;

const DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01];

// ---------------------------------------------------------------------------------------------
// Keys and certificates.

struct Party {
    key: PKey<Private>,
    cert: X509,
}

fn ca() -> &'static Party {
    static CA: OnceLock<Party> = OnceLock::new();
    CA.get_or_init(|| {
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let cert = certificate(&key, "ctd-decoder unit CA", 1, None);
        Party { key, cert }
    })
}

/// A certificate for `key`, issued by the CA (self-signed when `ca` is `None`), with a subject
/// key identifier.
fn certificate(key: &PKey<Private>, cn: &str, serial: u32, ca: Option<&Party>) -> X509 {
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("O", "ctd-decoder").unwrap();
    name.append_entry_by_text("CN", cn).unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(ca.map_or(&*name, |c| c.cert.subject_name()))
        .unwrap();
    b.set_pubkey(key).unwrap();
    b.set_serial_number(&BigNum::from_u32(serial).unwrap().to_asn1_integer().unwrap())
        .unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(2).unwrap())
        .unwrap();
    let ski = SubjectKeyIdentifier::new()
        .build(&b.x509v3_context(None, None))
        .unwrap();
    b.append_extension(ski).unwrap();
    b.sign(ca.map_or(key, |c| &c.key), MessageDigest::sha256())
        .unwrap();
    b.build()
}

fn party(cell: &'static OnceLock<Party>, bits: u32, cn: &str, serial: u32) -> &'static Party {
    cell.get_or_init(|| {
        let key = PKey::from_rsa(Rsa::generate(bits).unwrap()).unwrap();
        let cert = certificate(&key, cn, serial, Some(ca()));
        Party { key, cert }
    })
}

fn alice() -> &'static Party {
    static P: OnceLock<Party> = OnceLock::new();
    party(&P, 2048, "alice", 0x1001)
}

fn bob() -> &'static Party {
    static P: OnceLock<Party> = OnceLock::new();
    party(&P, 2048, "bob", 0xb0b)
}

fn carol() -> &'static Party {
    static P: OnceLock<Party> = OnceLock::new();
    party(&P, 3072, "carol", 0xc0c)
}

fn ring(keys: &[&PKey<Private>], certs: &[&X509]) -> KeyRing {
    let mut ring = KeyRing::default();
    for (index, key) in keys.iter().enumerate() {
        ring.private_keys.push(PrivateKey {
            source: KeySource::Payload {
                param: "privkeys",
                index,
            },
            key: (*key).clone(),
        });
    }
    for (index, cert) in certs.iter().enumerate() {
        ring.certificates.push(Certificate {
            source: KeySource::Payload {
                param: "x509s",
                index,
            },
            cert: (*cert).clone(),
        });
    }
    ring
}

fn opens(ring: &KeyRing, blob: &[u8]) -> Vec<u8> {
    match Pkcs7.unwrap_key(ring, blob) {
        Ok(plaintext) => plaintext.expose().to_vec(),
        Err(e) => panic!("expected to open: {e}"),
    }
}

fn no_key_fits(ring: &KeyRing, blob: &[u8]) -> String {
    match Pkcs7.unwrap_key(ring, blob) {
        Err(UnwrapError::NoKeyFits { recipients }) => recipients,
        Err(e) => panic!("expected NoKeyFits, got {e:?}"),
        Ok(_) => panic!("expected NoKeyFits, got a plaintext"),
    }
}

fn no_usable_keys(ring: &KeyRing, blob: &[u8]) -> String {
    match Pkcs7.unwrap_key(ring, blob) {
        Err(UnwrapError::NoUsableKeys { recipients }) => recipients,
        Err(e) => panic!("expected NoUsableKeys, got {e:?}"),
        Ok(_) => panic!("expected NoUsableKeys, got a plaintext"),
    }
}

fn malformed(ring: &KeyRing, blob: &[u8]) -> String {
    match Pkcs7.unwrap_key(ring, blob) {
        Err(UnwrapError::Malformed(reason)) => reason,
        Err(e) => panic!("expected Malformed, got {e:?}"),
        Ok(_) => panic!("expected Malformed, got a plaintext"),
    }
}

fn random(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    openssl::rand::rand_bytes(&mut v).unwrap();
    v
}

// ---------------------------------------------------------------------------------------------
// A DER writer, and CMS built the way each writer does.

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .iter()
            .copied()
            .skip_while(|&b| b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

fn seq(parts: &[&[u8]]) -> Vec<u8> {
    tlv(tag::SEQUENCE, &parts.concat())
}

fn int(v: u8) -> Vec<u8> {
    tlv(tag::INTEGER, &[v])
}

fn oid_tlv(contents: &[u8]) -> Vec<u8> {
    tlv(tag::OID, contents)
}

fn algorithm(oid_bytes: &[u8], params: Option<&[u8]>) -> Vec<u8> {
    seq(&[&oid_tlv(oid_bytes), params.unwrap_or(&[])])
}

/// How a recipient is named.
#[derive(Clone, Copy)]
enum Rid {
    IssuerSerial,
    KeyId,
}

fn rid(cert: &X509, how: Rid) -> Vec<u8> {
    match how {
        Rid::IssuerSerial => {
            let der = cert.to_der().unwrap();
            let (issuer, serial) = cert_issuer_serial(&der).unwrap();
            seq(&[issuer, &tlv(tag::INTEGER, serial)])
        }
        Rid::KeyId => tlv(KEY_ID, cert.subject_key_id().unwrap().as_slice()),
    }
}

/// How the CEK is wrapped, and how that is written.
#[derive(Clone)]
enum Wrap {
    /// `rsaEncryption` without parameters (Go) or with NULL (OpenSSL).
    Pkcs1 { null: bool },
    /// RSAES-OAEP with the given hashes and label, and the parameters as written.
    Oaep {
        hash: Hash,
        mgf1: Hash,
        label: Vec<u8>,
        params: Option<Vec<u8>>,
    },
}

fn rsa_encrypt(cert: &X509, wrap: &Wrap, cek: &[u8]) -> Vec<u8> {
    let public = cert.public_key().unwrap();
    let mut ctx = PkeyCtx::new(&public).unwrap();
    ctx.encrypt_init().unwrap();
    match wrap {
        Wrap::Pkcs1 { .. } => ctx.set_rsa_padding(Padding::PKCS1).unwrap(),
        Wrap::Oaep {
            hash, mgf1, label, ..
        } => {
            ctx.set_rsa_padding(Padding::PKCS1_OAEP).unwrap();
            ctx.set_rsa_oaep_md(hash.md()).unwrap();
            ctx.set_rsa_mgf1_md(mgf1.md()).unwrap();
            if !label.is_empty() {
                ctx.set_rsa_oaep_label(label).unwrap();
            }
        }
    }
    let mut out = Vec::new();
    ctx.encrypt_to_vec(cek, &mut out).unwrap();
    out
}

/// A `KeyTransRecipientInfo` wrapping `cek` for `cert`.
fn ktri(cert: &X509, how: Rid, wrap: &Wrap, cek: &[u8]) -> Vec<u8> {
    let version = int(match how {
        Rid::IssuerSerial => 0,
        Rid::KeyId => 2,
    });
    let alg = match wrap {
        Wrap::Pkcs1 { null: false } => algorithm(oid::RSA_ENCRYPTION, None),
        Wrap::Pkcs1 { null: true } => algorithm(oid::RSA_ENCRYPTION, Some(&[0x05, 0x00])),
        Wrap::Oaep { params, .. } => algorithm(oid::RSAES_OAEP, params.as_deref()),
    };
    let ek = tlv(tag::OCTET_STRING, &rsa_encrypt(cert, wrap, cek));
    seq(&[&version, &rid(cert, how), &alg, &ek])
}

fn content_info(content_type: &[u8], inner: &[u8]) -> Vec<u8> {
    seq(&[&oid_tlv(content_type), &tlv(CTX0, inner)])
}

/// `EnvelopedData` as Go writes it, around the given recipient infos and content.
fn enveloped(recipients: &[Vec<u8>], content_alg: &[u8], encrypted_content: &[u8]) -> Vec<u8> {
    let eci = seq(&[&oid_tlv(DATA), content_alg, encrypted_content]);
    let env = seq(&[&int(0), &tlv(tag::SET, &recipients.concat()), &eci]);
    content_info(oid::ENVELOPED_DATA, &env)
}

fn gcm_oid(key_len: usize) -> &'static [u8] {
    match key_len {
        16 => oid::AES128_GCM,
        24 => oid::AES192_GCM,
        _ => oid::AES256_GCM,
    }
}

fn gcm_cipher(key_len: usize) -> Cipher {
    match key_len {
        16 => Cipher::aes_128_gcm(),
        24 => Cipher::aes_192_gcm(),
        _ => Cipher::aes_256_gcm(),
    }
}

/// AES-GCM ciphertext‖tag.
fn gcm_seal(cek: &[u8], nonce: &[u8], tag_len: usize, plaintext: &[u8]) -> Vec<u8> {
    let mut tag = vec![0u8; tag_len];
    let mut out = symm::encrypt_aead(
        gcm_cipher(cek.len()),
        cek,
        Some(nonce),
        &[],
        plaintext,
        &mut tag,
    )
    .unwrap();
    out.extend(tag);
    out
}

/// Exactly what smallstep `pkcs7.Encrypt` writes with AES-GCM (ocicrypt: AES-128-GCM): the
/// parameters as a primitive universal-16 element holding the DER `SEQUENCE { [4] nonce,
/// INTEGER 16 }`, the content as a constructed `[0]` wrapping one OCTET STRING.
fn go_blob(certs: &[&X509], key_len: usize, plaintext: &[u8]) -> Vec<u8> {
    let cek = random(key_len);
    let nonce = random(12);
    let params = tlv(
        PRIMITIVE_SEQUENCE,
        &seq(&[&tlv(GO_NONCE, &nonce), &int(16)]),
    );
    let content = tlv(
        CTX0,
        &tlv(tag::OCTET_STRING, &gcm_seal(&cek, &nonce, 16, plaintext)),
    );
    let recipients: Vec<Vec<u8>> = certs
        .iter()
        .map(|c| ktri(c, Rid::IssuerSerial, &Wrap::Pkcs1 { null: false }, &cek))
        .collect();
    enveloped(
        &recipients,
        &algorithm(gcm_oid(key_len), Some(&params)),
        &content,
    )
}

/// `EnvelopedData` with AES-GCM parameters in RFC 5084 form (`icv_len` `None`: omitted, the
/// default 12), content primitive, recipients wrapped as `wrap`.
fn standard_gcm_blob(
    recipients: &[(&X509, Rid)],
    wrap: &Wrap,
    key_len: usize,
    icv_len: Option<u8>,
) -> Vec<u8> {
    let cek = random(key_len);
    let nonce = random(12);
    let icv = icv_len.map(int).unwrap_or_default();
    let params = seq(&[&tlv(tag::OCTET_STRING, &nonce), &icv]);
    let sealed = gcm_seal(&cek, &nonce, usize::from(icv_len.unwrap_or(12)), OPTIONS);
    let content = tlv(CONTENT_PRIMITIVE, &sealed);
    let infos: Vec<Vec<u8>> = recipients
        .iter()
        .map(|(c, how)| ktri(c, *how, wrap, &cek))
        .collect();
    enveloped(
        &infos,
        &algorithm(gcm_oid(key_len), Some(&params)),
        &content,
    )
}

/// `EnvelopedData` with a CBC cipher, as Go's or OpenSSL's encoder writes it.
fn cbc_blob(cert: &X509, cipher: Cipher, alg_oid: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let cek = random(cipher.key_len());
    let iv = random(cipher.iv_len().unwrap());
    let ct = symm::encrypt(cipher, &cek, Some(&iv), plaintext).unwrap();
    let infos = [ktri(
        cert,
        Rid::IssuerSerial,
        &Wrap::Pkcs1 { null: true },
        &cek,
    )];
    enveloped(
        &infos,
        &algorithm(alg_oid, Some(&tlv(tag::OCTET_STRING, &iv))),
        &tlv(CONTENT_PRIMITIVE, &ct),
    )
}

fn openssl_cms(certs: &[&X509], cipher: Cipher, flags: CMSOptions) -> Vec<u8> {
    let mut stack = Stack::new().unwrap();
    for c in certs {
        stack.push((*c).clone()).unwrap();
    }
    CmsContentInfo::encrypt(&stack, OPTIONS, cipher, flags | CMSOptions::BINARY)
        .unwrap()
        .to_der()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// A real blob from Go ocicrypt (skopeo 1.9.3), see tests/data/pkcs7/README.md.

static FIXTURE: &[u8] = include_bytes!("../../../tests/data/pkcs7/skopeo-1.9.3.der");
const FIXTURE_KEY: &[u8] = include_bytes!("../../../tests/data/pkcs7/client.key");
const FIXTURE_CERT: &[u8] = include_bytes!("../../../tests/data/pkcs7/client.pem");
const FIXTURE_CA: &[u8] = include_bytes!("../../../tests/data/pkcs7/ca.pem");

fn fixture_key() -> PKey<Private> {
    PKey::private_key_from_pem(FIXTURE_KEY).unwrap()
}

fn fixture_cert() -> X509 {
    X509::from_pem(FIXTURE_CERT).unwrap()
}

#[test]
fn oid_constants_match_their_names() {
    for (bytes, text) in [
        (oid::ENVELOPED_DATA, "1.2.840.113549.1.7.3"),
        (oid::AUTH_ENVELOPED_DATA, "1.2.840.113549.1.9.16.1.23"),
        (oid::RSA_ENCRYPTION, "1.2.840.113549.1.1.1"),
        (oid::RSAES_OAEP, "1.2.840.113549.1.1.7"),
        (oid::MGF1, "1.2.840.113549.1.1.8"),
        (oid::P_SPECIFIED, "1.2.840.113549.1.1.9"),
        (oid::SHA1, "1.3.14.3.2.26"),
        (oid::SHA224, "2.16.840.1.101.3.4.2.4"),
        (oid::SHA256, "2.16.840.1.101.3.4.2.1"),
        (oid::SHA384, "2.16.840.1.101.3.4.2.2"),
        (oid::SHA512, "2.16.840.1.101.3.4.2.3"),
        (oid::AES128_CBC, "2.16.840.1.101.3.4.1.2"),
        (oid::AES192_CBC, "2.16.840.1.101.3.4.1.22"),
        (oid::AES256_CBC, "2.16.840.1.101.3.4.1.42"),
        (oid::AES128_GCM, "2.16.840.1.101.3.4.1.6"),
        (oid::AES192_GCM, "2.16.840.1.101.3.4.1.26"),
        (oid::AES256_GCM, "2.16.840.1.101.3.4.1.46"),
        (oid::DES_EDE3_CBC, "1.2.840.113549.3.7"),
        (oid::DES_CBC, "1.3.14.3.2.7"),
        (oid::RC2_CBC, "1.2.840.113549.3.2"),
        (DATA, "1.2.840.113549.1.7.1"),
    ] {
        assert_eq!(bytes, der::oid(text).as_slice(), "{text}");
    }
}

#[test]
fn skopeo_blob_has_the_go_layout_and_opens() {
    let envelope = parse(FIXTURE).unwrap();
    assert_eq!(envelope.container, Container::Enveloped);
    assert_eq!(envelope.cipher.algorithm, ContentAlgorithm::Aes128Gcm);
    assert_eq!(envelope.cipher.icv_len, 16);
    assert_eq!(envelope.recipients.len(), 1);
    assert_eq!(envelope.recipients[0].transport, Ok(KeyTransport::Pkcs1v15));
    assert_eq!(
        envelope.describe_recipients(),
        "1 pkcs7 recipient: issuer CN=ctd-decoder fixture CA serial 0xC0FFEE15900D (RSA-2048)"
    );

    let key = fixture_key();
    let cert = fixture_cert();
    let plaintext = opens(&ring(&[&key], &[&cert]), FIXTURE);
    let options = options::parse_private(&plaintext).unwrap();
    assert_eq!(options.symkey.len(), 32);
    assert_eq!(options.cipher_options["nonce"].len(), 16);
    assert!(options.digest.starts_with("sha256:"), "{}", options.digest);
    // The key alone (no certificate) opens it too.
    assert_eq!(opens(&ring(&[&key], &[]), FIXTURE), plaintext);
    // A certificate that is not the recipient's does not stop the key-only fallback.
    let ca = X509::from_pem(FIXTURE_CA).unwrap();
    assert_eq!(
        opens(&ring(&[&key], &[&ca, &alice().cert]), FIXTURE),
        plaintext
    );
}

#[test]
fn go_layout_builder_reproduces_skopeo_byte_for_byte() {
    // Build the same plaintext for the same certificate: everything but the random parts (the
    // encrypted key, the nonce, the ciphertext‖tag) must be identical to skopeo's bytes.
    let key = fixture_key();
    let cert = fixture_cert();
    let plaintext = opens(&ring(&[&key], &[&cert]), FIXTURE);
    let ours = go_blob(&[&cert], 16, &plaintext);
    assert_eq!(ours.len(), FIXTURE.len());
    let theirs = parse(FIXTURE).unwrap();
    let offset = |s: &[u8]| s.as_ptr() as usize - FIXTURE.as_ptr() as usize;
    let ek = theirs.recipients[0].encrypted_key;
    let random_ranges = [
        offset(ek)..offset(ek) + ek.len(),
        // nonce: after `10 13 30 11 84 0c`
        find(FIXTURE, &[0x10, 0x13, 0x30, 0x11, 0x84, 0x0c]) + 6
            ..find(FIXTURE, &[0x10, 0x13, 0x30, 0x11, 0x84, 0x0c]) + 18,
        FIXTURE.len() - theirs.ciphertext.len()..FIXTURE.len(),
    ];
    for (i, (a, b)) in ours.iter().zip(FIXTURE).enumerate() {
        if a != b {
            assert!(
                random_ranges.iter().any(|r| r.contains(&i)),
                "byte {i} differs: {a:#04x} vs {b:#04x}"
            );
        }
    }
    assert_eq!(opens(&ring(&[&key], &[&cert]), &ours), plaintext);
}

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap()
}

#[test]
fn go_layout_every_aes_gcm_key_size() {
    let a = alice();
    for key_len in [16, 24, 32] {
        let blob = go_blob(&[&a.cert], key_len, OPTIONS);
        assert_eq!(opens(&ring(&[&a.key], &[&a.cert]), &blob), OPTIONS);
        assert_eq!(opens(&ring(&[&a.key], &[]), &blob), OPTIONS);
    }
}

#[test]
fn rfc5084_gcm_parameters_and_subject_key_ids() {
    let a = alice();
    let pkcs1 = Wrap::Pkcs1 { null: true };
    for (key_len, icv) in [(16, Some(16)), (32, Some(16)), (16, None), (24, Some(14))] {
        for how in [Rid::IssuerSerial, Rid::KeyId] {
            let blob = standard_gcm_blob(&[(&a.cert, how)], &pkcs1, key_len, icv);
            assert_eq!(opens(&ring(&[&a.key], &[&a.cert]), &blob), OPTIONS);
        }
    }
    let blob = standard_gcm_blob(&[(&a.cert, Rid::KeyId)], &pkcs1, 16, None);
    let text = no_key_fits(&ring(&[&bob().key], &[&bob().cert]), &blob);
    let ski = hex_upper(a.cert.subject_key_id().unwrap().as_slice());
    assert_eq!(
        text,
        format!("1 pkcs7 recipient: subject key id {ski} (RSA-2048)")
    );
}

#[test]
fn openssl_cms_every_cipher() {
    let a = alice();
    let b = bob();
    let ciphers = [
        Cipher::aes_128_cbc(),
        Cipher::aes_192_cbc(),
        Cipher::aes_256_cbc(),
        Cipher::des_ede3_cbc(),
        // OpenSSL writes AuthEnvelopedData with RFC 5084 parameters for GCM.
        Cipher::aes_128_gcm(),
        Cipher::aes_192_gcm(),
        Cipher::aes_256_gcm(),
    ];
    for cipher in ciphers {
        for flags in [CMSOptions::empty(), CMSOptions::USE_KEYID] {
            let blob = openssl_cms(&[&a.cert, &b.cert], cipher, flags);
            let name = format!("{:?} {flags:?}", cipher.nid());
            let envelope = parse(&blob).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(envelope.recipients.len(), 2, "{name}");
            for p in [a, b] {
                assert_eq!(
                    opens(&ring(&[&p.key], &[&p.cert]), &blob),
                    OPTIONS,
                    "{name}"
                );
                assert_eq!(opens(&ring(&[&p.key], &[]), &blob), OPTIONS, "{name}");
            }
            let c = carol();
            no_usable_keys(&ring(&[&c.key], &[&c.cert]), &blob);
        }
    }
}

#[test]
fn openssl_cli_rsaes_oaep() {
    let a = alice();
    let tmp = tempfile::tempdir().unwrap();
    let cert = tmp.path().join("cert.pem");
    let input = tmp.path().join("options.json");
    std::fs::write(&cert, a.cert.to_pem().unwrap()).unwrap();
    std::fs::write(&input, OPTIONS).unwrap();
    let cases = [
        ("sha1", None, Hash::Sha1),
        ("sha256", None, Hash::Sha256),
        ("sha512", Some("sha1"), Hash::Sha512),
    ];
    for (md, mgf1, hash) in cases {
        for cipher in ["-aes-256-cbc", "-aes-128-gcm"] {
            let out = tmp.path().join(format!("{md}{cipher}.der"));
            let mut cmd = std::process::Command::new("openssl");
            cmd.args(["cms", "-encrypt", "-binary", cipher, "-outform", "DER"])
                .arg("-in")
                .arg(&input)
                .arg("-out")
                .arg(&out)
                .arg("-recip")
                .arg(&cert)
                .args(["-keyopt", "rsa_padding_mode:oaep"])
                .args(["-keyopt", &format!("rsa_oaep_md:{md}")]);
            if let Some(mgf1) = mgf1 {
                cmd.args(["-keyopt", &format!("rsa_mgf1_md:{mgf1}")]);
            }
            let result = cmd
                .output()
                .expect("this test needs the openssl command (apt-get install openssl)");
            assert!(
                result.status.success(),
                "openssl cms: {}",
                String::from_utf8_lossy(&result.stderr)
            );
            let blob = std::fs::read(&out).unwrap();
            let envelope = parse(&blob).unwrap();
            match &envelope.recipients[0].transport {
                Ok(KeyTransport::Oaep { hash: h, .. }) => assert_eq!(*h, hash, "{md}"),
                other => panic!("{md}: {other:?}"),
            }
            assert!(envelope
                .describe_recipients()
                .ends_with(&format!("(RSA-2048 OAEP {})", hash.name())));
            assert_eq!(opens(&ring(&[&a.key], &[&a.cert]), &blob), OPTIONS, "{md}");
            no_key_fits(&ring(&[&bob().key], &[]), &blob);
        }
    }
}

/// `RSAES-OAEP-params` with `hashFunc`, `maskGenFunc` and `pSourceFunc` as `[0]`, `[1]`, `[2]`.
fn oaep_params_der(hash: Option<&[u8]>, mgf1: Option<&[u8]>, label: Option<&[u8]>) -> Vec<u8> {
    let mut parts = Vec::new();
    if let Some(h) = hash {
        parts.push(tlv(CTX0, &algorithm(h, None)));
    }
    if let Some(m) = mgf1 {
        parts.push(tlv(
            CTX1,
            &algorithm(oid::MGF1, Some(&algorithm(m, Some(&[5, 0])))),
        ));
    }
    if let Some(l) = label {
        parts.push(tlv(
            CTX2,
            &algorithm(oid::P_SPECIFIED, Some(&tlv(tag::OCTET_STRING, l))),
        ));
    }
    tlv(tag::SEQUENCE, &parts.concat())
}

#[test]
fn oaep_parameter_forms() {
    let a = alice();
    let cases: Vec<(&str, Wrap)> = vec![
        (
            "absent: all SHA-1",
            Wrap::Oaep {
                hash: Hash::Sha1,
                mgf1: Hash::Sha1,
                label: vec![],
                params: None,
            },
        ),
        (
            "NULL: all SHA-1",
            Wrap::Oaep {
                hash: Hash::Sha1,
                mgf1: Hash::Sha1,
                label: vec![],
                params: Some(vec![5, 0]),
            },
        ),
        (
            "empty SEQUENCE: all SHA-1",
            Wrap::Oaep {
                hash: Hash::Sha1,
                mgf1: Hash::Sha1,
                label: vec![],
                params: Some(oaep_params_der(None, None, None)),
            },
        ),
        (
            "smallstep: hash only, MGF1 with the same hash",
            Wrap::Oaep {
                hash: Hash::Sha256,
                mgf1: Hash::Sha256,
                label: vec![],
                params: Some(oaep_params_der(Some(oid::SHA256), None, None)),
            },
        ),
        (
            "RFC 4055: hash only, MGF1 SHA-1 by default",
            Wrap::Oaep {
                hash: Hash::Sha384,
                mgf1: Hash::Sha1,
                label: vec![],
                params: Some(oaep_params_der(Some(oid::SHA384), None, None)),
            },
        ),
        (
            "explicit hashes and a label",
            Wrap::Oaep {
                hash: Hash::Sha224,
                mgf1: Hash::Sha512,
                label: b"ocicrypt".to_vec(),
                params: Some(oaep_params_der(
                    Some(oid::SHA224),
                    Some(oid::SHA512),
                    Some(b"ocicrypt"),
                )),
            },
        ),
    ];
    for (name, wrap) in &cases {
        let blob = standard_gcm_blob(&[(&a.cert, Rid::IssuerSerial)], wrap, 32, Some(16));
        assert_eq!(
            opens(&ring(&[&a.key], &[&a.cert]), &blob),
            OPTIONS,
            "{name}"
        );
    }
    // The label is authenticated by OAEP: a different one does not open.
    let wrong_label = Wrap::Oaep {
        hash: Hash::Sha256,
        mgf1: Hash::Sha256,
        label: b"other".to_vec(),
        params: Some(oaep_params_der(
            Some(oid::SHA256),
            Some(oid::SHA256),
            Some(b"ocicrypt"),
        )),
    };
    let blob = standard_gcm_blob(&[(&a.cert, Rid::IssuerSerial)], &wrong_label, 16, Some(16));
    no_key_fits(&ring(&[&a.key], &[&a.cert]), &blob);
    // Unsupported OAEP hashes are named, and that recipient is not tried.
    let md5 = der::oid("1.2.840.113549.2.5");
    let unsupported = Wrap::Oaep {
        hash: Hash::Sha1,
        mgf1: Hash::Sha1,
        label: vec![],
        params: Some(oaep_params_der(Some(&md5), None, None)),
    };
    let blob = standard_gcm_blob(&[(&a.cert, Rid::IssuerSerial)], &unsupported, 16, Some(16));
    let text = no_usable_keys(&ring(&[&a.key], &[&a.cert]), &blob);
    assert!(
        text.contains("OAEP hash 1.2.840.113549.2.5 not supported"),
        "{text}"
    );
}

#[test]
fn several_recipients_each_key_alone() {
    let (a, b, c) = (alice(), bob(), carol());
    let blob = go_blob(&[&a.cert, &b.cert, &c.cert], 16, OPTIONS);
    for p in [a, b, c] {
        assert_eq!(opens(&ring(&[&p.key], &[&p.cert]), &blob), OPTIONS);
        assert_eq!(opens(&ring(&[&p.key], &[]), &blob), OPTIONS);
        // Other parties' certificates and keys around it change nothing.
        let all_certs = [&a.cert, &b.cert, &c.cert];
        assert_eq!(opens(&ring(&[&p.key], &all_certs), &blob), OPTIONS);
    }
    let stranger = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let text = no_key_fits(&ring(&[&stranger], &[]), &blob);
    assert_eq!(
        text,
        "3 pkcs7 recipients: issuer CN=ctd-decoder unit CA serial 0x1001 (RSA-2048), \
         issuer CN=ctd-decoder unit CA serial 0x0B0B (RSA-2048), \
         issuer CN=ctd-decoder unit CA serial 0x0C0C (RSA-3072)"
    );
}

#[test]
fn certificates_select_keys_and_the_fallback_needs_the_modulus_size() {
    let (a, b, c) = (alice(), bob(), carol());
    let blob = go_blob(&[&a.cert], 16, OPTIONS);
    // Only an RSA-3072 key: it cannot be alice's RSA-2048 recipient, so it is not even tried.
    let text = no_usable_keys(&ring(&[&c.key], &[&c.cert]), &blob);
    assert!(text.ends_with("serial 0x1001 (RSA-2048)"), "{text}");
    // EC keys are never tried.
    let ec = PKey::from_ec_key(
        openssl::ec::EcKey::generate(
            &openssl::ec::EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    no_usable_keys(&ring(&[&ec], &[]), &blob);
    // Alice's certificate without her key: other keys of the right size are still tried.
    no_key_fits(&ring(&[&b.key], &[&a.cert]), &blob);
    // A renewed certificate (same key, other serial) locally: the key still opens it.
    let renewed = certificate(&a.key, "alice", 0x2001, Some(ca()));
    assert_eq!(opens(&ring(&[&a.key], &[&renewed]), &blob), OPTIONS);
    // Planning: certificate-named pairs come first, the fallback after.
    let envelope = parse(&blob).unwrap();
    let certs: Vec<CertInfo> = ring(&[], &[&a.cert])
        .certificates
        .iter()
        .filter_map(CertInfo::new)
        .collect();
    let keys = ring(&[&b.key, &a.key], &[]).private_keys;
    let plan = envelope.plan(&certs, &keys);
    assert_eq!(
        plan.len(),
        1,
        "only alice's key is named by her certificate"
    );
    assert!(plan[0].1.key.public_eq(&a.key));
    assert_eq!(envelope.plan(&[], &keys).len(), 2);
    // The same key twice (keys directory and payload) is tried once.
    let twice = ring(&[&a.key, &b.key, &a.key], &[]).private_keys;
    assert_eq!(envelope.plan(&[], &twice).len(), 2);
    assert_eq!(envelope.plan(&certs, &twice).len(), 1);
}

#[test]
fn wrong_content_keys_are_never_accepted() {
    let a = alice();
    let key_ring = ring(&[&a.key], &[&a.cert]);
    let nonce = random(12);
    let params = tlv(
        PRIMITIVE_SEQUENCE,
        &seq(&[&tlv(GO_NONCE, &nonce), &int(16)]),
    );
    let alg = algorithm(oid::AES128_GCM, Some(&params));
    let cek = random(16);
    let content = tlv(
        CTX0,
        &tlv(tag::OCTET_STRING, &gcm_seal(&cek, &nonce, 16, OPTIONS)),
    );
    let pkcs1 = Wrap::Pkcs1 { null: false };
    // Sanity: the right CEK opens.
    let good = enveloped(
        &[ktri(&a.cert, Rid::IssuerSerial, &pkcs1, &cek)],
        &alg,
        &content,
    );
    assert_eq!(opens(&key_ring, &good), OPTIONS);
    // Another CEK of the right length fails the GCM tag.
    let other = enveloped(
        &[ktri(&a.cert, Rid::IssuerSerial, &pkcs1, &random(16))],
        &alg,
        &content,
    );
    no_key_fits(&key_ring, &other);
    // A CEK of the wrong length (the right one, extended) is replaced, not truncated or used.
    let mut longer = cek.clone();
    longer.extend(random(16));
    let long = enveloped(
        &[ktri(&a.cert, Rid::IssuerSerial, &pkcs1, &longer)],
        &alg,
        &content,
    );
    no_key_fits(&key_ring, &long);
    // Random bytes as the encrypted key (PKCS#1 padding error, or implicit rejection).
    let mut garbage = good.clone();
    let envelope = parse(&good).unwrap();
    let ek = envelope.recipients[0].encrypted_key;
    let start = ek.as_ptr() as usize - good.as_ptr() as usize;
    garbage[start..start + ek.len()].copy_from_slice(&random(ek.len()));
    no_key_fits(&key_ring, &garbage);
}

#[test]
fn cbc_plaintext_must_be_private_options() {
    let a = alice();
    let key_ring = ring(&[&a.key], &[&a.cert]);
    let blob = cbc_blob(&a.cert, Cipher::aes_256_cbc(), oid::AES256_CBC, OPTIONS);
    assert_eq!(opens(&key_ring, &blob), OPTIONS);
    // Right key, right padding, but not ocicrypt options: it is not accepted as a layer key
    // (with a wrong key that got past the padding check, this is what would come out).
    let blob = cbc_blob(
        &a.cert,
        Cipher::aes_256_cbc(),
        oid::AES256_CBC,
        b"not JSON at all",
    );
    no_key_fits(&key_ring, &blob);
    let blob = cbc_blob(
        &a.cert,
        Cipher::des_ede3_cbc(),
        oid::DES_EDE3_CBC,
        b"{\"symkey\":\"AA==\"}",
    );
    no_key_fits(&key_ring, &blob);
}

#[test]
fn unsupported_and_malformed_structures_are_named() {
    let a = alice();
    let key_ring = ring(&[&a.key], &[&a.cert]);
    let pkcs1 = Wrap::Pkcs1 { null: false };
    let cek = random(16);
    let recipient = [ktri(&a.cert, Rid::IssuerSerial, &pkcs1, &cek)];
    let content = tlv(CONTENT_PRIMITIVE, &[0u8; 32]);
    let iv8 = tlv(tag::OCTET_STRING, &[0u8; 8]);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            enveloped(&recipient, &algorithm(oid::DES_CBC, Some(&iv8)), &content),
            "DES-CBC (56-bit single DES) is refused",
        ),
        (
            enveloped(&recipient, &algorithm(oid::RC2_CBC, Some(&iv8)), &content),
            "RC2-CBC is refused",
        ),
        (
            enveloped(
                &recipient,
                &algorithm(&der::oid("1.2.392.200011.61.1.1.1.2"), Some(&iv8)),
                &content,
            ),
            "content cipher 1.2.392.200011.61.1.1.1.2 is not supported",
        ),
        (
            content_info(&der::oid("1.2.840.113549.1.7.2"), &seq(&[&int(1)])),
            "CMS content type 1.2.840.113549.1.7.2, not EnvelopedData",
        ),
        (
            enveloped(
                &recipient,
                &algorithm(
                    oid::AES128_GCM,
                    Some(&seq(&[&tlv(tag::OCTET_STRING, &[0; 16]), &int(16)])),
                ),
                &content,
            ),
            "nonce is 16 bytes, 12 expected",
        ),
        (
            enveloped(
                &recipient,
                &algorithm(
                    oid::AES128_GCM,
                    Some(&seq(&[&tlv(tag::OCTET_STRING, &[0; 12]), &int(8)])),
                ),
                &content,
            ),
            "tag length 8 is not 12 to 16 bytes",
        ),
        (
            enveloped(
                &recipient,
                &algorithm(
                    oid::AES128_GCM,
                    Some(&seq(&[&tlv(tag::OCTET_STRING, &[0; 12]), &int(16)])),
                ),
                &tlv(CONTENT_PRIMITIVE, &[0; 10]),
            ),
            "content of 10 bytes is shorter than its 16-byte tag",
        ),
        (
            enveloped(
                &recipient,
                &algorithm(oid::AES128_CBC, Some(&tlv(tag::OCTET_STRING, &[0; 16]))),
                &tlv(CONTENT_PRIMITIVE, &[0; 17]),
            ),
            "not a whole number of blocks",
        ),
        (
            enveloped(
                &recipient,
                &algorithm(oid::AES128_CBC, Some(&iv8)),
                &content,
            ),
            "CBC IV is 8 bytes, 16 expected",
        ),
        (
            enveloped(
                &recipient,
                &algorithm(oid::AES128_CBC, Some(&tlv(tag::OCTET_STRING, &[0; 16]))),
                &[],
            ),
            "detached content is not supported",
        ),
        (
            enveloped(&[], &algorithm(oid::AES128_CBC, Some(&iv8)), &content),
            "has no recipients",
        ),
        (
            enveloped(
                &recipient,
                &algorithm(oid::AES128_CBC, Some(&tlv(tag::OCTET_STRING, &[0; 16]))),
                &tlv(CTX0, &tlv(tag::OCTET_STRING | tag::CONSTRUCTED, &[])),
            ),
            "encryptedContent is malformed (unexpected DER tag 0x24)",
        ),
        (
            {
                let mut blob = go_blob(&[&a.cert], 16, OPTIONS);
                blob.push(0);
                blob
            },
            "trailing data",
        ),
        (vec![0u8; MAX_PKCS7_LEN + 1], "larger than 1024 KiB"),
        (Vec::new(), "ContentInfo is malformed (truncated DER)"),
    ];
    for (blob, needle) in cases {
        let reason = malformed(&key_ring, &blob);
        assert!(reason.contains(needle), "{needle:?} not in {reason:?}");
        assert!(reason.starts_with("pkcs7 "), "{reason}");
    }
}

#[test]
fn auth_enveloped_data_rules() {
    let a = alice();
    let key_ring = ring(&[&a.key], &[&a.cert]);
    let blob = openssl_cms(&[&a.cert], Cipher::aes_256_gcm(), CMSOptions::empty());
    assert_eq!(opens(&key_ring, &blob), OPTIONS);
    let envelope = parse(&blob).unwrap();
    assert_eq!(envelope.container, Container::AuthEnveloped);
    assert!(envelope
        .describe_recipients()
        .starts_with("1 pkcs7 (AuthEnvelopedData) recipient: issuer CN=ctd-decoder unit CA"));

    // Rebuild it around other fields to check the rules.
    let recipient = ktri(
        &a.cert,
        Rid::IssuerSerial,
        &Wrap::Pkcs1 { null: true },
        &random(16),
    );
    let gcm = algorithm(
        oid::AES128_GCM,
        Some(&seq(&[&tlv(tag::OCTET_STRING, &[0; 12]), &int(16)])),
    );
    let cbc = algorithm(oid::AES128_CBC, Some(&tlv(tag::OCTET_STRING, &[0; 16])));
    let auth = |alg: &[u8], middle: &[u8], mac: &[u8]| {
        let eci = seq(&[&oid_tlv(DATA), alg, &tlv(CONTENT_PRIMITIVE, &[0; 16])]);
        let body = seq(&[
            &int(0),
            &tlv(tag::SET, &recipient),
            &eci,
            middle,
            &tlv(tag::OCTET_STRING, mac),
        ]);
        content_info(oid::AUTH_ENVELOPED_DATA, &body)
    };
    let attrs = tlv(CTX1, &seq(&[&oid_tlv(DATA)]));
    let reason = malformed(&key_ring, &auth(&gcm, &attrs, &[0; 16]));
    assert!(reason.contains("authenticated attributes"), "{reason}");
    let reason = malformed(&key_ring, &auth(&cbc, &[], &[0; 16]));
    assert!(reason.contains("must use AES-GCM"), "{reason}");
    let reason = malformed(&key_ring, &auth(&gcm, &[], &[0; 12]));
    assert!(reason.contains("tag is 12 bytes"), "{reason}");
    // Well-formed but the tag is wrong.
    no_key_fits(&key_ring, &auth(&gcm, &[], &[0; 16]));
}

#[test]
fn other_recipient_kinds_are_described_not_tried() {
    let a = alice();
    let blob = go_blob(&[&a.cert], 16, OPTIONS);
    // Splice a key-agreement and a password recipient in front of alice's.
    let info = Reader::new(&blob).read_tag(tag::SEQUENCE).unwrap();
    let mut r = info.reader();
    r.read_tag(tag::OID).unwrap();
    let explicit = r.read_tag(CTX0).unwrap();
    let env = explicit.reader().read_tag(tag::SEQUENCE).unwrap();
    let mut e = env.reader();
    e.read_tag(tag::INTEGER).unwrap();
    let old_set = e.read_tag(tag::SET).unwrap().value;
    let eci_and_rest = e.rest();
    let kari = tlv(CTX1, &int(3));
    let pwri = tlv(tag::CONTEXT_CONSTRUCTED | 3, &int(0));
    let new_set = [kari.as_slice(), &pwri, old_set].concat();
    let env = seq(&[&int(0), &tlv(tag::SET, &new_set), eci_and_rest]);
    let spliced = content_info(oid::ENVELOPED_DATA, &env);
    assert_eq!(opens(&ring(&[&a.key], &[]), &spliced), OPTIONS);
    let text = no_key_fits(&ring(&[&bob().key], &[]), &spliced);
    assert!(
        text.starts_with(
            "3 pkcs7 recipients: a key-agreement recipient (not supported), \
             a password recipient (not supported), issuer CN="
        ),
        "{text}"
    );
    // Only unsupported recipients: no key is usable.
    let env = seq(&[&int(0), &tlv(tag::SET, &kari), eci_and_rest]);
    no_usable_keys(
        &ring(&[&a.key], &[]),
        &content_info(oid::ENVELOPED_DATA, &env),
    );
}

#[test]
fn recipient_and_attempt_limits() {
    let a = alice();
    let cek = random(16);
    let one = ktri(
        &a.cert,
        Rid::IssuerSerial,
        &Wrap::Pkcs1 { null: false },
        &cek,
    );
    let nonce = random(12);
    let params = tlv(
        PRIMITIVE_SEQUENCE,
        &seq(&[&tlv(GO_NONCE, &nonce), &int(16)]),
    );
    let alg = algorithm(oid::AES128_GCM, Some(&params));
    let content = tlv(
        CTX0,
        &tlv(tag::OCTET_STRING, &gcm_seal(&cek, &nonce, 16, OPTIONS)),
    );

    let too_many = vec![one.clone(); MAX_RECIPIENTS + 1];
    let reason = malformed(&ring(&[], &[]), &enveloped(&too_many, &alg, &content));
    assert!(reason.contains("more than 256 recipients"), "{reason}");

    // 70 recipients nobody here can open, then alice's: the work stops at the attempt limit.
    let stranger = certificate(&bob().key, "stranger", 7, Some(ca()));
    let decoy = ktri(
        &stranger,
        Rid::IssuerSerial,
        &Wrap::Pkcs1 { null: false },
        &random(16),
    );
    let mut infos = vec![decoy; 70];
    infos.push(one);
    let blob = enveloped(&infos, &alg, &content);
    let text = no_key_fits(&ring(&[&carol().key, &bob().key], &[]), &blob);
    assert!(text.starts_with("71 pkcs7 recipients: "), "{text}");
    assert!(text.contains("and 67 more"), "{text}");
    assert!(
        text.ends_with("; gave up after 64 of 71 key attempts"),
        "{text}"
    );
    // With alice's certificate her recipient is tried first, despite its position.
    assert_eq!(
        opens(&ring(&[&bob().key, &a.key], &[&a.cert]), &blob),
        OPTIONS
    );
}

// ---------------------------------------------------------------------------------------------
// Robustness: no input panics, and no corruption yields a different plaintext (GCM).

/// A DER tree, to truncate one element and re-encode everything around it.
enum Node {
    Leaf(u8, Vec<u8>),
    Tree(u8, Vec<Node>),
}

fn tree(bytes: &[u8]) -> Vec<Node> {
    let mut r = Reader::new(bytes);
    let mut out = Vec::new();
    while !r.is_empty() {
        let t = r.read().unwrap();
        out.push(if t.is_constructed() {
            Node::Tree(t.tag, tree(t.value))
        } else {
            Node::Leaf(t.tag, t.value.to_vec())
        });
    }
    out
}

fn encode(nodes: &[Node]) -> Vec<u8> {
    nodes
        .iter()
        .flat_map(|n| match n {
            Node::Leaf(t, v) => tlv(*t, v),
            Node::Tree(t, children) => tlv(*t, &encode(children)),
        })
        .collect()
}

fn count(nodes: &[Node]) -> usize {
    nodes
        .iter()
        .map(|n| match n {
            Node::Leaf(..) => 1,
            Node::Tree(_, c) => 1 + count(c),
        })
        .sum()
}

/// The encoding with element number `target` (pre-order) cut to `cut` contents bytes, and every
/// enclosing length fixed up. `None` when `cut` is not shorter than the contents.
fn truncated(nodes: &[Node], target: usize, cut: usize) -> Option<Vec<u8>> {
    fn walk(
        nodes: &[Node],
        target: usize,
        cut: usize,
        index: &mut usize,
        hit: &mut bool,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        for n in nodes {
            let me = *index;
            *index += 1;
            let (t, contents) = match n {
                Node::Leaf(t, v) => (*t, v.clone()),
                Node::Tree(t, c) => (*t, walk(c, target, cut, index, hit)),
            };
            if me == target && cut < contents.len() {
                *hit = true;
                out.extend(tlv(t, &contents[..cut]));
            } else {
                out.extend(tlv(t, &contents));
            }
        }
        out
    }
    let mut hit = false;
    let out = walk(nodes, target, cut, &mut 0, &mut hit);
    hit.then_some(out)
}

/// Runs `blob` and checks the contract: no panic (the test would fail), and a success only ever
/// yields `expected` when there is one (the content is authenticated).
fn check(key_ring: &KeyRing, blob: &[u8], expected: Option<&[u8]>, what: &str) {
    if let (Ok(plaintext), Some(expected)) = (Pkcs7.unwrap_key(key_ring, blob), expected) {
        assert_eq!(plaintext.expose(), expected, "{what}");
    }
}

fn robustness_blobs() -> Vec<(&'static str, Vec<u8>, bool, KeyRing)> {
    let a = alice();
    let fixture_ring = ring(&[&fixture_key()], &[&fixture_cert()]);
    let alice_ring = || ring(&[&a.key], &[&a.cert]);
    vec![
        (
            "go",
            go_blob(&[&a.cert, &bob().cert], 16, OPTIONS),
            true,
            alice_ring(),
        ),
        ("skopeo", FIXTURE.to_vec(), true, fixture_ring),
        (
            "openssl cbc",
            openssl_cms(&[&a.cert], Cipher::aes_128_cbc(), CMSOptions::empty()),
            false,
            alice_ring(),
        ),
        (
            "openssl gcm",
            openssl_cms(&[&a.cert], Cipher::aes_128_gcm(), CMSOptions::USE_KEYID),
            true,
            alice_ring(),
        ),
        (
            "oaep",
            standard_gcm_blob(
                &[(&a.cert, Rid::IssuerSerial)],
                &Wrap::Oaep {
                    hash: Hash::Sha256,
                    mgf1: Hash::Sha256,
                    label: vec![],
                    params: Some(oaep_params_der(Some(oid::SHA256), Some(oid::SHA256), None)),
                },
                16,
                Some(16),
            ),
            true,
            alice_ring(),
        ),
    ]
}

#[test]
fn truncation_at_every_offset_of_every_element() {
    for (name, blob, _, key_ring) in robustness_blobs() {
        // Truncation cannot steer CBC plaintext either (a cut IV is refused, a cut ciphertext
        // loses its padding or its JSON), so every success must be the original, CBC included.
        let plaintext = opens(&key_ring, &blob);
        let expected = Some(plaintext.as_slice());
        for cut in 0..blob.len() {
            assert!(
                Pkcs7.unwrap_key(&key_ring, &blob[..cut]).is_err(),
                "{name} cut {cut}"
            );
        }
        let nodes = tree(&blob);
        assert_eq!(encode(&nodes), blob, "{name}: the tree re-encodes exactly");
        for target in 0..count(&nodes) {
            for cut in 0.. {
                let Some(variant) = truncated(&nodes, target, cut) else {
                    break;
                };
                check(
                    &key_ring,
                    &variant,
                    expected,
                    &format!("{name} {target}/{cut}"),
                );
            }
        }
    }
}

#[test]
fn corrupting_any_byte_never_panics_or_yields_other_plaintext() {
    for (name, blob, authenticated, key_ring) in robustness_blobs() {
        let plaintext = opens(&key_ring, &blob);
        // CBC is malleable (flipping IV bits flips plaintext bits): only the layer HMAC catches
        // that, so only "no panic" is checked for it.
        let expected = authenticated.then_some(plaintext.as_slice());
        for i in 0..blob.len() {
            for value in [0x00, 0xff, blob[i] ^ 0x01, blob[i] ^ 0x80] {
                let mut variant = blob.clone();
                variant[i] = value;
                check(
                    &key_ring,
                    &variant,
                    expected,
                    &format!("{name} [{i}]={value:#04x}"),
                );
            }
        }
    }
}
