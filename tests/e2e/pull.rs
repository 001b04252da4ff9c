//! The happy path: pull, prove the root filesystem, run a container, remove the image.

use std::net::SocketAddr;
use std::time::Duration;

use crate::support::keys;
use crate::support::oci::{MT_TAR, MT_TAR_GZIP};
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

    // Every layer was decrypted and unpacked, the root filesystem is the image's, and a
    // container from it, run by runc, reads a file of an encrypted layer.
    stack.assert_unpacked();
    stack.assert_rootfs();
    stack.assert_runs(&image.reference);

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
