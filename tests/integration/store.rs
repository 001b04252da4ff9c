//! No payload on fd 3: the decoder finds the layer's descriptor in containerd's content store.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use ctd_decoder::store::{read_head, Search};

use crate::interop::{encrypt_for, source};
use crate::support::decoder::{Decoder, Fd3};
use crate::support::keys;
use crate::support::oci::{noise, sha256, FoundLayer};
use crate::support::scratch;

fn put(store: &Path, bytes: &[u8]) -> String {
    let d = sha256(bytes);
    let dir = store.join("blobs/sha256");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(d.trim_start_matches("sha256:")), bytes).unwrap();
    d
}

fn set_mtime(store: &Path, digest: &str, when: SystemTime) {
    let p = store
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    fs::File::options()
        .write(true)
        .open(p)
        .unwrap()
        .set_modified(when)
        .unwrap();
}

/// A content store laid out as containerd's, holding the encrypted image's manifest and blobs.
fn store_with(layers: &[FoundLayer], name: &str) -> (PathBuf, String) {
    let store = scratch(name);
    for l in layers {
        put(&store, &l.blob);
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(&store, b"{}"), "size": 2},
        "layers": layers.iter().map(|l| serde_json::json!({
            "mediaType": l.media_type, "digest": l.digest, "size": l.size, "annotations": l.annotations,
        })).collect::<Vec<_>>(),
    });
    let digest = put(&store, &serde_json::to_vec(&manifest).unwrap());
    (store, digest)
}

fn decrypt_without_payload(
    layer: &FoundLayer,
    store: &Path,
    keys_dir: &Path,
    fd3: Fd3,
) -> crate::support::decoder::Outcome {
    Decoder::new()
        .keys(keys_dir)
        .arg("--content-store")
        .arg(store)
        .media_type(&layer.media_type)
        .fd3(fd3)
        .stdin(layer.blob.clone())
        .run()
}

#[test]
fn decrypts_with_fd3_closed_or_empty() {
    let key = keys::p384();
    let layers = encrypt_for("store", std::slice::from_ref(&key));
    let (store, _) = store_with(&layers, "store-basic");
    let keys_dir = key.keys_dir(&scratch("keys-store"));
    for (enc, orig) in layers.iter().zip(&source().layers) {
        for fd3 in [Fd3::Closed, Fd3::DevNull] {
            let out = decrypt_without_payload(enc, &store, &keys_dir, fd3).ok();
            assert!(out == orig.blob, "{}", enc.media_type);
        }
    }
    // A payload with keys but no descriptor (ctr-enc with --key on a path without a descriptor)
    // also falls back to the store, and its keys are used.
    let payload = {
        let mut params = std::collections::BTreeMap::new();
        params.insert("privkeys".to_string(), vec![Some(key.pkcs8_pem())]);
        let mut any =
            ctd_decoder::payload::encode(&params, &ctd_decoder::payload::Descriptor::default());
        any.shrink_to_fit();
        any
    };
    let out = Decoder::new()
        .arg("--content-store")
        .arg(&store)
        .media_type(&layers[0].media_type)
        .payload(payload)
        .stdin(layers[0].blob.clone())
        .run()
        .ok();
    assert!(out == source().layers[0].blob);
}

#[test]
fn a_blob_in_no_manifest_fails_cleanly() {
    let key = keys::p384();
    let layers = encrypt_for("store-orphan", std::slice::from_ref(&key));
    let (store, manifest) = store_with(&layers[1..], "store-orphan");
    let keys_dir = key.keys_dir(&scratch("keys-store-orphan"));
    let o = decrypt_without_payload(&layers[0], &store, &keys_dir, Fd3::Closed);
    let line = o.failed();
    assert!(line.contains("no payload on fd 3"), "{line}");
    assert!(line.contains("no manifest in the content store"), "{line}");
    assert!(
        line.contains("--content-store") && line.contains("use_local_image_pull"),
        "{line}"
    );
    assert!(o.stdout.is_empty());
    // A missing store says so.
    let o = decrypt_without_payload(&layers[0], &store.join("nope"), &keys_dir, Fd3::Closed);
    assert!(
        o.failed().contains("cannot be read (it does not exist)"),
        "{}",
        o.stderr
    );
    let _ = manifest;
}

#[test]
fn the_same_blob_rewrapped_in_another_manifest_is_found_with_either_key() {
    // Two manifests list the same ciphertext; only the older one is wrapped for our key.
    let ours = keys::p256();
    let layers = encrypt_for("store-rewrap", std::slice::from_ref(&ours));
    let (store, old) = store_with(&layers, "store-rewrap");
    set_mtime(&store, &old, SystemTime::now() - Duration::from_secs(600));
    let mut other = layers[0].clone();
    other.annotations.insert(
        "org.opencontainers.image.enc.keys.jwe".into(),
        ctd_decoder::encoding::encode_std(b"{\"ciphertext\":\"AAAA\",\"protected\":\"eyJlbmMiOiJBMjU2R0NNIn0\",\"header\":{\"alg\":\"RSA-OAEP\"},\"encrypted_key\":\"AAAA\"}"),
    );
    let newer = serde_json::json!({"schemaVersion": 2, "layers": [{
        "mediaType": other.media_type, "digest": other.digest, "size": other.size, "annotations": other.annotations}]});
    put(&store, &serde_json::to_vec(&newer).unwrap());
    let out = decrypt_without_payload(
        &layers[0],
        &store,
        &ours.keys_dir(&scratch("keys-rewrap")),
        Fd3::Closed,
    )
    .ok();
    assert!(out == source().layers[0].blob);
}

/// A store holding 1,000 images (1,000 manifests, 1,000 configs, 3,000 layers of which half are
/// larger than the 4 MiB manifest limit) and the encrypted image, newest or oldest. Prints what
/// the lookup costs; asserts only what it finds.
#[test]
fn lookup_cost_with_1000_manifests() {
    let key = keys::rsa2048();
    let layers = encrypt_for("store-1000", std::slice::from_ref(&key));
    let (store, ours) = store_with(&layers, "store-1000");
    let blobs = store.join("blobs/sha256");
    let old = SystemTime::now() - Duration::from_secs(86_400);
    for i in 0..1000 {
        let mut descs = Vec::new();
        for j in 0..3 {
            let name = format!("layer-{i}-{j}");
            let digest = if j == 0 {
                // A large layer: a sparse file, as big layers cost only their metadata here.
                let d = sha256(name.as_bytes());
                let f = fs::File::create(blobs.join(d.trim_start_matches("sha256:"))).unwrap();
                f.set_len(16 << 20).unwrap();
                d
            } else {
                put(
                    &store,
                    &noise(&name, if j == 1 { 8 << 10 } else { 64 << 10 }),
                )
            };
            set_mtime(&store, &digest, old);
            let enc = i % 10 == 0;
            descs.push(serde_json::json!({
                "mediaType": if enc { "application/vnd.oci.image.layer.v1.tar+gzip+encrypted" } else { "application/vnd.oci.image.layer.v1.tar+gzip" },
                "digest": digest, "size": 1234,
                "annotations": if enc { serde_json::json!({"org.opencontainers.image.enc.keys.jwe": "eA==", "org.opencontainers.image.enc.pubopts": "eA=="}) } else { serde_json::json!({}) },
            }));
        }
        let config = put(&store, serde_json::json!({"architecture": "amd64", "os": "linux", "n": i, "rootfs": {"type": "layers", "diff_ids": []}}).to_string().as_bytes());
        let m = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 100}, "layers": descs});
        let md = put(&store, &serde_json::to_vec(&m).unwrap());
        set_mtime(&store, &md, old);
        set_mtime(&store, &config, old);
    }
    let count = fs::read_dir(&blobs).unwrap().count();
    let measure = |label: &str| -> Duration {
        let layer = &layers[0];
        let start = Instant::now();
        let (head, complete) = read_head(&mut &layer.blob[..]).unwrap();
        let mut search = Search::new(&store, Some(&layer.media_type), &head, complete).unwrap();
        let found = search.next().expect("found");
        let took = start.elapsed();
        assert_eq!(found.descriptor.digest, layer.digest);
        let s = search.stats();
        println!(
            "lookup ({label}): {count} blobs listed, {} small blobs opened, {} read as JSON, {} heads compared: {:.2} ms",
            s.files_read,
            s.json_read,
            s.heads_compared,
            took.as_secs_f64() * 1000.0
        );
        took
    };
    // Warm the page cache once, then measure: the common case (the manifest written last) ...
    measure("warm-up");
    let newest = measure("our manifest newest");
    // ... and the worst case: our manifest is the oldest blob in the store.
    set_mtime(&store, &ours, old - Duration::from_secs(3600));
    let oldest = measure("our manifest oldest");
    // And end to end through the binary, fd 3 closed.
    let keys_dir = key.keys_dir(&scratch("keys-1000"));
    let start = Instant::now();
    let out = decrypt_without_payload(&layers[0], &store, &keys_dir, Fd3::Closed).ok();
    println!(
        "decoder end to end, worst case, {} build: {:.1} ms",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        start.elapsed().as_secs_f64() * 1000.0
    );
    assert!(out == source().layers[0].blob);
    assert!(
        newest <= oldest * 4 + Duration::from_millis(50),
        "sanity: {newest:?} vs {oldest:?}"
    );
}
