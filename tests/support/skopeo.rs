//! Encrypting images with Debian's skopeo (Go ocicrypt inside): the third-party encrypter.

use std::path::Path;
use std::process::Command;

/// `skopeo copy [extra] --encryption-key <r>... oci:<src>:<tag> oci:<dst>:<tag>`.
pub fn encrypt(src: &Path, dst: &Path, tag: &str, recipients: &[String], extra: &[&str]) {
    encrypt_with_env(src, dst, tag, recipients, extra, &[]);
}

/// [`encrypt`] with extra environment variables (`GNUPGHOME` for `pgp:` recipients, whose
/// public keys skopeo exports with the gpg binary).
pub fn encrypt_with_env(
    src: &Path,
    dst: &Path,
    tag: &str,
    recipients: &[String],
    extra: &[&str],
    env: &[(&str, &Path)],
) {
    super::require_tool("skopeo", "skopeo");
    let mut cmd = Command::new("skopeo");
    cmd.envs(env.iter().copied());
    cmd.arg("copy").arg("--quiet");
    cmd.args(extra);
    for r in recipients {
        cmd.arg("--encryption-key").arg(r);
    }
    cmd.arg(format!("oci:{}:{tag}", src.display()))
        .arg(format!("oci:{}:{tag}", dst.display()));
    let out = cmd.output().expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo copy failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
}

/// `skopeo copy oci:<layout>:<tag> docker://<dest>` over plain HTTP, blobs as they are: the
/// layout is already encrypted, and without `--encryption-key` skopeo neither re-encrypts nor
/// recompresses encrypted layers, so an uncompressed `tar+encrypted` layer stays one.
pub fn push(layout: &Path, tag: &str, dest: &str) {
    super::require_tool("skopeo", "skopeo");
    let out = Command::new("skopeo")
        .args(["copy", "--quiet", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:{tag}", layout.display()))
        .arg(format!("docker://{dest}"))
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo push to {dest} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The manifest the registry serves for `reference` (`skopeo inspect --raw`).
pub fn registry_manifest(reference: &str) -> serde_json::Value {
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{reference}"))
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo inspect {reference} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("manifest JSON")
}
