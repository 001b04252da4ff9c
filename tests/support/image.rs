//! The runnable image of the end-to-end suite, built from local files: a busybox root
//! filesystem (tar+gzip) under the two sample layers (tar+gzip, and an uncompressed tar with a
//! whiteout).

use serde_json::{json, Value};

use super::oci::{self, Entry, Layer};

/// The file the container reads from the encrypted tar+gzip layer, and what it holds.
pub const MESSAGE_PATH: &str = "/etc/ctd-demo/message.txt";
pub const MESSAGE: &str = "decrypted by ctd-decoder\n";

/// The busybox applets linked into `/bin` (busybox-static needs nothing else).
const APPLETS: &[&str] = &[
    "cat",
    "echo",
    "env",
    "id",
    "ls",
    "sh",
    "sha256sum",
    "stat",
    "test",
    "true",
];

/// A root filesystem layer (tar+gzip) with `/bin/busybox` from the busybox-static package.
pub fn busybox_layer() -> Layer {
    let busybox = super::require_tool("busybox", "busybox-static");
    let binary = std::fs::read(&busybox).expect("read busybox");
    let links: Vec<String> = APPLETS.iter().map(|a| format!("bin/{a}")).collect();
    let mut entries = vec![
        Entry::Dir("bin/", 0o755),
        Entry::File("bin/busybox", 0o755, binary),
    ];
    entries.extend(links.iter().map(|l| Entry::Symlink(l.as_str(), "busybox")));
    entries.extend([
        Entry::Dir("dev/", 0o755),
        Entry::Dir("etc/", 0o755),
        Entry::Dir("proc/", 0o555),
        Entry::Dir("sys/", 0o555),
        Entry::Dir("tmp/", 0o1777),
    ]);
    Layer::tar_gzip(oci::tar(&entries))
}

/// Bottom first: busybox, then `oci::sample_layers()`.
pub fn layers() -> Vec<Layer> {
    let mut layers = vec![busybox_layer()];
    layers.extend(oci::sample_layers());
    assert_eq!(
        layers
            .iter()
            .map(|l| l.media_type.as_str())
            .collect::<Vec<_>>(),
        [oci::MT_TAR_GZIP, oci::MT_TAR_GZIP, oci::MT_TAR],
        "a tar+gzip and an uncompressed tar layer must go through the decoder"
    );
    layers
}

/// The image config for this machine's architecture (containerd pulls for its own platform).
pub fn config() -> Value {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        other => other,
    };
    json!({
        "architecture": arch,
        "os": "linux",
        "config": {
            "Env": ["PATH=/bin"],
            "Cmd": ["/bin/sh"],
        },
    })
}

/// The chain IDs of a stack of diff IDs: the snapshot names containerd gives the unpacked
/// layers (`chain[0] = diff[0]`, `chain[i] = sha256(chain[i-1] + " " + diff[i])`).
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => oci::sha256(format!("{prev} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}
