//! `ctd-decoder`: a drop-in replacement for containerd/imgcrypt's stream processor that decrypts
//! ocicrypt-encrypted OCI image layers.
//!
//! containerd runs the binary with the encrypted blob on stdin and, on some paths, a payload on
//! fd 3 (see [`payload`]); the original blob goes to stdout. [`run`] is the whole job once the
//! process-specific parts (fd 3, stdio, arguments) are in hand:
//!
//! 1. the layer descriptor from the payload ([`payload`]);
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
pub mod stream;

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::path::PathBuf;

pub use error::Error;
use keys::KeyRing;
use payload::{DecryptParams, Descriptor, Payload};
use stream::{StreamConfig, Verified};

/// How one decoder run is configured (from the command line and environment).
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// `--decryption-keys-path` values, in order.
    pub key_paths: Vec<PathBuf>,
    /// `STREAM_PROCESSOR_MEDIATYPE`, when containerd set it.
    pub media_type: Option<String>,
    /// Limits on reading the keys directories.
    pub key_limits: keys::dir::Limits,
    /// Stream tuning (hold-back, chunk size); `expected_size` is filled from the descriptor.
    pub stream: StreamConfig,
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
    let (params, descriptor) = match payload {
        Some(Payload { params, descriptor: Some(d) }) => (params, d),
        Some(Payload { descriptor: None, .. }) => {
            return Err(Error::NoDescriptor(
                "the payload on fd 3 carries no layer descriptor, so the wrapped layer keys are unknown".into(),
            ))
        }
        None => {
            return Err(Error::NoDescriptor(
                "containerd passed no payload on fd 3, so the layer's descriptor and wrapped keys are unknown".into(),
            ))
        }
    };
    decrypt_layer(config, &params, &descriptor, input, output)
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

    let ring = KeyRing::load(&config.key_paths, params, &config.key_limits);
    let unwrappers = keywrap::all();
    let unwrapped =
        keywrap::unwrap_layer_key(&unwrappers, &annotations, &ring).map_err(|failure| {
            Error::NoKeyFits {
                layer: layer.clone(),
                summary: summarize_failure(&ring, &failure, config),
                key_paths: key_paths_text(config),
            }
        })?;
    let private = options::parse_private(unwrapped.private_options.expose()).map_err(|source| {
        Error::Options {
            layer: layer.clone(),
            source,
        }
    })?;
    let stream_params =
        options::resolve(&annotations.public, &private).map_err(|source| Error::Options {
            layer: layer.clone(),
            source,
        })?;
    // The keys are no longer needed: drop them (OpenSSL wipes them) before streaming.
    let warnings = ring.warnings.clone();
    drop(ring);
    drop(private);

    let stream_config = StreamConfig {
        expected_size: descriptor.size,
        ..config.stream.clone()
    };
    let verified = stream::decrypt(input, output, &stream_params, &stream_config)
        .map_err(|source| Error::Stream { layer, source })?;
    Ok(Report {
        verified,
        opened_by: format!("{}[{}]", unwrapped.scheme, unwrapped.index),
        warnings,
    })
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
        let skipped: Vec<String> = ring
            .skipped
            .iter()
            .take(5)
            .map(|s| format!("{} ({})", s.source, s.reason))
            .collect();
        let _ = write!(out, "; skipped {}", skipped.join(", "));
        if ring.skipped.len() > 5 {
            let _ = write!(out, " and {} more", ring.skipped.len() - 5);
        }
    }
    out
}
