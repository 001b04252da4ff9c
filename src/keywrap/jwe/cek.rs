//! Unwrapping a JWE recipient's content-encryption key with a key we already hold.
//!
//! josekit builds its decrypters from DER, which would mean serialising every private key again
//! (another copy of the key in memory) and re-parsing it for each attempt. Instead these small
//! [`JweDecrypter`]s use the OpenSSL `PKey` the key ring already holds; josekit still parses
//! the JWE and decrypts the content. All private-key operations are OpenSSL's:
//!
//! * `RSA-OAEP` / `RSA-OAEP-256`: RSAES-OAEP with SHA-1 / SHA-256 (MGF1 with the same hash),
//!   empty label (RFC 7518 §4.3). OpenSSL's OAEP decoding is constant-time and the RSA operation
//!   blinded.
//! * `ECDH-ES+A128KW/A192KW/A256KW`: ECDH with the sender's ephemeral key (`epk`, checked to be
//!   on the key's curve), Concat KDF with SHA-256 (RFC 7518 §4.6.2: AlgorithmID is the `alg`
//!   value, PartyUInfo/PartyVInfo from `apu`/`apv`, SuppPubInfo the key length in bits), then
//!   AES Key Wrap (RFC 3394) unwrap of `encrypted_key`.

use std::borrow::Cow;
use std::fmt;

use josekit::jwe::{JweAlgorithm, JweContentEncryption, JweDecrypter, JweHeader};
use josekit::JoseError;
use openssl::bn::{BigNum, BigNumContext};
use openssl::derive::Deriver;
use openssl::ec::{EcGroup, EcKey, EcPoint};
use openssl::md::{Md, MdRef};
use openssl::pkey::{Id, PKey, Private};
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::Padding;
use serde_json::Value;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::encoding::decode_url;

/// The parts of the JWE the content tag covers, for checking an `A*CBC-HS*` tag before
/// josekit decrypts (it checks the CBC padding before the tag, which would make the padding
/// check observable on a forged ciphertext).
pub(super) struct Content {
    /// Additional authenticated data: ASCII(protected) [|| '.' || ASCII(aad)].
    pub(super) aad: Vec<u8>,
    pub(super) iv: Vec<u8>,
    pub(super) ciphertext: Vec<u8>,
    pub(super) tag: Vec<u8>,
}

/// A decrypter for one (algorithm, key) pair, borrowing the key ring's key.
pub(super) struct Unwrapper<'k> {
    algorithm: Box<dyn JweAlgorithm>,
    key: &'k PKey<Private>,
    content: &'k Content,
}

impl fmt::Debug for Unwrapper<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Unwrapper({})", self.algorithm.name())
    }
}

impl<'k> Unwrapper<'k> {
    /// The decrypter for `alg` with `key`, if `alg` is one of the accepted algorithms.
    pub(super) fn new(alg: &str, key: &'k PKey<Private>, content: &'k Content) -> Option<Self> {
        let algorithm: Box<dyn JweAlgorithm> = match alg {
            "RSA-OAEP" => Box::new(josekit::jwe::RSA_OAEP),
            "RSA-OAEP-256" => Box::new(josekit::jwe::RSA_OAEP_256),
            "ECDH-ES+A128KW" => Box::new(josekit::jwe::ECDH_ES_A128KW),
            "ECDH-ES+A192KW" => Box::new(josekit::jwe::ECDH_ES_A192KW),
            "ECDH-ES+A256KW" => Box::new(josekit::jwe::ECDH_ES_A256KW),
            _ => return None,
        };
        Some(Self {
            algorithm,
            key,
            content,
        })
    }
}

fn fail(reason: &str) -> JoseError {
    JoseError::InvalidJweFormat(anyhow_error(reason))
}

fn anyhow_error(reason: &str) -> anyhow::Error {
    anyhow::Error::msg(reason.to_string())
}

impl JweDecrypter for Unwrapper<'_> {
    fn algorithm(&self) -> &dyn JweAlgorithm {
        &*self.algorithm
    }

    fn key_id(&self) -> Option<&str> {
        None
    }

    fn decrypt(
        &self,
        encrypted_key: Option<&[u8]>,
        cencryption: &dyn JweContentEncryption,
        header: &JweHeader,
    ) -> Result<Cow<'_, [u8]>, JoseError> {
        let encrypted_key = encrypted_key.ok_or_else(|| fail("no encrypted_key"))?;
        let cek = match self.algorithm.name() {
            "RSA-OAEP" => rsa_oaep(self.key, Md::sha1(), encrypted_key)?,
            "RSA-OAEP-256" => rsa_oaep(self.key, Md::sha256(), encrypted_key)?,
            alg => ecdh_es_kw(self.key, alg, header, encrypted_key)?,
        };
        if cek.len() != cencryption.key_len() {
            return Err(fail("unwrapped key has the wrong length"));
        }
        if !cbc_hs_tag_ok(cencryption.name(), &cek, self.content) {
            return Err(fail("content authentication tag does not match"));
        }
        // josekit takes ownership; the copy it keeps is dropped right after content decryption.
        Ok(Cow::Owned(cek.to_vec()))
    }

    fn box_clone(&self) -> Box<dyn JweDecrypter> {
        // josekit never clones decrypters on the decryption path; a decrypter borrowing a key
        // cannot be made 'static, so refuse loudly rather than copy the private key.
        Box::new(Refused)
    }
}

/// What [`Unwrapper::box_clone`] returns: decrypts nothing.
#[derive(Debug)]
struct Refused;

impl JweDecrypter for Refused {
    fn algorithm(&self) -> &dyn JweAlgorithm {
        &josekit::jwe::RSA_OAEP
    }
    fn key_id(&self) -> Option<&str> {
        None
    }
    fn decrypt(
        &self,
        _: Option<&[u8]>,
        _: &dyn JweContentEncryption,
        _: &JweHeader,
    ) -> Result<Cow<'_, [u8]>, JoseError> {
        Err(fail("cloned decrypter"))
    }
    fn box_clone(&self) -> Box<dyn JweDecrypter> {
        Box::new(Refused)
    }
}

fn rsa_oaep(
    key: &PKey<Private>,
    md: &MdRef,
    encrypted_key: &[u8],
) -> Result<Zeroizing<Vec<u8>>, JoseError> {
    if key.id() != Id::RSA {
        return Err(fail("not an RSA key"));
    }
    let op = || -> Result<Zeroizing<Vec<u8>>, openssl::error::ErrorStack> {
        let mut ctx = PkeyCtx::new(key)?;
        ctx.decrypt_init()?;
        ctx.set_rsa_padding(Padding::PKCS1_OAEP)?;
        ctx.set_rsa_oaep_md(md)?;
        ctx.set_rsa_mgf1_md(md)?;
        let mut out = Zeroizing::new(vec![0u8; key.size()]);
        let n = ctx.decrypt(encrypted_key, Some(&mut out))?;
        out.truncate(n);
        Ok(out)
    };
    // One error for every failure, so nothing distinguishes padding from other errors.
    op().map_err(|_| fail("RSA-OAEP decryption failed"))
}

fn ecdh_es_kw(
    key: &PKey<Private>,
    alg: &str,
    header: &JweHeader,
    encrypted_key: &[u8],
) -> Result<Zeroizing<Vec<u8>>, JoseError> {
    let kek_len = match alg {
        "ECDH-ES+A128KW" => 16,
        "ECDH-ES+A192KW" => 24,
        "ECDH-ES+A256KW" => 32,
        _ => return Err(fail("unsupported algorithm")),
    };
    let ec = key.ec_key().map_err(|_| fail("not an EC key"))?;
    let group = ec.group();
    let epk = header
        .claim("epk")
        .and_then(Value::as_object)
        .ok_or_else(|| fail("no epk"))?;
    let coordinate = |name: &str| -> Result<BigNum, JoseError> {
        let text = epk
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| fail("epk coordinate missing"))?;
        let bytes = decode_url(text).map_err(|_| fail("epk coordinate is not base64url"))?;
        BigNum::from_slice(&bytes).map_err(|_| fail("epk coordinate"))
    };
    let (x, y) = (coordinate("x")?, coordinate("y")?);
    let peer = || -> Result<PKey<openssl::pkey::Public>, openssl::error::ErrorStack> {
        let mut ctx = BigNumContext::new()?;
        let mut point = EcPoint::new(group)?;
        // Fails unless (x, y) is on the curve: no invalid-curve points reach the derivation.
        point.set_affine_coordinates_gfp(group, &x, &y, &mut ctx)?;
        let group_owned = EcGroup::from_curve_name(
            group
                .curve_name()
                .ok_or_else(openssl::error::ErrorStack::get)?,
        )?;
        let public = EcKey::from_public_key(&group_owned, &point)?;
        public.check_key()?;
        PKey::from_ec_key(public)
    };
    let peer = peer().map_err(|_| fail("epk is not a point on the key's curve"))?;
    let shared = {
        let mut deriver = Deriver::new(key).map_err(|_| fail("ECDH"))?;
        deriver.set_peer(&peer).map_err(|_| fail("ECDH peer"))?;
        Zeroizing::new(
            deriver
                .derive_to_vec()
                .map_err(|_| fail("ECDH derivation failed"))?,
        )
    };
    let party = |name: &str| -> Result<Vec<u8>, JoseError> {
        match header.claim(name) {
            None => Ok(Vec::new()),
            Some(Value::String(s)) => decode_url(s).map_err(|_| fail("apu/apv is not base64url")),
            Some(_) => Err(fail("apu/apv is not a string")),
        }
    };
    let kek = concat_kdf(&shared, alg, &party("apu")?, &party("apv")?, kek_len);
    let aes = openssl::aes::AesKey::new_decrypt(&kek).map_err(|_| fail("key wrap key"))?;
    if encrypted_key.len() < 16 || encrypted_key.len() % 8 != 0 {
        return Err(fail("wrapped key has the wrong length"));
    }
    let mut cek = Zeroizing::new(vec![0u8; encrypted_key.len() - 8]);
    let n = openssl::aes::unwrap_key(&aes, None, &mut cek, encrypted_key)
        .map_err(|_| fail("AES key unwrap failed"))?;
    cek.truncate(n);
    Ok(cek)
}

/// For `A128CBC-HS256`, `A192CBC-HS384` and `A256CBC-HS512` (RFC 7518 §5.2.2.2): whether the
/// tag, HMAC over AAD || IV || ciphertext || AL keyed with the first half of the key and
/// truncated to half its length, matches (compared in constant time). Other content
/// encryptions (GCM) authenticate before they release anything: always `true`.
fn cbc_hs_tag_ok(enc: &str, cek: &[u8], content: &Content) -> bool {
    use hmac::{Hmac, KeyInit, Mac};
    fn check<M: Mac + KeyInit>(mac_key: &[u8], content: &Content, tag_len: usize) -> bool {
        let Ok(mut mac) = <M as KeyInit>::new_from_slice(mac_key) else {
            return false;
        };
        mac.update(&content.aad);
        mac.update(&content.iv);
        mac.update(&content.ciphertext);
        mac.update(&((content.aad.len() as u64) * 8).to_be_bytes());
        content.tag.len() == tag_len && mac.verify_truncated_left(&content.tag).is_ok()
    }
    let half = cek.len() / 2;
    match enc {
        "A128CBC-HS256" => check::<Hmac<sha2::Sha256>>(&cek[..half], content, 16),
        "A192CBC-HS384" => check::<Hmac<sha2::Sha384>>(&cek[..half], content, 24),
        "A256CBC-HS512" => check::<Hmac<sha2::Sha512>>(&cek[..half], content, 32),
        _ => true,
    }
}

/// RFC 7518 §4.6.2 Concat KDF with SHA-256, for key lengths up to 32 bytes (one round).
fn concat_kdf(z: &[u8], alg: &str, apu: &[u8], apv: &[u8], len: usize) -> Zeroizing<Vec<u8>> {
    let mut h = Sha256::new();
    h.update(1u32.to_be_bytes());
    h.update(z);
    for part in [alg.as_bytes(), apu, apv] {
        h.update((part.len() as u32).to_be_bytes());
        h.update(part);
    }
    h.update(((len * 8) as u32).to_be_bytes());
    let mut out = Zeroizing::new(h.finalize().to_vec());
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CBC-HS tag check against an independent computation (OpenSSL's HMAC), for each size:
    /// the right tag passes, a flipped bit anywhere it covers fails.
    #[test]
    fn cbc_hs_tags_match_openssl() {
        use openssl::hash::MessageDigest;
        use openssl::sign::Signer;
        for (enc, key_len, md) in [
            ("A128CBC-HS256", 32, MessageDigest::sha256()),
            ("A192CBC-HS384", 48, MessageDigest::sha384()),
            ("A256CBC-HS512", 64, MessageDigest::sha512()),
        ] {
            let cek: Vec<u8> = (0..key_len as u8).collect();
            let half = key_len / 2;
            let mut content = Content {
                aad: b"eyJlbmMiOiJBMTI4Q0JDLUhTMjU2In0".to_vec(),
                iv: vec![7; 16],
                ciphertext: vec![0x42; 48],
                tag: Vec::new(),
            };
            let hmac_key = PKey::hmac(&cek[..half]).unwrap();
            let mut signer = Signer::new(md, &hmac_key).unwrap();
            signer.update(&content.aad).unwrap();
            signer.update(&content.iv).unwrap();
            signer.update(&content.ciphertext).unwrap();
            signer
                .update(&((content.aad.len() as u64) * 8).to_be_bytes())
                .unwrap();
            content.tag = signer.sign_to_vec().unwrap()[..half].to_vec();
            assert!(cbc_hs_tag_ok(enc, &cek, &content), "{enc}");
            for field in 0..4 {
                let mut bad = Content {
                    aad: content.aad.clone(),
                    iv: content.iv.clone(),
                    ciphertext: content.ciphertext.clone(),
                    tag: content.tag.clone(),
                };
                let target = match field {
                    0 => &mut bad.aad,
                    1 => &mut bad.iv,
                    2 => &mut bad.ciphertext,
                    _ => &mut bad.tag,
                };
                target[0] ^= 0x80;
                assert!(!cbc_hs_tag_ok(enc, &cek, &bad), "{enc} field {field}");
            }
            let mut short = Content {
                tag: content.tag[..half - 1].to_vec(),
                ..content
            };
            assert!(!cbc_hs_tag_ok(enc, &cek, &short), "{enc} short tag");
            short.tag.clear();
            assert!(
                cbc_hs_tag_ok("A256GCM", &cek, &short),
                "GCM is checked by its own tag"
            );
        }
    }

    /// RFC 7518 Appendix C: ECDH-ES key agreement (direct, A128GCM), Concat KDF output.
    #[test]
    fn concat_kdf_matches_rfc7518_appendix_c() {
        let z = [
            158, 86, 217, 29, 129, 113, 53, 211, 114, 131, 66, 131, 191, 132, 38, 156, 251, 49,
            110, 163, 218, 128, 106, 72, 246, 218, 167, 121, 140, 254, 144, 196,
        ];
        let kdf = concat_kdf(&z, "A128GCM", b"Alice", b"Bob", 16);
        assert_eq!(
            kdf.as_slice(),
            &[86, 170, 141, 234, 248, 35, 109, 32, 92, 34, 40, 205, 113, 167, 16, 26]
        );
    }
}
