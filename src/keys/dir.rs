//! Walking a `--decryption-keys-path` directory.
//!
//! The directory is usually `/etc/containerd/ocicrypt/keys`, and on Kubernetes often a Secret
//! volume: every visible name is a symlink into `..data/`, itself a symlink to a timestamped
//! directory. So, unlike imgcrypt's decoder, we follow symlinks (for the root too), and load each
//! file once, by device and inode, reporting it under its visible name (non-hidden names are
//! visited before hidden ones). The walk is bounded so that no directory can hang or exhaust the
//! decoder: at most [`Limits::max_entries`] names per directory, [`Limits::max_files`] files read,
//! [`Limits::max_depth`] levels, [`Limits::max_file_size`] bytes per file. FIFOs, sockets and
//! devices are never opened; files are opened non-blocking and checked again after opening.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

/// Bounds on one walk.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Names looked at in one directory.
    pub max_entries: usize,
    /// Regular files read in total.
    pub max_files: usize,
    /// Directory nesting below the root.
    pub max_depth: usize,
    /// Largest file read; larger ones are skipped unread.
    pub max_file_size: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_entries: 10_000,
            max_files: 1_000,
            max_depth: 8,
            max_file_size: 1 << 20,
        }
    }
}

/// A file read from the directory.
pub struct KeyFile {
    /// Path as reached from the root (the visible name).
    pub path: PathBuf,
    /// Contents, wiped on drop.
    pub bytes: Zeroizing<Vec<u8>>,
    /// Permission bits of the file.
    pub mode: u32,
}

/// Something in the directory that was not read, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Path.
    pub path: PathBuf,
    /// Reason.
    pub reason: String,
}

/// Result of a walk.
#[derive(Default)]
pub struct Walk {
    /// Files read, in visiting order.
    pub files: Vec<KeyFile>,
    /// Entries not read.
    pub skipped: Vec<Skipped>,
    /// Whether [`Limits::max_files`] was reached (noted once in `skipped`).
    capped: bool,
}

/// Walks `root`. A missing or unreadable root is reported as a skipped entry, never an error:
/// the payload may bring all the keys that are needed.
pub fn walk(root: &Path, limits: &Limits) -> Walk {
    let mut walk = Walk::default();
    let mut seen = HashSet::new();
    match fs::metadata(root) {
        Ok(meta) if meta.is_dir() => {
            seen.insert((meta.dev(), meta.ino()));
            visit_dir(root, 0, limits, &mut seen, &mut walk);
        }
        Ok(meta) if meta.is_file() => {
            // A single key file given as the path: read it.
            visit_file(root, &meta, limits, &mut seen, &mut walk);
        }
        Ok(_) => walk.skip(root, "not a directory or regular file"),
        Err(e) if e.kind() == io::ErrorKind::NotFound => walk.skip(root, "does not exist"),
        Err(e) => walk.skip(root, &format!("cannot be read ({})", io_reason(&e))),
    }
    walk
}

impl Walk {
    fn skip(&mut self, path: &Path, reason: &str) {
        self.skipped.push(Skipped {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        });
    }
}

fn io_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        io::ErrorKind::NotFound => "does not exist".into(),
        _ => e.to_string(),
    }
}

fn visit_dir(
    dir: &Path,
    depth: usize,
    limits: &Limits,
    seen: &mut HashSet<(u64, u64)>,
    walk: &mut Walk,
) {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            walk.skip(dir, &format!("cannot be listed ({})", io_reason(&e)));
            return;
        }
    };
    let mut names = Vec::new();
    let mut truncated = false;
    for entry in entries {
        if names.len() >= limits.max_entries {
            truncated = true;
            break;
        }
        if let Ok(entry) = entry {
            names.push(entry.file_name());
        }
    }
    if truncated {
        walk.skip(
            dir,
            &format!(
                "has more than {} entries; the rest were not looked at",
                limits.max_entries
            ),
        );
    }
    // Visible names first, then hidden ones, each in byte order: a Kubernetes Secret's
    // `key.pem` is met before `..data/key.pem` and `..2024_01_01.../key.pem`.
    names.sort_by(|a, b| {
        let ha = a.as_encoded_bytes().starts_with(b".");
        let hb = b.as_encoded_bytes().starts_with(b".");
        ha.cmp(&hb).then_with(|| a.cmp(b))
    });
    for name in names {
        let path = dir.join(&name);
        let meta = match fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                walk.skip(&path, "dangling symlink");
                continue;
            }
            Err(e) => {
                walk.skip(&path, &format!("cannot be read ({})", io_reason(&e)));
                continue;
            }
        };
        if meta.is_dir() {
            if !seen.insert((meta.dev(), meta.ino())) {
                continue;
            }
            if depth + 1 > limits.max_depth {
                walk.skip(&path, "nested too deeply");
                continue;
            }
            visit_dir(&path, depth + 1, limits, seen, walk);
        } else if meta.is_file() {
            visit_file(&path, &meta, limits, seen, walk);
        } else {
            walk.skip(
                &path,
                "not a regular file (FIFO, socket or device); never opened",
            );
        }
    }
}

fn visit_file(
    path: &Path,
    meta: &fs::Metadata,
    limits: &Limits,
    seen: &mut HashSet<(u64, u64)>,
    walk: &mut Walk,
) {
    if !seen.insert((meta.dev(), meta.ino())) {
        return;
    }
    if meta.len() > limits.max_file_size {
        walk.skip(
            path,
            &format!("larger than {} KiB; not read", limits.max_file_size >> 10),
        );
        return;
    }
    if walk.files.len() >= limits.max_files {
        if !walk.capped {
            walk.capped = true;
            let reason = format!(
                "more than {} files in the keys path; this and later ones not read",
                limits.max_files
            );
            walk.skip(path, &reason);
        }
        return;
    }
    match read_file(path, limits.max_file_size) {
        Ok((bytes, mode)) => walk.files.push(KeyFile {
            path: path.to_path_buf(),
            bytes,
            mode,
        }),
        Err(reason) => walk.skip(path, &reason),
    }
}

/// Opens without blocking (a FIFO swapped in after the `stat` cannot hang us), re-checks that it
/// is a regular file of bounded size, and reads it.
fn read_file(path: &Path, max: u64) -> Result<(Zeroizing<Vec<u8>>, u32), String> {
    let file: File = OpenOptions::new()
        .read(true)
        .custom_flags(libc_flags())
        .open(path)
        .map_err(|e| format!("cannot be opened ({})", io_reason(&e)))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot be read ({})", io_reason(&e)))?;
    if !meta.is_file() {
        return Err("not a regular file; not read".into());
    }
    if meta.len() > max {
        return Err(format!("larger than {} KiB; not read", max >> 10));
    }
    let mut bytes = Zeroizing::new(Vec::with_capacity(meta.len() as usize));
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot be read ({})", io_reason(&e)))?;
    if bytes.len() as u64 > max {
        return Err(format!("larger than {} KiB; not read", max >> 10));
    }
    Ok((bytes, meta.permissions().mode()))
}

fn libc_flags() -> i32 {
    (nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_NOCTTY).bits()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn names(w: &Walk, root: &Path) -> Vec<String> {
        w.files
            .iter()
            .map(|f| f.path.strip_prefix(root).unwrap().display().to_string())
            .collect()
    }

    #[test]
    fn follows_a_kubernetes_secret_layout_and_loads_each_file_once() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let data = root.join("..2026_11_23_14_00_00.123456789");
        fs::create_dir(&data).unwrap();
        fs::write(data.join("key.pem"), b"k").unwrap();
        fs::write(data.join("other.jwk"), b"o").unwrap();
        symlink("..2026_11_23_14_00_00.123456789", root.join("..data")).unwrap();
        symlink("..data/key.pem", root.join("key.pem")).unwrap();
        symlink("..data/other.jwk", root.join("other.jwk")).unwrap();
        let w = walk(root, &Limits::default());
        assert_eq!(names(&w, root), vec!["key.pem", "other.jwk"]);
        assert!(w.skipped.is_empty(), "{:?}", w.skipped);
        // The keys path itself may be a symlink.
        let link = tmp
            .path()
            .parent()
            .unwrap()
            .join(format!("link-{}", std::process::id()));
        let _ = fs::remove_file(&link);
        symlink(root, &link).unwrap();
        let w = walk(&link, &Limits::default());
        assert_eq!(w.files.len(), 2);
        fs::remove_file(&link).unwrap();
    }

    #[test]
    fn skips_what_it_must_not_read() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        nix::unistd::mkfifo(&root.join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        symlink("nowhere", root.join("dangling")).unwrap();
        fs::write(root.join("big"), vec![0u8; 2 << 20]).unwrap();
        fs::write(root.join("ok"), b"x").unwrap();
        symlink("/dev/zero", root.join("zero")).unwrap();
        let sub = root.join("sub");
        fs::create_dir(&sub).unwrap();
        symlink("..", sub.join("loop")).unwrap();
        let w = walk(root, &Limits::default());
        assert_eq!(names(&w, root), vec!["ok"]);
        let reasons: Vec<String> = w
            .skipped
            .iter()
            .map(|s| {
                format!(
                    "{}: {}",
                    s.path.file_name().unwrap().to_string_lossy(),
                    s.reason
                )
            })
            .collect();
        assert!(
            reasons.iter().any(|r| r.starts_with("fifo: not a regular")),
            "{reasons:?}"
        );
        assert!(
            reasons.iter().any(|r| r.starts_with("dangling: dangling")),
            "{reasons:?}"
        );
        assert!(
            reasons.iter().any(|r| r.starts_with("big: larger")),
            "{reasons:?}"
        );
        assert!(
            reasons.iter().any(|r| r.starts_with("zero: not a regular")),
            "{reasons:?}"
        );
    }

    #[test]
    fn missing_root_is_not_fatal() {
        let w = walk(
            Path::new("/nonexistent/ctd-decoder-test"),
            &Limits::default(),
        );
        assert!(w.files.is_empty());
        assert_eq!(w.skipped[0].reason, "does not exist");
    }

    #[test]
    fn limits_bound_the_work() {
        let tmp = tempfile::tempdir().unwrap();
        for i in 0..50 {
            fs::write(tmp.path().join(format!("f{i:03}")), b"x").unwrap();
        }
        let limits = Limits {
            max_entries: 40,
            max_files: 10,
            ..Limits::default()
        };
        let w = walk(tmp.path(), &limits);
        assert_eq!(w.files.len(), 10);
        assert!(w
            .skipped
            .iter()
            .any(|s| s.reason.contains("more than 40 entries")));
        assert!(w
            .skipped
            .iter()
            .any(|s| s.reason.contains("more than 10 files")));
    }
}
