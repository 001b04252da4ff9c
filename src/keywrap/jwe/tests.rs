use super::*;
use crate::keys::{KeyRing, KeySource, PrivateKey};
use openssl::ec::{EcGroup, EcKey};
use openssl::rsa::Rsa;

fn rsa_key(bits: u32) -> PKey<Private> {
    PKey::from_rsa(Rsa::generate(bits).unwrap()).unwrap()
}

fn ec_key(nid: Nid) -> PKey<Private> {
    PKey::from_ec_key(EcKey::generate(&EcGroup::from_curve_name(nid).unwrap()).unwrap()).unwrap()
}

fn ring(keys: &[&PKey<Private>]) -> KeyRing {
    let mut ring = KeyRing::default();
    for (i, k) in keys.iter().enumerate() {
        ring.private_keys.push(PrivateKey {
            source: KeySource::Payload {
                param: "privkeys",
                index: i,
            },
            key: (*k).clone(),
        });
    }
    ring
}

/// Encrypts `plaintext` to each (alg, key) with josekit's general JSON serialization.
fn encrypt(plaintext: &[u8], enc: &str, recipients: &[(&str, &PKey<Private>)]) -> Vec<u8> {
    use josekit::jwe::{JweEncrypter, JweHeader, JweHeaderSet};
    let mut protected = JweHeaderSet::new();
    protected.set_content_encryption(enc, true);
    let encrypters: Vec<Box<dyn JweEncrypter>> = recipients
        .iter()
        .map(|(alg, key)| {
            let der = key.public_key_to_der().unwrap();
            let e: Box<dyn JweEncrypter> = match *alg {
                "RSA-OAEP" => Box::new(jwe::RSA_OAEP.encrypter_from_der(&der).unwrap()),
                "RSA-OAEP-256" => Box::new(jwe::RSA_OAEP_256.encrypter_from_der(&der).unwrap()),
                "ECDH-ES+A128KW" => Box::new(jwe::ECDH_ES_A128KW.encrypter_from_der(&der).unwrap()),
                "ECDH-ES+A192KW" => Box::new(jwe::ECDH_ES_A192KW.encrypter_from_der(&der).unwrap()),
                "ECDH-ES+A256KW" => Box::new(jwe::ECDH_ES_A256KW.encrypter_from_der(&der).unwrap()),
                other => panic!("{other}"),
            };
            e
        })
        .collect();
    let headers: Vec<JweHeader> = recipients.iter().map(|_| JweHeader::new()).collect();
    let header_refs: Vec<Option<&JweHeader>> = headers.iter().map(Some).collect();
    jwe::serialize_general_json_with_selector(
        plaintext,
        Some(&protected),
        &header_refs,
        None,
        |i, _| Some(&*encrypters[i]),
    )
    .unwrap()
    .into_bytes()
}

#[test]
fn every_key_and_content_algorithm_round_trips() {
    let rsa = rsa_key(2048);
    let p256 = ec_key(Nid::X9_62_PRIME256V1);
    let p384 = ec_key(Nid::SECP384R1);
    let p521 = ec_key(Nid::SECP521R1);
    let cases: Vec<(&str, &PKey<Private>)> = vec![
        ("RSA-OAEP", &rsa),
        ("RSA-OAEP-256", &rsa),
        ("ECDH-ES+A128KW", &p256),
        ("ECDH-ES+A192KW", &p384),
        ("ECDH-ES+A256KW", &p521),
    ];
    for (alg, key) in &cases {
        for enc in CONTENT_ALGORITHMS {
            let blob = encrypt(b"{\"symkey\":\"x\"}", enc, &[(alg, key)]);
            let out = Jwe
                .unwrap_key(&ring(&[key]), &blob)
                .unwrap_or_else(|e| panic!("{alg} {enc}: {e}"));
            assert_eq!(out.expose(), b"{\"symkey\":\"x\"}");
        }
    }
}

#[test]
fn tries_every_recipient_with_every_key() {
    let a = rsa_key(2048);
    let b = rsa_key(2048);
    let c = ec_key(Nid::X9_62_PRIME256V1);
    let blob = encrypt(
        b"opts",
        "A256GCM",
        &[("RSA-OAEP", &a), ("RSA-OAEP", &b), ("ECDH-ES+A256KW", &c)],
    );
    // Only the second recipient's key is local, and a non-fitting key comes first.
    let other = rsa_key(2048);
    assert_eq!(
        Jwe.unwrap_key(&ring(&[&other, &b]), &blob)
            .unwrap()
            .expose(),
        b"opts"
    );
    assert_eq!(
        Jwe.unwrap_key(&ring(&[&other, &c]), &blob)
            .unwrap()
            .expose(),
        b"opts"
    );
    match Jwe.unwrap_key(&ring(&[&other]), &blob) {
        Err(UnwrapError::NoKeyFits { recipients }) => {
            assert_eq!(recipients, "3 jwe recipients: RSA-OAEP to RSA-2048, RSA-OAEP to RSA-2048, ECDH-ES+A256KW to EC P-256");
        }
        other => panic!("{other:?}"),
    }
    let p384 = ec_key(Nid::SECP384R1);
    assert!(matches!(
        Jwe.unwrap_key(&ring(&[&p384]), &blob),
        Err(UnwrapError::NoUsableKeys { .. })
    ));
}

#[test]
fn tolerates_go_jose_duplicate_encrypted_key() {
    let a = rsa_key(2048);
    let b = rsa_key(2048);
    let blob = encrypt(b"opts", "A256GCM", &[("RSA-OAEP", &a), ("RSA-OAEP", &b)]);
    let mut json: Value = serde_json::from_slice(&blob).unwrap();
    let first = json["recipients"][0]["encrypted_key"].clone();
    json["encrypted_key"] = first;
    let blob = serde_json::to_vec(&json).unwrap();
    assert_eq!(
        Jwe.unwrap_key(&ring(&[&b]), &blob).unwrap().expose(),
        b"opts"
    );
}

fn malformed(blob: &[u8]) -> String {
    match parse(blob) {
        Err(e) => e,
        Ok(p) => panic!("accepted: {p:?}"),
    }
}

#[test]
fn refuses_what_go_refuses_and_more() {
    let rsa = rsa_key(2048);
    let blob = encrypt(b"opts", "A256GCM", &[("RSA-OAEP", &rsa)]);
    let json: Value = serde_json::from_slice(&blob).unwrap();
    let with = |f: &dyn Fn(&mut Value)| {
        let mut j = json.clone();
        f(&mut j);
        serde_json::to_vec(&j).unwrap()
    };
    assert!(malformed(&with(
        &|j| j["recipients"][0]["header"]["zip"] = "DEF".into()
    ))
    .contains("zip"));
    assert!(malformed(&with(
        &|j| j["recipients"][0]["header"]["crit"] = serde_json::json!(["x"])
    ))
    .contains("crit"));
    assert!(malformed(&with(
        &|j| j["recipients"][0]["header"]["alg"] = "RSA1_5".into()
    ))
    .contains("RSA1_5"));
    assert!(malformed(&with(
        &|j| j["recipients"][0]["header"]["alg"] = "dir".into()
    ))
    .contains("dir"));
    assert!(malformed(&with(
        &|j| j["recipients"][0]["header"]["enc"] = "A256GCM".into()
    ))
    .contains("twice"));
    assert!(malformed(&with(&|j| j["recipients"] = serde_json::json!([]))).contains("empty"));
    assert!(
        malformed(&with(&|j| j["recipients"] = serde_json::json!([1]))).contains("not an object")
    );
    assert!(malformed(&with(&|j| j["ciphertext"] = 5.into())).contains("ciphertext"));
    assert!(malformed(&with(&|j| j["iv"] = "!!".into())).contains("iv"));
    assert!(malformed(&with(&|j| j["protected"] = "e30".into())).contains("enc"));
    let many: Vec<Value> = (0..=MAX_RECIPIENTS)
        .map(|_| json["recipients"][0].clone())
        .collect();
    assert!(
        malformed(&with(&|j| j["recipients"] = Value::Array(many.clone()))).contains("more than")
    );
    assert!(malformed(b"").contains("empty"));
    assert!(malformed(b"[1]").contains("neither"));
    assert!(malformed(b"{\"a\":").contains("not a JSON object"));
    assert!(malformed(&vec![b' '; MAX_JWE_LEN + 1]).contains("larger"));
}

#[test]
fn compact_serialization_is_accepted() {
    let rsa = rsa_key(2048);
    let mut header = josekit::jwe::JweHeader::new();
    header.set_content_encryption("A128GCM");
    let encrypter = jwe::RSA_OAEP_256
        .encrypter_from_der(rsa.public_key_to_der().unwrap())
        .unwrap();
    let compact = jwe::serialize_compact(b"opts", &header, &encrypter).unwrap();
    assert_eq!(
        Jwe.unwrap_key(&ring(&[&rsa]), compact.as_bytes())
            .unwrap()
            .expose(),
        b"opts"
    );
}

#[test]
fn a_tampered_ciphertext_is_not_accepted() {
    let rsa = rsa_key(2048);
    let blob = encrypt(b"opts-opts-opts", "A256GCM", &[("RSA-OAEP", &rsa)]);
    let mut json: Value = serde_json::from_slice(&blob).unwrap();
    let ct = json["ciphertext"].as_str().unwrap().to_string();
    let mut bytes = decode_url(&ct).unwrap();
    bytes[0] ^= 1;
    json["ciphertext"] =
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes).into();
    let blob = serde_json::to_vec(&json).unwrap();
    assert!(matches!(
        Jwe.unwrap_key(&ring(&[&rsa]), &blob),
        Err(UnwrapError::NoKeyFits { .. })
    ));
}

/// Known answers from an independent implementation (python-jwcrypto 1.6.1 on pyca/cryptography;
/// `tests/data/jwe/make-kat.py`): every key algorithm × content algorithm Go ocicrypt accepts.
#[test]
fn jwcrypto_known_answer_vectors() {
    let kat: Value =
        serde_json::from_str(include_str!("../../../tests/data/jwe/kat.json")).unwrap();
    let vectors = kat["vectors"].as_array().unwrap();
    assert_eq!(
        vectors.len(),
        KEY_ALGORITHMS.len() * CONTENT_ALGORITHMS.len()
    );
    let mut seen = std::collections::BTreeSet::new();
    for v in vectors {
        let (alg, enc) = (v["alg"].as_str().unwrap(), v["enc"].as_str().unwrap());
        let jwk = serde_json::to_vec(&v["jwk"]).unwrap();
        let items = crate::keys::parse::parse(&jwk, None);
        let key = match items.into_iter().next().unwrap() {
            crate::keys::parse::Item::Private(k) => k,
            other => panic!("{alg}: {other:?}"),
        };
        let blob = serde_json::to_vec(&v["jwe"]).unwrap();
        let out = Jwe
            .unwrap_key(&ring(&[&key]), &blob)
            .unwrap_or_else(|e| panic!("{alg} {enc}: {e}"));
        assert_eq!(
            out.expose(),
            v["plaintext"].as_str().unwrap().as_bytes(),
            "{alg} {enc}"
        );
        seen.insert((alg.to_string(), enc.to_string()));
    }
    assert_eq!(seen.len(), vectors.len());
}

/// Found by `cargo fuzz` (target `jwe`): a JWE that a local key opens, with its `iv` removed,
/// made josekit call OpenSSL's `Crypter::new` without an IV, which panics. A missing or
/// wrong-sized `iv` or `tag` is now refused while parsing, as go-jose refuses it.
#[test]
fn a_missing_or_wrong_sized_iv_or_tag_is_refused_not_a_panic() {
    let rsa = rsa_key(2048);
    for enc in CONTENT_ALGORITHMS {
        let blob = encrypt(b"opts", enc, &[("RSA-OAEP", &rsa)]);
        let json: Value = serde_json::from_slice(&blob).unwrap();
        let with = |f: &dyn Fn(&mut Value)| {
            let mut j = json.clone();
            f(&mut j);
            serde_json::to_vec(&j).unwrap()
        };
        let no_iv = with(&|j| {
            j.as_object_mut().unwrap().remove("iv");
        });
        let no_tag = with(&|j| {
            j.as_object_mut().unwrap().remove("tag");
        });
        let short_iv = with(&|j| j["iv"] = "AAAA".into());
        let long_tag = with(&|j| j["tag"] = crate::encoding::encode_std(&[0u8; 33]).into());
        let keys = ring(&[&rsa]);
        for (what, blob, needle) in [
            ("no iv", &no_iv, "no \"iv\""),
            ("no tag", &no_tag, "no \"tag\""),
            ("short iv", &short_iv, "\"iv\" is 3 bytes"),
            ("long tag", &long_tag, "tag"),
        ] {
            match Jwe.unwrap_key(&keys, blob) {
                Err(UnwrapError::Malformed(m)) => assert!(m.contains(needle), "{enc} {what}: {m}"),
                other => panic!("{enc} {what}: {other:?}"),
            }
        }
    }
}

/// Found by `cargo fuzz` (target `jwe`): an ECDH-ES+A128KW recipient on the curve of a local key
/// with an `encrypted_key` shorter than 8 bytes made josekit compute `len - 8`, which overflows
/// (a panic in builds with overflow checks; in release, an impossible allocation and an abort).
/// The wrapped key must now be exactly 8 bytes longer than the content key.
#[test]
fn an_ecdh_wrapped_key_of_the_wrong_length_is_refused_not_a_panic() {
    let p256 = ec_key(Nid::X9_62_PRIME256V1);
    let keys = ring(&[&p256]);
    for enc in CONTENT_ALGORITHMS {
        let blob = encrypt(b"opts", enc, &[("ECDH-ES+A128KW", &p256)]);
        assert!(Jwe.unwrap_key(&keys, &blob).is_ok(), "{enc}");
        let json: Value = serde_json::from_slice(&blob).unwrap();
        for (what, value) in [
            ("4 bytes", Some("AAAAAA")),
            ("empty", Some("")),
            ("8 bytes", Some("AAAAAAAAAAA")),
            ("absent", None),
        ] {
            let mut j = json.clone();
            match value {
                Some(v) => j["recipients"][0]["encrypted_key"] = v.into(),
                None => {
                    j["recipients"][0]
                        .as_object_mut()
                        .unwrap()
                        .remove("encrypted_key");
                }
            }
            match Jwe.unwrap_key(&keys, &serde_json::to_vec(&j).unwrap()) {
                Err(UnwrapError::Malformed(m)) => {
                    assert!(m.contains("encrypted_key"), "{enc} {what}: {m}")
                }
                other => panic!("{enc} {what}: {other:?}"),
            }
        }
    }
}

/// A manifest listing recipients sized for the node's key (but not for it) cannot make the
/// decoder spend more than the run's budget of private-key operations, and the failure line
/// names a handful of recipients, not all of them.
#[test]
fn a_flood_of_recipients_is_bounded_by_the_operation_budget() {
    use crate::annotations::{LayerAnnotations, WrappedKey};
    use crate::keys::{BUDGET_EXHAUSTED, MAX_PRIVATE_KEY_OPERATIONS};
    let ours = rsa_key(2048);
    let theirs = rsa_key(2048);
    let one = encrypt(b"opts", "A256GCM", &[("RSA-OAEP", &theirs)]);
    let mut json: Value = serde_json::from_slice(&one).unwrap();
    let recipient = json["recipients"][0].clone();
    json["recipients"] = Value::Array(vec![recipient; MAX_RECIPIENTS]);
    let blob = serde_json::to_vec(&json).unwrap();
    match Jwe.unwrap_key(&ring(&[&ours]), &blob) {
        Err(UnwrapError::NoKeyFits { recipients }) => {
            assert!(
                recipients.starts_with("256 jwe recipients: RSA-OAEP to RSA-2048"),
                "{recipients}"
            );
            assert!(recipients.ends_with("and 252 more"), "{recipients}");
        }
        other => panic!("{other:?}"),
    }
    let blobs = (MAX_PRIVATE_KEY_OPERATIONS as usize).div_ceil(MAX_RECIPIENTS) + 1;
    let mut wrapped = std::collections::BTreeMap::new();
    wrapped.insert(
        "jwe".to_string(),
        (0..blobs)
            .map(|index| WrappedKey {
                index,
                blob: Ok(blob.clone()),
            })
            .collect(),
    );
    let annotations = LayerAnnotations {
        wrapped,
        public: Default::default(),
    };
    let keys = ring(&[&ours]);
    let started = std::time::Instant::now();
    let failure =
        crate::keywrap::unwrap_layer_key(&crate::keywrap::all(), &annotations, &keys).unwrap_err();
    let last = failure.attempts.last().unwrap();
    assert_eq!(
        last.error,
        UnwrapError::Malformed(BUDGET_EXHAUSTED.into()),
        "{last}"
    );
    assert!(!keys.spend_operation(), "the budget is spent");
    eprintln!(
        "{} attempts refused after {:?}",
        failure.attempts.len(),
        started.elapsed()
    );
}

/// An `A*CBC-HS*` JWE whose ciphertext was altered fails on its tag before any CBC padding is
/// looked at, with the same result as a wrong key.
#[test]
fn cbc_hs_content_is_authenticated_before_decryption() {
    let rsa = rsa_key(2048);
    for enc in ["A128CBC-HS256", "A192CBC-HS384", "A256CBC-HS512"] {
        let blob = encrypt(b"{\"symkey\":\"x\"}", enc, &[("RSA-OAEP", &rsa)]);
        let parsed = parse(&blob).unwrap();
        let content = content_of(&parsed).unwrap();
        let cek_check = |tag_flip: bool, ct_flip: bool| {
            let mut json: Value = serde_json::from_slice(&blob).unwrap();
            let enc64 = |b: Vec<u8>| {
                base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, b)
            };
            if tag_flip {
                let mut t = content.tag.clone();
                t[0] ^= 1;
                json["tag"] = enc64(t).into();
            }
            if ct_flip {
                let mut c = content.ciphertext.clone();
                let last = c.len() - 1;
                c[last] ^= 1;
                json["ciphertext"] = enc64(c).into();
            }
            Jwe.unwrap_key(&ring(&[&rsa]), &serde_json::to_vec(&json).unwrap())
        };
        assert!(cek_check(false, false).is_ok(), "{enc}");
        assert!(
            matches!(cek_check(true, false), Err(UnwrapError::NoKeyFits { .. })),
            "{enc}"
        );
        assert!(
            matches!(cek_check(false, true), Err(UnwrapError::NoKeyFits { .. })),
            "{enc}"
        );
    }
}
