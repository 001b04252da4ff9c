//! Layer block-cipher options: the public options in the `pubopts` annotation and the private
//! options inside every wrapped key (protocol.md §3.3, §3.4), resolved into [`StreamParams`].
//!
//! Go ocicrypt reads both as JSON with case-insensitive keys, and looks a cipher option up in the
//! public options *before* the private ones. That lets anyone who can edit the manifest replace
//! the nonce without touching the MAC (protocol.md §7.5). We refuse a public nonce, and require
//! the private nonce to be present and exactly 16 bytes (Go silently picks a random one when it
//! is missing, and panics when its length is wrong).

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use crate::encoding::{decode_std, field_is, json_error};
use crate::secret::{LayerKey, Nonce, SecretBytes, LAYER_KEY_LEN, MAC_LEN, NONCE_LEN};

/// The only cipher ocicrypt defines.
pub const AES_256_CTR_HMAC_SHA256: &str = "AES_256_CTR_HMAC_SHA256";

/// Why the layer options are unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionsError {
    /// `pubopts` is not base64 of a JSON object of the expected shape.
    #[error("the public options (org.opencontainers.image.enc.pubopts) are malformed: {0}")]
    MalformedPublic(String),
    /// The unwrapped private options are not a JSON object of the expected shape.
    #[error("the unwrapped private layer options are malformed: {0}")]
    MalformedPrivate(String),
    /// `cipher` is empty.
    #[error("the public options name no cipher")]
    NoCipher,
    /// `cipher` names something other than `AES_256_CTR_HMAC_SHA256`.
    #[error("the layer uses cipher {0:?}; only AES_256_CTR_HMAC_SHA256 is defined by ocicrypt")]
    UnsupportedCipher(String),
    /// `hmac` missing or empty.
    #[error("the public options carry no HMAC, so the layer cannot be authenticated")]
    NoMac,
    /// `hmac` of the wrong length.
    #[error("the public options carry a {0}-byte HMAC; AES_256_CTR_HMAC_SHA256 needs 32 bytes")]
    MacLength(usize),
    /// A nonce in the public (unauthenticated) options.
    #[error(
        "the public options carry a nonce, which would override the private one without \
         being authenticated; refusing the layer"
    )]
    PublicNonce,
    /// `symkey` of the wrong length.
    #[error("the layer key is {0} bytes; AES_256_CTR_HMAC_SHA256 needs 32 bytes")]
    KeyLength(usize),
    /// No private nonce.
    #[error("the private options carry no nonce")]
    NoNonce,
    /// Private nonce of the wrong length.
    #[error("the private options carry a {0}-byte nonce; AES-CTR needs 16 bytes")]
    NonceLength(usize),
}

/// Public options (`pubopts`): not secret, not authenticated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublicOptions {
    /// Cipher name.
    pub cipher: String,
    /// Expected HMAC-SHA256 of the ciphertext.
    pub hmac: Vec<u8>,
    /// Cipher options (ocicrypt writes `{}`).
    pub cipher_options: BTreeMap<String, Vec<u8>>,
}

/// Private options: the plaintext of a wrapped key.
#[derive(Debug, Default)]
pub struct PrivateOptions {
    /// The layer key.
    pub symkey: SecretBytes,
    /// Digest of the plaintext as the encrypting tool described it (never checked, §3.4).
    pub digest: String,
    /// Cipher options; `nonce` is the one that matters.
    pub cipher_options: BTreeMap<String, SecretBytes>,
}

/// Everything the stream cipher needs, validated.
#[derive(Debug)]
pub struct StreamParams {
    /// AES-256 key, also the HMAC key.
    pub key: LayerKey,
    /// Initial counter block.
    pub nonce: Nonce,
    /// Expected HMAC-SHA256 over the whole ciphertext.
    pub mac: [u8; MAC_LEN],
}

/// Parses the decoded `pubopts` JSON.
pub fn parse_public(json: &[u8]) -> Result<PublicOptions, OptionsError> {
    let mut de = serde_json::Deserializer::from_slice(json);
    let parsed = OptionsSeed { private: false }
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|e| OptionsError::MalformedPublic(json_error(&e)))?;
    Ok(PublicOptions {
        cipher: parsed.cipher,
        hmac: parsed.hmac.map(|b| b.expose().to_vec()).unwrap_or_default(),
        cipher_options: parsed
            .cipher_options
            .into_iter()
            .map(|(k, v)| (k, v.expose().to_vec()))
            .collect(),
    })
}

/// Parses the unwrapped private-options JSON.
pub fn parse_private(json: &[u8]) -> Result<PrivateOptions, OptionsError> {
    let mut de = serde_json::Deserializer::from_slice(json);
    let parsed = OptionsSeed { private: true }
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|e| OptionsError::MalformedPrivate(json_error(&e)))?;
    Ok(PrivateOptions {
        symkey: parsed.symkey.unwrap_or_default(),
        digest: parsed.digest,
        cipher_options: parsed.cipher_options,
    })
}

/// Checks both option sets and produces the stream parameters.
pub fn resolve(
    public: &PublicOptions,
    private: &PrivateOptions,
) -> Result<StreamParams, OptionsError> {
    if public.cipher.is_empty() {
        return Err(OptionsError::NoCipher);
    }
    if public.cipher != AES_256_CTR_HMAC_SHA256 {
        let shown: String = public
            .cipher
            .chars()
            .filter(|c| !c.is_control())
            .take(64)
            .collect();
        return Err(OptionsError::UnsupportedCipher(shown));
    }
    if public.hmac.is_empty() {
        return Err(OptionsError::NoMac);
    }
    let mac: [u8; MAC_LEN] = public
        .hmac
        .as_slice()
        .try_into()
        .map_err(|_| OptionsError::MacLength(public.hmac.len()))?;
    if public.cipher_options.keys().any(|k| field_is(k, "nonce")) {
        return Err(OptionsError::PublicNonce);
    }
    let key = LayerKey::from_slice(private.symkey.expose())
        .ok_or(OptionsError::KeyLength(private.symkey.len()))?;
    debug_assert_eq!(key.expose().len(), LAYER_KEY_LEN);
    let nonce_bytes = private
        .cipher_options
        .get("nonce")
        .ok_or(OptionsError::NoNonce)?;
    let nonce = Nonce::from_slice(nonce_bytes.expose())
        .ok_or(OptionsError::NonceLength(nonce_bytes.len()))?;
    debug_assert_eq!(nonce.expose().len(), NONCE_LEN);
    Ok(StreamParams { key, nonce, mac })
}

#[derive(Default)]
struct RawOptions {
    cipher: String,
    hmac: Option<SecretBytes>,
    symkey: Option<SecretBytes>,
    digest: String,
    cipher_options: BTreeMap<String, SecretBytes>,
}

struct OptionsSeed {
    private: bool,
}

impl<'de> DeserializeSeed<'de> for OptionsSeed {
    type Value = RawOptions;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<RawOptions, D::Error> {
        d.deserialize_map(OptionsVisitor {
            private: self.private,
        })
    }
}

struct OptionsVisitor {
    private: bool,
}

impl<'de> Visitor<'de> for OptionsVisitor {
    type Value = RawOptions;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawOptions, A::Error> {
        let mut out = RawOptions::default();
        while let Some(key) = map.next_key::<String>()? {
            if !self.private && field_is(&key, "cipher") {
                out.cipher = map
                    .next_value::<Option<String>>()
                    .map_err(|_| de::Error::custom("cipher is not a string"))?
                    .unwrap_or_default();
            } else if !self.private && field_is(&key, "hmac") {
                out.hmac = map.next_value_seed(Base64Seed("hmac"))?;
            } else if self.private && field_is(&key, "symkey") {
                out.symkey = map.next_value_seed(Base64Seed("symkey"))?;
            } else if self.private && field_is(&key, "digest") {
                out.digest = map
                    .next_value::<Option<String>>()
                    .map_err(|_| de::Error::custom("digest is not a string"))?
                    .unwrap_or_default();
            } else if field_is(&key, "cipheroptions") {
                out.cipher_options = map.next_value_seed(CipherOptionsSeed)?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(out)
    }
}

struct Base64Seed(&'static str);

impl<'de> DeserializeSeed<'de> for Base64Seed {
    type Value = Option<SecretBytes>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(Base64Visitor(self.0))
    }
}

struct Base64Visitor(&'static str);

impl<'de> Visitor<'de> for Base64Visitor {
    type Value = Option<SecretBytes>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: a base64 string or null", self.0)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        decode_std(v)
            .map(|b| Some(SecretBytes::new(b)))
            .map_err(|_| E::custom(format!("{} is not valid base64", self.0)))
    }
}

struct CipherOptionsSeed;

impl<'de> DeserializeSeed<'de> for CipherOptionsSeed {
    type Value = BTreeMap<String, SecretBytes>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(CipherOptionsVisitor)
    }
}

struct CipherOptionsVisitor;

impl<'de> Visitor<'de> for CipherOptionsVisitor {
    type Value = BTreeMap<String, SecretBytes>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("cipheroptions: an object of base64 strings, or null")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(BTreeMap::new())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(Base64Seed("a cipheroptions value"))?;
            // Go's map[string][]byte keeps keys as written; `nonce` is looked up exactly.
            out.insert(key, value.unwrap_or_default());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUB: &[u8] = br#"{"cipher":"AES_256_CTR_HMAC_SHA256","hmac":"5OJp+ZL+cBrQ74G1ysWBIe6RXHSkZpKc5VD0zl5tqIA=","cipheroptions":{}}"#;
    const PRIV: &[u8] = br#"{"symkey":"ERERERERERERERERERERERERERERERERERERERERERE=","digest":"sha256:509ddb85fdf92f197d32570c005cdcb6dffa398f088bd1a013459f6fb1f730ef","cipheroptions":{"nonce":"/////////////////////g=="}}"#;

    #[test]
    fn resolves_the_protocol_vector() {
        let p = resolve(&parse_public(PUB).unwrap(), &parse_private(PRIV).unwrap()).unwrap();
        assert_eq!(p.key.expose(), &[0x11; 32]);
        let mut nonce = [0xff; 16];
        nonce[15] = 0xfe;
        assert_eq!(p.nonce.expose(), &nonce);
        assert_eq!(p.mac[0], 0xe4);
    }

    #[test]
    fn keys_match_case_insensitively_like_go() {
        let public = parse_public(br#"{"CIPHER":"AES_256_CTR_HMAC_SHA256","Hmac":"5OJp+ZL+cBrQ74G1ysWBIe6RXHSkZpKc5VD0zl5tqIA=","CipherOptions":null,"x":1}"#).unwrap();
        assert_eq!(public.cipher, AES_256_CTR_HMAC_SHA256);
        assert!(public.cipher_options.is_empty());
    }

    fn err(public: &[u8], private: &[u8]) -> OptionsError {
        match (parse_public(public), parse_private(private)) {
            (Ok(a), Ok(b)) => resolve(&a, &b).unwrap_err(),
            (Err(e), _) | (_, Err(e)) => e,
        }
    }

    #[test]
    fn every_bad_option_is_refused() {
        let no_cipher = br#"{"hmac":"5OJp+ZL+cBrQ74G1ysWBIe6RXHSkZpKc5VD0zl5tqIA="}"#;
        assert_eq!(err(no_cipher, PRIV), OptionsError::NoCipher);
        let other =
            br#"{"cipher":"AES_128_GCM","hmac":"5OJp+ZL+cBrQ74G1ysWBIe6RXHSkZpKc5VD0zl5tqIA="}"#;
        assert!(
            matches!(err(other, PRIV), OptionsError::UnsupportedCipher(c) if c == "AES_128_GCM")
        );
        let no_mac = br#"{"cipher":"AES_256_CTR_HMAC_SHA256"}"#;
        assert_eq!(err(no_mac, PRIV), OptionsError::NoMac);
        let short_mac = br#"{"cipher":"AES_256_CTR_HMAC_SHA256","hmac":"AAAA"}"#;
        assert_eq!(err(short_mac, PRIV), OptionsError::MacLength(3));
        let pub_nonce = br#"{"cipher":"AES_256_CTR_HMAC_SHA256","hmac":"5OJp+ZL+cBrQ74G1ysWBIe6RXHSkZpKc5VD0zl5tqIA=","cipheroptions":{"nonce":"AAAAAAAAAAAAAAAAAAAAAA=="}}"#;
        assert_eq!(err(pub_nonce, PRIV), OptionsError::PublicNonce);
        let short_key =
            br#"{"symkey":"AAAA","cipheroptions":{"nonce":"/////////////////////g=="}}"#;
        assert_eq!(err(PUB, short_key), OptionsError::KeyLength(3));
        let no_nonce = br#"{"symkey":"ERERERERERERERERERERERERERERERERERERERERERE="}"#;
        assert_eq!(err(PUB, no_nonce), OptionsError::NoNonce);
        let nonce15 = br#"{"symkey":"ERERERERERERERERERERERERERERERERERERERERERE=","cipheroptions":{"nonce":"AAAAAAAAAAAAAAAAAAAA"}}"#;
        assert_eq!(err(PUB, nonce15), OptionsError::NonceLength(15));
        assert!(matches!(err(b"[]", PRIV), OptionsError::MalformedPublic(_)));
        assert!(matches!(
            err(PUB, b"{\"symkey\":7}"),
            OptionsError::MalformedPrivate(_)
        ));
        assert!(matches!(
            err(PUB, b"{\"symkey\":\"!!\"}"),
            OptionsError::MalformedPrivate(_)
        ));
    }

    #[test]
    fn private_errors_do_not_echo_values() {
        let e = err(PUB, br#"{"symkey":["c2VjcmV0"]}"#).to_string();
        assert!(!e.contains("c2VjcmV0"), "{e}");
        let e = err(PUB, br#"{"cipheroptions":{"nonce":"c2VjcmV0!"}}"#).to_string();
        assert!(!e.contains("c2VjcmV0"), "{e}");
    }
}
