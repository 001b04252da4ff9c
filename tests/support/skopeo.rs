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
