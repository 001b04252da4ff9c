//! Writes the committed fuzz seeds, `fuzz/seeds/<target>/`, from the test fixtures
//! (`tests/data/jwe/kat.json`, `tests/data/pkcs7/*`) and the known-answer options of
//! protocol.md §3.5. Run from `fuzz/`: `cargo run --example make_seeds`.
//!
//! Every key here is a test-only fixture key. Seeds that involve randomness (JWE and CMS
//! encryption, encrypted key files, the Ed25519 key) change on every run; the rest are stable.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use ctd_decoder::encoding::encode_std;
use ctd_decoder::payload::{self, Descriptor};
use ctd_decoder_fuzz::{
    jwe_ring, kat_jwks, kat_vectors, pkcs7_ring, KEY_PASSWORD, PKCS7_CA, PKCS7_CERT, PKCS7_KEY,
    PKCS7_SKOPEO, PRIVATE_OPTIONS, PUBLIC_OPTIONS,
};
use josekit::jwe::{self as jose, JweEncrypter, JweHeader, JweHeaderSet};
use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::pkey::{PKey, Private};
use openssl::stack::Stack;
use openssl::symm::Cipher;
use openssl::x509::X509;

const JWE: &str = "org.opencontainers.image.enc.keys.jwe";
const PKCS7: &str = "org.opencontainers.image.enc.keys.pkcs7";
const PUBOPTS: &str = "org.opencontainers.image.enc.pubopts";
const MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip+encrypted";
const DIGEST: &str = "sha256:6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eefdf6ae9f3b9a0e7a1f5e2b";

struct Seeds {
    root: PathBuf,
}

impl Seeds {
    fn target(&self, target: &str) -> PathBuf {
        let dir = self.root.join(target);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }
}

fn put(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) {
    fs::write(dir.join(name), bytes).unwrap();
}

fn jwe_key(index: usize) -> &'static PKey<Private> {
    &jwe_ring().private_keys[index].key
}

/// JWEs that go-jose, josekit and ocicrypt-rs write, to the KAT keys, wrapping the options.
fn generated_jwes() -> Vec<(&'static str, String)> {
    let rsa_pub = jwe_key(0).public_key_to_pem().unwrap();
    let ec_pub = jwe_key(2).public_key_to_pem().unwrap();
    let rsa = jose::RSA_OAEP.encrypter_from_pem(&rsa_pub).unwrap();
    let ec = jose::ECDH_ES_A128KW.encrypter_from_pem(&ec_pub).unwrap();
    let mut protected = JweHeaderSet::new();
    protected.set_content_encryption("A256GCM", true);
    let mut rsa_header = JweHeader::new();
    rsa_header.set_algorithm("RSA-OAEP");
    let mut ec_header = JweHeader::new();
    ec_header.set_algorithm("ECDH-ES+A128KW");
    let recipients: [(Option<&JweHeader>, &dyn JweEncrypter); 2] =
        [(Some(&rsa_header), &rsa), (Some(&ec_header), &ec)];
    let general =
        jose::serialize_general_json(PRIVATE_OPTIONS, Some(&protected), &recipients, None).unwrap();
    // go-jose's quirk: recipient 0's encrypted_key repeated at the top level.
    let mut quirk: serde_json::Value = serde_json::from_str(&general).unwrap();
    quirk["encrypted_key"] = quirk["recipients"][0]["encrypted_key"].clone();
    let mut header = JweHeader::new();
    header.set_content_encryption("A128CBC-HS256");
    let compact = jose::serialize_compact(PRIVATE_OPTIONS, &header, &rsa).unwrap();
    let mut flat_protected = JweHeaderSet::new();
    flat_protected.set_content_encryption("A256GCM", true);
    flat_protected.set_algorithm("RSA-OAEP", true);
    let flattened =
        jose::serialize_flattened_json(PRIVATE_OPTIONS, Some(&flat_protected), None, None, &rsa)
            .unwrap();
    vec![
        ("general-rsa-ec.json", general),
        ("general-go-jose-quirk.json", quirk.to_string()),
        ("compact-rsa.txt", compact),
        ("flattened-go-jose.json", flattened),
    ]
}

/// CMS blobs for the fixture certificate, wrapping the options.
fn generated_pkcs7() -> Vec<(&'static str, Vec<u8>)> {
    let cert = X509::from_pem(PKCS7_CERT).unwrap();
    let mut certs = Stack::new().unwrap();
    certs.push(cert).unwrap();
    let mut out = Vec::new();
    for (name, cipher) in [
        ("pkcs7-aes128cbc.der", Cipher::aes_128_cbc()),
        ("pkcs7-aes256cbc.der", Cipher::aes_256_cbc()),
        ("pkcs7-des-ede3.der", Cipher::des_ede3_cbc()),
    ] {
        let p = Pkcs7::encrypt(&certs, PRIVATE_OPTIONS, cipher, Pkcs7Flags::BINARY).unwrap();
        out.push((name, p.to_der().unwrap()));
    }
    for (name, cipher) in [
        ("cms-aes256gcm-authenveloped.der", Cipher::aes_256_gcm()),
        ("cms-aes192cbc.der", Cipher::aes_192_cbc()),
    ] {
        let c =
            CmsContentInfo::encrypt(&certs, PRIVATE_OPTIONS, cipher, CMSOptions::BINARY).unwrap();
        out.push((name, c.to_der().unwrap()));
    }
    out
}

fn annotations(entries: &[(&str, String)]) -> BTreeMap<String, String> {
    let mut map: BTreeMap<String, String> = entries
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    map.insert(PUBOPTS.into(), encode_std(PUBLIC_OPTIONS));
    map
}

fn descriptor(annotations: BTreeMap<String, String>) -> Descriptor {
    Descriptor {
        media_type: MEDIA_TYPE.into(),
        digest: DIGEST.into(),
        size: Some(50),
        annotations,
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let seeds = Seeds { root };
    let kat = kat_vectors();
    let jwes = generated_jwes();
    let pkcs7s = generated_pkcs7();

    // jwe: every known-answer vector, and the serializations the writers use.
    let dir = seeds.target("jwe");
    for v in kat {
        put(&dir, &format!("kat-{}-{}.json", v.alg, v.enc), &v.jwe);
    }
    for (name, jwe) in &jwes {
        put(&dir, name, jwe);
    }

    // pkcs7: skopeo's blob and OpenSSL's PKCS#7 and CMS forms.
    let dir = seeds.target("pkcs7");
    put(&dir, "skopeo-1.9.3.der", PKCS7_SKOPEO);
    for (name, der) in &pkcs7s {
        put(&dir, name, der);
    }
    assert_eq!(pkcs7_ring().private_keys.len(), 1);

    // pgp: the messages skopeo (Go ocicrypt) and GnuPG wrote for the fixture key.
    let dir = seeds.target("pgp");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/pgp");
    for name in ["skopeo-1.9.3.pgp", "gpg-zlib.pgp", "gpg-plain.pgp"] {
        put(&dir, name, fs::read(fixtures.join(name)).unwrap());
    }

    // keys: the fixture keys in every encoding the parser knows.
    let dir = seeds.target("keys");
    let mut der_seeds: Vec<(String, Vec<u8>)> = Vec::new();
    for (i, v) in kat_jwks().into_iter().enumerate() {
        let key = jwe_key(i);
        let name = v.alg.to_lowercase();
        put(&dir, &format!("{name}.jwk"), &v.jwk);
        put(
            &dir,
            &format!("{name}.pkcs8.der"),
            key.private_key_to_pkcs8().unwrap(),
        );
        der_seeds.push((
            format!("{name}.pkcs8.der"),
            key.private_key_to_pkcs8().unwrap(),
        ));
        if i != 0 && i != 2 {
            continue; // every encoding for RSA-2048 and P-256 only
        }
        put(
            &dir,
            &format!("{name}.pkcs8.pem"),
            key.private_key_to_pem_pkcs8().unwrap(),
        );
        put(
            &dir,
            &format!("{name}.public.pem"),
            key.public_key_to_pem().unwrap(),
        );
        put(
            &dir,
            &format!("{name}.public.der"),
            key.public_key_to_der().unwrap(),
        );
        let cipher = Cipher::aes_256_cbc();
        put(
            &dir,
            &format!("{name}.pkcs8-encrypted.pem"),
            key.private_key_to_pem_pkcs8_passphrase(cipher, KEY_PASSWORD)
                .unwrap(),
        );
        put(
            &dir,
            &format!("{name}.pkcs8-encrypted.der"),
            key.private_key_to_pkcs8_passphrase(cipher, KEY_PASSWORD)
                .unwrap(),
        );
        let (traditional_pem, traditional_der, legacy) = match key.rsa() {
            Ok(r) => (
                r.private_key_to_pem().unwrap(),
                r.private_key_to_der().unwrap(),
                r.private_key_to_pem_passphrase(cipher, KEY_PASSWORD)
                    .unwrap(),
            ),
            Err(_) => {
                let ec = key.ec_key().unwrap();
                (
                    ec.private_key_to_pem().unwrap(),
                    ec.private_key_to_der().unwrap(),
                    ec.private_key_to_pem_passphrase(cipher, KEY_PASSWORD)
                        .unwrap(),
                )
            }
        };
        put(&dir, &format!("{name}.traditional.pem"), &traditional_pem);
        put(&dir, &format!("{name}.traditional.der"), &traditional_der);
        put(&dir, &format!("{name}.legacy-encrypted.pem"), legacy);
        der_seeds.push((format!("{name}.traditional.der"), traditional_der));
    }
    let set: Vec<serde_json::Value> = kat_jwks()
        .iter()
        .map(|v| serde_json::from_str(&v.jwk).unwrap())
        .collect();
    put(
        &dir,
        "jwk-set.json",
        serde_json::json!({ "keys": set }).to_string(),
    );
    put(&dir, "pkcs7-client.key", PKCS7_KEY);
    put(&dir, "pkcs7-client.pem", PKCS7_CERT);
    put(&dir, "pkcs7-ca.pem", PKCS7_CA);
    let cert_der = X509::from_pem(PKCS7_CERT).unwrap().to_der().unwrap();
    put(&dir, "pkcs7-client.cert.der", &cert_der);
    der_seeds.push(("pkcs7-client.cert.der".into(), cert_der));
    let mut bundle = b"# key and certificate\n".to_vec();
    bundle.extend_from_slice(PKCS7_KEY);
    bundle.extend_from_slice(PKCS7_CERT);
    put(&dir, "bundle.pem", bundle);
    let ed = PKey::generate_ed25519().unwrap();
    put(
        &dir,
        "ed25519.pkcs8.pem",
        ed.private_key_to_pem_pkcs8().unwrap(),
    );
    // OpenPGP: a secret-key (tag 5) and public-key (tag 6) packet header, old and new format.
    put(&dir, "openpgp-secret-old.bin", [0x95, 0x01, 0x00, 0x04]);
    put(&dir, "openpgp-public-new.bin", [0xc6, 0x01, 0x04]);
    put(&dir, "readme.txt", "keys for the image decoder\n");

    // der: every DER the parsers see.
    let dir = seeds.target("der");
    put(&dir, "skopeo-1.9.3.der", PKCS7_SKOPEO);
    for (name, der) in &pkcs7s {
        put(&dir, name, der);
    }
    for (name, der) in &der_seeds {
        put(&dir, name, der);
    }

    // annotations: annotation maps, option documents, and `public \0 private` pairs.
    let dir = seeds.target("annotations");
    let first_jwe = encode_std(kat[0].jwe.as_bytes());
    let skopeo_b64 = encode_std(PKCS7_SKOPEO);
    let jwe_map = annotations(&[(JWE, first_jwe.clone())]);
    let multi_map = annotations(&[
        (
            JWE,
            format!("{first_jwe},{}", encode_std(jwes[0].1.as_bytes())),
        ),
        (PKCS7, skopeo_b64.clone()),
        (
            "org.opencontainers.image.enc.keys.provider.kbs",
            encode_std(b"{}"),
        ),
        ("org.opencontainers.image.title", "layer".into()),
    ]);
    put(&dir, "map-jwe.json", serde_json::to_vec(&jwe_map).unwrap());
    put(
        &dir,
        "map-multi.json",
        serde_json::to_vec(&multi_map).unwrap(),
    );
    put(&dir, "public.json", PUBLIC_OPTIONS);
    put(&dir, "private.json", PRIVATE_OPTIONS);
    let pair = |public: &[u8], private: &[u8]| {
        let mut v = public.to_vec();
        v.push(0);
        v.extend_from_slice(private);
        v
    };
    put(&dir, "resolve.bin", pair(PUBLIC_OPTIONS, PRIVATE_OPTIONS));
    put(
        &dir,
        "resolve-public-nonce.bin",
        pair(
            br#"{"cipher":"AES_256_CTR_HMAC_SHA256","hmac":"5OJp+ZL+cBrQ74G1ysWBIe6RXHSkZpKc5VD0zl5tqIA=","cipheroptions":{"Nonce":"AAAAAAAAAAAAAAAAAAAAAA=="}}"#,
            PRIVATE_OPTIONS,
        ),
    );
    put(
        &dir,
        "resolve-go-case.bin",
        pair(
            br#"{"CIPHER":"AES_256_CTR_HMAC_SHA256","Hmac":"5OJp+ZL+cBrQ74G1ysWBIe6RXHSkZpKc5VD0zl5tqIA=","CipherOptions":null}"#,
            br#"{"SymKey":"ERERERERERERERERERERERERERERERERERERERERERE=","cipheroptions":{"nonce":"/////////////////////g=="},"extra":[1,{}]}"#,
        ),
    );

    // payload: what CRI and ctr-enc send, as protobuf, and the JSON alone.
    let dir = seeds.target("payload");
    let none = BTreeMap::new();
    put(
        &dir,
        "cri-jwe.pb",
        payload::encode(&none, &descriptor(jwe_map.clone())),
    );
    put(
        &dir,
        "cri-multi.pb",
        payload::encode(&none, &descriptor(multi_map)),
    );
    let mut params: BTreeMap<String, Vec<Option<Vec<u8>>>> = BTreeMap::new();
    params.insert(
        "privkeys".into(),
        vec![
            Some(jwe_key(0).private_key_to_pem_pkcs8().unwrap()),
            Some(PKCS7_KEY.to_vec()),
        ],
    );
    params.insert(
        "privkeys-passwords".into(),
        vec![None, Some(KEY_PASSWORD.to_vec())],
    );
    params.insert("x509s".into(), vec![Some(PKCS7_CERT.to_vec())]);
    params.insert(
        "gpg-privatekeys".into(),
        vec![Some(vec![0x95, 0x01, 0x00, 0x04])],
    );
    params.insert("gpg-privatekeys-passwords".into(), vec![None]);
    let pkcs7_map = annotations(&[(PKCS7, skopeo_b64)]);
    put(
        &dir,
        "ctr-enc-keys.pb",
        payload::encode(&params, &descriptor(pkcs7_map)),
    );
    put(&dir, "empty-any.pb", b"");
    let cri_json = format!(
        r#"{{"DecryptConfig":{{"Parameters":null}},"Descriptor":{{"mediaType":"{MEDIA_TYPE}","digest":"{DIGEST}","size":50,"annotations":{}}}}}"#,
        serde_json::to_string(&jwe_map).unwrap()
    );
    put(&dir, "cri.json", &cri_json);
    put(
        &dir,
        "go-case.json",
        r#"{"decryptconfig":{"parameters":{"privkeys":["aGVsbG8="],"privkeys-passwords":[null]}},"DESCRIPTOR":{"MediaType":"x","unknown":[1,2,{}]},"extra":true}"#,
    );
    put(&dir, "wrong-type-url.pb", {
        let mut v = vec![0x0a, 21];
        v.extend_from_slice(b"type.googleapis.com/x");
        v.extend_from_slice(&[0x12, 2, b'{', b'}']);
        v
    });

    // stream: protocol.md §3.5's vector (key, nonce, MAC, then flags, hold-back, chunk).
    let dir = seeds.target("stream");
    let key = [0x11u8; 32];
    let mut nonce = [0xffu8; 16];
    nonce[15] = 0xfe;
    let mac = hex("e4e269f992fe701ad0ef81b5cac58121ee915c74a466929ce550f4ce5e6da880");
    let ciphertext = hex("49a78ac2b627fe25ee8d2949b8d6b73119bb1cd9ea78a7a80126234867deeb8e61ad4e8958456e01e724bd29c925487404b1");
    let stream_seed = |flags: u8, hold_back: u8, chunk: u8, ct: &[u8]| {
        let mut v = Vec::new();
        v.extend_from_slice(&key);
        v.extend_from_slice(&nonce);
        v.extend_from_slice(&mac);
        v.extend_from_slice(&[flags, hold_back, chunk]);
        v.extend_from_slice(ct);
        v
    };
    put(&dir, "kat.bin", stream_seed(0, 2, 5, &ciphertext));
    put(&dir, "kat-sized.bin", stream_seed(2, 2, 5, &ciphertext));
    put(
        &dir,
        "kat-wrong-size.bin",
        stream_seed(6, 2, 130, &ciphertext),
    );
    put(&dir, "kat-bad-mac.bin", {
        let mut bad = ciphertext.clone();
        bad[25] ^= 1;
        stream_seed(2, 2, 5, &bad)
    });
    let long: Vec<u8> = (0..3000u32).map(|i| (i * 7 + i / 13) as u8).collect();
    put(&dir, "long-right-mac.bin", stream_seed(3, 100, 170, &long));
    put(&dir, "long-wrong-mac.bin", stream_seed(2, 100, 170, &long));
    put(
        &dir,
        "long-failing-stdout.bin",
        stream_seed(11, 200, 85, &long),
    );
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}
