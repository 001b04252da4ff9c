use std::path::Path;

use sha2::{Digest, Sha256};

use super::*;

const ENC_GZ: &str = "application/vnd.oci.image.layer.v1.tar+gzip+encrypted";
const ENC_TAR: &str = "application/vnd.oci.image.layer.v1.tar+encrypted";

fn put(store: &Path, bytes: &[u8]) -> String {
    let hex = hex::encode(Sha256::digest(bytes));
    let dir = store.join("blobs/sha256");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(&hex), bytes).unwrap();
    format!("sha256:{hex}")
}

fn manifest(layers: &[(&str, &str, usize, &str)]) -> Vec<u8> {
    let layers: Vec<serde_json::Value> = layers
        .iter()
        .map(|(mt, digest, size, tag)| {
            serde_json::json!({"mediaType": mt, "digest": digest, "size": size,
                "annotations": {"org.opencontainers.image.enc.keys.jwe": tag}})
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "layers": layers})).unwrap()
}

fn blob(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn search(store: &Path, mt: Option<&str>, input: &[u8]) -> Search {
    let (head, complete) = read_head(&mut &input[..]).unwrap();
    Search::new(store, mt, &head, complete).unwrap()
}

fn tags(s: Search) -> Vec<String> {
    s.map(|c| c.descriptor.annotations["org.opencontainers.image.enc.keys.jwe"].clone())
        .collect()
}

#[test]
fn finds_the_descriptor_whose_blob_starts_like_the_input() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path();
    let ours = blob(1, 10_000);
    let other = blob(2, 10_000);
    let d_ours = put(store, &ours);
    let d_other = put(store, &other);
    put(
        store,
        &manifest(&[
            (ENC_GZ, &d_other, other.len(), "other"),
            (ENC_GZ, &d_ours, ours.len(), "ours"),
        ]),
    );
    put(store, b"{\"config\":{},\"not\":\"a manifest\"}");
    let found: Vec<Candidate> = search(store, Some(ENC_GZ), &ours).collect();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].descriptor.digest, d_ours);
    assert_eq!(found[0].descriptor.size, Some(10_000));
    // The media type filter applies.
    assert!(tags(search(store, Some(ENC_TAR), &ours)).is_empty());
    // Without a media type, any encrypted type qualifies.
    assert_eq!(tags(search(store, None, &ours)), vec!["ours"]);
}

#[test]
fn rewrapped_copies_in_several_manifests_are_all_offered() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path();
    let ours = blob(3, 5000);
    let d = put(store, &ours);
    put(store, &manifest(&[(ENC_TAR, &d, ours.len(), "first")]));
    put(store, &manifest(&[(ENC_TAR, &d, ours.len(), "second")]));
    // An exact duplicate (same digest and annotations) is offered once.
    let dup = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "mediaType": "x",
        "layers": [{"mediaType": ENC_TAR, "digest": d, "size": ours.len(),
        "annotations": {"org.opencontainers.image.enc.keys.jwe": "first"}}]}))
    .unwrap();
    put(store, &dup);
    let mut got = tags(search(store, Some(ENC_TAR), &ours));
    got.sort();
    assert_eq!(got, vec!["first", "second"]);
}

#[test]
fn size_head_and_presence_must_all_match() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path();
    let ours = blob(4, 9000);
    let d = put(store, &ours);
    let missing = format!("sha256:{}", "0".repeat(64));
    put(
        store,
        &manifest(&[
            (ENC_GZ, &d, 8999, "wrong size"),
            (ENC_GZ, &missing, 9000, "missing blob"),
        ]),
    );
    assert!(tags(search(store, Some(ENC_GZ), &ours)).is_empty());
    // Same size, different head.
    let mut altered = ours.clone();
    altered[100] ^= 1;
    put(store, &manifest(&[(ENC_GZ, &d, 9000, "right")]));
    assert!(tags(search(store, Some(ENC_GZ), &altered)).is_empty());
    assert_eq!(tags(search(store, Some(ENC_GZ), &ours)), vec!["right"]);
}

#[test]
fn short_layers_are_compared_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path();
    let short = blob(5, 100);
    let longer = [short.clone(), vec![0u8; 50]].concat();
    let d_short = put(store, &short);
    let d_longer = put(store, &longer);
    put(
        store,
        &manifest(&[
            (ENC_TAR, &d_short, 100, "short"),
            (ENC_TAR, &d_longer, 150, "longer"),
        ]),
    );
    assert_eq!(tags(search(store, Some(ENC_TAR), &short)), vec!["short"]);
    assert_eq!(tags(search(store, Some(ENC_TAR), &longer)), vec!["longer"]);
    assert!(tags(search(store, Some(ENC_TAR), b"")).is_empty());
}

#[test]
fn newest_manifest_first_and_lazy() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path();
    let ours = blob(6, 5000);
    let d = put(store, &ours);
    let old = put(store, &manifest(&[(ENC_TAR, &d, 5000, "old")]));
    let new = put(store, &manifest(&[(ENC_TAR, &d, 5000, "new")]));
    let past = SystemTime::now() - Duration::from_secs(3600);
    let f = File::options()
        .write(true)
        .open(
            store
                .join("blobs/sha256")
                .join(old.trim_start_matches("sha256:")),
        )
        .unwrap();
    f.set_modified(past).unwrap();
    let _ = new;
    let mut s = search(store, Some(ENC_TAR), &ours);
    let first = s.next().unwrap();
    assert_eq!(
        first.descriptor.annotations["org.opencontainers.image.enc.keys.jwe"],
        "new"
    );
    let read_so_far = s.stats().files_read;
    assert!(
        read_so_far < 3,
        "read {read_so_far} files before the first answer"
    );
    assert_eq!(
        s.next().unwrap().descriptor.annotations["org.opencontainers.image.enc.keys.jwe"],
        "old"
    );
    assert!(s.next().is_none());
}

#[test]
fn a_missing_store_is_an_error() {
    let err = Search::new(Path::new("/nonexistent/ctd-store"), None, b"x", true)
        .err()
        .unwrap();
    assert!(err.to_string().contains("does not exist"), "{err}");
}
