//! Fixtures shared by the fuzz targets and the seed generator: fixed key rings built from the
//! committed test fixtures (test-only keys, never used for anything real), known plaintexts, and
//! the "errors never echo input values" check.
//!
//! * `jwe`: the five private JWKs of `tests/data/jwe/kat.json` (RSA-2048, RSA-3072, EC P-256,
//!   P-384, P-521), made by python-jwcrypto for the known-answer vectors.
//! * `pkcs7`: `tests/data/pkcs7/client.key` with `client.pem` and `ca.pem`, the recipient of the
//!   skopeo-written `skopeo-1.9.3.der`.
//! * `pgp`: `tests/data/pgp/secret.gpg`, the recipient of the skopeo- and GnuPG-written messages
//!   beside it.

use std::sync::OnceLock;

use ctd_decoder::keys::parse::{self, Item};
use ctd_decoder::keys::{Certificate, KeyRing, KeySource, PrivateKey};
use ctd_decoder::keywrap::{pkcs7::Pkcs7, KeyUnwrapper};

/// The JWE known-answer vectors (test-only keys).
pub const KAT_JSON: &str = include_str!("../../tests/data/jwe/kat.json");
/// The pkcs7 fixture's recipient key (test-only).
pub const PKCS7_KEY: &[u8] = include_bytes!("../../tests/data/pkcs7/client.key");
/// The pkcs7 fixture's recipient certificate.
pub const PKCS7_CERT: &[u8] = include_bytes!("../../tests/data/pkcs7/client.pem");
/// The CA that issued it.
pub const PKCS7_CA: &[u8] = include_bytes!("../../tests/data/pkcs7/ca.pem");
/// The pgp fixture's secret keyring (test-only; `tests/data/pgp/make-fixtures.sh`).
pub const PGP_SECRET: &[u8] = include_bytes!("../../tests/data/pgp/secret.gpg");
/// The plaintext of the pgp fixtures' messages.
pub const PGP_PLAINTEXT: &[u8] = include_bytes!("../../tests/data/pgp/skopeo-1.9.3.json");
/// A pkcs7 blob written by skopeo 1.9.3 (Go ocicrypt) for `client.pem`.
pub const PKCS7_SKOPEO: &[u8] = include_bytes!("../../tests/data/pkcs7/skopeo-1.9.3.der");

/// Private options every generated seed wraps (protocol.md §3.5's known-answer options).
pub const PRIVATE_OPTIONS: &[u8] = br#"{"symkey":"ERERERERERERERERERERERERERERERERERERERERERE=","digest":"sha256:509ddb85fdf92f197d32570c005cdcb6dffa398f088bd1a013459f6fb1f730ef","cipheroptions":{"nonce":"/////////////////////g=="}}"#;
/// Public options matching [`PRIVATE_OPTIONS`] (HMAC of the §3.5 ciphertext).
pub const PUBLIC_OPTIONS: &[u8] = br#"{"cipher":"AES_256_CTR_HMAC_SHA256","hmac":"5OJp+ZL+cBrQ74G1ysWBIe6RXHSkZpKc5VD0zl5tqIA=","cipheroptions":{}}"#;
/// Password of the encrypted key seeds (`keys` target).
pub const KEY_PASSWORD: &[u8] = b"fuzz-password";

/// One JWE known-answer vector.
pub struct KatVector {
    /// Key-management algorithm.
    pub alg: String,
    /// Content encryption.
    pub enc: String,
    /// The private key as a JWK document.
    pub jwk: String,
    /// The JWE, JSON serialization.
    pub jwe: String,
    /// Its plaintext.
    pub plaintext: String,
}

/// The vectors of `kat.json`.
pub fn kat_vectors() -> &'static [KatVector] {
    static V: OnceLock<Vec<KatVector>> = OnceLock::new();
    V.get_or_init(|| {
        let doc: serde_json::Value = serde_json::from_str(KAT_JSON).expect("kat.json");
        doc["vectors"]
            .as_array()
            .expect("vectors")
            .iter()
            .map(|v| KatVector {
                alg: v["alg"].as_str().unwrap_or_default().to_string(),
                enc: v["enc"].as_str().unwrap_or_default().to_string(),
                jwk: v["jwk"].to_string(),
                jwe: v["jwe"].to_string(),
                plaintext: v["plaintext"].as_str().unwrap_or_default().to_string(),
            })
            .collect()
    })
}

/// The distinct private JWKs of the vectors, one per key-management algorithm, in order.
pub fn kat_jwks() -> Vec<&'static KatVector> {
    let mut out: Vec<&KatVector> = Vec::new();
    for v in kat_vectors() {
        if !out.iter().any(|o| o.jwk == v.jwk) {
            out.push(v);
        }
    }
    out
}

fn add(ring: &mut KeyRing, index: usize, bytes: &[u8]) {
    for item in parse::parse(bytes, None) {
        let source = KeySource::Payload {
            param: "privkeys",
            index,
        };
        match item {
            Item::Private(key) => ring.private_keys.push(PrivateKey { source, key }),
            Item::Certificate(cert) => ring.certificates.push(Certificate { source, cert }),
            other => panic!("fixture {index} is not a key or certificate: {other:?}"),
        }
    }
}

/// The `jwe` target's key ring: every KAT key.
pub fn jwe_ring() -> &'static KeyRing {
    static R: OnceLock<KeyRing> = OnceLock::new();
    R.get_or_init(|| {
        let mut ring = KeyRing::default();
        for (i, v) in kat_jwks().into_iter().enumerate() {
            add(&mut ring, i, v.jwk.as_bytes());
        }
        assert_eq!(ring.private_keys.len(), 5);
        ring
    })
}

/// Every plaintext a JWE may legitimately open to with [`jwe_ring`]: the KAT plaintexts and
/// [`PRIVATE_OPTIONS`] (what the generated seeds wrap).
pub fn jwe_plaintexts() -> &'static [Vec<u8>] {
    static P: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    P.get_or_init(|| {
        let mut p: Vec<Vec<u8>> = kat_vectors()
            .iter()
            .map(|v| v.plaintext.as_bytes().to_vec())
            .collect();
        p.push(PRIVATE_OPTIONS.to_vec());
        p
    })
}

/// The `pkcs7` target's key ring: the fixture key, its certificate and the CA certificate.
pub fn pkcs7_ring() -> &'static KeyRing {
    static R: OnceLock<KeyRing> = OnceLock::new();
    R.get_or_init(|| {
        let mut ring = KeyRing::default();
        add(&mut ring, 0, PKCS7_KEY);
        add(&mut ring, 1, PKCS7_CERT);
        add(&mut ring, 2, PKCS7_CA);
        assert_eq!(ring.private_keys.len(), 1);
        assert_eq!(ring.certificates.len(), 2);
        ring
    })
}

/// Every plaintext a pkcs7 blob may legitimately open to with [`pkcs7_ring`]: the skopeo
/// fixture's and [`PRIVATE_OPTIONS`].
pub fn pkcs7_plaintexts() -> &'static [Vec<u8>] {
    static P: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    P.get_or_init(|| {
        let skopeo = Pkcs7
            .unwrap_key(pkcs7_ring(), PKCS7_SKOPEO)
            .expect("the skopeo fixture opens with its key");
        vec![skopeo.expose().to_vec(), PRIVATE_OPTIONS.to_vec()]
    })
}

/// The `pgp` target's key ring: the fixture's secret keyring, no passphrase.
pub fn pgp_ring() -> &'static KeyRing {
    static R: OnceLock<KeyRing> = OnceLock::new();
    R.get_or_init(|| {
        let mut ring = KeyRing::default();
        ring.openpgp.push(ctd_decoder::keys::OpenPgpKey {
            source: KeySource::Payload {
                param: "gpg-privatekeys",
                index: 0,
            },
            bytes: ctd_decoder::secret::SecretBytes::new(PGP_SECRET.to_vec()),
            password: None,
        });
        ring
    })
}

/// Whether `s` looks like key material: 16 or more characters, no whitespace or quotes, and a
/// digit or one of `+/=` (as base64 of random bytes almost always has).
fn secret_looking(s: &str) -> bool {
    s.chars().count() >= 16
        && !s.chars().any(|c| c.is_whitespace() || c == '"' || c == '`')
        && s.chars().any(|c| c.is_ascii_digit() || "+/=".contains(c))
}

/// The string values of a JSON document that look like secrets ([`secret_looking`]): an error
/// message about that document must contain none of them.
pub fn secret_looking_strings(json: &[u8]) -> Vec<String> {
    fn collect(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s) if secret_looking(s) => out.push(s.clone()),
            serde_json::Value::Array(a) => a.iter().for_each(|x| collect(x, out)),
            serde_json::Value::Object(m) => m.values().for_each(|x| collect(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    // A document serde_json cannot read whole still has string values a lenient reader might
    // quote: look at every quoted run too.
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(json) {
        collect(&v, &mut out);
    }
    for piece in json.split(|&b| b == b'"').skip(1).step_by(2) {
        if let Ok(s) = std::str::from_utf8(piece) {
            if secret_looking(s) {
                out.push(s.to_string());
            }
        }
    }
    out
}

/// Names the decoder prints in its own messages whatever the input: an input value equal to one
/// of them is not echoed when a message contains it (the `annotations` target once flagged "the
/// layer key is 0 bytes; AES_256_CTR_HMAC_SHA256 needs 32 bytes" for private options whose
/// unknown field held that name).
const OWN_WORDS: &[&str] = &[ctd_decoder::options::AES_256_CTR_HMAC_SHA256];

/// Panics if `message` quotes any secret-looking string value of `json` (other than
/// [`OWN_WORDS`]).
pub fn assert_no_echo(message: &str, json: &[u8]) {
    for s in secret_looking_strings(json) {
        if OWN_WORDS.contains(&s.as_str()) {
            continue;
        }
        assert!(
            !message.contains(&s),
            "error message echoes an input value: {message:?}"
        );
    }
}
