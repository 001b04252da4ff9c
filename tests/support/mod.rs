//! Test support shared by the integration tests, the containerd end-to-end suite and the demo:
//! sample OCI images, keys, skopeo, and running the decoder exactly as containerd does.
#![allow(dead_code, unreachable_pub)]

pub mod containerd;
pub mod cri;
pub mod decoder;
pub mod diff;
pub mod gnupg;
pub mod grpc;
pub mod image;
pub mod keys;
pub mod oci;
pub mod process;
pub mod registry;
pub mod rootfs;
pub mod skopeo;
pub mod stack;

use std::path::PathBuf;

/// A fresh directory under the target dir's test scratch space, removed first if it exists.
pub fn scratch(name: &str) -> PathBuf {
    let base = std::env::var_os("CTD_TEST_TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("ctd-decoder-tests"));
    let dir = base.join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// Fails with a clear message when a required external tool is missing.
pub fn require_tool(tool: &str, package: &str) -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = PathBuf::from(dir).join(tool);
        if p.is_file() {
            return p;
        }
    }
    panic!("`{tool}` is not installed; this test needs it (apt-get install {package}, or run scripts/test which installs everything)");
}

/// Fails with a clear message unless running as root (containerd, mounts and runc need it).
pub fn require_root() {
    if !nix::unistd::geteuid().is_root() {
        panic!("the end-to-end suite runs a private containerd, mounts snapshots and starts containers with runc, which needs root: run `sudo scripts/test` (or `sudo cargo test --test e2e`)");
    }
}
