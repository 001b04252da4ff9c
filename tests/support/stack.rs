//! Everything one end-to-end scenario runs on, started in order and stopped in reverse: a work
//! directory, a registry on 127.0.0.1, the sample image, a node keys directory, and a private
//! containerd whose stream processors run the decoder under test.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::containerd::{self, Containerd};
use super::image::{MESSAGE, MESSAGE_PATH};
use super::keys::TestKey;
use super::oci::{self, Layer};
use super::registry::Registry;
use super::rootfs::{self, Kind};
use super::{decoder, image, skopeo};

/// The repository the scenarios push to.
pub const REPOSITORY: &str = "ctd-e2e/app";

const ENC_KEYS: &str = "org.opencontainers.image.enc.keys.jwe";
const ENC_PUBOPTS: &str = "org.opencontainers.image.enc.pubopts";
const ENC_KEYS_PREFIX: &str = "org.opencontainers.image.enc.keys.";

/// See [`Stack::start_without_store`].
const MISSING_STORE: &str = "no-content-store";

/// A scratch directory removed on drop, after unmounting anything left mounted below it. When
/// the thread is panicking (a failed test) it is kept for inspection and its path printed.
pub struct WorkDir {
    path: PathBuf,
}

impl WorkDir {
    pub fn new(name: &str) -> WorkDir {
        WorkDir {
            path: super::scratch(name),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        for m in containerd::mounts_under(&self.path) {
            eprintln!("unmounting leftover mount {}", m.display());
            let _ = std::process::Command::new("umount")
                .arg("--lazy")
                .arg(&m)
                .status();
        }
        if std::thread::panicking() {
            eprintln!("kept {} for inspection", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// An encrypted image in the registry.
pub struct Published {
    /// `127.0.0.1:<port>/<repository>:<tag>`.
    pub reference: String,
    /// The encrypted OCI layout it was pushed from (for a relabelled image: the layout its
    /// blobs come from).
    pub layout: PathBuf,
    pub tag: String,
    /// The manifest as the registry serves it.
    pub manifest: Value,
}

impl Published {
    /// The config digest: the image ID containerd reports.
    pub fn config_digest(&self) -> String {
        self.manifest["config"]["digest"]
            .as_str()
            .expect("config digest")
            .to_string()
    }

    /// The layer media types, bottom first.
    pub fn layer_media_types(&self) -> Vec<String> {
        self.layers()
            .iter()
            .map(|l| l["mediaType"].as_str().unwrap().to_string())
            .collect()
    }

    pub fn layers(&self) -> &[Value] {
        self.manifest["layers"].as_array().expect("layers")
    }
}

/// How skopeo encrypts an image.
pub struct Encryption<'a> {
    /// Recipients in skopeo's syntax: `jwe:<public key>`, `pkcs7:<certificate>`, `pgp:<email>`.
    pub recipients: Vec<String>,
    /// More `skopeo copy` flags (`--dest-compress-format zstd`, ...).
    pub flags: &'a [&'a str],
    /// Environment for skopeo (`GNUPGHOME` for `pgp:` recipients).
    pub env: &'a [(&'a str, &'a Path)],
}

/// Fields drop in order: containerd, then the registry, then the work directory.
pub struct Stack {
    pub containerd: Containerd,
    pub registry: Registry,
    /// The plaintext layers, bottom first.
    pub layers: Vec<Layer>,
    /// The node's `--decryption-keys-path`.
    pub keys_dir: PathBuf,
    pub work: WorkDir,
}

impl Stack {
    /// Starts the registry and containerd, with `node_keys` in the node keys directory.
    pub fn start(name: &str, node_keys: &[&TestKey]) -> Stack {
        Self::start_with(name, node_keys, false)
    }

    /// [`Stack::start`], but the decoder's `--content-store` is [`Stack::missing_store`], a
    /// directory that does not exist: the decoder can decrypt only the layers whose descriptor
    /// containerd passes on fd 3.
    pub fn start_without_store(name: &str, node_keys: &[&TestKey]) -> Stack {
        Self::start_with(name, node_keys, true)
    }

    /// The `--content-store` of a [`Stack::start_without_store`] decoder.
    pub fn missing_store(&self) -> PathBuf {
        self.work.path().join(MISSING_STORE)
    }

    fn start_with(name: &str, node_keys: &[&TestKey], without_store: bool) -> Stack {
        super::require_root();
        let work = WorkDir::new(name);
        let content_store = without_store.then(|| work.path().join(MISSING_STORE));
        let keys_dir = work.path().join("keys");
        std::fs::create_dir_all(&keys_dir).unwrap();
        std::fs::set_permissions(&keys_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let registry = Registry::start(&work.path().join("registry"));

        let layers = image::layers();
        let containerd = Containerd::start(
            &work.path().join("containerd"),
            &containerd::Options {
                decoder: decoder::binary(),
                keys_dir: keys_dir.clone(),
                registry: registry.host().to_string(),
                content_store,
            },
        );
        let stack = Stack {
            containerd,
            registry,
            layers,
            keys_dir,
            work,
        };
        stack.set_node_keys(node_keys);
        stack
    }

    /// Replaces the node keys directory's contents with `keys` (PKCS#8 PEM, mode 0600). The
    /// decoder reads the directory on every run.
    pub fn set_node_keys(&self, keys: &[&TestKey]) {
        for e in std::fs::read_dir(&self.keys_dir).unwrap().flatten() {
            std::fs::remove_file(e.path()).unwrap();
        }
        for k in keys {
            TestKey::write_private(&self.keys_dir, &format!("{}.pem", k.name), &k.pkcs8_pem());
        }
    }

    /// Replaces the node keys directory's contents with `files` (name, bytes; mode 0600): keys,
    /// certificates, OpenPGP keyrings.
    pub fn set_node_key_files(&self, files: &[(&str, &[u8])]) {
        self.set_node_keys(&[]);
        for (file, bytes) in files {
            TestKey::write_private(&self.keys_dir, file, bytes);
        }
    }

    /// Where recipients' public keys and certificates are written for skopeo.
    pub fn recipients_dir(&self) -> PathBuf {
        let dir = self.work.path().join("recipients");
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Encrypts the sample image for `recipients` (JWE) with skopeo and pushes it as `tag`.
    pub fn publish(&self, tag: &str, recipients: &[&TestKey]) -> Published {
        self.publish_layers(tag, &self.layers, recipients)
    }

    /// Builds an image of `layers`, encrypts it for `recipients` (JWE) with skopeo and pushes it
    /// as `tag`.
    ///
    /// skopeo's docker:// destination always compresses layers before encrypting them, so the
    /// image is encrypted into an OCI layout that accepts uncompressed layers, then pushed from
    /// there without re-encryption. The registry's manifest is checked: every layer has the
    /// plaintext media type plus `+encrypted` and a JWE recipient.
    pub fn publish_layers(
        &self,
        tag: &str,
        layers: &[Layer],
        recipients: &[&TestKey],
    ) -> Published {
        let pubs = self.recipients_dir();
        let encryption = Encryption {
            recipients: recipients.iter().map(|k| k.jwe_recipient(&pubs)).collect(),
            flags: &["--dest-oci-accept-uncompressed-layers"],
            env: &[],
        };
        let published = self.publish_encrypted(tag, layers, &encryption);
        for (served, plain) in published.layers().iter().zip(layers) {
            assert_eq!(
                served["mediaType"],
                format!("{}+encrypted", plain.media_type),
                "registry manifest: {}",
                published.manifest
            );
            assert!(served["annotations"][ENC_KEYS].is_string());
        }
        published
    }

    /// Builds an image of `layers`, encrypts it with skopeo as `encryption` says, and pushes the
    /// encrypted OCI layout unchanged as `tag` (skopeo neither re-encrypts nor recompresses
    /// encrypted layers). The registry's manifest is checked against the layout: every layer is
    /// the layout's encrypted blob, with its media type (ending in `+encrypted`) and its
    /// annotations (a wrapped key and the public options).
    pub fn publish_encrypted(
        &self,
        tag: &str,
        layers: &[Layer],
        encryption: &Encryption<'_>,
    ) -> Published {
        let dir = self.work.path().join(format!("image-{tag}"));
        let source = dir.join("plain");
        oci::write_layout(&source, "latest", layers, image::config());
        let layout = dir.join("encrypted");
        skopeo::encrypt_with_env(
            &source,
            &layout,
            "latest",
            &encryption.recipients,
            encryption.flags,
            encryption.env,
        );
        let published = self.push(&layout, tag);
        let in_layout = oci::read_layout(&layout, "latest");
        assert_eq!(published.layers().len(), layers.len());
        for (served, local) in published.layers().iter().zip(&in_layout) {
            assert_eq!(served["digest"], local.digest.as_str());
            assert_eq!(served["size"], local.size);
            assert_eq!(served["mediaType"], local.media_type.as_str());
            assert!(
                local.media_type.ends_with("+encrypted"),
                "{}",
                local.media_type
            );
            let annotations: std::collections::BTreeMap<String, String> =
                serde_json::from_value(served["annotations"].clone()).expect("annotations");
            assert_eq!(annotations, local.annotations);
            assert!(annotations.contains_key(ENC_PUBOPTS));
            assert!(annotations.keys().any(|k| k.starts_with(ENC_KEYS_PREFIX)));
        }
        published
    }

    /// Pushes `base`'s config and layer blobs to `repository` with a new manifest of
    /// `manifest_type` whose config is labelled `config_type` and whose layers are labelled
    /// `layer_type`, with the same digests, sizes and annotations. The registry API is used
    /// directly (blob uploads and a manifest PUT): skopeo refuses to read manifests with media
    /// types it does not know.
    pub fn publish_relabelled(
        &self,
        base: &Published,
        repository: &str,
        tag: &str,
        manifest_type: &str,
        config_type: &str,
        layer_type: &str,
    ) -> Published {
        let blob = |digest: &str| {
            std::fs::read(
                base.layout
                    .join("blobs/sha256")
                    .join(digest.trim_start_matches("sha256:")),
            )
            .unwrap_or_else(|e| panic!("blob {digest} in {}: {e}", base.layout.display()))
        };
        let mut config = base.manifest["config"].clone();
        config["mediaType"] = config_type.into();
        let config_digest = config["digest"].as_str().unwrap();
        assert_eq!(
            self.registry.upload_blob(repository, &blob(config_digest)),
            config_digest
        );
        let mut layers = Vec::new();
        for layer in base.layers() {
            let digest = layer["digest"].as_str().unwrap();
            assert_eq!(self.registry.upload_blob(repository, &blob(digest)), digest);
            let mut relabelled = layer.clone();
            relabelled["mediaType"] = layer_type.into();
            layers.push(relabelled);
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": config,
            "layers": layers,
        });
        let bytes = serde_json::to_vec_pretty(&manifest).unwrap();
        let digest = self
            .registry
            .put_manifest(repository, tag, manifest_type, &bytes);
        assert_eq!(digest, oci::sha256(&bytes));
        let reference = format!("{}/{repository}:{tag}", self.registry.host());
        let served = skopeo::registry_manifest(&reference);
        assert_eq!(served, manifest);
        Published {
            reference,
            layout: base.layout.clone(),
            tag: tag.to_string(),
            manifest: served,
        }
    }

    /// Pushes a copy of `base` under `tag` with its manifest changed by `edit` (same blobs).
    pub fn publish_variant(
        &self,
        base: &Published,
        tag: &str,
        edit: impl FnOnce(&mut Value),
    ) -> Published {
        let layout = self.work.path().join(format!("image-{tag}"));
        super::process::checked(
            std::process::Command::new("cp")
                .arg("-a")
                .arg(&base.layout)
                .arg(&layout),
            std::time::Duration::from_secs(60),
        );
        oci::edit_manifest(&layout, "latest", edit);
        self.push(&layout, tag)
    }

    fn push(&self, layout: &Path, tag: &str) -> Published {
        let reference = format!("{}/{REPOSITORY}:{tag}", self.registry.host());
        skopeo::push(layout, "latest", &reference);
        Published {
            manifest: skopeo::registry_manifest(&reference),
            reference,
            layout: layout.to_path_buf(),
            tag: tag.to_string(),
        }
    }

    /// The plaintext layers' diff IDs, bottom first.
    pub fn diff_ids(&self) -> Vec<String> {
        self.layers.iter().map(|l| l.diff_id.clone()).collect()
    }

    /// The snapshot names an unpack of the image creates, bottom first.
    pub fn chain_ids(&self) -> Vec<String> {
        image::chain_ids(&self.diff_ids())
    }

    /// The root filesystem the plaintext layers describe.
    pub fn expected_rootfs(&self) -> rootfs::Tree {
        rootfs::expected(&self.layers)
    }

    /// CRI `PullImage` of `image`, which must succeed with the image's config digest as its ID.
    pub fn cri_pull(&self, image: &Published) {
        let id = self
            .containerd
            .cri()
            .pull_image(&image.reference)
            .unwrap_or_else(|e| {
                panic!(
                    "CRI PullImage {} failed: {}\ncontainerd log:\n{}",
                    image.reference,
                    e.message(),
                    self.containerd.log_tail(40)
                )
            });
        assert_eq!(id, image.config_digest());
    }

    /// `ctr images pull` of `image`, which must succeed.
    pub fn ctr_pull(&self, image: &Published) {
        let pull = self.containerd.ctr_pull(&image.reference);
        assert!(
            pull.status.success(),
            "ctr images pull {} failed: {}\ncontainerd log:\n{}",
            image.reference,
            String::from_utf8_lossy(&pull.stderr),
            self.containerd.log_tail(40)
        );
    }

    /// CRI `RemoveImage` of `image` (all its names, also those of a ctr pull), then waits
    /// until containerd keeps nothing, so that the next pull decrypts every layer again.
    pub fn remove(&self, image: &Published) {
        let cri = self.containerd.cri();
        cri.remove_image(&image.reference).unwrap();
        if let Err(left) = self
            .containerd
            .wait_until_clean(&cri, std::time::Duration::from_secs(20))
        {
            panic!(
                "left behind after RemoveImage {}: {left:#?}",
                image.reference
            );
        }
    }

    /// [`Stack::assert_unpacked`] and [`Stack::assert_rootfs`].
    pub fn assert_pulled(&self) {
        self.assert_unpacked();
        self.assert_rootfs();
    }

    /// Asserts that containerd's snapshots are exactly the image's layers, unpacked: containerd
    /// names each committed snapshot by the chain ID of the *plaintext* diff IDs, after checking
    /// the digest of what it extracted against them, so every layer was decrypted.
    pub fn assert_unpacked(&self) {
        let chain = self.chain_ids();
        let mut snapshots = self.containerd.snapshots();
        snapshots.sort();
        let mut expected: Vec<(String, String)> = chain
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let parent = if i == 0 { "" } else { chain[i - 1].as_str() };
                (c.clone(), parent.to_string())
            })
            .collect();
        expected.sort();
        assert_eq!(snapshots, expected, "containerd's snapshots");
    }

    /// The unpacked root filesystem (the top snapshot) matches the original layers file for
    /// file: type, mode bits, owner, contents, symlink target and modification time, with the
    /// whiteout applied.
    pub fn assert_rootfs(&self) {
        let expected = self.expected_rootfs();
        // What the comparison must be able to see: a non-root owner, a symlink, a file of the
        // uncompressed layer, and the whiteout (the file exists in the layer below).
        let node = |p: &str| expected.get(Path::new(p));
        assert_eq!(
            node("data/owned.txt").map(|n| (n.uid, n.gid)),
            Some((1000, 1000))
        );
        assert!(matches!(
            node("bin/sh").map(|n| &n.kind),
            Some(Kind::Symlink { .. })
        ));
        assert!(node("data/plain.txt").is_some());
        assert!(node("data/removed-later.txt").is_none());
        assert!(
            rootfs::expected(&self.layers[..2]).contains_key(Path::new("data/removed-later.txt"))
        );

        let top = self.chain_ids().pop().expect("layers");
        let view = self.containerd.view(&top, &self.work.path().join("rootfs"));
        let actual = rootfs::scan(view.path());
        let differences = rootfs::differences(&expected, &actual);
        assert!(
            differences.is_empty(),
            "the unpacked root filesystem differs from the image ({} entries expected):\n{}",
            expected.len(),
            differences.join("\n")
        );
    }

    /// A container from the unpacked image, run by runc, reads the file of an encrypted layer.
    pub fn assert_runs(&self, reference: &str) {
        let run = self.containerd.run(
            reference,
            &format!("ctd-e2e-{}", std::process::id()),
            &["/bin/cat", MESSAGE_PATH],
        );
        assert!(
            run.status.success(),
            "ctr run {reference} failed: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&run.stdout), MESSAGE);
    }
}
