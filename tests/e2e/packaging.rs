//! `packaging/`: the install target and the containerd config snippets.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use toml::{Table, Value};

use crate::support::stack::WorkDir;
use crate::support::{decoder, process, require_tool};

fn packaging() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging")
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

fn make(target: &str, dest: &Path) {
    require_tool("make", "make");
    process::checked(
        Command::new("make")
            .arg("-C")
            .arg(packaging())
            .arg(target)
            .arg(format!("DESTDIR={}", dest.display()))
            .arg(format!("BIN={}", decoder::binary().display())),
        Duration::from_secs(60),
    );
}

#[test]
fn make_install_puts_the_binary_and_a_private_keys_directory() {
    let work = WorkDir::new("e2e-install");
    let dest = work.path().join("root");
    let bin = dest.join("usr/local/bin/ctd-decoder");
    let keys = dest.join("etc/containerd/ocicrypt/keys");
    let docs = dest.join("usr/local/share/doc/ctd-decoder");

    // A keys directory that already exists with loose permissions is tightened.
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(keys.join("node.pem"), b"kept").unwrap();

    make("install", &dest);
    assert_eq!(mode(&bin), 0o755);
    assert!(std::fs::read(&bin).unwrap() == std::fs::read(decoder::binary()).unwrap());
    assert!(std::fs::metadata(&keys).unwrap().is_dir());
    assert_eq!(mode(&keys), 0o700);
    for snippet in ["config-v2.toml", "config-v3.toml"] {
        assert_eq!(mode(&docs.join(snippet)), 0o644);
        assert_eq!(
            std::fs::read(docs.join(snippet)).unwrap(),
            std::fs::read(packaging().join("containerd").join(snippet)).unwrap()
        );
    }
    // The installed binary runs.
    let version = process::checked(Command::new(&bin).arg("--version"), Duration::from_secs(10));
    assert!(version.starts_with("ctd-decoder "), "{version}");

    // Installing again is harmless; uninstalling keeps the keys.
    make("install", &dest);
    make("uninstall", &dest);
    assert!(!bin.exists());
    assert!(!docs.exists());
    assert_eq!(std::fs::read(keys.join("node.pem")).unwrap(), b"kept");
}

fn load(name: &str) -> Table {
    let path = packaging().join("containerd").join(name);
    std::fs::read_to_string(&path)
        .unwrap()
        .parse()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn get_opt<'a>(t: &'a Table, path: &[&str]) -> Option<&'a Value> {
    let mut v = t.get(path[0])?;
    for key in &path[1..] {
        v = v.get(key)?;
    }
    Some(v)
}

fn get<'a>(t: &'a Table, path: &[&str]) -> &'a Value {
    let mut v = t
        .get(path[0])
        .unwrap_or_else(|| panic!("missing {}", path[0]));
    for key in &path[1..] {
        v = v
            .get(key)
            .unwrap_or_else(|| panic!("missing {key} in {path:?}"));
    }
    v
}

/// Both snippets declare the two processors under the IDs containerd's CRI plugin attaches the
/// payload to, for the node's keys directory, with CRI's node key model. (containerd 1.6
/// running from the v2 snippet is what the pull scenarios do; no containerd 2.x is available
/// here to start from the v3 one.)
#[test]
fn config_snippets_declare_the_processors_that_get_the_payload() {
    // One processor per encrypted media type the decoder accepts; the first two IDs are the
    // ones containerd's CRI plugin sends the payload to.
    let ids = [
        "io.containerd.ocicrypt.decoder.v1.tar",
        "io.containerd.ocicrypt.decoder.v1.tar.gzip",
        "io.containerd.ocicrypt.decoder.v1.tar.zstd",
        "io.containerd.ocicrypt.decoder.v1.nondistributable.tar",
        "io.containerd.ocicrypt.decoder.v1.nondistributable.tar.gzip",
        "io.containerd.ocicrypt.decoder.v1.nondistributable.tar.zstd",
        "io.containerd.ocicrypt.decoder.v1.docker.tar.gzip",
        "io.containerd.ocicrypt.decoder.v1.wasm",
    ];
    let types = ctd_decoder::media_type::ENCRYPTED_MEDIA_TYPES;
    let processors: Vec<(&str, &str, &str)> = ids
        .iter()
        .zip(types)
        .map(|(id, mt)| (*id, *mt, ctd_decoder::media_type::decrypted(mt).unwrap()))
        .collect();
    for (file, version, cri_plugin) in [
        ("config-v2.toml", 2, "io.containerd.grpc.v1.cri"),
        ("config-v3.toml", 3, "io.containerd.cri.v1.images"),
    ] {
        let doc = load(file);
        assert_eq!(doc["version"].as_integer(), Some(version), "{file}");
        let declared = get(&doc, &["stream_processors"]).as_table().unwrap();
        assert_eq!(declared.len(), processors.len(), "{file}");
        for &(id, accepts, returns) in &processors {
            let p = get(&doc, &["stream_processors", id]);
            assert_eq!(
                p["accepts"].as_array().unwrap(),
                &[Value::from(accepts)],
                "{file} {id}"
            );
            assert_eq!(p["returns"].as_str(), Some(returns), "{file} {id}");
            assert_eq!(p["path"].as_str(), Some("ctd-decoder"), "{file} {id}");
            assert_eq!(
                p["args"].as_array().unwrap(),
                &[
                    Value::from("--decryption-keys-path"),
                    Value::from("/etc/containerd/ocicrypt/keys")
                ],
                "{file} {id}"
            );
        }
        assert_eq!(
            get(
                &doc,
                &["plugins", cri_plugin, "image_decryption", "key_model"]
            )
            .as_str(),
            Some("node"),
            "{file}"
        );
    }
    // The transfer service (2.1+ default) passes no payload; the decoder's content-store lookup
    // covers it, so the v3 snippet does not force the local pull path.
    assert!(get_opt(
        &load("config-v3.toml"),
        &[
            "plugins",
            "io.containerd.cri.v1.images",
            "use_local_image_pull"
        ]
    )
    .is_none());
    // The repository's config.toml.example is the v2 snippet.
    assert_eq!(
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml.example"))
            .unwrap(),
        std::fs::read_to_string(packaging().join("containerd/config-v2.toml")).unwrap()
    );
}
