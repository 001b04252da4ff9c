//! containerd's own client: `ctr images pull`, then `ctr run`, and `ctr run` of an image that is
//! fetched but not unpacked. ctr attaches no payload to the unpack (protocol.md §1.6; 1.6's
//! `ctr images pull` always unpacks, it has no `--unpack` flag), so the decoder gets no fd 3 for
//! any layer and reads each layer's descriptor from containerd's content store
//! (`--content-store`); the keys are only in the keys directory. `payload.rs` shows that ctr really sends nothing: when the decoder cannot see the
//! content store, the same pull fails with the decoder's "no payload" reason.
//!
//! ctr 1.6 fetches and records the whole image before it unpacks it (`content.Fetch`, then
//! `Image.Unpack`), so a failed unpack keeps the image record and its blobs by design; what it
//! must not keep is a snapshot, a lease, a mount or a decoder process. The CRI plugin also names
//! every image of the `k8s.io` namespace by its config digest; `RemoveImage` drops both names.

use std::time::Duration;

use crate::failures::{reasons_until, RETRIES};
use crate::support::oci::{MT_TAR, MT_TAR_GZIP};
use crate::support::stack::{Published, Stack};
use crate::support::{keys, process};

/// ctr's unpack (`rootfs.ApplyLayer`) names the digest it *calculated* when it misses the
/// decoder's exit (containerd#6914): the decoder released nothing, so containerd extracted an
/// empty stream.
pub(crate) fn empty_stream_backstop() -> String {
    format!(
        "wrong diff id calculated on extraction \"{}\"",
        crate::support::oci::sha256(b"")
    )
}

/// After a failed `ctr images pull`, containerd keeps exactly what ctr fetched before it
/// unpacked: the image record (and the CRI plugin's name for it, its config digest) and the
/// manifest, config and layer blobs.
fn assert_only_the_fetched_image_is_kept(stack: &Stack, image: &Published) {
    let listing = process::checked(
        &mut stack.containerd.ctr(&["images", "ls"]),
        Duration::from_secs(30),
    );
    let manifest = listing
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cols| cols.first() == Some(&image.reference.as_str()))
        .and_then(|cols| cols.get(2).map(|d| d.to_string()))
        .unwrap_or_else(|| panic!("ctr kept no image record {}:\n{listing}", image.reference));
    let mut expected = vec![format!("image {}", image.reference)];
    expected.push(format!("content {manifest}"));
    expected.push(format!("content {}", image.config_digest()));
    for layer in image.layers() {
        expected.push(format!("content {}", layer["digest"].as_str().unwrap()));
    }
    let cri = stack.containerd.cri();
    let mut left: Vec<String> = stack
        .containerd
        .leftovers(&cri)
        .into_iter()
        // The CRI plugin names the image by its config digest, asynchronously.
        .filter(|l| {
            *l != format!("image {}", image.config_digest())
                && !l.starts_with(&format!("CRI image {} ", image.config_digest()))
        })
        .collect();
    left.sort();
    expected.sort();
    assert_eq!(left, expected, "kept after the failed ctr pull");
}

#[test]
fn ctr_pull_and_ctr_run_decrypt_every_layer_without_a_payload() {
    let key = keys::rsa2048();
    let stack = Stack::start("e2e-ctr", &[&key]);
    let image = stack.publish("encrypted", &[&key]);
    assert_eq!(
        image.layer_media_types(),
        [
            format!("{MT_TAR_GZIP}+encrypted"),
            format!("{MT_TAR_GZIP}+encrypted"),
            format!("{MT_TAR}+encrypted"),
        ]
    );

    stack.ctr_pull(&image);
    stack.assert_pulled();
    stack.assert_runs(&image.reference);

    // The CRI plugin sees the image ctr pulled into its namespace; RemoveImage releases it all.
    let cri = stack.containerd.cri();
    let status = cri
        .image_status(&image.reference)
        .unwrap()
        .expect("CRI ImageStatus finds the image ctr pulled");
    assert_eq!(status.id, image.config_digest());
    stack.remove(&image);

    // ctr run of an image that is fetched but not unpacked unpacks it itself, again without a
    // payload, and runs it.
    stack.containerd.ctr_fetch(&image.reference);
    assert_eq!(stack.containerd.snapshots(), Vec::new());
    stack.assert_runs(&image.reference);
    stack.assert_pulled();
    stack.remove(&image);
}

#[test]
fn ctr_pull_with_a_wrong_key_fails_with_the_decoder_reason_and_unpacks_nothing() {
    let image_key = keys::rsa2048();
    let node_key = keys::rsa2048_b();
    let stack = Stack::start("e2e-ctr-nokey", &[&node_key]);
    let image = stack.publish("encrypted", &[&image_key]);
    let diff_id = &stack.diff_ids()[0];
    let layer = image.layers()[0]["digest"].as_str().unwrap();
    // ctr prints containerd's error: the decoder's line, after the layer's diff ID.
    let decoder_line = format!(
        "failed to extract layer {diff_id}: ctd-decoder: cannot decrypt layer {layer}: none of the local keys (RSA-2048) opens its layer key; tried jwe[0]: no local key opens it"
    );
    let keys_dir = stack.keys_dir.display().to_string();
    let seen = reasons_until(
        &stack,
        RETRIES,
        &empty_stream_backstop(),
        |e| e.contains(&decoder_line) && e.contains(&keys_dir),
        || {
            let pull = stack.containerd.ctr_pull(&image.reference);
            let error = String::from_utf8_lossy(&pull.stderr).into_owned();
            assert!(!pull.status.success(), "ctr images pull succeeded: {error}");
            if let Err(left) = stack
                .containerd
                .wait_until_unpacked_nothing(Duration::from_secs(20))
            {
                panic!("left behind after the failed unpack ({error}): {left:#?}");
            }
            assert_only_the_fetched_image_is_kept(&stack, &image);
            error
        },
    );
    assert!(
        seen.last().unwrap().contains(&decoder_line),
        "the decoder's reason never reached ctr in {} attempts: {seen:#?}",
        seen.len()
    );

    // With the key installed, the same pull (from the blobs ctr kept) unpacks the image.
    stack.set_node_keys(&[&node_key, &image_key]);
    stack.ctr_pull(&image);
    stack.assert_unpacked();
    stack.remove(&image);
}
