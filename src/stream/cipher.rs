//! The two primitives of `AES_256_CTR_HMAC_SHA256`, each behind a small type.
//!
//! * [`Keystream`]: AES-256 in CTR mode whose 16-byte nonce is the *whole* initial counter block,
//!   incremented as one 128-bit big-endian integer that wraps (Go `cipher.NewCTR`, OpenSSL
//!   `aes-256-ctr`, RustCrypto `Ctr128BE`).
//! * [`Authenticator`]: HMAC-SHA256 keyed with the same 32-byte key, over the ciphertext only;
//!   [`Authenticator::verify`] compares in constant time.
//!
//! Using one key for both is a fact of the ocicrypt format, not a choice of ours.

use aes::Aes256;
use ctr::cipher::{KeyIvInit, StreamCipher};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::secret::{LayerKey, Nonce, MAC_LEN};

type Aes256Ctr = ctr::Ctr128BE<Aes256>;
type HmacSha256 = Hmac<Sha256>;

/// AES-256-CTR keystream state; carries partial blocks across calls, so chunk boundaries can fall
/// anywhere.
pub struct Keystream(Aes256Ctr);

impl Keystream {
    /// Starts the keystream at the nonce.
    pub fn new(key: &LayerKey, nonce: &Nonce) -> Self {
        Self(Aes256Ctr::new(key.expose().into(), nonce.expose().into()))
    }

    /// XORs the next `buf.len()` keystream bytes into `buf` (decrypts in place).
    pub fn apply(&mut self, buf: &mut [u8]) {
        // A 128-bit counter that wraps never runs out (ctr's `remaining` is u128::MAX blocks), so
        // the panicking variant cannot fire; use the fallible one anyway and make the impossible
        // case loud in debug builds only.
        let result = self.0.try_apply_keystream(buf);
        debug_assert!(result.is_ok(), "128-bit CTR keystream exhausted");
    }
}

/// Incremental HMAC-SHA256 over the ciphertext.
pub struct Authenticator(HmacSha256);

impl Authenticator {
    /// Keys the MAC with the layer key.
    pub fn new(key: &LayerKey) -> Self {
        // HMAC accepts keys of any length, so this cannot fail; fall back to an impossible-to-
        // match state rather than panic if it ever did.
        let mac = <HmacSha256 as KeyInit>::new_from_slice(key.expose())
            .unwrap_or_else(|_| <HmacSha256 as KeyInit>::new(&Default::default()));
        Self(mac)
    }

    /// Feeds ciphertext.
    pub fn update(&mut self, ciphertext: &[u8]) {
        self.0.update(ciphertext);
    }

    /// Constant-time comparison of the computed tag with `expected`.
    pub fn verify(self, expected: &[u8; MAC_LEN]) -> bool {
        self.0.verify_slice(expected).is_ok()
    }

    /// The computed tag (tests and the encrypting side of the test suite only).
    pub fn finalize(self) -> [u8; MAC_LEN] {
        self.0.finalize().into_bytes().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        hex::decode(s.split_whitespace().collect::<String>()).unwrap()
    }

    /// NIST SP 800-38A F.5.5 CTR-AES256.Encrypt (and F.5.6 Decrypt: same operation).
    #[test]
    fn nist_sp800_38a_f55_ctr_aes256() {
        let key = LayerKey::from_slice(&hex(
            "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4",
        ))
        .unwrap();
        let nonce = Nonce::from_slice(&hex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff")).unwrap();
        let plaintext = hex(
            "6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51
             30c81c46a35ce411e5fbc1191a0a52ef f69f2445df4f9b17ad2b417be66c3710",
        );
        let ciphertext = hex(
            "601ec313775789a5b7a7f504bbf3d228 f443e3ca4d62b59aca84e990cacaf5c5
             2b0930daa23de94ce87017ba2d84988d dfc9c58db67aada613c2dd08457941a6",
        );
        let mut buf = plaintext.clone();
        Keystream::new(&key, &nonce).apply(&mut buf);
        assert_eq!(buf, ciphertext);
        // Decrypt in uneven pieces: partial blocks must carry over between calls.
        let mut ks = Keystream::new(&key, &nonce);
        let (a, rest) = buf.split_at_mut(5);
        let (b, c) = rest.split_at_mut(23);
        ks.apply(a);
        ks.apply(b);
        ks.apply(c);
        assert_eq!(buf, plaintext);
    }

    /// RFC 4231 test cases 2, 6 and 7 for HMAC-SHA256.
    #[test]
    fn rfc4231_hmac_sha256() {
        // Case 2 uses a 4-byte key, so exercise the MAC type directly.
        let mut m = <HmacSha256 as KeyInit>::new_from_slice(b"Jefe").unwrap();
        m.update(b"what do ya want for nothing?");
        assert_eq!(
            m.finalize().into_bytes().to_vec(),
            hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
        let key = vec![0xaa; 131];
        let mut m = <HmacSha256 as KeyInit>::new_from_slice(&key).unwrap();
        m.update(b"Test Using Larger Than Block-Size Key - Hash Key First");
        assert_eq!(
            m.finalize().into_bytes().to_vec(),
            hex("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
        );
        let mut m = <HmacSha256 as KeyInit>::new_from_slice(&key).unwrap();
        m.update(
            b"This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.",
        );
        assert_eq!(
            m.finalize().into_bytes().to_vec(),
            hex("9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2")
        );
    }

    /// The 32-byte-key path that the layer format uses, cross-checked against RFC 4231 case 1's
    /// structure with OpenSSL (`openssl dgst -sha256 -mac HMAC -macopt hexkey:0b..0b`, 32 bytes).
    #[test]
    fn authenticator_verifies_and_rejects() {
        let key = LayerKey::from_slice(&[0x0b; 32]).unwrap();
        let mut a = Authenticator::new(&key);
        a.update(b"Hi ");
        a.update(b"There");
        let tag = a.finalize();
        assert_eq!(
            tag.to_vec(),
            hex("198a607eb44bfbc69903a0f1cf2bbdc5ba0aa3f3d9ae3c1c7a3b1696a0b68cf7")
        );
        let mut a = Authenticator::new(&key);
        a.update(b"Hi There");
        assert!(a.verify(&tag));
        let mut bad = tag;
        bad[31] ^= 1;
        let mut a = Authenticator::new(&key);
        a.update(b"Hi There");
        assert!(!a.verify(&bad));
    }

    /// protocol.md §3.5: produced by Go ocicrypt 1.0.3 and OpenSSL; the counter wraps in block 2.
    #[test]
    fn ocicrypt_vector_with_counter_wrap() {
        let key = LayerKey::from_slice(&[0x11; 32]).unwrap();
        let mut nonce = [0xff; 16];
        nonce[15] = 0xfe;
        let nonce = Nonce::from_slice(&nonce).unwrap();
        let mut buf = hex("49a78ac2b627fe25ee8d2949b8d6b73119bb1cd9ea78a7a80126234867deeb8e61ad4e8958456e01e724bd29c925487404b1");
        let mut mac = Authenticator::new(&key);
        mac.update(&buf);
        assert_eq!(
            mac.finalize().to_vec(),
            hex("e4e269f992fe701ad0ef81b5cac58121ee915c74a466929ce550f4ce5e6da880")
        );
        Keystream::new(&key, &nonce).apply(&mut buf);
        assert_eq!(buf, vec![0x41; 50]);
    }
}
