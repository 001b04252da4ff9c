//! Go-compatible base64 and JSON field matching.
//!
//! Go's `encoding/json` decodes `[]byte` with `base64.StdEncoding`: padding required, `\r` and
//! `\n` ignored, non-canonical trailing bits accepted. It also matches object keys to struct
//! fields case-insensitively. ocicrypt's annotations use the same `StdEncoding`. These helpers
//! reproduce exactly that, so anything Go ocicrypt reads, we read.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, Engine, GeneralPurpose, GeneralPurposeConfig};

use crate::secret::SecretBytes;

const GO_STD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);

/// Why a base64 string was rejected (never includes the input, which may be secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not valid padded standard base64")]
pub struct Base64Error;

/// Decodes Go `StdEncoding` base64, ignoring `\r` and `\n` as Go does.
pub fn decode_std(input: &str) -> Result<Vec<u8>, Base64Error> {
    if input.bytes().any(|b| b == b'\r' || b == b'\n') {
        let cleaned: zeroize::Zeroizing<String> =
            zeroize::Zeroizing::new(input.chars().filter(|c| *c != '\r' && *c != '\n').collect());
        return GO_STD.decode(cleaned.as_bytes()).map_err(|_| Base64Error);
    }
    GO_STD.decode(input.as_bytes()).map_err(|_| Base64Error)
}

/// Like [`decode_std`], for input that is key material.
pub fn decode_std_secret(input: &str) -> Result<SecretBytes, Base64Error> {
    decode_std(input).map(SecretBytes::new)
}

/// Encodes with standard padded base64 (used by tests and diagnostics of public data).
pub fn encode_std(input: &[u8]) -> String {
    GO_STD.encode(input)
}

/// Decodes unpadded base64url (RFC 7515 §2), as JOSE uses.
pub fn decode_url(input: &str) -> Result<Vec<u8>, Base64Error> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(input.as_bytes())
        .map_err(|_| Base64Error)
}

/// Whether a JSON object key selects the Go struct field `name` (ASCII case-insensitive, as
/// Go's `encoding/json` does for the field names ocicrypt uses).
pub fn field_is(key: &str, name: &str) -> bool {
    key.eq_ignore_ascii_case(name)
}

/// A one-line description of a JSON error that never echoes the input (it may hold key
/// material): serde's type-mismatch messages can quote a string value, so everything from the
/// first quote on is dropped.
pub fn json_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Data => {
            let text = e.to_string();
            let text = text.split(" at line ").next().unwrap_or("");
            let text = match text.find(['"', '`']) {
                Some(pos) => format!("{}…", text[..pos].trim_end()),
                None => text.to_string(),
            };
            format!("{text} (line {} column {})", e.line(), e.column())
        }
        Category::Eof => "unexpected end of JSON".to_string(),
        Category::Syntax | Category::Io => {
            format!("not valid JSON (line {} column {})", e.line(), e.column())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_std_encoding_rules() {
        assert_eq!(decode_std("aGVsbG8=").unwrap(), b"hello");
        // Go ignores CR and LF anywhere.
        assert_eq!(decode_std("aGVs\r\nbG8=").unwrap(), b"hello");
        // Padding is required.
        assert!(decode_std("aGVsbG8").is_err());
        // URL-safe alphabet is not StdEncoding.
        assert!(decode_std("-_-_").is_err());
        // Non-canonical trailing bits are accepted, as Go's non-strict decoder does.
        assert_eq!(decode_std("aGVsbG9=").unwrap(), b"hello");
        assert_eq!(decode_std("").unwrap(), b"");
    }

    #[test]
    fn base64url() {
        assert_eq!(decode_url("aGVsbG8").unwrap(), b"hello");
        assert!(decode_url("aGVsbG8=").is_err());
    }

    #[test]
    fn field_matching_is_case_insensitive() {
        assert!(field_is("decryptconfig", "DecryptConfig"));
        assert!(field_is("MEDIATYPE", "mediaType"));
        assert!(!field_is("mediaTypes", "mediaType"));
    }
}
