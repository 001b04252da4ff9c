//! The other recipient types through containerd: images encrypted by skopeo (Go ocicrypt) for an
//! X.509 certificate (`pkcs7`) and for a GnuPG key (`pgp`), pulled through CRI with the private
//! keys only in the node keys directory, their root filesystems checked, and run. One image
//! encrypted for a jwe, a pkcs7 and a pgp recipient at once pulls with each of the three keys
//! alone.

use crate::support::gnupg::{GnupgHome, GpgKey};
use crate::support::keys::{self, TestKey};
use crate::support::stack::{Encryption, Published, Stack};

const JWE: &str = "org.opencontainers.image.enc.keys.jwe";
const PKCS7: &str = "org.opencontainers.image.enc.keys.pkcs7";
const PGP: &str = "org.opencontainers.image.enc.keys.pgp";

/// Files for the node keys directory: name and contents.
type KeyFiles<'a> = Vec<(&'a str, &'a [u8])>;

/// Asserts that every layer of `image` carries wrapped keys for exactly the `schemes`.
fn assert_recipient_schemes(image: &Published, schemes: &[&str]) {
    for layer in image.layers() {
        let mut found: Vec<&str> = layer["annotations"]
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| k.starts_with("org.opencontainers.image.enc.keys."))
            .map(String::as_str)
            .collect();
        found.sort_unstable();
        let mut want = schemes.to_vec();
        want.sort_unstable();
        assert_eq!(found, want, "{}", layer["digest"]);
    }
}

/// A key and its certificate from the test CA: the files a pkcs7 node holds.
fn pkcs7_files(key: &TestKey, cn: &str) -> (Vec<u8>, Vec<u8>) {
    let cert = keys::ca().issue(key, cn, 0x0e2e);
    (key.pkcs8_pem(), cert.to_pem().unwrap())
}

#[test]
fn pkcs7_image_pulls_through_cri_with_key_and_certificate_in_the_keys_directory() {
    let key = keys::rsa2048();
    let stack = Stack::start("e2e-pkcs7", &[]);
    let (private, cert) = pkcs7_files(&key, "node");
    let cert_file = stack.recipients_dir().join("node.crt");
    std::fs::write(&cert_file, &cert).unwrap();
    let image = stack.publish_encrypted(
        "pkcs7",
        &stack.layers,
        &Encryption {
            recipients: vec![format!("pkcs7:{}", cert_file.display())],
            flags: &["--dest-oci-accept-uncompressed-layers"],
            env: &[],
        },
    );
    assert_recipient_schemes(&image, &[PKCS7]);
    stack.set_node_key_files(&[("node.key", &private), ("node.crt", &cert)]);
    stack.cri_pull(&image);
    stack.assert_pulled();
    stack.assert_runs(&image.reference);
}

/// A GnuPG key without a passphrase (skopeo's Go OpenPGP encrypts to RSA keys only).
fn gpg_key(home: &GnupgHome) -> GpgKey {
    home.generate("node@ctd-decoder.test", "", "rsa2048", "rsa2048")
}

#[test]
fn pgp_image_pulls_through_cri_with_the_keyring_in_the_keys_directory() {
    let stack = Stack::start("e2e-pgp", &[]);
    let home = GnupgHome::in_dir(stack.work.path());
    let gpg = gpg_key(&home);
    let image = stack.publish_encrypted(
        "pgp",
        &stack.layers,
        &Encryption {
            recipients: vec![format!("pgp:{}", gpg.email)],
            flags: &["--dest-oci-accept-uncompressed-layers"],
            env: &[("GNUPGHOME", &home.dir)],
        },
    );
    assert_recipient_schemes(&image, &[PGP]);
    stack.set_node_key_files(&[("node.gpg", &gpg.binary)]);
    stack.cri_pull(&image);
    stack.assert_pulled();
    stack.assert_runs(&image.reference);
}

#[test]
fn an_image_for_jwe_pkcs7_and_pgp_recipients_pulls_with_each_key_alone() {
    let stack = Stack::start("e2e-multi", &[]);
    let home = GnupgHome::in_dir(stack.work.path());
    let gpg = gpg_key(&home);
    let jwe_key = keys::rsa2048();
    let pkcs7_key = keys::rsa2048_b();
    let (pkcs7_private, cert) = pkcs7_files(&pkcs7_key, "pkcs7-node");
    let cert_file = stack.recipients_dir().join("pkcs7-node.crt");
    std::fs::write(&cert_file, &cert).unwrap();
    let image = stack.publish_encrypted(
        "three",
        &stack.layers,
        &Encryption {
            recipients: vec![
                jwe_key.jwe_recipient(&stack.recipients_dir()),
                format!("pkcs7:{}", cert_file.display()),
                format!("pgp:{}", gpg.email),
            ],
            flags: &["--dest-oci-accept-uncompressed-layers"],
            env: &[("GNUPGHOME", &home.dir)],
        },
    );
    assert_recipient_schemes(&image, &[JWE, PKCS7, PGP]);

    let jwe_private = jwe_key.pkcs8_pem();
    let nodes: [(&str, KeyFiles<'_>); 3] = [
        ("jwe", vec![("jwe.pem", &jwe_private)]),
        (
            "pkcs7",
            vec![("pkcs7.key", &pkcs7_private), ("pkcs7.crt", &cert)],
        ),
        ("pgp", vec![("node.gpg", &gpg.binary)]),
    ];
    for (i, (what, files)) in nodes.iter().enumerate() {
        stack.set_node_key_files(files);
        eprintln!("pulling with the {what} key alone");
        stack.cri_pull(&image);
        stack.assert_pulled();
        if i + 1 < nodes.len() {
            // Nothing kept, so the next pull decrypts every layer again.
            stack.remove(&image);
        }
    }
    stack.assert_runs(&image.reference);
}
