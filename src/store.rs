//! Finding the layer's descriptor in containerd's content store when containerd sent none.
//!
//! containerd passes the descriptor on fd 3 only for CRI pulls with `key_model = "node"` (and
//! only to the processor IDs `...decoder.v1.tar` and `...decoder.v1.tar.gzip`); `ctr` pulls,
//! zstd layers and containerd 2.x's transfer service send nothing (protocol.md §1.6). But by the
//! time a layer is unpacked, containerd has stored the image's manifest *and* the encrypted blob
//! in its content store (`<root>/io.containerd.content.v1.content/blobs/<alg>/<hex>`). So:
//!
//! 1. Read the head of stdin (the first [`HEAD_LEN`] bytes; the rest stays in the pipe).
//! 2. List the store's blobs once (names, sizes, mtimes), newest first: the manifest of the
//!    layer being unpacked was written moments ago.
//! 3. Read only small blobs (≤ 4 MiB, containerd's own manifest limit) that mention
//!    `+encrypted`, parse those that are image manifests, and take their encrypted layer
//!    descriptors whose media type is `STREAM_PROCESSOR_MEDIATYPE`.
//! 4. A descriptor is ours when its blob is in the store with the descriptor's size and begins
//!    with exactly the bytes stdin began with. The layer is never spooled; the size check and
//!    the MAC over the whole stream still decide at the end.
//!
//! Candidates come lazily, newest manifest first, so the usual case reads a handful of files;
//! if the first descriptor's keys do not fit (the same blob re-wrapped for other recipients in
//! another manifest), the search continues. Nothing is guessed: no match is an error.
//!
//! Ambiguity: a blob that starts like ours but differs later (which only a party that got the
//! node to pull a crafted image could plant) at worst makes the MAC or containerd's diffID check
//! fail the layer; it cannot make wrong plaintext pass.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;

use crate::payload::Descriptor;

/// containerd's default content store.
pub const DEFAULT_CONTENT_STORE: &str = "/var/lib/containerd/io.containerd.content.v1.content";

/// Bytes of stdin compared with each candidate blob. 4 KiB of AES-CTR ciphertext never repeats
/// by chance; a layer shorter than this is compared whole.
pub const HEAD_LEN: usize = 4096;

/// Largest blob read as a possible manifest (containerd refuses larger manifests itself).
const MAX_MANIFEST_LEN: u64 = 4 << 20;

/// At most this many directory entries are listed (a bound, not an expected size).
const MAX_ENTRIES: usize = 2_000_000;

/// Why the store could not be searched at all.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store directory is missing or unreadable.
    #[error("the content store {path} cannot be read ({reason})")]
    Unreadable {
        /// `<store>/blobs`.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// What a search looked at, for messages and measurements.
#[derive(Debug, Clone, Default)]
pub struct SearchStats {
    /// Blobs listed.
    pub blobs: usize,
    /// Small blobs opened as possible manifests (only their first bytes are read unless they
    /// start like JSON).
    pub files_read: usize,
    /// Small blobs that start like JSON and were read whole.
    pub json_read: usize,
    /// Manifests with an encrypted layer of the wanted type.
    pub manifests: usize,
    /// Candidate blobs whose head was compared.
    pub heads_compared: usize,
    /// Time spent.
    pub elapsed: Duration,
}

/// A descriptor whose blob begins like the input.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The layer descriptor from the manifest.
    pub descriptor: Descriptor,
    /// Digest of the manifest that lists it.
    pub manifest: String,
}

struct BlobEntry {
    /// `sha256:<hex>`.
    digest: String,
    path: PathBuf,
    size: u64,
    modified: SystemTime,
}

/// A lazy search for descriptors matching the input's head.
pub struct Search {
    media_type: Option<String>,
    head: Vec<u8>,
    head_complete: bool,
    /// Small blobs, newest first.
    small: Vec<BlobEntry>,
    next_small: usize,
    /// Every blob by digest: path and size.
    blobs: HashMap<String, (PathBuf, u64)>,
    /// Head comparison results by digest and size.
    matched: HashMap<String, bool>,
    /// Descriptors already yielded (digest + annotations), to skip exact duplicates.
    yielded: HashSet<String>,
    pending: VecDeque<Candidate>,
    stats: SearchStats,
    started: Instant,
}

impl Search {
    /// Lists the store. `head` is the start of the input; `head_complete` says the input ended
    /// within it. `media_type` (from `STREAM_PROCESSOR_MEDIATYPE`) filters the descriptors.
    pub fn new(
        store: &Path,
        media_type: Option<&str>,
        head: &[u8],
        head_complete: bool,
    ) -> Result<Self, StoreError> {
        let started = Instant::now();
        let blobs_dir = store.join("blobs");
        let algorithms = fs::read_dir(&blobs_dir).map_err(|e| StoreError::Unreadable {
            path: blobs_dir.clone(),
            reason: io_reason(&e),
        })?;
        let mut small = Vec::new();
        let mut blobs = HashMap::new();
        let mut count = 0usize;
        'outer: for alg in algorithms.flatten() {
            let Ok(alg_name) = alg.file_name().into_string() else {
                continue;
            };
            let Ok(entries) = fs::read_dir(alg.path()) else {
                continue;
            };
            for entry in entries.flatten() {
                count += 1;
                if count > MAX_ENTRIES {
                    break 'outer;
                }
                let Ok(meta) = entry.metadata() else { continue };
                if !meta.is_file() {
                    continue;
                }
                let Ok(name) = entry.file_name().into_string() else {
                    continue;
                };
                let digest = format!("{alg_name}:{name}");
                let path = entry.path();
                if meta.len() <= MAX_MANIFEST_LEN && meta.len() >= 2 {
                    small.push(BlobEntry {
                        digest: digest.clone(),
                        path: path.clone(),
                        size: meta.len(),
                        modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    });
                }
                blobs.insert(digest, (path, meta.len()));
            }
        }
        small.sort_by(|a, b| {
            b.modified
                .cmp(&a.modified)
                .then_with(|| a.digest.cmp(&b.digest))
        });
        let stats = SearchStats {
            blobs: blobs.len(),
            ..SearchStats::default()
        };
        Ok(Self {
            media_type: media_type.map(str::to_string),
            head: head.to_vec(),
            head_complete,
            small,
            next_small: 0,
            blobs,
            matched: HashMap::new(),
            yielded: HashSet::new(),
            pending: VecDeque::new(),
            stats,
            started,
        })
    }

    /// What the search has looked at so far.
    pub fn stats(&self) -> SearchStats {
        SearchStats {
            elapsed: self.started.elapsed(),
            ..self.stats.clone()
        }
    }

    fn scan_manifest(&mut self, entry_index: usize) {
        let entry = &self.small[entry_index];
        self.stats.files_read += 1;
        let Ok(Some(bytes)) = read_json_blob(&entry.path, entry.size) else {
            return;
        };
        self.stats.json_read += 1;
        // Cheap filters before any JSON parsing: a manifest with an encrypted layer.
        if !contains(&bytes, b"+encrypted") || !contains(&bytes, b"\"layers\"") {
            return;
        }
        let Ok(manifest) = serde_json::from_slice::<Manifest>(&bytes) else {
            return;
        };
        let manifest_digest = entry.digest.clone();
        let mut relevant = false;
        for layer in manifest.layers {
            if !crate::media_type::is_supported(&layer.media_type) {
                continue;
            }
            if let Some(wanted) = &self.media_type {
                if &layer.media_type != wanted {
                    continue;
                }
            }
            relevant = true;
            if !self.blob_matches(&layer.digest, layer.size) {
                continue;
            }
            let key = format!("{}\n{:?}", layer.digest, layer.annotations);
            if !self.yielded.insert(key) {
                continue;
            }
            self.pending.push_back(Candidate {
                descriptor: Descriptor {
                    media_type: layer.media_type,
                    digest: layer.digest,
                    size: Some(layer.size),
                    annotations: layer.annotations.unwrap_or_default(),
                },
                manifest: manifest_digest.clone(),
            });
        }
        if relevant {
            self.stats.manifests += 1;
        }
    }

    /// Whether the stored blob `digest` has `size` bytes and begins with the input's head.
    fn blob_matches(&mut self, digest: &str, size: u64) -> bool {
        let key = format!("{digest}@{size}");
        if let Some(&known) = self.matched.get(&key) {
            return known;
        }
        let result = self.compare_head(digest, size);
        self.matched.insert(key, result);
        result
    }

    fn compare_head(&mut self, digest: &str, size: u64) -> bool {
        let Some((path, stored_size)) = self.blobs.get(digest) else {
            return false;
        };
        if *stored_size != size {
            return false;
        }
        if self.head_complete {
            if size != self.head.len() as u64 {
                return false;
            }
        } else if size < self.head.len() as u64 {
            return false;
        }
        self.stats.heads_compared += 1;
        let mut buf = vec![0u8; self.head.len()];
        let read = File::open(path).and_then(|mut f| f.read_exact(&mut buf));
        read.is_ok() && buf == self.head
    }
}

impl Iterator for Search {
    type Item = Candidate;

    fn next(&mut self) -> Option<Candidate> {
        loop {
            if let Some(c) = self.pending.pop_front() {
                return Some(c);
            }
            if self.next_small >= self.small.len() {
                return None;
            }
            let i = self.next_small;
            self.next_small += 1;
            self.scan_manifest(i);
        }
    }
}

#[derive(Deserialize)]
struct Manifest {
    #[serde(default)]
    layers: Vec<LayerDescriptor>,
}

#[derive(Deserialize)]
struct LayerDescriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    #[serde(default)]
    digest: String,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    annotations: Option<std::collections::BTreeMap<String, String>>,
}

/// Reads a blob whole if it starts like a JSON object; layer blobs (gzip, zstd, tar, encrypted)
/// are rejected after their first bytes.
fn read_json_blob(path: &Path, size: u64) -> io::Result<Option<Vec<u8>>> {
    let mut file = File::open(path)?;
    let mut first = [0u8; 64];
    let n = file.read(&mut first)?;
    match first[..n].iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        _ => return Ok(None),
    }
    let mut buf = Vec::with_capacity(size as usize);
    buf.extend_from_slice(&first[..n]);
    file.take(MAX_MANIFEST_LEN).read_to_end(&mut buf)?;
    Ok(Some(buf))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn io_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "it does not exist".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// Reads up to [`HEAD_LEN`] bytes: the head to compare, and whether the input ended within it.
pub fn read_head(input: &mut impl Read) -> io::Result<(Vec<u8>, bool)> {
    let mut head = vec![0u8; HEAD_LEN];
    let mut len = 0;
    while len < HEAD_LEN {
        match input.read(&mut head[len..]) {
            Ok(0) => {
                head.truncate(len);
                return Ok((head, true));
            }
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok((head, false))
}

#[cfg(test)]
mod tests;
