//! Sample OCI images in an OCI image layout (`oci:` transport): built from local data, read
//! back after skopeo has encrypted them.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::Path;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub const MT_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MT_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MT_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MT_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A layer blob and the digest of its uncompressed tar.
#[derive(Clone, Debug)]
pub struct Layer {
    pub media_type: String,
    pub blob: Vec<u8>,
    pub diff_id: String,
}

/// One entry of a sample layer.
pub enum Entry<'a> {
    Dir(&'a str, u32),
    File(&'a str, u32, Vec<u8>),
    Owned(&'a str, u32, u64, u64, Vec<u8>),
    Symlink(&'a str, &'a str),
}

/// Deterministic pseudo-random bytes (SHA-256 in counter mode): incompressible, reproducible.
pub fn noise(seed: &str, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut counter = 0u64;
    while out.len() < len {
        let mut h = Sha256::new();
        h.update(seed.as_bytes());
        h.update(counter.to_be_bytes());
        out.extend_from_slice(&h.finalize());
        counter += 1;
    }
    out.truncate(len);
    out
}

/// A tar stream of `entries`, with fixed timestamps so it is reproducible.
pub fn tar(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    b.mode(tar::HeaderMode::Deterministic);
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(1_700_000_000);
        match e {
            Entry::Dir(path, mode) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(*mode);
                h.set_size(0);
                h.set_cksum();
                b.append_data(&mut h, path, &[][..]).unwrap();
            }
            Entry::File(path, mode, data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                h.set_size(data.len() as u64);
                h.set_cksum();
                b.append_data(&mut h, path, &data[..]).unwrap();
            }
            Entry::Owned(path, mode, uid, gid, data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                h.set_uid(*uid);
                h.set_gid(*gid);
                h.set_size(data.len() as u64);
                h.set_cksum();
                b.append_data(&mut h, path, &data[..]).unwrap();
            }
            Entry::Symlink(path, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                b.append_link(&mut h, path, target).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

impl Layer {
    pub fn tar(tar: Vec<u8>) -> Self {
        Layer {
            media_type: MT_TAR.into(),
            diff_id: sha256(&tar),
            blob: tar,
        }
    }
    pub fn tar_gzip(tar: Vec<u8>) -> Self {
        Layer {
            media_type: MT_TAR_GZIP.into(),
            diff_id: sha256(&tar),
            blob: gzip(&tar),
        }
    }
}

/// The two sample layers the interop tests use: a tar+gzip layer with an incompressible file
/// larger than the hold-back, and an uncompressed tar layer.
pub fn sample_layers() -> Vec<Layer> {
    let a = tar(&[
        Entry::Dir("etc/", 0o755),
        Entry::Dir("etc/ctd-demo/", 0o755),
        Entry::File(
            "etc/ctd-demo/message.txt",
            0o644,
            b"decrypted by ctd-decoder\n".to_vec(),
        ),
        Entry::Dir("data/", 0o755),
        Entry::File(
            "data/random.bin",
            0o600,
            noise("random.bin", 384 * 1024 + 17),
        ),
        Entry::Owned(
            "data/owned.txt",
            0o640,
            1000,
            1000,
            b"owned by 1000:1000\n".to_vec(),
        ),
        Entry::Symlink("data/link", "random.bin"),
        Entry::File(
            "data/removed-later.txt",
            0o644,
            b"whited out by the next layer\n".to_vec(),
        ),
    ]);
    let b = tar(&[
        Entry::Dir("data/", 0o755),
        Entry::File(
            "data/plain.txt",
            0o644,
            b"from the uncompressed layer\n".to_vec(),
        ),
        Entry::File("data/.wh.removed-later.txt", 0o644, Vec::new()),
    ]);
    vec![Layer::tar_gzip(a), Layer::tar(b)]
}

/// Writes an OCI image layout at `dir` with one image tagged `tag`.
pub fn write_layout(dir: &Path, tag: &str, layers: &[Layer], config: Value) {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| -> String {
        let d = sha256(bytes);
        fs::write(blobs.join(d.trim_start_matches("sha256:")), bytes).unwrap();
        d
    };
    let mut config = config;
    config["rootfs"] = json!({"type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>()});
    if config.get("architecture").is_none() {
        config["architecture"] = json!("amd64");
        config["os"] = json!("linux");
    }
    let config_bytes = serde_json::to_vec(&config).unwrap();
    let config_digest = put(&config_bytes);
    let layer_descs: Vec<Value> = layers
        .iter()
        .map(|l| json!({"mediaType": l.media_type, "digest": put(&l.blob), "size": l.blob.len()}))
        .collect();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": {"mediaType": MT_CONFIG, "digest": config_digest, "size": config_bytes.len()},
        "layers": layer_descs,
    });
    let manifest_bytes = serde_json::to_vec(&manifest).unwrap();
    let manifest_digest = put(&manifest_bytes);
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = json!({"schemaVersion": 2, "manifests": [{
        "mediaType": MT_MANIFEST, "digest": manifest_digest, "size": manifest_bytes.len(),
        "annotations": {"org.opencontainers.image.ref.name": tag}}]});
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

/// A layer as found in a (possibly encrypted) image layout.
#[derive(Clone, Debug)]
pub struct FoundLayer {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    pub annotations: BTreeMap<String, String>,
    pub blob: Vec<u8>,
}

/// Reads the layers of the image tagged `tag` in the layout at `dir`.
pub fn read_layout(dir: &Path, tag: &str) -> Vec<FoundLayer> {
    let index: Value = serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .expect("tag in index");
    let blob = |digest: &str| {
        fs::read(
            dir.join("blobs/sha256")
                .join(digest.trim_start_matches("sha256:")),
        )
        .unwrap()
    };
    let manifest: Value = serde_json::from_slice(&blob(entry["digest"].as_str().unwrap())).unwrap();
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let digest = l["digest"].as_str().unwrap().to_string();
            FoundLayer {
                media_type: l["mediaType"].as_str().unwrap().to_string(),
                size: l["size"].as_u64().unwrap(),
                annotations: l["annotations"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                            .collect()
                    })
                    .unwrap_or_default(),
                blob: blob(&digest),
                digest,
            }
        })
        .collect()
}

impl FoundLayer {
    /// The descriptor as containerd passes it on fd 3.
    pub fn descriptor(&self) -> ctd_decoder::payload::Descriptor {
        ctd_decoder::payload::Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: Some(self.size),
            annotations: self.annotations.clone(),
        }
    }

    /// The fd-3 payload CRI sends (no keys: `Parameters` null is sent as `{}`, same meaning).
    pub fn cri_payload(&self) -> Vec<u8> {
        ctd_decoder::payload::encode(&BTreeMap::new(), &self.descriptor())
    }

    /// A payload carrying private keys, as `ctr-enc --key` sends them.
    pub fn payload_with_keys(
        &self,
        privkeys: &[Vec<u8>],
        passwords: &[Option<Vec<u8>>],
    ) -> Vec<u8> {
        let mut params = BTreeMap::new();
        params.insert(
            "privkeys".to_string(),
            privkeys.iter().cloned().map(Some).collect(),
        );
        params.insert("privkeys-passwords".to_string(), passwords.to_vec());
        ctd_decoder::payload::encode(&params, &self.descriptor())
    }
}

/// Replaces the manifest of the image tagged `tag` in the layout at `dir` with `edit` applied to
/// it (a new manifest blob; the index entry points at it). Layer and config blobs are untouched.
pub fn edit_manifest(dir: &Path, tag: &str, edit: impl FnOnce(&mut Value)) {
    let index_path = dir.join("index.json");
    let mut index: Value = serde_json::from_slice(&fs::read(&index_path).unwrap()).unwrap();
    let entry = index["manifests"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .expect("tag in index");
    let blobs = dir.join("blobs/sha256");
    let old = entry["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    let mut manifest: Value = serde_json::from_slice(&fs::read(blobs.join(old)).unwrap()).unwrap();
    edit(&mut manifest);
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let digest = sha256(&bytes);
    fs::write(blobs.join(digest.trim_start_matches("sha256:")), &bytes).unwrap();
    entry["digest"] = json!(digest);
    entry["size"] = json!(bytes.len());
    fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
}
