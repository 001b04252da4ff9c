//! Which unpacks containerd 1.6 sends the layer descriptor on fd 3, as the decoder itself sees
//! it. This stack's decoder is given a content store that does not exist, so it can decrypt a
//! layer only if containerd passed the layer's descriptor on fd 3; without one it fails with
//! "containerd passed no payload on fd 3, and the content store ... cannot be read".
//!
//! | pull | processor ID | fd 3 |
//! |---|---|---|
//! | CRI `PullImage` | `...decoder.v1.tar.gzip`, `...decoder.v1.tar` | yes: the pull succeeds |
//! | CRI `PullImage` | `...decoder.v1.tar.zstd` | no |
//! | CRI `PullImage` | `...decoder.v1.docker.tar.gzip` | no |
//! | `ctr images pull` | `...decoder.v1.tar.gzip` | no |
//!
//! So the successful pulls of the same images in `ctr.rs` and `media_types.rs`, whose decoder
//! reads the real store, found every descriptor there.

use std::path::Path;

use crate::ctr::empty_stream_backstop;
use crate::failures::{failures_until, reasons_until, RETRIES};
use crate::media_types::{publish_docker, publish_zstd};
use crate::support::keys;
use crate::support::stack::{Published, Stack};

/// What the decoder says when it got no fd 3 and cannot read `store`.
fn no_payload_line(store: &Path) -> String {
    format!(
        "ctd-decoder: containerd passed no payload on fd 3, and the content store {} cannot be read (it does not exist)",
        store.join("blobs").display()
    )
}

/// CRI pulls `image`, which must fail on its bottom layer with the decoder's no-payload line.
fn cri_pull_gets_no_payload(stack: &Stack, image: &Published, store: &Path) {
    let cri = stack.containerd.cri();
    let line = no_payload_line(store);
    let diff_id = &stack.diff_ids()[0];
    let seen = failures_until(stack, &cri, &image.reference, RETRIES, diff_id, |e| {
        e.contains(&format!("failed to extract layer {diff_id}: {line}"))
    });
    assert!(
        seen.last().unwrap().contains(&line),
        "{}: the decoder's reason never reached the PullImage error in {} attempts: {seen:#?}",
        image.reference,
        seen.len()
    );
    eprintln!(
        "CRI PullImage {}: {}",
        image.reference,
        seen.last().unwrap().trim_end()
    );
}

#[test]
fn the_decoder_gets_fd_3_only_from_cri_and_only_for_the_tar_and_tar_gzip_processors() {
    let key = keys::rsa2048();
    let stack = Stack::start_without_store("e2e-payload", &[&key]);
    let missing = stack.missing_store();
    assert!(!missing.exists());

    // CRI, tar+gzip and tar layers: the descriptor comes on fd 3, the store is never needed.
    let image = stack.publish("encrypted", &[&key]);
    stack.cri_pull(&image);
    stack.assert_unpacked();
    stack.remove(&image);

    // ctr, the same image: no fd 3.
    let diff_id = &stack.diff_ids()[0];
    let line = no_payload_line(&missing);
    let seen = reasons_until(
        &stack,
        RETRIES,
        &empty_stream_backstop(),
        |e| e.contains(&format!("failed to extract layer {diff_id}: {line}")),
        || {
            let pull = stack.containerd.ctr_pull(&image.reference);
            assert!(!pull.status.success(), "ctr images pull succeeded");
            String::from_utf8_lossy(&pull.stderr).into_owned()
        },
    );
    assert!(
        seen.last().unwrap().contains(&line),
        "ctr: the decoder's reason never arrived in {} attempts: {seen:#?}",
        seen.len()
    );
    eprintln!("ctr images pull: {}", seen.last().unwrap().trim_end());
    // ctr keeps the image record and blobs it fetched before the unpack failed.
    stack.remove(&image);

    // CRI, zstd and Docker-media-type layers: no fd 3.
    let zstd = publish_zstd(&stack, "zstd", &key);
    cri_pull_gets_no_payload(&stack, &zstd, &missing);
    let (_, docker) = publish_docker(&stack, "v2s2", &key);
    cri_pull_gets_no_payload(&stack, &docker, &missing);
}
