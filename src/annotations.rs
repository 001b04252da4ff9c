//! The `org.opencontainers.image.enc.*` annotations of a layer descriptor (protocol.md §3.2).
//!
//! `org.opencontainers.image.enc.keys.<scheme>` holds a comma-separated list of standard base64
//! blobs, one wrapped layer key each; `org.opencontainers.image.enc.pubopts` holds the base64 of
//! the public options JSON. Annotations come from the registry and are untrusted: every element is
//! decoded on its own, and a malformed one is reported without stopping the others (a layer that
//! another element can open still decrypts; Go gives up on the whole scheme instead).

use std::collections::BTreeMap;

use crate::encoding::decode_std;
use crate::options::{self, OptionsError, PublicOptions};

/// Prefix of the wrapped-key annotations.
pub const KEYS_PREFIX: &str = "org.opencontainers.image.enc.keys.";
/// The public options annotation.
pub const PUBOPTS: &str = "org.opencontainers.image.enc.pubopts";

/// Why the annotations are unusable as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnotationError {
    /// No wrapped-key annotation at all.
    #[error("the layer descriptor has no org.opencontainers.image.enc.keys.* annotation, so it carries no wrapped layer key")]
    NoWrappedKeys,
    /// No `pubopts`.
    #[error("the layer descriptor has no {PUBOPTS} annotation (cipher and HMAC)")]
    NoPublicOptions,
    /// `pubopts` is not base64.
    #[error("the {PUBOPTS} annotation is not valid base64")]
    PublicOptionsBase64,
    /// `pubopts` decodes to something unusable.
    #[error(transparent)]
    PublicOptions(#[from] OptionsError),
}

/// One element of a wrapped-key annotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// Position in the comma-separated list (0-based).
    pub index: usize,
    /// The decoded blob, or why it could not be decoded.
    pub blob: Result<Vec<u8>, String>,
}

/// The wrapped keys and public options of one layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerAnnotations {
    /// Wrapped keys per scheme (`jwe`, `pkcs7`, `pgp`, `pkcs11`, `provider.<name>`, …), in
    /// annotation order.
    pub wrapped: BTreeMap<String, Vec<WrappedKey>>,
    /// Decoded public options.
    pub public: PublicOptions,
}

impl LayerAnnotations {
    /// The wrapped keys of `scheme` (empty when the layer has none).
    pub fn scheme(&self, scheme: &str) -> &[WrappedKey] {
        self.wrapped.get(scheme).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// Extracts wrapped keys and public options from a descriptor's annotations.
pub fn parse(annotations: &BTreeMap<String, String>) -> Result<LayerAnnotations, AnnotationError> {
    let mut wrapped = BTreeMap::new();
    for (name, value) in annotations {
        let Some(scheme) = name.strip_prefix(KEYS_PREFIX) else {
            continue;
        };
        if scheme.is_empty() || value.is_empty() {
            continue;
        }
        let keys: Vec<WrappedKey> = value
            .split(',')
            .enumerate()
            .map(|(index, element)| WrappedKey {
                index,
                blob: decode_std(element).map_err(|_| "not valid base64".to_string()),
            })
            .collect();
        wrapped.insert(scheme.to_string(), keys);
    }
    if wrapped.is_empty() {
        return Err(AnnotationError::NoWrappedKeys);
    }
    let pubopts = annotations
        .get(PUBOPTS)
        .ok_or(AnnotationError::NoPublicOptions)?;
    let json = decode_std(pubopts).map_err(|_| AnnotationError::PublicOptionsBase64)?;
    let public = options::parse_public(&json)?;
    Ok(LayerAnnotations { wrapped, public })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const PUB: &str = "eyJjaXBoZXIiOiJBRVNfMjU2X0NUUl9ITUFDX1NIQTI1NiIsImhtYWMiOiJJRllVeUFGMzNHWDh5bjVJeWNITXhBaWppb2U0Ry92d2QzWVVNQTNmSnVjPSIsImNpcGhlcm9wdGlvbnMiOnt9fQ==";

    #[test]
    fn splits_schemes_and_elements() {
        let a = parse(&map(&[
            (
                "org.opencontainers.image.enc.keys.jwe",
                "aGVsbG8=,d29ybGQ=,!!",
            ),
            ("org.opencontainers.image.enc.keys.provider.kbs", "eA=="),
            ("org.opencontainers.image.enc.pubopts", PUB),
            ("org.opencontainers.image.title", "x"),
        ]))
        .unwrap();
        let jwe = a.scheme("jwe");
        assert_eq!(jwe.len(), 3);
        assert_eq!(jwe[0].blob.as_deref().unwrap(), b"hello");
        assert_eq!(jwe[1].blob.as_deref().unwrap(), b"world");
        assert!(jwe[2].blob.is_err());
        assert_eq!(a.scheme("provider.kbs").len(), 1);
        assert!(a.scheme("pgp").is_empty());
        assert_eq!(a.public.cipher, "AES_256_CTR_HMAC_SHA256");
        assert_eq!(a.public.hmac.len(), 32);
    }

    #[test]
    fn missing_or_bad_annotations_are_errors() {
        assert_eq!(
            parse(&map(&[("org.opencontainers.image.enc.pubopts", PUB)])),
            Err(AnnotationError::NoWrappedKeys)
        );
        assert_eq!(
            parse(&map(&[("org.opencontainers.image.enc.keys.jwe", "eA==")])),
            Err(AnnotationError::NoPublicOptions)
        );
        assert_eq!(
            parse(&map(&[
                ("org.opencontainers.image.enc.keys.jwe", "eA=="),
                ("org.opencontainers.image.enc.pubopts", "%%%"),
            ])),
            Err(AnnotationError::PublicOptionsBase64)
        );
        assert!(matches!(
            parse(&map(&[
                ("org.opencontainers.image.enc.keys.jwe", "eA=="),
                ("org.opencontainers.image.enc.pubopts", "eA=="),
            ])),
            Err(AnnotationError::PublicOptions(
                OptionsError::MalformedPublic(_)
            ))
        ));
    }
}
