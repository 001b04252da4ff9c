//! The main job on a real containerd: Debian's containerd 1.6 pulls skopeo-encrypted images
//! through the CRI `PullImage` call (the kubelet's path, `key_model = "node"`, the one that
//! passes the layer descriptor on fd 3), with its stream processors running the decoder under
//! test. Each scenario starts its own registry on 127.0.0.1 and its own containerd under a
//! temporary directory, and stops both by PID when it ends, failed or not.
//!
//! Needs root (containerd, mounts, runc) and the Debian packages `scripts/install-deps` installs.

#[path = "../support/mod.rs"]
mod support;

mod ctr;
mod failures;
mod media_types;
mod packaging;
mod payload;
mod pull;
mod recipients;
mod store;
