//! README's main job, narrated: an image encrypted with skopeo, pushed to a registry, pulled
//! through containerd's CRI `PullImage` (the kubelet's call) with this decoder as containerd's
//! stream processor, checked file for file, and run with runc.
//!
//! `scripts/demo` installs the dependencies, builds the decoder and runs this as root with
//! `CTD_DECODER_BIN` pointing at the binary. Everything runs under one temporary directory, on
//! loopback, and is stopped and removed at the end (also when a step fails).

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::image::{MESSAGE, MESSAGE_PATH};
use support::rootfs;
use support::stack::Stack;

fn step(n: u32, title: &str) {
    println!("\n== {n}. {title}");
}

fn containerd_version() -> String {
    Command::new("containerd")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn main() {
    support::require_root();
    if std::env::var_os("CTD_DECODER_BIN").is_none() {
        eprintln!("set CTD_DECODER_BIN to the ctd-decoder binary (scripts/demo does)");
        std::process::exit(2);
    }
    let decoder = support::decoder::binary();
    let image_key = support::keys::rsa2048();
    let other_key = support::keys::rsa2048_b();

    step(1, "A private registry and a private containerd");
    let mut stack = Stack::start("demo", &[&other_key]);
    let ctd = &stack.containerd;
    println!(
        "docker-registry   pid {}, http://{} (loopback only)",
        stack.registry.pid(),
        stack.registry.host()
    );
    println!(
        "containerd        pid {}, {}",
        ctd.pid(),
        containerd_version()
    );
    println!("  socket          {}", ctd.socket().display());
    println!("  config          {}", ctd.config_path().display());
    println!(
        "  generated from  packaging/containerd/config-v2.toml, with its {} [stream_processors]\n                  running {} --decryption-keys-path {}\n                  --content-store {}",
        ctd_decoder::media_type::ENCRYPTED_MEDIA_TYPES.len(),
        decoder.display(),
        stack.keys_dir.display(),
        ctd.content_store().display()
    );
    println!(
        "  CRI             image_decryption key_model = \"node\", snapshotter {}",
        ctd.snapshotter()
    );

    step(2, "A runnable image built from local files");
    let what = [
        "busybox root filesystem (/bin/busybox from busybox-static, applets linked in /bin)",
        "/etc/ctd-demo/message.txt, /data: a 384 KiB file, a file owned by 1000:1000, a symlink",
        "/data/plain.txt, and a whiteout that deletes /data/removed-later.txt",
    ];
    for (i, (layer, what)) in stack.layers.iter().zip(what).enumerate() {
        println!(
            "layer {}  {:<45} {:>8} bytes  {what}",
            i + 1,
            layer.media_type,
            layer.blob.len()
        );
    }

    step(
        3,
        "Encrypted with skopeo (Go ocicrypt) for an RSA key, pushed",
    );
    println!(
        "skopeo copy --encryption-key jwe:<public key of a new RSA-2048 key pair> \
         --dest-oci-accept-uncompressed-layers, then skopeo copy to the registry"
    );
    let image = stack.publish("encrypted", &[&image_key]);
    println!("pushed {}; the registry's manifest lists:", image.reference);
    for layer in image.layers() {
        println!(
            "  {:<55} {} {:>8} bytes, keys.jwe + pubopts annotations",
            layer["mediaType"].as_str().unwrap(),
            &layer["digest"].as_str().unwrap()[..19],
            layer["size"]
        );
    }

    let cri = stack.containerd.cri();
    step(4, "A node without the key: CRI PullImage fails");
    println!(
        "{} holds only an unrelated RSA key",
        stack.keys_dir.display()
    );
    match cri.pull_image(&image.reference) {
        Ok(id) => panic!("the pull without the key succeeded ({id})"),
        Err(e) => println!(
            "PullImage error (containerd passes on the decoder's stderr):\n  {}",
            e.message().trim_end()
        ),
    }
    match stack
        .containerd
        .wait_until_clean(&cri, Duration::from_secs(20))
    {
        Ok(()) => println!("containerd kept nothing: no image, content, snapshot, lease or mount"),
        Err(left) => panic!("left behind: {left:#?}"),
    }

    step(5, "The node gets the key: CRI PullImage succeeds");
    stack.set_node_keys(&[&other_key, &image_key]);
    println!(
        "installed the private key as {} (mode 0600)",
        stack.keys_dir.join("rsa2048.pem").display()
    );
    let start = Instant::now();
    let id = cri
        .pull_image(&image.reference)
        .unwrap_or_else(|e| panic!("PullImage failed: {}", e.message()));
    println!(
        "PullImage {} -> image {id} in {:.2} s",
        image.reference,
        start.elapsed().as_secs_f64()
    );
    let chain = stack.chain_ids();
    let snapshots = stack.containerd.snapshots();
    for c in &chain {
        assert!(
            snapshots.iter().any(|(k, _)| k == c),
            "snapshot {c} missing"
        );
    }
    println!(
        "the decoder decrypted all {} layers: containerd checked each extracted layer against the \
         image's diff IDs and committed snapshots {}",
        chain.len(),
        chain
            .iter()
            .map(|c| &c[..19])
            .collect::<Vec<_>>()
            .join(", ")
    );

    step(6, "The unpacked root filesystem is the original image's");
    let expected = stack.expected_rootfs();
    {
        let view = stack
            .containerd
            .view(chain.last().unwrap(), &stack.work.path().join("rootfs"));
        let differences = rootfs::differences(&expected, &rootfs::scan(view.path()));
        assert!(differences.is_empty(), "{}", differences.join("\n"));
        println!(
            "{} paths compared with the plaintext layers (type, mode, owner, contents, symlink \
             target, mtime): identical",
            expected.len()
        );
        assert!(!view.path().join("data/removed-later.txt").exists());
        println!("/data/removed-later.txt is gone: the whiteout in the uncompressed layer applied");
    }

    step(7, "runc runs a container from the decrypted image");
    let id = format!("ctd-demo-{}", std::process::id());
    println!(
        "ctr --address {} --namespace k8s.io run --rm --snapshotter {} {} {id} /bin/cat {MESSAGE_PATH}",
        stack.containerd.socket().display(),
        stack.containerd.snapshotter(),
        image.reference
    );
    let run = stack
        .containerd
        .run(&image.reference, &id, &["/bin/cat", MESSAGE_PATH]);
    assert!(
        run.status.success(),
        "ctr run failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&run.stdout), MESSAGE);
    print!("container output: {}", String::from_utf8_lossy(&run.stdout));

    step(8, "Cleanup");
    cri.remove_image(&image.reference)
        .expect("RemoveImage succeeds");
    let work = stack.work.path().to_path_buf();
    let (containerd_pid, registry_pid) = (stack.containerd.pid(), stack.registry.pid());
    stack.containerd.stop();
    stack.registry.stop();
    println!("RemoveImage; stopped containerd (pid {containerd_pid}) and docker-registry (pid {registry_pid})");
    drop(stack);
    assert!(!Path::new(&work).exists());
    println!("removed {}", work.display());
}
