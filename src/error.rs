//! The decoder's errors, each rendered as one operator-readable line.
//!
//! containerd uses the decoder's stderr verbatim as the error of the failed unpack (protocol.md
//! §1.5), so [`Error::line`] says what went wrong *and* what to do, on one line, and never
//! contains key material: no variant holds key bytes, and the texts of wrapped errors are built
//! from lengths, names and paths only.

use crate::annotations::AnnotationError;
use crate::options::OptionsError;
use crate::payload::PayloadError;
use crate::stream::StreamError;

/// Everything that can stop a decryption.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad command line.
    #[error("{0}")]
    Usage(String),
    /// The fd-3 payload is unusable.
    #[error(transparent)]
    Payload(#[from] PayloadError),
    /// No descriptor for the layer.
    #[error("{0}")]
    NoDescriptor(String),
    /// The layer's media type is not an encrypted type we handle.
    #[error("layer {layer} has media type {media_type:?}, which is not an ocicrypt-encrypted layer type")]
    UnsupportedMediaType {
        /// Layer digest.
        layer: String,
        /// Its media type.
        media_type: String,
    },
    /// The annotations are missing or malformed.
    #[error("cannot decrypt layer {layer}: {source}")]
    Annotations {
        /// Layer digest.
        layer: String,
        /// Why.
        source: AnnotationError,
    },
    /// No local key opens any wrapped key.
    #[error("cannot decrypt layer {layer}: {summary}")]
    NoKeyFits {
        /// Layer digest.
        layer: String,
        /// What was tried, and what was skipped.
        summary: String,
        /// Where keys are looked for, for the hint.
        key_paths: String,
    },
    /// The layer options are invalid.
    #[error("cannot decrypt layer {layer}: {source}")]
    Options {
        /// Layer digest.
        layer: String,
        /// Why.
        source: OptionsError,
    },
    /// Streaming failed.
    #[error("cannot decrypt layer {layer}: {source}")]
    Stream {
        /// Layer digest.
        layer: String,
        /// Why.
        source: StreamError,
    },
}

impl Error {
    /// What the operator should do about it.
    pub fn hint(&self) -> String {
        match self {
            Error::Usage(_) => "run ctd-decoder --help".into(),
            Error::Payload(_) => "this payload comes from the containerd client that pulled the image; \
                 check that containerd and its client (CRI, ctr-enc) are the versions you expect"
                .into(),
            Error::NoDescriptor(_) => "if containerd's root is not /var/lib/containerd, pass \
                 --content-store <root>/io.containerd.content.v1.content in the stream processor's \
                 args; or pull through CRI with key_model = \"node\" (and use_local_image_pull = \
                 true on containerd 2.x), which sends the descriptor on fd 3"
                .into(),
            Error::UnsupportedMediaType { .. } => {
                "check the media types in the [stream_processors] accepts lists of the containerd config"
                    .into()
            }
            Error::Annotations { .. } => {
                "the image was not encrypted by an ocicrypt tool or its manifest was altered; \
                 re-encrypt it (skopeo copy --encryption-key, ctr-enc images encrypt)"
                    .into()
            }
            Error::NoKeyFits { key_paths, .. } => format!(
                "put the private key of one of the layer's recipients in {key_paths}, or pass it \
                 with ctr-enc --key"
            ),
            Error::Options { .. } => {
                "the layer was encrypted by a tool this decoder does not trust or understand; \
                 re-encrypt it with skopeo or ctr-enc"
                    .into()
            }
            Error::Stream { source, .. } => match source {
                StreamError::MacMismatch { .. } => {
                    "the layer is not the one its manifest describes; pull it again, and if this \
                     repeats, treat the registry content as tampered"
                        .into()
                }
                StreamError::Truncated { .. } | StreamError::Extended { .. } => {
                    "pull the image again; if this repeats, the registry serves a damaged blob".into()
                }
                StreamError::Output(_) => "nothing to fix in the decoder; see containerd's log".into(),
                StreamError::Input(_) => "see containerd's log for why the layer could not be read".into(),
                StreamError::Spool { .. } => {
                    "give --spool-dir a writable directory on a disk with room for the layer, or \
                     drop --verify-before-release"
                        .into()
                }
                StreamError::Internal => "please report this bug".into(),
            },
        }
    }

    /// The single line printed on stderr: `ctd-decoder: <what>; <what to do>`.
    pub fn line(&self) -> String {
        one_line(&format!("ctd-decoder: {self}; {}", self.hint()))
    }
}

/// Collapses any line breaks so the message stays on one line.
pub fn one_line(text: &str) -> String {
    text.split(['\n', '\r'])
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}
