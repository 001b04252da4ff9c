//! `ctd-decoder`: a drop-in replacement for containerd/imgcrypt's stream processor that decrypts
//! ocicrypt-encrypted OCI image layers.
//!
//! containerd runs the binary with the encrypted blob on stdin and, on some paths, a payload on
//! fd 3 (see [`payload`]); the original blob goes to stdout. [`run`] is the whole job once the
//! process-specific parts (fd 3, stdio, arguments) are in hand:
//!
//! 1. the layer descriptor from the payload ([`payload`]), or, when containerd sent none, from
//!    its content store ([`store`]);
//! 2. wrapped keys and public options from its annotations ([`annotations`]);
//! 3. the node's keys ([`keys`]) tried on every wrapped key ([`keywrap`]);
//! 4. private options resolved into stream parameters ([`options`]);
//! 5. streaming decryption with the MAC verdict at the end ([`stream`]).

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod annotations;
pub mod cli;
pub mod der;
pub mod encoding;
pub mod error;
pub mod keys;
pub mod keywrap;
pub mod media_type;
pub mod options;
pub mod payload;
pub mod secret;
pub mod store;
pub mod stream;

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::path::PathBuf;

pub use error::Error;
use keys::KeyRing;
use payload::{DecryptParams, Descriptor, Payload};
use stream::{StreamConfig, Verified};

/// How one decoder run is configured (from the command line and environment).
#[derive(Debug, Clone)]
pub struct Config {
    /// `--decryption-keys-path` values, in order.
    pub key_paths: Vec<PathBuf>,
    /// `STREAM_PROCESSOR_MEDIATYPE`, when containerd set it.
    pub media_type: Option<String>,
    /// Limits on reading the keys directories.
    pub key_limits: keys::dir::Limits,
    /// Stream tuning (hold-back, chunk size); `expected_size` is filled from the descriptor.
    pub stream: StreamConfig,
    /// containerd's content store, searched when there is no payload descriptor.
    pub content_store: PathBuf,
    /// `--verify-before-release`: spool the ciphertext in this directory and release nothing
    /// before the MAC verifies (see [`stream::decrypt_spooled`]).
    pub verify_before_release: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            key_paths: Vec::new(),
            media_type: None,
            key_limits: keys::dir::Limits::default(),
            stream: StreamConfig::default(),
            content_store: PathBuf::from(store::DEFAULT_CONTENT_STORE),
            verify_before_release: None,
        }
    }
}

/// What a successful run did.
#[derive(Debug)]
pub struct Report {
    /// Bytes of plaintext written, MAC verified.
    pub verified: Verified,
    /// Scheme and index of the wrapped key that opened the layer, e.g. `jwe[0]`.
    pub opened_by: String,
    /// Advice that did not stop decryption (loose key-file permissions).
    pub warnings: Vec<String>,
}

/// Decrypts one layer: `input` (the encrypted blob) to `output` (the original blob).
pub fn run<R, W>(
    config: &Config,
    payload: Option<Payload>,
    input: R,
    output: W,
) -> Result<Report, Error>
where
    R: Read + Send + 'static,
    W: Write,
{
    match payload {
        Some(Payload {
            params,
            descriptor: Some(d),
        }) => decrypt_layer(config, &params, &d, input, output),
        Some(Payload {
            params,
            descriptor: None,
        }) => decrypt_from_store(
            config,
            &params,
            "the payload on fd 3 carries no layer descriptor",
            input,
            output,
        ),
        None => decrypt_from_store(
            config,
            &DecryptParams::default(),
            "containerd passed no payload on fd 3",
            input,
            output,
        ),
    }
}

/// Decrypts a layer whose descriptor is known.
pub fn decrypt_layer<R, W>(
    config: &Config,
    params: &DecryptParams,
    descriptor: &Descriptor,
    input: R,
    output: W,
) -> Result<Report, Error>
where
    R: Read + Send + 'static,
    W: Write,
{
    let ring = KeyRing::load(&config.key_paths, params, &config.key_limits);
    let prepared = prepare(config, &ring, descriptor)?;
    drop(ring);
    prepared.stream(input, output)
}

/// A layer whose key is unwrapped and whose options are valid: ready to stream.
struct Prepared {
    layer: String,
    params: options::StreamParams,
    expected_size: Option<u64>,
    stream: StreamConfig,
    spool_dir: Option<PathBuf>,
    opened_by: String,
    warnings: Vec<String>,
}

impl Prepared {
    fn stream<R, W>(self, input: R, output: W) -> Result<Report, Error>
    where
        R: Read + Send + 'static,
        W: Write,
    {
        let stream_config = StreamConfig {
            expected_size: self.expected_size,
            ..self.stream
        };
        let verified = match &self.spool_dir {
            None => stream::decrypt(input, output, &self.params, &stream_config),
            Some(dir) => stream::decrypt_spooled(input, output, &self.params, &stream_config, dir),
        }
        .map_err(|source| Error::Stream {
            layer: self.layer,
            source,
        })?;
        Ok(Report {
            verified,
            opened_by: self.opened_by,
            warnings: self.warnings,
        })
    }
}

/// Everything before the first output byte: media type, annotations, key unwrap, options.
fn prepare(config: &Config, ring: &KeyRing, descriptor: &Descriptor) -> Result<Prepared, Error> {
    let layer = descriptor.display_name().to_string();
    let media_type = if descriptor.media_type.is_empty() {
        config.media_type.clone().unwrap_or_default()
    } else {
        descriptor.media_type.clone()
    };
    if !media_type::is_supported(&media_type) {
        return Err(Error::UnsupportedMediaType { layer, media_type });
    }
    let annotations =
        annotations::parse(&descriptor.annotations).map_err(|source| Error::Annotations {
            layer: layer.clone(),
            source,
        })?;
    let unwrappers = keywrap::all();
    let unwrapped =
        keywrap::unwrap_layer_key(&unwrappers, &annotations, ring).map_err(|failure| {
            Error::NoKeyFits {
                layer: layer.clone(),
                summary: summarize_failure(ring, &failure, config),
                key_paths: key_paths_text(config),
            }
        })?;
    let private = options::parse_private(unwrapped.private_options.expose()).map_err(|source| {
        Error::Options {
            layer: layer.clone(),
            source,
        }
    })?;
    let params =
        options::resolve(&annotations.public, &private).map_err(|source| Error::Options {
            layer: layer.clone(),
            source,
        })?;
    Ok(Prepared {
        layer,
        params,
        expected_size: descriptor.size,
        stream: config.stream.clone(),
        spool_dir: config.verify_before_release.clone(),
        opened_by: format!("{}[{}]", unwrapped.scheme, unwrapped.index),
        warnings: ring.warnings.clone(),
    })
}

/// No descriptor came with the layer: find it in containerd's content store (see [`store`]).
fn decrypt_from_store<R, W>(
    config: &Config,
    params: &DecryptParams,
    why: &str,
    mut input: R,
    output: W,
) -> Result<Report, Error>
where
    R: Read + Send + 'static,
    W: Write,
{
    let (head, complete) = store::read_head(&mut input).map_err(|e| Error::Stream {
        layer: "(unknown)".into(),
        source: stream::StreamError::Input(e),
    })?;
    let mut search = store::Search::new(
        &config.content_store,
        config.media_type.as_deref(),
        &head,
        complete,
    )
    .map_err(|e| Error::NoDescriptor(format!("{why}, and {e}")))?;
    let ring = KeyRing::load(&config.key_paths, params, &config.key_limits);
    let mut first_error = None;
    for candidate in &mut search {
        match prepare(config, &ring, &candidate.descriptor) {
            Ok(prepared) => {
                drop(ring);
                let input = std::io::Cursor::new(head).chain(input);
                return prepared.stream(input, output);
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let stats = search.stats();
    let wanted = config.media_type.as_deref().unwrap_or("any encrypted type");
    Err(Error::NoDescriptor(format!(
        "{why}, and no manifest in the content store {} lists a {wanted} layer whose blob begins \
         like this input (searched {} blobs, read {} small ones, {} with such layers, in {} ms)",
        config.content_store.display(),
        stats.blobs,
        stats.files_read,
        stats.manifests,
        stats.elapsed.as_millis()
    )))
}

fn key_paths_text(config: &Config) -> String {
    match config.key_paths.as_slice() {
        [] => "a --decryption-keys-path directory".into(),
        [one] => one.display().to_string(),
        many => many
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" or "),
    }
}

/// A key source for messages: files relative to the keys directory they are in.
fn short_source(source: &keys::KeySource, config: &Config) -> String {
    if let keys::KeySource::File(path) = source {
        for dir in &config.key_paths {
            if let Ok(rel) = path.strip_prefix(dir) {
                if !rel.as_os_str().is_empty() {
                    return rel.display().to_string();
                }
            }
        }
    }
    source.to_string()
}

/// One line saying which keys were tried on which wrapped keys, and what was skipped.
fn summarize_failure(ring: &KeyRing, failure: &keywrap::NoKeyFits, config: &Config) -> String {
    let mut out = String::new();
    let kinds: Vec<String> = ring.private_keys.iter().map(|k| k.describe()).collect();
    if kinds.is_empty() && ring.openpgp.is_empty() {
        let _ = write!(out, "no usable private key was found");
        if config.key_paths.is_empty() {
            let _ = write!(
                out,
                " (no --decryption-keys-path given and none in the payload)"
            );
        }
    } else {
        let mut have = kinds;
        if !ring.openpgp.is_empty() {
            have.push(format!("{} OpenPGP keyring(s)", ring.openpgp.len()));
        }
        let _ = write!(
            out,
            "none of the local keys ({}) opens its layer key",
            have.join(", ")
        );
    }
    if !failure.attempts.is_empty() {
        let attempts: Vec<String> = failure
            .attempts
            .iter()
            .take(8)
            .map(ToString::to_string)
            .collect();
        let _ = write!(out, "; tried {}", attempts.join("; "));
        if failure.attempts.len() > 8 {
            let _ = write!(out, "; and {} more", failure.attempts.len() - 8);
        }
    }
    if !failure.unsupported.is_empty() {
        let _ = write!(
            out,
            "; the layer also has {} recipients, which this decoder does not support",
            failure.unsupported.join(", ")
        );
    }
    if !ring.skipped.is_empty() {
        // Most relevant first (an encrypted key without its password before a README), each
        // file named relative to its keys directory.
        let mut skipped: Vec<&keys::Skipped> = ring.skipped.iter().collect();
        skipped.sort_by_key(|s| s.relevance);
        let shown: Vec<String> = skipped
            .iter()
            .take(5)
            .map(|s| format!("{} ({})", short_source(&s.source, config), s.reason))
            .collect();
        let _ = write!(out, "; skipped {}", shown.join(", "));
        if skipped.len() > 5 {
            let _ = write!(out, " and {} more", skipped.len() - 5);
        }
    }
    out
}
