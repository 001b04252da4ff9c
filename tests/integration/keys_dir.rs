//! The keys directory as nodes really have it: a Kubernetes Secret volume, a directory that is
//! missing while the payload brings the key, files that are not keys next to the one that is.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use crate::interop::{encrypt_for, source};
use crate::support::decoder::Decoder;
use crate::support::keys::{self, TestKey};
use crate::support::oci::FoundLayer;
use crate::support::scratch;

fn layer() -> &'static FoundLayer {
    static L: OnceLock<FoundLayer> = OnceLock::new();
    L.get_or_init(|| encrypt_for("keys-dir", &[keys::p256()]).remove(0))
}

fn decrypt(keys_dir: &Path) -> crate::support::decoder::Outcome {
    Decoder::new()
        .keys(keys_dir)
        .media_type(&layer().media_type)
        .payload(layer().cri_payload())
        .stdin(layer().blob.clone())
        .run()
}

/// Lays out `files` exactly as the kubelet lays out a Secret volume: the files in a timestamped
/// directory, `..data` a symlink to it, and each visible name a symlink through `..data`.
fn secret_volume(root: &Path, files: &[(&str, Vec<u8>, u32)]) {
    let stamp = "..2026_11_23_14_00_00.0123456789";
    let data = root.join(stamp);
    fs::create_dir_all(&data).unwrap();
    for (name, bytes, mode) in files {
        fs::write(data.join(name), bytes).unwrap();
        fs::set_permissions(data.join(name), fs::Permissions::from_mode(*mode)).unwrap();
    }
    symlink(stamp, root.join("..data")).unwrap();
    for (name, _, _) in files {
        symlink(format!("..data/{name}"), root.join(name)).unwrap();
    }
}

#[test]
fn a_kubernetes_secret_volume_works_as_mounted() {
    let base = scratch("keys-k8s");
    let mount = base.join("secret");
    secret_volume(
        &mount,
        &[
            ("node.pem", keys::p256().pkcs8_pem(), 0o400),
            ("other.pem", keys::rsa2048().pkcs8_pem(), 0o400),
        ],
    );
    // /etc/containerd/ocicrypt/keys is itself often a symlink to the volume.
    let keys_path = base.join("keys");
    symlink(&mount, &keys_path).unwrap();
    let o = decrypt(&keys_path);
    assert!(o.status.success(), "{}", o.stderr);
    assert!(o.stdout == source().layers[0].blob);
    assert!(
        o.stderr.is_empty(),
        "no warnings for mode 0400: {}",
        o.stderr
    );

    // Each key is loaded once, under its visible name: with only a wrong key in the volume the
    // failure lists one RSA-2048 key, not one per path that reaches it.
    let wrong = base.join("wrong");
    secret_volume(&wrong, &[("k.pem", keys::rsa2048().pkcs8_pem(), 0o400)]);
    let line = decrypt(&wrong).failed().to_string();
    assert!(
        line.contains("none of the local keys (RSA-2048) opens"),
        "{line}"
    );
}

#[test]
fn a_group_readable_key_works_and_warns() {
    // The kubelet's default Secret mode is 0644.
    let base = scratch("keys-k8s-0644");
    secret_volume(&base, &[("node.pem", keys::p256().pkcs8_pem(), 0o644)]);
    let o = decrypt(&base);
    assert!(o.status.success(), "{}", o.stderr);
    assert!(o.stdout == source().layers[0].blob);
    assert!(
        o.stderr.contains("warning: key file") && o.stderr.contains("node.pem"),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains("mode 0644") && o.stderr.contains("defaultMode"),
        "{}",
        o.stderr
    );
}

#[test]
fn a_missing_directory_is_fine_when_the_payload_brings_the_key() {
    let missing = scratch("keys-missing").join("does-not-exist");
    let out = Decoder::new()
        .keys(&missing)
        .media_type(&layer().media_type)
        .payload(layer().payload_with_keys(&[keys::p256().traditional_pem()], &[None]))
        .stdin(layer().blob.clone())
        .run()
        .ok();
    assert!(out == source().layers[0].blob);
}

/// A directory with everything a node may accumulate beside its key.
fn cluttered(name: &str, with_key: bool) -> PathBuf {
    let dir = scratch(name);
    fs::write(
        dir.join("README"),
        b"Keys for encrypted images. Do not delete.\n",
    )
    .unwrap();
    fs::write(dir.join("node.pub.pem"), keys::p256().public_pem()).unwrap();
    fs::write(dir.join("empty"), b"").unwrap();
    fs::write(dir.join("huge.bin"), vec![b'A'; 3 << 20]).unwrap();
    nix::unistd::mkfifo(&dir.join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    symlink("/dev/zero", dir.join("device")).unwrap();
    symlink("nowhere.pem", dir.join("dangling.pem")).unwrap();
    let ed = openssl::pkey::PKey::generate_ed25519().unwrap();
    TestKey::write_private(&dir, "ed25519.pem", &ed.private_key_to_pem_pkcs8().unwrap());
    let locked = keys::rsa2048()
        .key
        .private_key_to_pem_pkcs8_passphrase(openssl::symm::Cipher::aes_256_cbc(), b"pw")
        .unwrap();
    TestKey::write_private(&dir, "locked.pem", &locked);
    if with_key {
        TestKey::write_private(&dir, "zz-node.pem", &keys::p256().pkcs8_pem());
    }
    dir
}

#[test]
fn files_that_are_not_usable_keys_never_stop_a_layer_another_key_opens() {
    let dir = cluttered("keys-cluttered", true);
    let start = Instant::now();
    let o = decrypt(&dir);
    assert!(o.status.success(), "{}", o.stderr);
    assert!(o.stdout == source().layers[0].blob);
    assert!(
        start.elapsed().as_secs() < 30,
        "the FIFO must never be opened"
    );
}

#[test]
fn when_no_key_fits_the_error_says_what_was_skipped() {
    let dir = cluttered("keys-cluttered-nokey", false);
    let line = decrypt(&dir).failed().to_string();
    // The most relevant first, named relative to the keys directory: keys that cannot be used,
    // then what was not read, then what is not key material (the README is among "4 more").
    for needle in [
        "skipped ed25519.pem (Ed25519 keys cannot unwrap",
        "locked.pem (encrypted private key and no password",
        "node.pub.pem (public key, not a private key)",
        "dangling.pem (dangling symlink)",
        "and 4 more",
    ] {
        assert!(line.contains(needle), "expected {needle:?} in: {line}");
    }
    let o = decrypt(&dir);
    assert!(
        !o.stderr.contains("AAAA"),
        "file contents must not be echoed"
    );
}

#[test]
fn an_encrypted_key_opens_with_its_password_file() {
    let dir = scratch("keys-password-file");
    let pem = keys::p256()
        .key
        .private_key_to_pem_pkcs8_passphrase(openssl::symm::Cipher::aes_256_cbc(), b"hunter2")
        .unwrap();
    TestKey::write_private(&dir, "node.pem", &pem);
    let line = decrypt(&dir).failed().to_string();
    assert!(
        line.contains("node.pem (encrypted private key and no password"),
        "{line}"
    );
    assert!(!line.contains("hunter2"));
    TestKey::write_private(&dir, "node.pem.password", b"hunter2\n");
    let o = decrypt(&dir);
    assert!(o.status.success(), "{}", o.stderr);
    assert!(o.stdout == source().layers[0].blob);
    TestKey::write_private(&dir, "node.pem.password", b"wrong\n");
    let line = decrypt(&dir).failed().to_string();
    assert!(line.contains("wrong password"), "{line}");
}
