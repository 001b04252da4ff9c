//! Root filesystems as comparable trees: the one an image's layers describe (applied in order,
//! whiteouts included), and the one found on disk (a mounted snapshot).

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use super::oci::{Layer, MT_TAR, MT_TAR_GZIP};

/// What a path is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Dir,
    /// A regular file: its size and SHA-256.
    File {
        size: u64,
        sha256: String,
    },
    Symlink {
        target: PathBuf,
    },
    /// Anything else found on disk (a device, a FIFO, a leaked whiteout).
    Other(String),
}

/// One path's type and metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub kind: Kind,
    /// Permission bits including setuid/setgid/sticky (`mode & 0o7777`).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Modification time in seconds; `None` where the layers do not define it (a directory
    /// created implicitly as a parent).
    pub mtime: Option<i64>,
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Dir => "dir".to_string(),
            Kind::File { size, sha256 } => format!("file {size} bytes sha256:{}", &sha256[..12]),
            Kind::Symlink { target } => format!("symlink -> {}", target.display()),
            Kind::Other(t) => t.clone(),
        };
        write!(f, "{kind} {:04o} {}:{}", self.mode, self.uid, self.gid)?;
        if let Some(t) = self.mtime {
            write!(f, " mtime {t}")?;
        }
        Ok(())
    }
}

/// Paths relative to the root (no leading `/`, no `.`), the root itself excluded.
pub type Tree = BTreeMap<PathBuf, Node>;

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

/// The uncompressed tar stream of a layer.
pub fn layer_tar(layer: &Layer) -> Vec<u8> {
    match layer.media_type.as_str() {
        MT_TAR => layer.blob.clone(),
        MT_TAR_GZIP => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&layer.blob[..])
                .read_to_end(&mut out)
                .expect("gunzip layer");
            out
        }
        other => panic!("unexpected layer media type {other}"),
    }
}

fn normalize(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect()
}

/// The root filesystem `layers` describe, bottom layer first, as the OCI image spec applies
/// them: within each layer, whiteouts (`.wh.<name>`) delete `<name>` and opaque markers
/// (`.wh..wh..opq`) empty their directory, both only for what lower layers put there; then the
/// layer's other entries are added, replacing what was there.
pub fn expected(layers: &[Layer]) -> Tree {
    let mut tree = Tree::new();
    for layer in layers {
        let tar = layer_tar(layer);
        let mut archive = tar::Archive::new(&tar[..]);
        let mut added: Vec<(PathBuf, Node)> = Vec::new();
        let mut deleted: Vec<PathBuf> = Vec::new();
        let mut emptied: Vec<PathBuf> = Vec::new();
        for entry in archive.entries().expect("tar entries") {
            let mut entry = entry.expect("tar entry");
            let path = normalize(&entry.path().expect("entry path"));
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
            if name == OPAQUE {
                emptied.push(parent);
                continue;
            }
            if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
                deleted.push(parent.join(hidden));
                continue;
            }
            let header = entry.header();
            let kind = match header.entry_type() {
                tar::EntryType::Directory => Kind::Dir,
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let mut data = Vec::new();
                    entry.read_to_end(&mut data).expect("entry data");
                    Kind::File {
                        size: data.len() as u64,
                        sha256: hex::encode(Sha256::digest(&data)),
                    }
                }
                tar::EntryType::Symlink => Kind::Symlink {
                    target: entry
                        .link_name()
                        .expect("link name")
                        .expect("symlink target")
                        .to_path_buf(),
                },
                other => panic!("the sample layers use no {other:?} entries"),
            };
            let header = entry.header();
            let node = Node {
                kind,
                mode: header.mode().expect("mode") & 0o7777,
                uid: numeric(&header.as_old().uid, header.uid()),
                gid: numeric(&header.as_old().gid, header.gid()),
                mtime: Some(header.mtime().expect("mtime") as i64),
            };
            added.push((path, node));
        }
        for dir in emptied {
            tree.retain(|p, _| !(p.starts_with(&dir) && p != &dir));
        }
        for gone in deleted {
            tree.retain(|p, _| !p.starts_with(&gone));
        }
        for (path, node) in added {
            for parent in path.ancestors().skip(1) {
                if !parent.as_os_str().is_empty() && !tree.contains_key(parent) {
                    tree.insert(
                        parent.to_path_buf(),
                        Node {
                            kind: Kind::Dir,
                            mode: 0o755,
                            uid: 0,
                            gid: 0,
                            mtime: None,
                        },
                    );
                }
            }
            // A file replacing a directory (or the reverse) takes its subtree with it.
            if tree.get(&path).map(|n| n.kind == Kind::Dir) != Some(node.kind == Kind::Dir) {
                tree.retain(|p, _| !(p.starts_with(&path) && p != &path));
            }
            tree.insert(path, node);
        }
    }
    tree
}

/// A numeric tar header field; all NULs means 0, as Go's archive/tar (containerd) reads it.
fn numeric(raw: &[u8], parsed: std::io::Result<u64>) -> u64 {
    if raw.iter().all(|b| *b == 0) {
        0
    } else {
        parsed.expect("numeric tar header field")
    }
}

/// The tree found under `root` on disk (not following symlinks).
pub fn scan(root: &Path) -> Tree {
    let mut tree = Tree::new();
    scan_into(root, Path::new(""), &mut tree);
    tree
}

fn scan_into(root: &Path, rel: &Path, tree: &mut Tree) {
    let dir = root.join(rel);
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").file_name())
        .collect();
    entries.sort();
    for name in entries {
        let rel_path = rel.join(&name);
        let full = root.join(&rel_path);
        let meta = std::fs::symlink_metadata(&full).expect("lstat");
        let t = meta.file_type();
        let kind = if t.is_dir() {
            Kind::Dir
        } else if t.is_symlink() {
            Kind::Symlink {
                target: std::fs::read_link(&full).expect("readlink"),
            }
        } else if t.is_file() {
            let data = std::fs::read(&full).expect("read file");
            Kind::File {
                size: meta.len(),
                sha256: hex::encode(Sha256::digest(&data)),
            }
        } else {
            Kind::Other(format!(
                "{:?} (rdev {:#x})",
                t,
                std::os::unix::fs::MetadataExt::rdev(&meta)
            ))
        };
        tree.insert(
            rel_path.clone(),
            Node {
                kind: kind.clone(),
                mode: meta.mode() & 0o7777,
                uid: u64::from(meta.uid()),
                gid: u64::from(meta.gid()),
                mtime: Some(meta.mtime()),
            },
        );
        if kind == Kind::Dir {
            scan_into(root, &rel_path, tree);
        }
    }
}

/// Every difference between the expected and the actual tree, one line each; empty if they
/// match. Modification times are compared where the expected tree defines them.
pub fn differences(expected: &Tree, actual: &Tree) -> Vec<String> {
    let mut out = Vec::new();
    for (path, want) in expected {
        match actual.get(path) {
            None => out.push(format!("missing: /{} ({want})", path.display())),
            Some(got) => {
                let same = got.kind == want.kind
                    && got.mode == want.mode
                    && got.uid == want.uid
                    && got.gid == want.gid
                    && (want.mtime.is_none() || got.mtime == want.mtime);
                if !same {
                    out.push(format!(
                        "differs: /{}: expected {want}, found {got}",
                        path.display()
                    ));
                }
            }
        }
    }
    for (path, got) in actual {
        if !expected.contains_key(path) {
            out.push(format!("unexpected: /{} ({got})", path.display()));
        }
    }
    out
}
