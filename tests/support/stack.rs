//! Everything one end-to-end scenario runs on, started in order and stopped in reverse: a work
//! directory, a registry on 127.0.0.1, the sample image, a node keys directory, and a private
//! containerd whose stream processors run the decoder under test.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::containerd::{self, Containerd};
use super::keys::TestKey;
use super::oci::{self, Layer};
use super::registry::Registry;
use super::{decoder, image, rootfs, skopeo};

/// The repository the scenarios push to.
pub const REPOSITORY: &str = "ctd-e2e/app";

const ENC_KEYS: &str = "org.opencontainers.image.enc.keys.jwe";
const ENC_PUBOPTS: &str = "org.opencontainers.image.enc.pubopts";

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
    /// `127.0.0.1:<port>/ctd-e2e/app:<tag>`.
    pub reference: String,
    /// The encrypted OCI layout it was pushed from.
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
        super::require_root();
        let work = WorkDir::new(name);
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

    /// Encrypts the sample image for `recipients` (JWE) with skopeo and pushes it as `tag`.
    pub fn publish(&self, tag: &str, recipients: &[&TestKey]) -> Published {
        self.publish_layers(tag, &self.layers, recipients)
    }

    /// Builds an image of `layers`, encrypts it for `recipients` (JWE) with skopeo and pushes it
    /// as `tag`.
    ///
    /// skopeo's docker:// destination always compresses layers before encrypting them, so the
    /// image is encrypted into an OCI layout that accepts uncompressed layers, then pushed from
    /// there without re-encryption. The registry's manifest is checked: every layer is the
    /// encrypted blob from the layout, with the plaintext media type plus `+encrypted`.
    pub fn publish_layers(
        &self,
        tag: &str,
        layers: &[Layer],
        recipients: &[&TestKey],
    ) -> Published {
        let dir = self.work.path().join(format!("image-{tag}"));
        let source = dir.join("plain");
        oci::write_layout(&source, "latest", layers, image::config());
        let pubs = dir.join("recipients");
        std::fs::create_dir_all(&pubs).unwrap();
        let recipients: Vec<String> = recipients.iter().map(|k| k.jwe_recipient(&pubs)).collect();
        let layout = dir.join("encrypted");
        skopeo::encrypt(
            &source,
            &layout,
            "latest",
            &recipients,
            &["--dest-oci-accept-uncompressed-layers"],
        );
        let published = self.push(&layout, tag);
        let in_layout = oci::read_layout(&layout, "latest");
        assert_eq!(published.layers().len(), layers.len());
        for ((served, plain), local) in published.layers().iter().zip(layers).zip(&in_layout) {
            assert_eq!(
                served["mediaType"],
                format!("{}+encrypted", plain.media_type),
                "registry manifest: {}",
                published.manifest
            );
            assert_eq!(served["digest"], local.digest.as_str());
            assert!(served["annotations"][ENC_KEYS].is_string());
            assert!(served["annotations"][ENC_PUBOPTS].is_string());
        }
        published
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
}
