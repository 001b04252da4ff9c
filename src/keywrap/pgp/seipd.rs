//! The encrypted data: SEIPD v1 (RFC 9580 §5.13.1), decrypted with OpenSSL's AES-CFB, and its
//! MDC checked over the whole plaintext *before* any of it is parsed. Only then is the content
//! read, and it must be one literal data packet, optionally inside one ZIP or ZLIB compressed
//! packet whose output is bounded.

use std::io::Read;

use openssl::symm::{Cipher, Crypter, Mode};
use sequoia_openpgp::types::SymmetricAlgorithm;
use zeroize::Zeroizing;

use super::packet::{self, TAG_COMPRESSED, TAG_LITERAL};
use super::MAX_PLAINTEXT_LEN;
use crate::secret::SecretBytes;

/// AES block size; also the length of the random prefix.
const BLOCK: usize = 16;
/// The MDC packet at the end of the plaintext: tag octet 0xD3, length 20, SHA-1.
const MDC_HEADER: [u8; 2] = [0xd3, 0x14];
const MDC_LEN: usize = 22;
/// Most bytes a compressed packet may expand to: a literal of [`MAX_PLAINTEXT_LEN`] octets in
/// partial chunks of one octet each, plus its header.
const MAX_DECOMPRESSED_LEN: usize = 2 * MAX_PLAINTEXT_LEN + 1024;

/// Why a session key did not yield the plaintext.
#[derive(Debug)]
pub(super) enum Failure {
    /// The quick check failed: almost certainly the wrong session key.
    WrongKey,
    /// The session key looks right but the data is refused.
    Refused(String),
}

/// Plaintext whose MDC verified: the content between the prefix and the MDC.
pub(super) struct Verified {
    plain: Zeroizing<Vec<u8>>,
}

impl Verified {
    fn content(&self) -> &[u8] {
        &self.plain[BLOCK + 2..self.plain.len() - MDC_LEN]
    }
}

/// Decrypts `ciphertext` (the SEIPD v1 body after its version octet) with `key` and checks the
/// quick-check octets and the MDC.
pub(super) fn decrypt(
    algo: SymmetricAlgorithm,
    key: &[u8],
    ciphertext: &[u8],
) -> Result<Verified, Failure> {
    let cipher = match algo {
        SymmetricAlgorithm::AES128 => Cipher::aes_128_cfb128(),
        SymmetricAlgorithm::AES192 => Cipher::aes_192_cfb128(),
        SymmetricAlgorithm::AES256 => Cipher::aes_256_cfb128(),
        other => {
            return Err(Failure::Refused(format!(
                "OpenPGP message is encrypted with {other}; only AES is accepted"
            )))
        }
    };
    if key.len() != cipher.key_len() {
        return Err(Failure::WrongKey);
    }
    if ciphertext.len() < BLOCK + 2 + MDC_LEN {
        return Err(Failure::Refused(
            "OpenPGP encrypted data is too short to hold an integrity check (MDC)".into(),
        ));
    }
    let failed = || Failure::Refused("OpenPGP encrypted data could not be decrypted".into());
    let mut crypter =
        Crypter::new(cipher, Mode::Decrypt, key, Some(&[0; BLOCK])).map_err(|_| failed())?;
    let mut plain = Zeroizing::new(vec![0; ciphertext.len() + BLOCK]);
    let n = crypter
        .update(ciphertext, &mut plain)
        .map_err(|_| failed())?;
    let m = crypter.finalize(&mut plain[n..]).map_err(|_| failed())?;
    plain.truncate(n + m);
    if plain.len() != ciphertext.len() {
        return Err(failed());
    }
    if plain[BLOCK - 2..BLOCK] != plain[BLOCK..BLOCK + 2] {
        return Err(Failure::WrongKey);
    }
    let (hashed, digest) = plain.split_at(plain.len() - 20);
    let computed = openssl::sha::sha1(hashed);
    let header_ok = hashed.ends_with(&MDC_HEADER);
    if !(header_ok & openssl::memcmp::eq(&computed, digest)) {
        return Err(Failure::Refused(
            "OpenPGP encrypted data fails its integrity check (MDC mismatch, or no MDC)".into(),
        ));
    }
    Ok(Verified { plain })
}

/// The literal data of verified plaintext: exactly one literal packet, or one ZIP/ZLIB
/// compressed packet holding exactly one literal packet.
pub(super) fn literal(verified: &Verified) -> Result<SecretBytes, String> {
    const INSIDE: &str = "inside the encrypted data";
    let outer = only_packet(verified.content(), &[TAG_LITERAL, TAG_COMPRESSED], INSIDE)?;
    if outer.tag == TAG_LITERAL {
        return literal_data(&outer.body);
    }
    let inflated = decompress(&outer.body)?;
    let inner = only_packet(&inflated, &[TAG_LITERAL], "inside the compressed data")?;
    literal_data(&inner.body)
}

/// The packet that `data` must consist of, of one of the `allowed` types.
fn only_packet(data: &[u8], allowed: &[u8], place: &str) -> Result<packet::RawPacket, String> {
    if data.is_empty() {
        return Err(format!(
            "OpenPGP message holds no literal data packet {place}"
        ));
    }
    let (first, rest) =
        packet::next(data).map_err(|e| format!("OpenPGP content {place} is malformed ({e})"))?;
    if !allowed.contains(&first.tag) {
        return Err(unexpected(first.tag, place));
    }
    if !rest.is_empty() {
        return Err(match packet::peek_tag(rest) {
            Some(TAG_LITERAL) if first.tag == TAG_LITERAL => {
                format!("OpenPGP message holds more than one literal data packet {place}")
            }
            Some(tag) => unexpected(tag, place),
            None => format!("OpenPGP message has trailing bytes {place}"),
        });
    }
    Ok(first)
}

fn unexpected(tag: u8, place: &str) -> String {
    format!(
        "OpenPGP message has {} {place}, which is refused",
        packet::name(tag)
    )
}

fn decompress(body: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
    let (&algo, data) = body
        .split_first()
        .ok_or("OpenPGP compressed data packet is empty")?;
    let mut reader: Box<dyn Read + '_> = match algo {
        1 => Box::new(flate2::read::DeflateDecoder::new(data)),
        2 => Box::new(flate2::read::ZlibDecoder::new(data)),
        other => {
            let name = match other {
                0 => "none (uncompressed)".to_string(),
                3 => "BZip2".to_string(),
                n => format!("{n}"),
            };
            return Err(format!(
                "OpenPGP message uses compression algorithm {name}, which is refused (only ZIP \
                 and ZLIB are accepted)"
            ));
        }
    };
    let mut out = Zeroizing::new(Vec::with_capacity(MAX_DECOMPRESSED_LEN + 1));
    reader
        .as_mut()
        .take(MAX_DECOMPRESSED_LEN as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|_| "OpenPGP compressed data is malformed".to_string())?;
    if out.len() > MAX_DECOMPRESSED_LEN {
        return Err(format!(
            "OpenPGP compressed data expands beyond {} KiB, which is refused",
            MAX_DECOMPRESSED_LEN >> 10
        ));
    }
    Ok(out)
}

/// The data of a literal packet body: format, file name, date, data.
fn literal_data(body: &[u8]) -> Result<SecretBytes, String> {
    let malformed = || "OpenPGP literal data packet is malformed".to_string();
    let (&[_format, name_len], rest) = body.split_first_chunk::<2>().ok_or_else(malformed)?;
    let data = rest
        .get(usize::from(name_len) + 4..)
        .ok_or_else(malformed)?;
    if data.len() > MAX_PLAINTEXT_LEN {
        return Err(format!(
            "OpenPGP literal data is larger than {} KiB",
            MAX_PLAINTEXT_LEN >> 10
        ));
    }
    Ok(SecretBytes::new(data.to_vec()))
}
