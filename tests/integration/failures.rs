//! Every failure exits 1 with one operator-readable stderr line, never a panic, never key bytes,
//! and never with the complete plaintext on stdout.

use std::os::unix::fs::PermissionsExt;
use std::sync::OnceLock;

use ctd_decoder::encoding::{decode_std, encode_std};

use crate::interop::{encrypt_for, source};
use crate::support::decoder::{Decoder, Fd3, Outcome, Stdout};
use crate::support::keys::{self, TestKey};
use crate::support::oci::FoundLayer;
use crate::support::scratch;

pub(crate) const JWE: &str = "org.opencontainers.image.enc.keys.jwe";
pub(crate) const PUBOPTS: &str = "org.opencontainers.image.enc.pubopts";

/// The tar+gzip sample layer (≈385 KiB, incompressible) encrypted for rsa2048.
pub(crate) fn layer() -> &'static FoundLayer {
    static L: OnceLock<FoundLayer> = OnceLock::new();
    L.get_or_init(|| encrypt_for("failures", &[keys::rsa2048()]).remove(0))
}

pub(crate) fn keys_dir() -> std::path::PathBuf {
    static D: OnceLock<std::path::PathBuf> = OnceLock::new();
    D.get_or_init(|| keys::rsa2048().keys_dir(&scratch("keys-failures")))
        .clone()
}

pub(crate) fn run_with(layer: &FoundLayer, blob: Vec<u8>) -> Outcome {
    Decoder::new()
        .keys(&keys_dir())
        .media_type(&layer.media_type)
        .payload(layer.cri_payload())
        .stdin(blob)
        .run()
}

/// Asserts the one-line failure contains every `needle`, and no key material of rsa2048.
fn expect_failure(outcome: &Outcome, needles: &[&str]) -> String {
    let line = outcome.failed().to_string();
    for n in needles {
        assert!(line.contains(n), "expected {n:?} in: {line}");
    }
    assert_no_key_material(&line);
    let full = &source().layers[0].blob;
    assert!(
        outcome.stdout.len() + 64 * 1024 <= full.len() || outcome.stdout.is_empty(),
        "too much output: {}",
        outcome.stdout.len()
    );
    line
}

fn assert_no_key_material(text: &str) {
    let key = keys::rsa2048();
    let pem = String::from_utf8(key.pkcs8_pem()).unwrap();
    for line in pem.lines().filter(|l| !l.starts_with("-----")) {
        assert!(
            !text.contains(&line[..20.min(line.len())]),
            "key material in: {text}"
        );
    }
    let der_b64 = encode_std(&key.pkcs8_der());
    assert!(!text.contains(&der_b64[40..70]), "key material in: {text}");
}

pub(crate) fn with_annotation(name: &str, value: Option<String>) -> FoundLayer {
    let mut l = layer().clone();
    match value {
        Some(v) => l.annotations.insert(name.into(), v),
        None => l.annotations.remove(name),
    };
    l
}

#[test]
fn no_payload_at_all() {
    let o = Decoder::new()
        .keys(&keys_dir())
        .media_type(&layer().media_type)
        .stdin(layer().blob.clone())
        .run();
    expect_failure(&o, &["no payload on fd 3", "key_model"]);
    let o = Decoder::new()
        .keys(&keys_dir())
        .fd3(Fd3::DevNull)
        .stdin(layer().blob.clone())
        .run();
    expect_failure(&o, &["no payload on fd 3"]);
}

#[test]
fn malformed_payloads() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"\xff\xff\xff\xff".to_vec(), "not a protobuf Any"),
        (
            {
                // Any{type_url: "type.googleapis.com/x", value: "{}"}
                let mut v = vec![0x0a, 21];
                v.extend_from_slice(b"type.googleapis.com/x");
                v.extend_from_slice(&[0x12, 2, b'{', b'}']);
                v
            },
            "has type URL",
        ),
        (
            {
                let json = b"{\"Descriptor\":{\"size\":\"big\"}}";
                let mut v = vec![0x0a, 33];
                v.extend_from_slice(b"io.containerd.ocicrypt.v1.Payload");
                v.push(0x12);
                v.push(json.len() as u8);
                v.extend_from_slice(json);
                v
            },
            "Descriptor.size is not an integer",
        ),
        (
            {
                let json = b"{\"DecryptConfig\":{}}";
                let mut v = vec![0x0a, 33];
                v.extend_from_slice(b"io.containerd.ocicrypt.v1.Payload");
                v.push(0x12);
                v.push(json.len() as u8);
                v.extend_from_slice(json);
                v
            },
            "carries no layer descriptor",
        ),
        (vec![0u8; 9 << 20], "larger than 8 MiB"),
    ];
    for (payload, needle) in cases {
        let o = Decoder::new()
            .keys(&keys_dir())
            .payload(payload)
            .stdin(layer().blob.clone())
            .run();
        expect_failure(&o, &[needle]);
    }
}

#[test]
fn no_key_fits() {
    let dir = scratch("keys-wrong");
    let wrong = keys::rsa2048_b().keys_dir(&dir);
    std::fs::write(wrong.join("README"), b"keys for the image decoder\n").unwrap();
    let o = Decoder::new()
        .keys(&wrong)
        .payload(layer().cri_payload())
        .stdin(layer().blob.clone())
        .run();
    let line = expect_failure(
        &o,
        &[
            "none of the local keys (RSA-2048)",
            "1 jwe recipient: RSA-OAEP to RSA-2048",
            "README (not a recognised",
            "put the private key",
        ],
    );
    assert!(line.contains(&*layer().digest), "{line}");
    // No keys anywhere.
    let o = Decoder::new()
        .payload(layer().cri_payload())
        .stdin(layer().blob.clone())
        .run();
    expect_failure(&o, &["no usable private key", "no --decryption-keys-path"]);
    // A keys path that does not exist.
    let o = Decoder::new()
        .keys(&dir.join("missing"))
        .payload(layer().cri_payload())
        .stdin(layer().blob.clone())
        .run();
    expect_failure(&o, &["does not exist"]);
}

#[test]
fn unreadable_key_file() {
    let dir = scratch("keys-unreadable");
    let path = TestKey::write_private(&dir, "key.pem", &keys::rsa2048().pkcs8_pem());
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
    let mut d = Decoder::new()
        .keys(&dir)
        .payload(layer().cri_payload())
        .stdin(layer().blob.clone());
    if nix::unistd::geteuid().is_root() {
        // Root reads any file: run the decoder as nobody so the mode bits apply.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        d = d.run_as_user(65534);
    }
    let o = d.run();
    expect_failure(&o, &["key.pem (cannot be opened (permission denied))"]);
}

#[test]
fn tampered_ciphertext_fails_authentication() {
    let blob = &layer().blob;
    for pos in [0, blob.len() / 2, blob.len() - 1] {
        let mut bad = blob.clone();
        bad[pos] ^= 0x01;
        let o = run_with(layer(), bad);
        expect_failure(
            &o,
            &[
                "failed authentication",
                "treat the registry content as tampered",
            ],
        );
        assert!(
            o.stdout.is_empty() || o.stdout.len() % 512 == 1,
            "released {}",
            o.stdout.len()
        );
    }
}

#[test]
fn truncated_and_extended_input() {
    let blob = &layer().blob;
    let o = run_with(layer(), blob[..blob.len() - 1].to_vec());
    expect_failure(
        &o,
        &["truncated", &format!("{} bytes arrived", blob.len() - 1)],
    );
    let o = run_with(layer(), Vec::new());
    expect_failure(&o, &["truncated", "0 bytes arrived"]);
    let mut longer = blob.clone();
    longer.push(0);
    let o = run_with(layer(), longer);
    expect_failure(&o, &["longer than"]);
}

#[test]
fn malformed_annotations() {
    let cases: Vec<(FoundLayer, &str)> = vec![
        (
            with_annotation(JWE, None),
            "no org.opencontainers.image.enc.keys.* annotation",
        ),
        (
            with_annotation(PUBOPTS, None),
            "no org.opencontainers.image.enc.pubopts annotation",
        ),
        (
            with_annotation(PUBOPTS, Some("%%%".into())),
            "pubopts annotation is not valid base64",
        ),
        (
            with_annotation(PUBOPTS, Some(encode_std(b"[1]"))),
            "public options",
        ),
        (
            with_annotation(JWE, Some("%%%".into())),
            "jwe[0]: not valid base64",
        ),
        (
            with_annotation(JWE, Some(encode_std(b"{\"ciphertext\":1}"))),
            "jwe[0]: JWE member \"ciphertext\" is not a string",
        ),
    ];
    for (l, needle) in cases {
        let o = run_with(&l, l.blob.clone());
        expect_failure(&o, &[needle]);
    }
}

pub(crate) fn pubopts_json() -> serde_json::Value {
    serde_json::from_slice(&decode_std(&layer().annotations[PUBOPTS]).unwrap()).unwrap()
}

#[test]
fn unsupported_cipher_and_public_nonce() {
    let mut p = pubopts_json();
    p["cipher"] = "AES_256_GCM".into();
    let l = with_annotation(PUBOPTS, Some(encode_std(&serde_json::to_vec(&p).unwrap())));
    expect_failure(
        &run_with(&l, l.blob.clone()),
        &["cipher \"AES_256_GCM\"", "only AES_256_CTR_HMAC_SHA256"],
    );
    let mut p = pubopts_json();
    p["cipheroptions"] = serde_json::json!({"nonce": encode_std(&[0u8; 16])});
    let l = with_annotation(PUBOPTS, Some(encode_std(&serde_json::to_vec(&p).unwrap())));
    expect_failure(
        &run_with(&l, l.blob.clone()),
        &["public options carry a nonce"],
    );
    let mut p = pubopts_json();
    p["hmac"] = encode_std(&[0u8; 31]).into();
    let l = with_annotation(PUBOPTS, Some(encode_std(&serde_json::to_vec(&p).unwrap())));
    expect_failure(&run_with(&l, l.blob.clone()), &["31-byte HMAC"]);
    let mut p = pubopts_json();
    p["hmac"] = encode_std(&[0u8; 32]).into();
    let l = with_annotation(PUBOPTS, Some(encode_std(&serde_json::to_vec(&p).unwrap())));
    expect_failure(&run_with(&l, l.blob.clone()), &["failed authentication"]);
}

#[test]
fn jwe_with_compression_is_refused() {
    let jwe: serde_json::Value =
        serde_json::from_slice(&decode_std(&layer().annotations[JWE]).unwrap()).unwrap();
    let mut zipped = jwe.clone();
    let mut header = zipped
        .get("header")
        .cloned()
        .unwrap_or(serde_json::json!({}));
    header["zip"] = "DEF".into();
    zipped["header"] = header;
    let l = with_annotation(JWE, Some(encode_std(&serde_json::to_vec(&zipped).unwrap())));
    expect_failure(&run_with(&l, l.blob.clone()), &["zip"]);
}

#[test]
fn unsupported_media_type() {
    let mut l = layer().clone();
    l.media_type = "application/vnd.oci.image.layer.v1.tar+gzip".into();
    expect_failure(
        &run_with(&l, l.blob.clone()),
        &["not an ocicrypt-encrypted layer type"],
    );
}

#[test]
fn consumer_closing_stdout_early() {
    // A layer larger than the 1 MiB pipe buffer the decoder asks for: the reader's close is
    // seen while plaintext is still to be written. (A layer that fits in the pipe is complete,
    // and a success, once written.)
    let (large, plain) = crate::interop::large_layer();
    let o = Decoder::new()
        .keys(&keys_dir())
        .payload(large.cri_payload())
        .stdin(large.blob.clone())
        .stdout(Stdout::CloseAfter(1000))
        .run();
    let line = o.failed();
    assert!(line.contains("closed the pipe"), "{line}");
    assert!(o.stdout.len() < plain.blob.len());
}
