//! A layer blob that is in no manifest, at the containerd level. Image pulls cannot produce one:
//! containerd stores the manifest before it unpacks a layer. But any containerd client can apply
//! a blob from the content store with the diff service, `Diff.Apply`, which is the call ctr's
//! unpack makes for each layer (`rootfs.ApplyLayer`). Here the encrypted bottom layer of a
//! skopeo-encrypted image is ingested into containerd's content store with `ctr content ingest`
//! and applied to a fresh snapshot, through the configured stream processors:
//!
//! 1. without a payload, and no manifest in the store lists the blob: the apply fails with the
//!    decoder's reason (or, when containerd misses the decoder's exit, containerd#6914, with the
//!    digest of the empty stream it extracted), and nothing is extracted;
//! 2. the same call with the layer descriptor as the fd-3 payload, as the CRI plugin sends it:
//!    the layer is extracted, so the call and the blob are fine and only the descriptor was
//!    missing;
//! 3. once the image has been fetched (`ctr content fetch` stores its manifest and records the
//!    image), the call without a payload extracts the layer: the decoder found the descriptor in
//!    that manifest.
//!
//! ctr ingests blobs and prepares snapshots without a lease, so both are labelled as GC roots, and
//! no snapshot is removed (a deletion schedules a garbage collection) before the last one is
//! prepared.

use std::collections::HashMap;
use std::path::Path;

use prost::Message;

use crate::failures::RETRIES;
use crate::support::diff::{Any, Descriptor, Diff, Mount};
use crate::support::keys;
use crate::support::oci::{self, FoundLayer};
use crate::support::stack::Stack;

/// The processor ID the payload is addressed to (the one that accepts `tar+gzip+encrypted`).
const GZIP_PROCESSOR: &str = "io.containerd.ocicrypt.decoder.v1.tar.gzip";

fn descriptor(layer: &FoundLayer) -> Descriptor {
    Descriptor {
        media_type: layer.media_type.clone(),
        digest: layer.digest.clone(),
        size: layer.size as i64,
        annotations: layer.annotations.clone().into_iter().collect(),
    }
}

/// The directory of a snapshot without a parent: overlayfs and native both hand it out as one
/// bind mount.
fn bind_source(mounts: &[Mount]) -> &Path {
    match mounts {
        [m] if m.r#type == "bind" => Path::new(&m.source),
        _ => panic!("a snapshot without a parent is one bind mount: {mounts:?}"),
    }
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn applying_a_blob_that_is_in_no_manifest_fails_cleanly() {
    let key = keys::rsa2048();
    let stack = Stack::start("e2e-nomanifest", &[&key]);
    let image = stack.publish("encrypted", &[&key]);
    let layers = oci::read_layout(&image.layout, "latest");
    let bottom = &layers[0];
    assert_eq!(bottom.media_type, format!("{}+encrypted", oci::MT_TAR_GZIP));
    let diff_id = &stack.diff_ids()[0];
    let ctd = &stack.containerd;
    let blob_file = image
        .layout
        .join("blobs/sha256")
        .join(bottom.digest.trim_start_matches("sha256:"));
    ctd.ingest(&blob_file, &bottom.digest);
    // The store holds this one blob: no manifest at all.
    let content = ctd.ctr(&["content", "ls", "-q"]).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&content.stdout).trim(),
        bottom.digest
    );
    let diff = Diff::connect(ctd.socket());

    // 1. No payload, no manifest.
    let line = format!(
        "ctd-decoder: containerd passed no payload on fd 3, and no manifest in the content store {} lists a {} layer whose blob begins like this input",
        ctd.content_store().display(),
        bottom.media_type
    );
    let empty = oci::sha256(b"");
    let mut seen = Vec::new();
    let mut snapshots = Vec::new();
    for attempt in 0..RETRIES {
        let key = format!("ctd-e2e-nomanifest-{attempt}");
        let mounts = ctd.prepare_snapshot(&key);
        let result = diff.apply(descriptor(bottom), mounts.clone(), HashMap::new());
        let outcome = match result {
            Err(status) => status.message().to_string(),
            // containerd missed the decoder's exit: it extracted the empty stream the decoder
            // released, and the digest it reports is not the layer's diff ID.
            Ok(applied) => {
                assert_eq!(
                    applied, empty,
                    "an apply without a descriptor extracted a layer"
                );
                format!("applied {applied}")
            }
        };
        assert_eq!(
            entries(bind_source(&mounts)),
            Vec::<String>::new(),
            "extracted into {key}"
        );
        snapshots.push(key);
        let matched = outcome.contains(&line);
        assert!(
            matched || outcome == format!("applied {empty}"),
            "unexpected Apply result: {outcome}"
        );
        seen.push(outcome);
        if matched {
            break;
        }
    }
    eprintln!(
        "Apply without payload or manifest: {}",
        seen.last().unwrap()
    );
    assert!(
        seen.last().unwrap().contains(&line),
        "the decoder's reason never reached the Apply error in {} attempts: {seen:#?}",
        seen.len()
    );
    let decoders: Vec<_> = crate::support::process::children(ctd.pid())
        .into_iter()
        .filter(|(_, comm)| comm.starts_with("ctd-decoder"))
        .collect();
    assert!(decoders.is_empty(), "decoders still running: {decoders:?}");

    // 2. The same call with the descriptor on fd 3.
    let payload = Any::decode(&bottom.cri_payload()[..]).expect("payload is a protobuf Any");
    assert_eq!(payload.type_url, "io.containerd.ocicrypt.v1.Payload");
    let mounts = ctd.prepare_snapshot("ctd-e2e-with-payload");
    let applied = diff
        .apply(
            descriptor(bottom),
            mounts.clone(),
            HashMap::from([(GZIP_PROCESSOR.to_string(), payload)]),
        )
        .unwrap_or_else(|e| panic!("Apply with the payload: {}", e.message()));
    assert_eq!(&applied, diff_id);
    let dir = bind_source(&mounts);
    assert!(dir.join("bin/busybox").is_file(), "{:?}", entries(dir));
    snapshots.push("ctd-e2e-with-payload".to_string());

    // 3. No payload, and the image fetched: its manifest is in the store. (The snapshot is
    // prepared first: the fetch ends by deleting its lease, which schedules a collection.)
    let mounts = ctd.prepare_snapshot("ctd-e2e-with-manifest");
    ctd.ctr_fetch(&image.reference);
    let applied = diff
        .apply(descriptor(bottom), mounts.clone(), HashMap::new())
        .unwrap_or_else(|e| panic!("Apply with the manifest in the store: {}", e.message()));
    assert_eq!(&applied, diff_id);
    let dir = bind_source(&mounts);
    assert!(dir.join("bin/busybox").is_file(), "{:?}", entries(dir));
    snapshots.push("ctd-e2e-with-manifest".to_string());
    for key in &snapshots {
        ctd.remove_snapshot(key);
    }
    ctd.remove_content(&bottom.digest);
    stack.remove(&image);
}
