//! Secret-bearing value types.
//!
//! Everything that is, or can reveal, key material lives in one of these types: the bytes are
//! wiped when the value is dropped, and `Debug` prints only a length, so no `{:?}` anywhere in
//! the crate (or in a panic message) can leak a key.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Length of the AES-256 layer key (the ocicrypt `symkey`).
pub const LAYER_KEY_LEN: usize = 32;
/// Length of the AES-CTR initial counter block (the ocicrypt `nonce`).
pub const NONCE_LEN: usize = 16;
/// Length of an HMAC-SHA256 tag.
pub const MAC_LEN: usize = 32;

/// Arbitrary secret bytes: a key file, a password, an unwrapped private-options document.
#[derive(Clone, Default, Zeroize, ZeroizeOnDrop)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// Takes ownership of `bytes`; they are wiped when the value is dropped.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The secret bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes (not secret).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Vec<u8>> for SecretBytes {
    fn from(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
}

impl From<Zeroizing<Vec<u8>>> for SecretBytes {
    fn from(mut bytes: Zeroizing<Vec<u8>>) -> Self {
        Self(std::mem::take(&mut *bytes))
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes({} bytes, redacted)", self.0.len())
    }
}

/// The 32-byte AES-256 layer encryption key, also the HMAC key (protocol.md §3.5).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct LayerKey([u8; LAYER_KEY_LEN]);

impl LayerKey {
    /// Builds a key from exactly [`LAYER_KEY_LEN`] bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        let array: [u8; LAYER_KEY_LEN] = bytes.try_into().ok()?;
        Some(Self(array))
    }

    /// The key bytes.
    pub fn expose(&self) -> &[u8; LAYER_KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for LayerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LayerKey(redacted)")
    }
}

/// The 16-byte initial counter block. Not secret on its own, but wiped with the key it
/// belongs to so that a memory dump of a finished decoder reveals neither.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Nonce([u8; NONCE_LEN]);

impl Nonce {
    /// Builds a nonce from exactly [`NONCE_LEN`] bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        let array: [u8; NONCE_LEN] = bytes.try_into().ok()?;
        Some(Self(array))
    }

    /// The nonce bytes.
    pub fn expose(&self) -> &[u8; NONCE_LEN] {
        &self.0
    }
}

impl fmt::Debug for Nonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Nonce(redacted)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_bytes() {
        let key = LayerKey::from_slice(&[0x41; 32]).unwrap();
        let nonce = Nonce::from_slice(&[0x42; 16]).unwrap();
        let bytes = SecretBytes::new(b"hunter2hunter2".to_vec());
        let all = format!("{key:?} {nonce:?} {bytes:?}");
        assert!(!all.contains("65"), "{all}");
        assert!(!all.contains("41"), "{all}");
        assert!(!all.contains("hunter2"), "{all}");
        assert!(all.contains("redacted"));
    }

    #[test]
    fn lengths_are_enforced() {
        assert!(LayerKey::from_slice(&[0; 31]).is_none());
        assert!(LayerKey::from_slice(&[0; 33]).is_none());
        assert!(Nonce::from_slice(&[0; 15]).is_none());
        assert!(Nonce::from_slice(&[0; 16]).is_some());
    }
}
