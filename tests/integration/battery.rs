//! The bad-input battery (issue 7): every case runs the binary as containerd does and must end in
//! a clean failure — exit 1, no signal, no panic or abort, exactly one `ctd-decoder:` line on
//! stderr — with no key bytes on stderr: no line of the private key's PEM, no piece of its DER
//! (base64 or hex), no hex of its secret numbers, and nothing of the layer's own key, which the
//! test recovers independently by opening the layer's JWE with josekit. `failures.rs` has the
//! first cases of each kind; this file has the rest, and the keys-directory and core-dump cases.

use std::io::{Read, Write};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use command_fds::{CommandFdExt, FdMapping};
use ctd_decoder::encoding::{decode_std, encode_std};
use ctd_decoder::payload::PAYLOAD_TYPE_URL;
use serde_json::{json, Value};

use crate::failures::{keys_dir, layer, pubopts_json, run_with, with_annotation, JWE, PUBOPTS};
use crate::interop::source;
use crate::support::decoder::{binary, Decoder, Outcome, Stdout};
use crate::support::keys::{self, TestKey};
use crate::support::oci::FoundLayer;
use crate::support::scratch;

// ---------------------------------------------------------------------------------------------
// What must never reach stderr.

/// The layer's private options, opened with josekit (not with the decoder's own code).
fn private_options() -> &'static Value {
    static P: OnceLock<Value> = OnceLock::new();
    P.get_or_init(|| {
        let jwe = String::from_utf8(decode_std(&layer().annotations[JWE]).unwrap()).unwrap();
        let der = keys::rsa2048().pkcs8_der();
        let decrypter = josekit::jwe::RSA_OAEP.decrypter_from_der(&der).unwrap();
        let (plaintext, _) = josekit::jwe::deserialize_json(&jwe, &decrypter).unwrap();
        serde_json::from_slice(&plaintext).unwrap()
    })
}

/// Substrings that would reveal rsa2048 (the layer's recipient) or the layer key.
fn secrets() -> &'static [String] {
    static S: OnceLock<Vec<String>> = OnceLock::new();
    S.get_or_init(|| {
        let key = keys::rsa2048();
        let mut out = Vec::new();
        for pem in [key.pkcs8_pem(), key.traditional_pem()] {
            for line in String::from_utf8(pem).unwrap().lines() {
                if !line.starts_with("-----") && line.len() >= 20 {
                    out.push(line.to_string());
                    out.push(line[..20].to_string());
                }
            }
        }
        for der in [key.pkcs8_der(), key.traditional_der()] {
            let b64 = encode_std(&der);
            out.extend(windows(&b64, 24, 12));
            out.extend(windows(&hex::encode(&der), 32, 16));
        }
        let rsa = key.key.rsa().unwrap();
        for n in [rsa.d(), rsa.p().unwrap(), rsa.q().unwrap()] {
            let h = hex::encode(n.to_vec());
            out.extend(windows(&h, 32, 16));
        }
        let symkey_b64 = private_options()["symkey"].as_str().unwrap();
        let symkey = decode_std(symkey_b64).unwrap();
        assert_eq!(symkey.len(), 32);
        out.push(symkey_b64.to_string());
        out.push(symkey_b64[..20].to_string());
        out.push(encode_std(&symkey[8..]));
        out.push(base64_url(&symkey));
        out.extend(windows(&hex::encode(&symkey), 24, 8));
        out.push(String::from_utf8_lossy(&symkey[..16]).into_owned());
        out.push(private_options().to_string());
        let upper: Vec<String> = out
            .iter()
            .filter(|s| s.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(|s| s.to_ascii_uppercase())
            .collect();
        out.extend(upper);
        out
    })
}

fn windows(s: &str, len: usize, step: usize) -> Vec<String> {
    (0..s.len().saturating_sub(len))
        .step_by(step)
        .map(|i| s[i..i + len].to_string())
        .collect()
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The first secret substring found in `text`.
fn leaked(text: &str) -> Option<&'static str> {
    secrets()
        .iter()
        .map(String::as_str)
        .find(|s| text.contains(s))
}

fn assert_no_secrets(case: &str, stderr: &str) {
    assert!(
        leaked(stderr).is_none(),
        "{case}: key material on stderr: {stderr}"
    );
}

/// The check itself finds what it looks for: a PEM line, a piece of the DER in hex (either
/// case) or base64, a secret number, the layer key in base64 and hex.
#[test]
fn the_key_byte_check_finds_key_bytes() {
    let key = keys::rsa2048();
    let pem = String::from_utf8(key.pkcs8_pem()).unwrap();
    let der = key.pkcs8_der();
    let der_hex = hex::encode(&der);
    let d_hex = hex::encode(key.key.rsa().unwrap().d().to_vec());
    let symkey = private_options()["symkey"].as_str().unwrap();
    let symkey_hex = hex::encode(decode_std(symkey).unwrap());
    for leak in [
        format!("ctd-decoder: bad key: {}", pem.lines().nth(5).unwrap()),
        format!("bytes {}…", &der_hex[300..340]),
        format!("BYTES {}…", der_hex[300..340].to_ascii_uppercase()),
        format!("base64 {}", &encode_std(&der)[500..540]),
        format!("d = {}", &d_hex[..40]),
        format!("layer key {symkey}"),
        format!("layer key 0x{symkey_hex}"),
    ] {
        assert!(leaked(&leak).is_some(), "not caught: {leak}");
    }
    assert!(leaked(&format!(
        "ctd-decoder: cannot decrypt layer {}",
        layer().digest
    ))
    .is_none());
}

/// The battery's assertion: a clean one-line failure, mentioning `needle`, without key bytes,
/// and without the complete plaintext on stdout.
fn expect(case: &str, o: &Outcome, needle: &str) -> String {
    let line = o.failed().to_string();
    assert!(
        line.contains(needle),
        "{case}: expected {needle:?} in: {line}"
    );
    assert_no_secrets(case, &o.stderr);
    let full = &source().layers[0].blob;
    assert!(
        o.stdout.len() + 64 * 1024 <= full.len() || o.stdout.is_empty(),
        "{case}: too much output: {}",
        o.stdout.len()
    );
    line
}

// ---------------------------------------------------------------------------------------------
// Payload builders.

fn varint(mut n: usize, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// A protobuf `Any { type_url, value }`.
fn any(type_url: &[u8], value: &[u8]) -> Vec<u8> {
    let mut v = vec![0x0a];
    varint(type_url.len(), &mut v);
    v.extend_from_slice(type_url);
    v.push(0x12);
    varint(value.len(), &mut v);
    v.extend_from_slice(value);
    v
}

fn json_payload(value: &Value) -> Vec<u8> {
    any(
        PAYLOAD_TYPE_URL.as_bytes(),
        &serde_json::to_vec(value).unwrap(),
    )
}

fn descriptor_json(l: &FoundLayer) -> Value {
    json!({
        "mediaType": l.media_type,
        "digest": l.digest,
        "size": l.size,
        "annotations": l.annotations,
    })
}

fn run_payload(payload: Vec<u8>) -> Outcome {
    Decoder::new()
        .keys(&keys_dir())
        .payload(payload)
        .stdin(layer().blob.clone())
        .run()
}

fn with_pubopts(edit: impl FnOnce(&mut Value)) -> FoundLayer {
    let mut p = pubopts_json();
    edit(&mut p);
    with_annotation(PUBOPTS, Some(encode_std(&serde_json::to_vec(&p).unwrap())))
}

/// The layer with its JWE replaced by one wrapping `private` to rsa2048, as go-jose writes it.
fn with_private_options(private: &[u8]) -> FoundLayer {
    use josekit::jwe::JweHeaderSet;
    let der = keys::rsa2048().key.public_key_to_der().unwrap();
    let encrypter = josekit::jwe::RSA_OAEP.encrypter_from_der(&der).unwrap();
    let mut protected = JweHeaderSet::new();
    protected.set_algorithm("RSA-OAEP", true);
    protected.set_content_encryption("A256GCM", true);
    let jwe =
        josekit::jwe::serialize_flattened_json(private, Some(&protected), None, None, &encrypter)
            .unwrap();
    with_annotation(JWE, Some(encode_std(jwe.as_bytes())))
}

fn private_with(edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut p = private_options().clone();
    edit(&mut p);
    serde_json::to_vec(&p).unwrap()
}

// ---------------------------------------------------------------------------------------------
// fd 3.

#[test]
fn bad_payloads() {
    let d = descriptor_json(layer());
    let pseudo_random: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty pipe", Vec::new(), "no payload on fd 3"),
        (
            "text",
            b"DecryptConfig: please decrypt\n".to_vec(),
            "payload on fd 3",
        ),
        ("pseudo-random bytes", pseudo_random, "payload on fd 3"),
        (
            "one byte over 8 MiB",
            vec![0x0a; (8 << 20) + 1],
            "larger than 8 MiB",
        ),
        ("64 MiB", vec![0u8; 64 << 20], "larger than 8 MiB"),
        (
            "Any with a varint where the type URL goes",
            vec![0x08, 0x01],
            "not a protobuf Any",
        ),
        (
            "Any whose value runs past the end",
            {
                let mut v = any(PAYLOAD_TYPE_URL.as_bytes(), b"{}");
                v.truncate(v.len() - 1);
                v
            },
            "not a protobuf Any",
        ),
        (
            "type URL with the googleapis prefix",
            any(
                b"type.googleapis.com/io.containerd.ocicrypt.v1.Payload",
                b"{}",
            ),
            "has type URL",
        ),
        (
            "type URL not UTF-8",
            any(b"io.containerd.\xff\xfe", b"{}"),
            "not a protobuf Any",
        ),
        (
            "value without a type URL",
            any(b"", &serde_json::to_vec(&json!({"Descriptor": d})).unwrap()),
            "has type URL",
        ),
        (
            "JSON array",
            any(PAYLOAD_TYPE_URL.as_bytes(), b"[]"),
            "JSON",
        ),
        (
            "JSON string",
            any(PAYLOAD_TYPE_URL.as_bytes(), b"\"payload\""),
            "JSON",
        ),
        (
            "JSON number",
            any(PAYLOAD_TYPE_URL.as_bytes(), b"5"),
            "JSON",
        ),
        (
            "JSON null",
            any(PAYLOAD_TYPE_URL.as_bytes(), b"null"),
            "carries no layer descriptor",
        ),
        (
            "truncated JSON",
            any(
                PAYLOAD_TYPE_URL.as_bytes(),
                b"{\"DecryptConfig\":{\"Parameters\":{",
            ),
            "unexpected end of JSON",
        ),
        (
            "JSON with trailing garbage",
            any(PAYLOAD_TYPE_URL.as_bytes(), b"{} {}"),
            "not valid JSON",
        ),
        (
            "JSON that is not UTF-8",
            any(
                PAYLOAD_TYPE_URL.as_bytes(),
                b"{\"Descriptor\":{\"digest\":\"\xff\"}}",
            ),
            "not valid",
        ),
        (
            "unknown member nested 100000 deep (skipped without recursion)",
            any(
                PAYLOAD_TYPE_URL.as_bytes(),
                &[
                    b"{\"x\":".repeat(100_000),
                    b"1".to_vec(),
                    b"}".repeat(100_000),
                ]
                .concat(),
            ),
            "carries no layer descriptor",
        ),
        (
            "Descriptor is a string",
            json_payload(&json!({"Descriptor": "sha256:abc"})),
            "JSON",
        ),
        (
            "DecryptConfig is a string",
            json_payload(&json!({"DecryptConfig": "x", "Descriptor": d})),
            "JSON",
        ),
        (
            "Parameters is a list",
            json_payload(&json!({"DecryptConfig": {"Parameters": []}, "Descriptor": d})),
            "JSON",
        ),
        (
            "privkeys is a string",
            json_payload(
                &json!({"DecryptConfig": {"Parameters": {"privkeys": encode_std(&keys::rsa2048().pkcs8_pem())}}, "Descriptor": d}),
            ),
            "JSON",
        ),
        (
            "a privkeys element is a number",
            json_payload(
                &json!({"DecryptConfig": {"Parameters": {"privkeys": [5]}}, "Descriptor": d}),
            ),
            "JSON",
        ),
        (
            "a privkeys element is not base64",
            json_payload(
                &json!({"DecryptConfig": {"Parameters": {"privkeys": [String::from_utf8(keys::rsa2048().pkcs8_pem()).unwrap()]}}, "Descriptor": d}),
            ),
            "not valid base64",
        ),
        (
            "mediaType is a number",
            json_payload(&json!({"Descriptor": {"mediaType": 5}})),
            "Descriptor.mediaType is not a string",
        ),
        (
            "digest is an object",
            json_payload(&json!({"Descriptor": {"digest": {}}})),
            "Descriptor.digest is not a string",
        ),
        (
            "size is negative",
            json_payload(&json!({"Descriptor": {"size": -1}})),
            "Descriptor.size is negative",
        ),
        (
            "size is a fraction",
            json_payload(&json!({"Descriptor": {"size": 1.5}})),
            "Descriptor.size is not an integer",
        ),
        (
            "size is 1e30",
            any(
                PAYLOAD_TYPE_URL.as_bytes(),
                b"{\"Descriptor\":{\"size\":1e30}}",
            ),
            "Descriptor.size is not an integer",
        ),
        (
            "annotations is a list",
            json_payload(&json!({"Descriptor": {"mediaType": "x", "annotations": []}})),
            "Descriptor.annotations is not an object of strings",
        ),
        (
            "an annotation is a number",
            json_payload(&json!({"Descriptor": {"mediaType": "x", "annotations": {"a": 5}}})),
            "Descriptor.annotations is not an object of strings",
        ),
        (
            "Descriptor without fields",
            json_payload(&json!({"DecryptConfig": {"Parameters": {}}, "Descriptor": {}})),
            "carries no layer descriptor",
        ),
        (
            "Descriptor without annotations",
            json_payload(
                &json!({"Descriptor": {"mediaType": layer().media_type, "digest": layer().digest}}),
            ),
            "no org.opencontainers.image.enc.keys.* annotation",
        ),
        (
            "Descriptor without a media type",
            json_payload(
                &json!({"Descriptor": {"digest": layer().digest, "annotations": layer().annotations}}),
            ),
            "media type \"\"",
        ),
    ];
    for (case, payload, needle) in cases {
        expect(case, &run_payload(payload), needle);
    }
}

// ---------------------------------------------------------------------------------------------
// Annotations and options.

#[test]
fn bad_annotations() {
    let many_elements = vec!["e30="; 20_000].join(",");
    let cases: Vec<(&str, FoundLayer, &str)> = vec![
        (
            "pubopts is base64 of text",
            with_annotation(PUBOPTS, Some(encode_std(b"cipher=AES_256_CTR_HMAC_SHA256"))),
            "public options",
        ),
        (
            "pubopts is a JSON string",
            with_annotation(PUBOPTS, Some(encode_std(b"\"AES_256_CTR_HMAC_SHA256\""))),
            "public options",
        ),
        (
            "pubopts base64 with a space",
            with_annotation(PUBOPTS, Some(format!("{} ", layer().annotations[PUBOPTS]))),
            "pubopts annotation is not valid base64",
        ),
        (
            "cipher is a number",
            with_pubopts(|p| p["cipher"] = 5.into()),
            "cipher is not a string",
        ),
        (
            "hmac is not base64",
            with_pubopts(|p| p["hmac"] = "not base64!".into()),
            "hmac is not valid base64",
        ),
        (
            "hmac is a number",
            with_pubopts(|p| p["hmac"] = 5.into()),
            "public options",
        ),
        (
            "cipheroptions is a list",
            with_pubopts(|p| p["cipheroptions"] = json!([])),
            "public options",
        ),
        (
            "empty cipher",
            with_pubopts(|p| p["cipher"] = "".into()),
            "name no cipher",
        ),
        (
            "unknown cipher",
            with_pubopts(|p| p["cipher"] = "AES_256_CTR_HMAC_SHA512".into()),
            "cipher \"AES_256_CTR_HMAC_SHA512\"",
        ),
        (
            "no MAC",
            with_pubopts(|p| {
                p.as_object_mut().unwrap().remove("hmac");
            }),
            "carry no HMAC",
        ),
        (
            "MAC is null",
            with_pubopts(|p| p["hmac"] = Value::Null),
            "carry no HMAC",
        ),
        (
            "empty MAC",
            with_pubopts(|p| p["hmac"] = "".into()),
            "carry no HMAC",
        ),
        (
            "short MAC",
            with_pubopts(|p| p["hmac"] = encode_std(&[7u8; 16]).into()),
            "16-byte HMAC",
        ),
        (
            "long MAC",
            with_pubopts(|p| p["hmac"] = encode_std(&[7u8; 33]).into()),
            "33-byte HMAC",
        ),
        (
            "wrong MAC (one bit)",
            with_pubopts(|p| {
                let mut mac = decode_std(p["hmac"].as_str().unwrap()).unwrap();
                mac[31] ^= 1;
                p["hmac"] = encode_std(&mac).into();
            }),
            "failed authentication",
        ),
        (
            "nonce in pubopts, capitalised",
            with_pubopts(|p| p["cipheroptions"] = json!({"Nonce": encode_std(&[0u8; 16])})),
            "public options carry a nonce",
        ),
        (
            "jwe is base64 of text",
            with_annotation(JWE, Some(encode_std(b"an encrypted key"))),
            "jwe[0]: JWE is neither JSON nor compact",
        ),
        (
            "jwe is base64 of a JSON list",
            with_annotation(JWE, Some(encode_std(b"[{\"ciphertext\":\"AA\"}]"))),
            "jwe[0]",
        ),
        (
            "jwe element is empty",
            with_annotation(JWE, Some(",".into())),
            "jwe[0]: empty JWE",
        ),
        (
            "20000 jwe elements",
            with_annotation(JWE, Some(many_elements)),
            "and 19992 more",
        ),
        (
            "pkcs7 is not DER",
            {
                let mut l = with_annotation(JWE, None);
                l.annotations.insert(
                    "org.opencontainers.image.enc.keys.pkcs7".into(),
                    encode_std(b"not DER"),
                );
                l
            },
            "pkcs7[0]",
        ),
        (
            "pkcs7 claims 2 GiB",
            {
                let mut l = with_annotation(JWE, None);
                l.annotations.insert(
                    "org.opencontainers.image.enc.keys.pkcs7".into(),
                    encode_std(&[0x30, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x06, 0x00]),
                );
                l
            },
            "truncated DER",
        ),
        (
            "only schemes this decoder lacks",
            {
                let mut l = with_annotation(JWE, None);
                l.annotations.insert(
                    "org.opencontainers.image.enc.keys.pkcs11".into(),
                    encode_std(b"{}"),
                );
                l.annotations.insert(
                    "org.opencontainers.image.enc.keys.provider.kbs".into(),
                    encode_std(b"{}"),
                );
                l
            },
            "pkcs11, provider.kbs recipients, which this decoder does not support",
        ),
    ];
    for (case, l, needle) in cases {
        let start = Instant::now();
        let o = run_with(&l, l.blob.clone());
        expect(case, &o, needle);
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{case}: took {:?}",
            start.elapsed()
        );
    }
}

#[test]
fn bad_private_options() {
    let nonce = |n: usize| json!({"nonce": encode_std(&vec![9u8; n])});
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "short layer key",
            private_with(|p| p["symkey"] = encode_std(&[1u8; 31]).into()),
            "layer key is 31 bytes",
        ),
        (
            "long layer key",
            private_with(|p| p["symkey"] = encode_std(&[1u8; 64]).into()),
            "layer key is 64 bytes",
        ),
        (
            "no layer key",
            private_with(|p| {
                p.as_object_mut().unwrap().remove("symkey");
            }),
            "layer key is 0 bytes",
        ),
        (
            "short nonce",
            private_with(|p| p["cipheroptions"] = nonce(15)),
            "15-byte nonce",
        ),
        (
            "long nonce",
            private_with(|p| p["cipheroptions"] = nonce(17)),
            "17-byte nonce",
        ),
        (
            "no nonce",
            private_with(|p| p["cipheroptions"] = json!({})),
            "carry no nonce",
        ),
        (
            "layer key not base64",
            private_with(|p| {
                let k = p["symkey"].as_str().unwrap().replace('=', "!");
                p["symkey"] = k.into();
            }),
            "symkey is not valid base64",
        ),
        (
            "layer key is a list",
            private_with(|p| p["symkey"] = json!([p["symkey"].clone()])),
            "private layer options are malformed",
        ),
        (
            "options are not JSON",
            b"symkey=secret".to_vec(),
            "private layer options are malformed",
        ),
    ];
    for (case, private, needle) in cases {
        let l = with_private_options(&private);
        let line = expect(case, &run_with(&l, l.blob.clone()), needle);
        assert!(!line.contains("symkey\":"), "{case}: {line}");
    }
    // The re-wrapping itself is sound: the unchanged options still open the layer.
    let l = with_private_options(&private_with(|_| {}));
    let out = run_with(&l, l.blob.clone()).ok();
    assert!(out == source().layers[0].blob);
}

#[test]
fn absurd_jwes() {
    let jwe: Value =
        serde_json::from_slice(&decode_std(&layer().annotations[JWE]).unwrap()).unwrap();
    let edit = |f: &dyn Fn(&mut Value)| {
        let mut j = jwe.clone();
        f(&mut j);
        with_annotation(JWE, Some(encode_std(&serde_json::to_vec(&j).unwrap())))
    };
    let recipient =
        json!({"header": {"alg": "RSA-OAEP"}, "encrypted_key": base64_url(&[3u8; 256])});
    let protected_zip = {
        let mut h: Value = serde_json::from_slice(
            &ctd_decoder::encoding::decode_url(jwe["protected"].as_str().unwrap()).unwrap(),
        )
        .unwrap();
        h["zip"] = "DEF".into();
        base64_url(&serde_json::to_vec(&h).unwrap())
    };
    let cases: Vec<(&str, FoundLayer, &str)> = vec![
        (
            "zip in the protected header",
            edit(&|j| j["protected"] = protected_zip.clone().into()),
            "zip",
        ),
        (
            "JWE over 1 MiB",
            edit(&|j| j["aad"] = "A".repeat(1 << 20).into()),
            "JWE larger than 1024 KiB",
        ),
        (
            "257 recipients",
            edit(&|j| {
                let protected = j["protected"].clone();
                *j = json!({
                    "protected": protected,
                    "recipients": vec![recipient.clone(); 257],
                    "iv": j["iv"], "ciphertext": j["ciphertext"], "tag": j["tag"],
                });
            }),
            "more than 256 recipients",
        ),
        (
            "256 recipients of RSA-2048 size, none real",
            edit(&|j| {
                let mut h: Value = serde_json::from_slice(
                    &ctd_decoder::encoding::decode_url(j["protected"].as_str().unwrap()).unwrap(),
                )
                .unwrap();
                h.as_object_mut().unwrap().remove("alg");
                *j = json!({
                    "protected": base64_url(&serde_json::to_vec(&h).unwrap()),
                    "recipients": vec![recipient.clone(); 256],
                    "iv": j["iv"], "ciphertext": j["ciphertext"], "tag": j["tag"],
                });
            }),
            "256 jwe recipients",
        ),
        (
            "encrypted_key of 700 KiB",
            edit(&|j| j["encrypted_key"] = base64_url(&vec![5u8; 700 << 10]).into()),
            "RSA-OAEP to RSA-5734400",
        ),
        (
            "iv of 64 KiB",
            edit(&|j| j["iv"] = base64_url(&vec![5u8; 64 << 10]).into()),
            "\"iv\" is 65536 bytes",
        ),
        (
            "no iv",
            edit(&|j| {
                j.as_object_mut().unwrap().remove("iv");
            }),
            "no \"iv\"",
        ),
        (
            "tag cut short",
            edit(&|j| j["tag"] = base64_url(&[0u8; 4]).into()),
            "\"tag\" is 4 bytes",
        ),
    ];
    for (case, l, needle) in cases {
        let start = Instant::now();
        let o = run_with(&l, l.blob.clone());
        expect(case, &o, needle);
        eprintln!("battery: {case}: failed cleanly in {:?}", start.elapsed());
    }
    // An ECDH-ES+A128KW recipient on the curve of a local key, with a 4-byte encrypted_key:
    // josekit computed `len - 8` (found by the jwe fuzz target).
    let p256 = keys::p256();
    let ec_dir = scratch("keys-battery-ec");
    TestKey::write_private(&ec_dir, "ec.pem", &p256.pkcs8_pem());
    let ec = p256.key.ec_key().unwrap();
    let mut ctx = openssl::bn::BigNumContext::new().unwrap();
    let (mut x, mut y) = (
        openssl::bn::BigNum::new().unwrap(),
        openssl::bn::BigNum::new().unwrap(),
    );
    ec.public_key()
        .affine_coordinates(ec.group(), &mut x, &mut y, &mut ctx)
        .unwrap();
    let short_wrapped_key = json!({
        "protected": base64_url(br#"{"enc":"A128GCM"}"#),
        "recipients": [{
            "header": {"alg": "ECDH-ES+A128KW", "epk": {"kty": "EC", "crv": "P-256",
                "x": base64_url(&x.to_vec_padded(32).unwrap()),
                "y": base64_url(&y.to_vec_padded(32).unwrap())}},
            "encrypted_key": base64_url(&[1, 2, 3, 4]),
        }],
        "iv": base64_url(&[0; 12]), "ciphertext": "AAAA", "tag": base64_url(&[0; 16]),
    });
    let l = with_annotation(
        JWE,
        Some(encode_std(&serde_json::to_vec(&short_wrapped_key).unwrap())),
    );
    let o = Decoder::new()
        .keys(&ec_dir)
        .payload(l.cri_payload())
        .stdin(l.blob.clone())
        .run();
    expect(
        "ECDH-ES wrapped key of 4 bytes",
        &o,
        "\"encrypted_key\" is 4 bytes",
    );

    // Serde's recursion limit, not the stack, stops a deeply nested header.
    let deep = [
        b"{\"protected\":\"e30\",\"ciphertext\":\"AA\",\"header\":".to_vec(),
        b"{\"x\":".repeat(100_000),
        b"1".to_vec(),
        b"}".repeat(100_001),
    ]
    .concat();
    let l = with_annotation(JWE, Some(encode_std(&deep)));
    expect(
        "header nested 100000 deep",
        &run_with(&l, l.blob.clone()),
        "jwe[0]: JWE is not a JSON object",
    );
}

// ---------------------------------------------------------------------------------------------
// The encrypted stream.

#[test]
fn bad_ciphertext() {
    let l = layer();
    let blob = &l.blob;
    let no_size = json_payload(&json!({
        "Descriptor": {"mediaType": l.media_type, "digest": l.digest, "annotations": l.annotations},
    }));
    let cases: Vec<(&str, Decoder, &str)> = vec![
        (
            "truncated to half",
            Decoder::new()
                .keys(&keys_dir())
                .payload(l.cri_payload())
                .stdin(blob[..blob.len() / 2].to_vec()),
            "truncated",
        ),
        (
            "extended by 64 KiB",
            Decoder::new()
                .keys(&keys_dir())
                .payload(l.cri_payload())
                .stdin([blob.clone(), vec![0u8; 64 << 10]].concat()),
            "longer than",
        ),
        (
            "truncated by one byte, descriptor without a size",
            Decoder::new()
                .keys(&keys_dir())
                .payload(no_size.clone())
                .stdin(blob[..blob.len() - 1].to_vec()),
            "failed authentication",
        ),
        (
            "extended by one byte, descriptor without a size",
            Decoder::new()
                .keys(&keys_dir())
                .payload(no_size.clone())
                .stdin([blob.clone(), vec![0]].concat()),
            "failed authentication",
        ),
        (
            "empty, descriptor without a size",
            Decoder::new()
                .keys(&keys_dir())
                .payload(no_size.clone())
                .stdin(Vec::new()),
            "failed authentication",
        ),
        (
            "first and last byte flipped, descriptor without a size",
            Decoder::new().keys(&keys_dir()).payload(no_size).stdin({
                let mut b = blob.clone();
                b[0] ^= 0x80;
                *b.last_mut().unwrap() ^= 0x80;
                b
            }),
            "failed authentication",
        ),
        (
            "stdout closed before the first byte",
            Decoder::new()
                .keys(&keys_dir())
                .payload(l.cri_payload())
                .stdin(blob.clone())
                .stdout(Stdout::CloseAfter(0)),
            "closed the pipe",
        ),
    ];
    for (case, d, needle) in cases {
        let o = d.run();
        expect(case, &o, needle);
        assert!(
            o.stdout.is_empty() || o.stdout.len() % 512 == 1,
            "{case}: released {}",
            o.stdout.len()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The keys directory.

/// A directory of things that are not key files: a FIFO nobody writes, a character device, a
/// dangling symlink, a file only root can read, a symlink to /dev/zero, and `key`'s PEM.
fn hostile_keys_dir(name: &str, key: &TestKey) -> PathBuf {
    let dir = scratch(name);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    nix::unistd::mkfifo(
        &dir.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    let device = dir.join("null-device");
    if nix::sys::stat::mknod(
        &device,
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 3),
    )
    .is_err()
    {
        // Not root: a symlink to a device is what a user can make.
        symlink("/dev/null", &device).unwrap();
    }
    symlink("/dev/zero", dir.join("zero")).unwrap();
    symlink("does-not-exist.pem", dir.join("dangling.pem")).unwrap();
    let secret = TestKey::write_private(&dir, "root-only.pem", &keys::rsa2048_b().pkcs8_pem());
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).unwrap();
    let key_file = TestKey::write_private(&dir, "key.pem", &key.pkcs8_pem());
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    dir
}

fn as_nobody_if_root(d: Decoder) -> Decoder {
    if nix::unistd::geteuid().is_root() {
        d.run_as_user(65534)
    } else {
        d
    }
}

#[test]
fn hostile_keys_directory_neither_hangs_nor_leaks() {
    let dir = hostile_keys_dir("keys-hostile-wrong", &keys::rsa2048_b());
    let start = Instant::now();
    let o = as_nobody_if_root(
        Decoder::new()
            .keys(&dir)
            .payload(layer().cri_payload())
            .stdin(layer().blob.clone()),
    )
    .run();
    let line = expect("hostile keys dir, wrong key", &o, "none of the local keys");
    for needle in [
        "dangling.pem (dangling symlink)",
        "fifo (not a regular file",
        "null-device (not a regular file",
        "zero (not a regular file",
        "root-only.pem (cannot be opened (permission denied))",
    ] {
        if needle.starts_with("root-only") && !nix::unistd::geteuid().is_root() {
            continue;
        }
        assert!(line.contains(needle), "expected {needle:?} in: {line}");
    }
    eprintln!(
        "battery: hostile keys dir failed cleanly in {:?}",
        start.elapsed()
    );
    assert!(start.elapsed() < Duration::from_secs(20));

    // The same directory with the right key decrypts: nothing in it can stop or hang a run.
    let dir = hostile_keys_dir("keys-hostile-right", &keys::rsa2048());
    let out = as_nobody_if_root(
        Decoder::new()
            .keys(&dir)
            .payload(layer().cri_payload())
            .stdin(layer().blob.clone()),
    )
    .run()
    .ok();
    assert!(out == source().layers[0].blob);
}

#[test]
fn keys_directory_of_100000_files() {
    let dir = scratch("keys-100k");
    let setup = Instant::now();
    for i in 0..100_000 {
        std::fs::File::create(dir.join(format!("f{i:06}"))).unwrap();
    }
    let setup = setup.elapsed();
    let start = Instant::now();
    let o = Decoder::new()
        .keys(&dir)
        .payload(layer().cri_payload())
        .stdin(layer().blob.clone())
        .run();
    let elapsed = start.elapsed();
    let line = expect("100000 files", &o, "no usable private key");
    assert!(
        line.contains("has more than 10000 entries; the rest were not looked at"),
        "{line}"
    );
    eprintln!(
        "battery: keys dir of 100000 empty files: setup {setup:?}, decoder failed cleanly in \
         {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(20), "took {elapsed:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// No core dumps.

/// Runs `program args` under `bash -c 'ulimit -c unlimited; exec …'` in `cwd`, the payload (if
/// any) on fd 3, stdin a pipe left open.
fn spawn_dumpable(
    cwd: &Path,
    program: &Path,
    args: &[&std::ffi::OsStr],
    payload: Option<Vec<u8>>,
) -> (std::process::Child, Option<std::thread::JoinHandle<()>>) {
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg("ulimit -c unlimited && exec \"$0\" \"$@\"")
        .arg(program)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut writer = None;
    if let Some(bytes) = payload {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        cmd.fd_mappings(vec![FdMapping {
            parent_fd: r,
            child_fd: 3,
        }])
        .unwrap();
        writer = Some((w, bytes));
    }
    let child = cmd.spawn().unwrap();
    drop(cmd);
    let thread = writer.map(|(w, bytes)| {
        std::thread::spawn(move || {
            let _ = std::fs::File::from(w).write_all(&bytes);
        })
    });
    (child, thread)
}

fn cores_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("core"))
        .collect()
}

fn abort_and_wait(child: &mut std::process::Child) -> std::process::ExitStatus {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGABRT,
    )
    .unwrap();
    child.wait().unwrap()
}

#[test]
fn failures_and_aborts_leave_no_core_and_no_key_bytes() {
    // Control: in this environment, does a process that allows dumps leave a core in its cwd?
    let control = scratch("core-control");
    let (mut sleeper, _) = spawn_dumpable(&control, Path::new("sleep"), &["30".as_ref()], None);
    std::thread::sleep(Duration::from_millis(200));
    let status = abort_and_wait(&mut sleeper);
    let dumps_here = !cores_in(&control).is_empty() || status.core_dumped();
    if !dumps_here {
        eprintln!(
            "battery: this machine writes no core for an aborted process (core_pattern {:?}); \
             the no-core checks below cannot fail here",
            std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap_or_default()
        );
    }

    // 1. A failing decryption (wrong key) with cores allowed by the parent: exit 1, no core.
    let cwd = scratch("core-failure");
    let wrong = keys::rsa2048_b().keys_dir(&scratch("core-keys-wrong"));
    let args: Vec<&std::ffi::OsStr> = vec!["--decryption-keys-path".as_ref(), wrong.as_os_str()];
    let (mut child, writer) = spawn_dumpable(&cwd, &binary(), &args, Some(layer().cri_payload()));
    let mut stdin = child.stdin.take().unwrap();
    let blob = layer().blob.clone();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&blob);
    });
    let out = child.wait_with_output().unwrap();
    let _ = feeder.join();
    if let Some(w) = writer {
        let _ = w.join();
    }
    let o = Outcome {
        status: out.status,
        stdout: out.stdout,
        stderr: String::from_utf8(out.stderr).unwrap(),
    };
    expect("failure with cores allowed", &o, "none of the local keys");
    assert!(cores_in(&cwd).is_empty(), "core file after a failure");

    // 2. Killed by SIGABRT mid-layer, holding the unwrapped layer key: no core either.
    let cwd = scratch("core-abort");
    let right = keys_dir();
    let args: Vec<&std::ffi::OsStr> = vec!["--decryption-keys-path".as_ref(), right.as_os_str()];
    // A layer too large for the in-memory path, so output starts before the end of the input.
    let large = &crate::interop::large_layer().0;
    let (mut child, writer) = spawn_dumpable(&cwd, &binary(), &args, Some(large.cri_payload()));
    // Never hang the test run: whatever happens below, the decoder is gone within a minute.
    let watchdog_pid = child.id();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(60));
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(watchdog_pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    });
    // The whole layer, but stdin stays open: output starts (past the first 256 KiB chunk and
    // the 64 KiB hold-back), and the run cannot end.
    let mut stdin = child.stdin.take().unwrap();
    let blob = large.blob.clone();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&blob);
        stdin
    });
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 1];
    stdout.read_exact(&mut first).unwrap();
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.id())).unwrap();
    let core_limit = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap()
        .to_string();
    assert!(
        core_limit
            .split_whitespace()
            .skip(4)
            .take(2)
            .all(|v| v == "0"),
        "the decoder runs with {core_limit:?}"
    );
    let status = abort_and_wait(&mut child);
    drop(feeder.join().unwrap());
    if let Some(w) = writer {
        let _ = w.join();
    }
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.signal(), Some(libc::SIGABRT), "{status:?}");
    assert!(!status.core_dumped(), "the kernel dumped core");
    assert!(cores_in(&cwd).is_empty(), "core file after an abort");
    assert_no_secrets("abort", &stderr);
}
