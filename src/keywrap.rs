//! Unwrapping the layer key: one [`KeyUnwrapper`] per annotation scheme, tried in a fixed order.
//!
//! Every wrapped key of every supported scheme is tried against every local key that could fit
//! it; a key that does not fit is not an error until none fits. The order is fixed (see [`all`]),
//! unlike Go ocicrypt's map order, so errors are deterministic.

pub mod jwe;
pub mod pgp;
pub mod pkcs7;

use std::fmt;

use crate::annotations::LayerAnnotations;
use crate::keys::KeyRing;
use crate::secret::SecretBytes;

/// Why one wrapped key could not be unwrapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnwrapError {
    /// Well-formed, but none of the local keys opens it.
    #[error("no local key opens it (it is for {recipients})")]
    NoKeyFits {
        /// Who it is for, as far as the blob says (`RSA-2048`, `EC P-256`, key IDs, …).
        recipients: String,
    },
    /// There is no local key of a kind this scheme can use.
    #[error("no local key of a kind it can use (it is for {recipients})")]
    NoUsableKeys {
        /// Who it is for.
        recipients: String,
    },
    /// The blob is malformed or uses something this decoder refuses.
    #[error("{0}")]
    Malformed(String),
}

/// A successfully unwrapped layer key.
#[derive(Debug)]
pub struct Unwrapped {
    /// The private-options JSON.
    pub private_options: SecretBytes,
    /// Scheme that opened it.
    pub scheme: &'static str,
    /// Index of the wrapped key in the annotation list.
    pub index: usize,
}

/// One key-wrap scheme.
pub trait KeyUnwrapper {
    /// The scheme: the annotation is `org.opencontainers.image.enc.keys.<scheme>`.
    fn scheme(&self) -> &'static str;

    /// Tries the local keys on one wrapped-key blob and returns the private-options JSON.
    fn unwrap_key(&self, keys: &KeyRing, blob: &[u8]) -> Result<SecretBytes, UnwrapError>;
}

/// The unwrappers this build supports, in the order they are tried.
pub fn all() -> Vec<Box<dyn KeyUnwrapper>> {
    vec![
        Box::new(jwe::Jwe),
        Box::new(pkcs7::Pkcs7),
        Box::new(pgp::Pgp),
    ]
}

/// One failed attempt, for the final error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// Scheme.
    pub scheme: String,
    /// Index in the annotation list.
    pub index: usize,
    /// What went wrong.
    pub error: UnwrapError,
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]: {}", self.scheme, self.index, self.error)
    }
}

/// Why no wrapped key could be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoKeyFits {
    /// Every attempt on a supported scheme.
    pub attempts: Vec<Attempt>,
    /// Schemes present on the layer that this decoder does not support (`pkcs11`, `provider.x`).
    pub unsupported: Vec<String>,
}

/// Tries every supported scheme's wrapped keys, in order, and returns the first that opens.
pub fn unwrap_layer_key(
    unwrappers: &[Box<dyn KeyUnwrapper>],
    annotations: &LayerAnnotations,
    keys: &KeyRing,
) -> Result<Unwrapped, NoKeyFits> {
    let mut attempts = Vec::new();
    for unwrapper in unwrappers {
        let scheme = unwrapper.scheme();
        for wrapped in annotations.scheme(scheme) {
            let result = match &wrapped.blob {
                Ok(blob) => unwrapper.unwrap_key(keys, blob),
                Err(reason) => Err(UnwrapError::Malformed(reason.clone())),
            };
            match result {
                Ok(private_options) => {
                    return Ok(Unwrapped {
                        private_options,
                        scheme,
                        index: wrapped.index,
                    })
                }
                Err(error) => attempts.push(Attempt {
                    scheme: scheme.to_string(),
                    index: wrapped.index,
                    error,
                }),
            }
        }
    }
    let unsupported = annotations
        .wrapped
        .keys()
        .filter(|s| !unwrappers.iter().any(|u| u.scheme() == s.as_str()))
        .cloned()
        .collect();
    Err(NoKeyFits {
        attempts,
        unsupported,
    })
}
