//! Layers encrypted by skopeo (Go ocicrypt) decrypt byte-identical to the original blobs.

use std::path::PathBuf;
use std::sync::OnceLock;

use crate::support::decoder::Decoder;
use crate::support::keys::{self, TestKey};
use crate::support::oci::{self, FoundLayer, Layer};
use crate::support::{scratch, skopeo};

pub(crate) struct Source {
    pub dir: PathBuf,
    pub layers: Vec<Layer>,
}

/// The unencrypted sample image, built once.
pub(crate) fn source() -> &'static Source {
    static S: OnceLock<Source> = OnceLock::new();
    S.get_or_init(|| {
        let dir = scratch("source-image");
        let layers = oci::sample_layers();
        oci::write_layout(&dir, "latest", &layers, serde_json::json!({}));
        Source { dir, layers }
    })
}

/// A one-layer image whose tar+gzip layer (3 MiB of incompressible data) is larger than the
/// decoder's in-memory limit for small layers, encrypted by skopeo for rsa2048: for tests that
/// need the streaming pipeline (output before the end of the input, threads).
pub(crate) fn large_layer() -> &'static (FoundLayer, Layer) {
    static L: OnceLock<(FoundLayer, Layer)> = OnceLock::new();
    L.get_or_init(|| {
        let dir = scratch("large-source");
        let layer = Layer::tar_gzip(oci::tar(&[
            oci::Entry::Dir("data/", 0o755),
            oci::Entry::File("data/large.bin", 0o644, oci::noise("large.bin", 3 << 20)),
        ]));
        assert!(layer.blob.len() as u64 > ctd_decoder::stream::SMALL_LAYER + (1 << 20));
        oci::write_layout(
            &dir,
            "latest",
            std::slice::from_ref(&layer),
            serde_json::json!({}),
        );
        let out = scratch("large-enc");
        let pubs = out.join("pub");
        std::fs::create_dir_all(&pubs).unwrap();
        let recipient = keys::rsa2048().jwe_recipient(&pubs);
        skopeo::encrypt(&dir, &out.join("image"), "latest", &[recipient], &[]);
        let enc = oci::read_layout(&out.join("image"), "latest").remove(0);
        (enc, layer)
    })
}

/// The sample image encrypted by skopeo for `recipients` (JWE), in its own layout.
pub(crate) fn encrypt_for(name: &str, recipients: &[TestKey]) -> Vec<FoundLayer> {
    let src = source();
    let dir = scratch(&format!("enc-{name}"));
    let pubs = dir.join("pub");
    std::fs::create_dir_all(&pubs).unwrap();
    let recips: Vec<String> = recipients.iter().map(|k| k.jwe_recipient(&pubs)).collect();
    let dst = dir.join("image");
    skopeo::encrypt(
        &src.dir,
        &dst,
        "latest",
        &recips,
        &["--dest-oci-accept-uncompressed-layers"],
    );
    let layers = oci::read_layout(&dst, "latest");
    assert_eq!(layers.len(), src.layers.len());
    for (enc, orig) in layers.iter().zip(&src.layers) {
        assert_eq!(enc.media_type, format!("{}+encrypted", orig.media_type));
        assert!(enc
            .annotations
            .contains_key("org.opencontainers.image.enc.keys.jwe"));
    }
    layers
}

/// Runs the decoder on `layer` as containerd's CRI path does, keys in `keys_dir`.
pub(crate) fn decrypt_cri(layer: &FoundLayer, keys_dir: &std::path::Path) -> Vec<u8> {
    Decoder::new()
        .keys(keys_dir)
        .media_type(&layer.media_type)
        .payload(layer.cri_payload())
        .stdin(layer.blob.clone())
        .run()
        .ok()
}

fn check_single_recipient(key: TestKey) {
    let layers = encrypt_for(key.name, std::slice::from_ref(&key));
    let dir = scratch(&format!("keys-single-{}", key.name));
    let keys_dir = key.keys_dir(&dir);
    for (enc, orig) in layers.iter().zip(&source().layers) {
        let out = decrypt_cri(enc, &keys_dir);
        assert!(
            out == orig.blob,
            "{}: {} decrypted to different bytes",
            key.name,
            enc.media_type
        );
        // The same layer with the key in the payload instead (ctr-enc --key), no keys directory.
        let out = Decoder::new()
            .media_type(&enc.media_type)
            .payload(enc.payload_with_keys(&[key.traditional_pem()], &[None]))
            .stdin(enc.blob.clone())
            .run()
            .ok();
        assert!(out == orig.blob, "{}: payload key", key.name);
    }
}

#[test]
fn skopeo_jwe_rsa2048() {
    check_single_recipient(keys::rsa2048());
}

#[test]
fn skopeo_jwe_rsa4096() {
    check_single_recipient(keys::rsa4096());
}

#[test]
fn skopeo_jwe_ec_p256() {
    check_single_recipient(keys::p256());
}

#[test]
fn skopeo_jwe_ec_p384() {
    check_single_recipient(keys::p384());
}

#[test]
fn skopeo_jwe_ec_p521() {
    check_single_recipient(keys::p521());
}

#[test]
fn skopeo_multi_recipient_opens_with_each_key_alone() {
    let all = [keys::rsa2048(), keys::rsa4096(), keys::p256(), keys::p384()];
    let layers = encrypt_for("multi", &all);
    // go-jose's general serialization: one JWE, four recipients, duplicate top-level encrypted_key.
    let jwe_b64 = &layers[0].annotations["org.opencontainers.image.enc.keys.jwe"];
    assert!(!jwe_b64.contains(','));
    let jwe: serde_json::Value =
        serde_json::from_slice(&ctd_decoder::encoding::decode_std(jwe_b64).unwrap()).unwrap();
    assert_eq!(jwe["recipients"].as_array().unwrap().len(), 4);
    assert!(
        jwe.get("encrypted_key").is_some(),
        "go-jose writes a top-level encrypted_key"
    );
    let dir = scratch("keys-multi");
    for key in &all {
        let keys_dir = key.keys_dir(&dir);
        for (enc, orig) in layers.iter().zip(&source().layers) {
            assert!(
                decrypt_cri(enc, &keys_dir) == orig.blob,
                "{} {}",
                key.name,
                enc.media_type
            );
        }
    }
}

#[test]
fn every_key_encoding_in_the_keys_directory() {
    let layers = encrypt_for("encodings", &[keys::rsa2048(), keys::p384()]);
    let dir = scratch("keys-encodings");
    for key in [keys::rsa2048(), keys::p384()] {
        for (file, bytes) in [
            ("pkcs8.pem", key.pkcs8_pem()),
            ("traditional.pem", key.traditional_pem()),
            ("pkcs8.der", key.pkcs8_der()),
            ("traditional.der", key.traditional_der()),
        ] {
            let keys_dir = dir.join(format!("{}-{file}", key.name));
            TestKey::write_private(&keys_dir, file, &bytes);
            let out = decrypt_cri(&layers[0], &keys_dir);
            assert!(out == source().layers[0].blob, "{} {file}", key.name);
        }
    }
}

/// A wrapped-key list with several comma-joined JWEs, as ocicrypt writes when recipients are
/// added to an already encrypted layer: the key of the second element must be found.
#[test]
fn comma_joined_wrapped_keys() {
    use josekit::jwe::{self, JweHeader};
    let first = keys::rsa2048();
    let second = keys::p256();
    let layers = encrypt_for("comma", std::slice::from_ref(&first));
    let layer = &layers[1];
    let annotation = "org.opencontainers.image.enc.keys.jwe";
    // Re-wrap the same private options for `second`, as ocicrypt's rewrap does.
    let jwe0 = ctd_decoder::encoding::decode_std(&layer.annotations[annotation]).unwrap();
    let decrypter = jwe::RSA_OAEP.decrypter_from_der(first.pkcs8_der()).unwrap();
    let (opts, _) = jwe::deserialize_json(std::str::from_utf8(&jwe0).unwrap(), &decrypter).unwrap();
    let mut header = JweHeader::new();
    header.set_content_encryption("A256GCM");
    let encrypter = jwe::ECDH_ES_A256KW
        .encrypter_from_der(second.key.public_key_to_der().unwrap())
        .unwrap();
    let jwe1 = jwe::serialize_flattened_json(&opts, None, Some(&header), None, &encrypter).unwrap();
    let mut joined = layer.clone();
    joined.annotations.insert(
        annotation.into(),
        format!(
            "{},{}",
            layer.annotations[annotation],
            ctd_decoder::encoding::encode_std(jwe1.as_bytes())
        ),
    );
    let dir = scratch("keys-comma");
    assert!(decrypt_cri(&joined, &second.keys_dir(&dir)) == source().layers[1].blob);
    assert!(decrypt_cri(&joined, &first.keys_dir(&dir)) == source().layers[1].blob);
    // A garbage element before a good one does not stop the search.
    joined.annotations.insert(
        annotation.into(),
        format!(
            "bm90IGEgandl,{}",
            ctd_decoder::encoding::encode_std(jwe1.as_bytes())
        ),
    );
    assert!(decrypt_cri(&joined, &second.keys_dir(&dir)) == source().layers[1].blob);
}
