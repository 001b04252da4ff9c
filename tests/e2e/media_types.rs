//! Encrypted layer types beyond imgcrypt's two processor IDs: zstd and Docker's media type. The
//! CRI plugin attaches the fd-3 payload only to `...decoder.v1.tar` and `...decoder.v1.tar.gzip`
//! (protocol.md §1.1), so these layers reach the decoder without a descriptor, through CRI as
//! through ctr, and the decoder reads it from containerd's content store (`payload.rs` shows the
//! missing fd 3). Each image is pulled through CRI and through `ctr images pull`, its snapshots
//! and root filesystem are checked, and it runs.

use crate::support::decoder::Decoder;
use crate::support::keys::{self, TestKey};
use crate::support::oci::{self, MT_MANIFEST};
use crate::support::stack::{Encryption, Published, Stack};

pub(crate) const MT_TAR_ZSTD_ENCRYPTED: &str =
    "application/vnd.oci.image.layer.v1.tar+zstd+encrypted";
const MT_TAR_GZIP_ENCRYPTED: &str = "application/vnd.oci.image.layer.v1.tar+gzip+encrypted";
pub(crate) const MT_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub(crate) const MT_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub(crate) const MT_DOCKER_LAYER_ENCRYPTED: &str =
    "application/vnd.docker.image.rootfs.diff.tar.gzip+encrypted";
const MT_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// The repository of the relabelled (Docker media type) images.
pub(crate) const DOCKER_REPOSITORY: &str = "ctd-e2e/docker";

/// The zstd magic number (RFC 8878 §3.1.1).
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// The sample image encrypted by skopeo for `key` with `--dest-compress-format zstd`: skopeo
/// recompresses the gzip layers and compresses the uncompressed one, so every layer is
/// `tar+zstd+encrypted` (skopeo 1.9.3 writes that media type for an `oci:` destination).
pub(crate) fn publish_zstd(stack: &Stack, tag: &str, key: &TestKey) -> Published {
    let image = stack.publish_encrypted(
        tag,
        &stack.layers,
        &Encryption {
            recipients: vec![key.jwe_recipient(&stack.recipients_dir())],
            flags: &["--dest-compress-format", "zstd"],
            env: &[],
        },
    );
    assert_eq!(
        image.layer_media_types(),
        vec![MT_TAR_ZSTD_ENCRYPTED; stack.layers.len()]
    );
    image
}

/// The sample image as a Docker schema 2 image with `tar.gzip+encrypted` layers, pushed as
/// `ctd-e2e/docker:<tag>`.
///
/// Other ocicrypt producers (imgcrypt's `ctr-enc images encrypt` on a Docker-format image, for
/// one) keep Docker media types and append `+encrypted`. skopeo 1.9.3 cannot write such an image:
/// it converts Docker images to OCI when it encrypts, and `--format v2s2` with encryption fails
/// ("no candidate MIME types"); it cannot read one either ("unsupported docker v2s2 media
/// type"). So the image is built from a skopeo-encrypted one: the same ciphertext blobs and
/// annotations, the layers labelled `application/vnd.docker.image.rootfs.diff.tar.gzip+encrypted`
/// in a `application/vnd.docker.distribution.manifest.v2+json` manifest whose config is labelled
/// `application/vnd.docker.container.image.v1+json`, and pushed with the registry API.
pub(crate) fn publish_docker(stack: &Stack, tag: &str, key: &TestKey) -> (Published, Published) {
    // Without --dest-oci-accept-uncompressed-layers skopeo gzips the uncompressed layer too:
    // Docker's encrypted type is gzip only.
    let base = stack.publish_encrypted(
        &format!("{tag}-oci"),
        &stack.layers,
        &Encryption {
            recipients: vec![key.jwe_recipient(&stack.recipients_dir())],
            flags: &[],
            env: &[],
        },
    );
    assert_eq!(
        base.layer_media_types(),
        vec![MT_TAR_GZIP_ENCRYPTED; stack.layers.len()]
    );
    let docker = stack.publish_relabelled(
        &base,
        DOCKER_REPOSITORY,
        tag,
        MT_DOCKER_MANIFEST,
        MT_DOCKER_CONFIG,
        MT_DOCKER_LAYER_ENCRYPTED,
    );
    (base, docker)
}

#[test]
fn zstd_layers_decrypt_through_cri_and_ctr() {
    let key = keys::rsa2048();
    let stack = Stack::start("e2e-zstd", &[&key]);
    let image = publish_zstd(&stack, "zstd", &key);

    // The decoder returns each blob still compressed, and it is zstd: containerd's own
    // decompressor (`returns = ...tar+zstd`) turns it into the tar whose digest the unpack checks.
    for layer in oci::read_layout(&image.layout, "latest") {
        let out = Decoder::new()
            .keys(&stack.keys_dir)
            .media_type(&layer.media_type)
            .payload(layer.cri_payload())
            .stdin(layer.blob.clone())
            .run()
            .ok();
        assert_eq!(out[..4], ZSTD_MAGIC, "layer {} is not zstd", layer.digest);
    }

    stack.cri_pull(&image);
    stack.assert_pulled();
    stack.assert_runs(&image.reference);
    stack.remove(&image);
    stack.ctr_pull(&image);
    stack.assert_pulled();
    stack.assert_runs(&image.reference);
}

#[test]
fn docker_media_type_layers_decrypt_through_cri_and_ctr() {
    let key = keys::rsa2048();
    let stack = Stack::start("e2e-docker", &[&key]);
    let (base, docker) = publish_docker(&stack, "v2s2", &key);
    assert_eq!(docker.manifest["mediaType"], MT_DOCKER_MANIFEST);
    assert_eq!(docker.manifest["config"]["mediaType"], MT_DOCKER_CONFIG);
    assert_eq!(
        docker.layer_media_types(),
        vec![MT_DOCKER_LAYER_ENCRYPTED; stack.layers.len()]
    );
    // The same ciphertext and annotations as the OCI image skopeo wrote.
    for (d, o) in docker.layers().iter().zip(base.layers()) {
        for field in ["digest", "size", "annotations"] {
            assert_eq!(d[field], o[field]);
        }
    }
    stack.cri_pull(&docker);
    stack.assert_pulled();
    stack.assert_runs(&docker.reference);
    stack.remove(&docker);
    stack.ctr_pull(&docker);
    stack.assert_pulled();
    stack.assert_runs(&docker.reference);
    stack.remove(&docker);

    // Docker's layer type in an OCI manifest (what a converter that keeps layer types writes).
    let mixed = stack.publish_relabelled(
        &base,
        DOCKER_REPOSITORY,
        "oci-manifest",
        MT_MANIFEST,
        MT_OCI_CONFIG,
        MT_DOCKER_LAYER_ENCRYPTED,
    );
    assert_eq!(mixed.manifest["mediaType"], MT_MANIFEST);
    assert_eq!(
        mixed.layer_media_types(),
        vec![MT_DOCKER_LAYER_ENCRYPTED; stack.layers.len()]
    );
    stack.cri_pull(&mixed);
    stack.assert_pulled();
    stack.remove(&mixed);
    stack.ctr_pull(&mixed);
    stack.assert_pulled();
}
