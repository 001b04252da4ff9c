//! The happy path: pull, prove the root filesystem, run a container, remove the image.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::support::image::{MESSAGE, MESSAGE_PATH};
use crate::support::keys;
use crate::support::oci::{MT_TAR, MT_TAR_GZIP};
use crate::support::rootfs::{self, Kind};
use crate::support::stack::Stack;

fn assert_loopback_only(what: &str, listeners: &[SocketAddr]) {
    for l in listeners {
        assert!(
            l.ip().is_loopback(),
            "{what} listens on {l}, which is not loopback"
        );
    }
}

#[test]
fn proc_net_addresses_parse() {
    use crate::support::process::parse_proc_addr;
    assert_eq!(
        parse_proc_addr("0100007F:1F90").to_string(),
        "127.0.0.1:8080"
    );
    assert_eq!(
        parse_proc_addr("00000000000000000000000001000000:0050").to_string(),
        "[::1]:80"
    );
    assert!(!parse_proc_addr("00000000:0050").ip().is_loopback());
}

#[test]
fn cri_pull_decrypts_unpacks_and_runs_the_image() {
    let key = keys::rsa2048();
    let stack = Stack::start("e2e-pull", &[&key]);
    let image = stack.publish("encrypted", &[&key]);
    // Both encrypted layer types reach containerd: two tar+gzip layers and an uncompressed tar.
    assert_eq!(
        image.layer_media_types(),
        [
            format!("{MT_TAR_GZIP}+encrypted"),
            format!("{MT_TAR_GZIP}+encrypted"),
            format!("{MT_TAR}+encrypted"),
        ]
    );

    let cri = stack.containerd.cri();
    assert!(cri.image_status(&image.reference).unwrap().is_none());
    let image_id = cri.pull_image(&image.reference).unwrap_or_else(|e| {
        panic!(
            "PullImage failed: {}\ncontainerd log:\n{}",
            e.message(),
            stack.containerd.log_tail(40)
        )
    });
    assert_eq!(image_id, image.config_digest());
    let status = cri
        .image_status(&image.reference)
        .unwrap()
        .expect("ImageStatus finds the pulled image");
    assert_eq!(status.id, image_id);
    assert!(status.repo_tags.contains(&image.reference), "{status:?}");

    // Every layer was decrypted and unpacked: containerd names each snapshot by the chain ID of
    // the *plaintext* diff IDs, after checking the digest of what it extracted against them.
    let chain = stack.chain_ids();
    let mut snapshots = stack.containerd.snapshots();
    snapshots.sort();
    let mut expected: Vec<(String, String)> = chain
        .iter()
        .enumerate()
        .map(|(i, c)| {
            (
                c.clone(),
                if i == 0 {
                    String::new()
                } else {
                    chain[i - 1].clone()
                },
            )
        })
        .collect();
    expected.sort();
    assert_eq!(snapshots, expected);

    check_rootfs(&stack, chain.last().unwrap());

    // A container from the decrypted image, run by runc, reads a file of an encrypted layer.
    let run = stack.containerd.run(
        &image.reference,
        &format!("ctd-e2e-{}", std::process::id()),
        &["/bin/cat", MESSAGE_PATH],
    );
    assert!(
        run.status.success(),
        "ctr run failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&run.stdout), MESSAGE);

    assert_loopback_only("containerd", &stack.containerd.tcp_listeners());
    let registry = crate::support::process::listening_tcp(stack.registry.pid());
    assert!(!registry.is_empty(), "the registry listens on TCP");
    assert_loopback_only("docker-registry", &registry);

    // RemoveImage releases everything the pull created.
    cri.remove_image(&image.reference).unwrap();
    assert!(cri.image_status(&image.reference).unwrap().is_none());
    if let Err(left) = stack
        .containerd
        .wait_until_clean(&cri, Duration::from_secs(20))
    {
        panic!("left behind after RemoveImage: {left:#?}");
    }
}

/// The unpacked root filesystem matches the original layers file for file: type, mode bits,
/// owner, contents, symlink target and modification time, with the whiteout applied.
fn check_rootfs(stack: &Stack, top: &str) {
    let expected = stack.expected_rootfs();
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
    assert!(rootfs::expected(&stack.layers[..2]).contains_key(Path::new("data/removed-later.txt")));

    let view = stack
        .containerd
        .view(top, &stack.work.path().join("rootfs"));
    let actual = rootfs::scan(view.path());
    let differences = rootfs::differences(&expected, &actual);
    assert!(
        differences.is_empty(),
        "the unpacked root filesystem differs from the image ({} entries expected):\n{}",
        expected.len(),
        differences.join("\n")
    );
}
