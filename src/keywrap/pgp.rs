//! `pgp` recipients (protocol.md §4.3): a binary OpenPGP message whose plaintext is the
//! private-options JSON.
//!
//! Go ocicrypt writes `PKESK… SEIPD(v1, AES-256)[ Literal, MDC ]`: one public-key encrypted
//! session key per recipient, then integrity-protected data holding one literal packet, no
//! compression. This module accepts exactly that shape, plus one ZIP/ZLIB compressed packet
//! around the literal (GnuPG compresses by default), and nothing else:
//!
//! * the message is at most [`MAX_MESSAGE_LEN`] bytes, binary (never armored, like Go's
//!   `ReadMessage`), with at most [`MAX_RECIPIENTS`] PKESK packets;
//! * the encrypted data must be SEIPD v1 and end in a valid MDC: unprotected SED packets, and
//!   everything else the grammar does not name (signatures, markers, nested compression, a
//!   second literal, trailing packets), are refused;
//! * the literal body is read through a bound of [`MAX_PLAINTEXT_LEN`] bytes, so a compression
//!   bomb stops after that much output.
//!
//! Secret keys come from [`KeyRing::openpgp`]: binary or armored keyrings, several certificates
//! each. Only keys whose key ID a PKESK names are unlocked and tried (anonymous, all-zero key IDs
//! are tried against every key of the matching algorithm); a passphrase-protected key is unlocked
//! with the passphrase that came with its keyring, never by prompting. At most
//! [`MAX_KEY_OPERATIONS`] private-key operations are spent on one message.
//!
//! The crypto is `sequoia-openpgp` on OpenSSL (RSA decryption blinded and constant-time). Its
//! PKESK decryption returns `None` for every failure, and a session key that does not pass the
//! SEIPD quick check is treated the same way, so "no key fits" reveals nothing about padding.
//! Session keys live in sequoia's `SessionKey` and the literal body in [`SecretBytes`]; both
//! are wiped on drop.

use std::fmt::Write as _;
use std::io::Read;

use buffered_reader::BufferedReader as _;

use sequoia_openpgp as openpgp;

use openpgp::cert::CertParser;
use openpgp::crypto::mpi;
use openpgp::crypto::{Decryptor, KeyPair, Password, SessionKey};
use openpgp::packet::key::{SecretKeyMaterial, SecretParts, UnspecifiedRole};
use openpgp::packet::{Key, PKESK, SEIP};
use openpgp::parse::{Dearmor, PacketParser, PacketParserBuilder, PacketParserResult, Parse};
use openpgp::types::{CompressionAlgorithm, PublicKeyAlgorithm, SymmetricAlgorithm};
use openpgp::{KeyHandle, Packet};
use zeroize::Zeroizing;

use super::{KeyUnwrapper, UnwrapError};
use crate::keys::{KeyRing, KeySource, OpenPgpKey};
use crate::secret::SecretBytes;

/// Largest OpenPGP message accepted. Go's is ~0.5 KiB for one RSA-2048 recipient.
pub const MAX_MESSAGE_LEN: usize = 1 << 20;
/// Largest literal body accepted. The private-options JSON is ~150 bytes.
pub const MAX_PLAINTEXT_LEN: usize = 64 << 10;
/// Most PKESK packets accepted in one message.
pub const MAX_RECIPIENTS: usize = 256;
/// Most private-key operations (PKESK decryptions) spent on one message.
pub const MAX_KEY_OPERATIONS: usize = 256;
/// Most certificates read from one keyring.
pub const MAX_CERTS_PER_KEYRING: usize = 256;
/// Largest non-container packet (PKESK, MDC, …) the parser reads into memory.
const MAX_PACKET_LEN: u32 = 64 << 10;

/// The `pgp` key unwrapper.
#[derive(Debug, Clone, Copy)]
pub struct Pgp;

impl KeyUnwrapper for Pgp {
    fn scheme(&self) -> &'static str {
        "pgp"
    }

    fn unwrap_key(&self, keys: &KeyRing, blob: &[u8]) -> Result<SecretBytes, UnwrapError> {
        let (pkesks, mut seipd) = read_recipients(blob).map_err(UnwrapError::Malformed)?;
        let mut secrets = SecretKeys::load(&keys.openpgp);
        if !open_session(&pkesks, &mut secrets, &mut seipd) {
            let recipients = describe_recipients(&pkesks, &secrets);
            return Err(if secrets.keys.is_empty() {
                UnwrapError::NoUsableKeys { recipients }
            } else {
                UnwrapError::NoKeyFits { recipients }
            });
        }
        read_literal(seipd).map_err(UnwrapError::Malformed)
    }
}

/// Parses the top level up to the encrypted data: the PKESKs, and the parser positioned on the
/// SEIPD v1 packet.
fn read_recipients(blob: &[u8]) -> Result<(Vec<PKESK>, PacketParser<'_>), String> {
    if blob.len() > MAX_MESSAGE_LEN {
        return Err(format!(
            "OpenPGP message larger than {} KiB",
            MAX_MESSAGE_LEN >> 10
        ));
    }
    if blob.is_empty() {
        return Err("empty OpenPGP message".into());
    }
    let mut ppr = PacketParserBuilder::from_bytes(blob)
        .and_then(|b| {
            b.dearmor(Dearmor::Disabled)
                .max_recursion_depth(2)
                .max_packet_size(MAX_PACKET_LEN)
                .build()
        })
        .map_err(|_| "not an OpenPGP message".to_string())?;
    let mut pkesks = Vec::new();
    loop {
        let pp = match ppr {
            PacketParserResult::Some(pp) => pp,
            PacketParserResult::EOF(_) => {
                return Err("OpenPGP message has no encrypted data packet".into())
            }
        };
        match &pp.packet {
            Packet::PKESK(p) => {
                if pkesks.len() == MAX_RECIPIENTS {
                    return Err(format!(
                        "OpenPGP message has more than {MAX_RECIPIENTS} recipients"
                    ));
                }
                pkesks.push(p.clone());
            }
            Packet::SEIP(SEIP::V1(_)) => return Ok((pkesks, pp)),
            Packet::SEIP(_) => {
                return Err(
                    "OpenPGP message uses SEIPD v2 (AEAD), which ocicrypt never writes".into(),
                )
            }
            other => return Err(unexpected(other, "before the encrypted data")),
        }
        ppr = pp
            .next()
            .map_err(|_| "malformed OpenPGP message".to_string())?
            .1;
    }
}

/// "OpenPGP message has a <packet> <where>, which is refused".
fn unexpected(packet: &Packet, place: &str) -> String {
    let what = match packet {
        Packet::Unknown(u) if u.tag() == openpgp::packet::Tag::SED => {
            return format!(
                "OpenPGP message has a symmetrically encrypted data packet without integrity \
                 protection (SED) {place}, which is refused"
            )
        }
        Packet::Unknown(_) => "malformed or unsupported packet".to_string(),
        Packet::SKESK(_) => "password-encrypted session key (SKESK)".to_string(),
        other => format!("{} packet", other.tag()),
    };
    format!("OpenPGP message has a {what} {place}, which is refused")
}

// `Packet::MDC` is deprecated because SEIPD v1 is; it is what Go ocicrypt writes.
#[allow(deprecated)]
/// Reads the decrypted SEIPD container: `[Compressed(ZIP|ZLIB)[Literal] | Literal], MDC`, then
/// the end of the message. Returns the literal body.
fn read_literal(seipd: PacketParser<'_>) -> Result<SecretBytes, String> {
    const INSIDE: &str = "inside the encrypted data";
    let malformed =
        |_| "OpenPGP encrypted data is malformed or lacks its integrity check (MDC)".to_string();
    let mut ppr = seipd.recurse().map_err(malformed)?.1;
    let mut body = None;
    loop {
        let mut pp = match ppr {
            PacketParserResult::Some(pp) => pp,
            PacketParserResult::EOF(_) => {
                return Err("OpenPGP encrypted data ends without an integrity check (MDC)".into())
            }
        };
        let depth = pp.recursion_depth();
        match &pp.packet {
            Packet::CompressedData(c) if depth == 1 && body.is_none() => match c.algo() {
                CompressionAlgorithm::Zip | CompressionAlgorithm::Zlib => {}
                other => {
                    return Err(format!(
                        "OpenPGP message uses compression algorithm {other}, which is refused"
                    ))
                }
            },
            Packet::Literal(_) if body.is_none() => {
                let mut buf = Zeroizing::new(Vec::with_capacity(MAX_PLAINTEXT_LEN + 1));
                (&mut pp)
                    .take(MAX_PLAINTEXT_LEN as u64 + 1)
                    .read_to_end(&mut buf)
                    .map_err(|_| "malformed OpenPGP literal data".to_string())?;
                if buf.len() > MAX_PLAINTEXT_LEN {
                    return Err(format!(
                        "OpenPGP literal data is larger than {} KiB",
                        MAX_PLAINTEXT_LEN >> 10
                    ));
                }
                body = Some(SecretBytes::from(buf));
            }
            Packet::MDC(mdc) if depth == 1 => {
                let Some(body) = body.take() else {
                    return Err("OpenPGP encrypted data holds no literal data packet".into());
                };
                if !mdc.valid() {
                    return Err(
                        "OpenPGP encrypted data fails its integrity check (MDC mismatch)".into(),
                    );
                }
                return match pp.next().map_err(malformed)?.1 {
                    PacketParserResult::EOF(_) => Ok(body),
                    PacketParserResult::Some(pp) => {
                        Err(unexpected(&pp.packet, "after the encrypted data"))
                    }
                };
            }
            Packet::Literal(_) => {
                return Err("OpenPGP encrypted data holds more than one literal packet".into())
            }
            other => return Err(unexpected(other, INSIDE)),
        }
        ppr = pp.recurse().map_err(malformed)?.1;
    }
}

/// One secret key that might open a PKESK, and where it came from.
struct SecretKey<'k> {
    origin: &'k OpenPgpKey,
    key: Key<SecretParts, UnspecifiedRole>,
    state: KeyState,
}

enum KeyState {
    /// Not tried yet (maybe passphrase-protected).
    Untried,
    /// Ready for decryption.
    Ready(Box<KeyPair>),
    /// Cannot be used, and why.
    Unusable(Unusable),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unusable {
    NoPassphrase,
    WrongPassphrase,
    Stub,
    Unsupported,
}

/// Every secret key of every keyring, and notes on keyrings that yielded none.
struct SecretKeys<'k> {
    keys: Vec<SecretKey<'k>>,
    notes: Vec<String>,
}

impl<'k> SecretKeys<'k> {
    fn load(items: &'k [OpenPgpKey]) -> Self {
        let mut keys = Vec::new();
        let mut notes = Vec::new();
        for item in items {
            let before = keys.len();
            let Ok(parser) = CertParser::from_bytes(item.bytes.expose()) else {
                notes.push(format!("{} is not an OpenPGP keyring", item.source));
                continue;
            };
            let mut bad = 0usize;
            for (n, cert) in parser.enumerate() {
                if n == MAX_CERTS_PER_KEYRING {
                    notes.push(format!(
                        "{} holds more than {MAX_CERTS_PER_KEYRING} certificates; the rest were \
                         not read",
                        item.source
                    ));
                    break;
                }
                let Ok(cert) = cert else {
                    bad += 1;
                    continue;
                };
                for ka in cert.keys().secret() {
                    keys.push(SecretKey {
                        origin: item,
                        key: ka.key().clone(),
                        state: KeyState::Untried,
                    });
                }
            }
            if keys.len() == before {
                notes.push(if bad > 0 {
                    format!("{} is not a valid OpenPGP keyring", item.source)
                } else {
                    format!(
                        "{} holds no OpenPGP secret keys (export them with gpg \
                         --export-secret-keys)",
                        item.source
                    )
                });
            }
        }
        SecretKeys { keys, notes }
    }
}

impl SecretKey<'_> {
    /// Unlocks the key once, with the passphrase of its keyring.
    fn keypair(&mut self) -> Option<&mut KeyPair> {
        if let KeyState::Untried = self.state {
            self.state = self.unlock();
        }
        match &mut self.state {
            KeyState::Ready(pair) => Some(pair),
            _ => None,
        }
    }

    fn unlock(&self) -> KeyState {
        let key = self.key.clone();
        let key = match self.key.secret() {
            SecretKeyMaterial::Unencrypted(_) => key,
            SecretKeyMaterial::Encrypted(e) => {
                if matches!(
                    e.s2k(),
                    openpgp::crypto::S2K::Private { .. } | openpgp::crypto::S2K::Unknown { .. }
                ) {
                    return KeyState::Unusable(Unusable::Stub);
                }
                if !e.s2k().is_supported() || !e.algo().is_supported() {
                    return KeyState::Unusable(Unusable::Unsupported);
                }
                let Some(passphrase) = &self.origin.password else {
                    return KeyState::Unusable(Unusable::NoPassphrase);
                };
                let passphrase = Password::from(passphrase.expose());
                match key.decrypt_secret(&passphrase) {
                    Ok(key) => key,
                    Err(_) => return KeyState::Unusable(Unusable::WrongPassphrase),
                }
            }
        };
        match key.into_keypair() {
            Ok(pair) => KeyState::Ready(Box::new(pair)),
            Err(_) => KeyState::Unusable(Unusable::Unsupported),
        }
    }
}

/// Whether a PKESK for `algo` could have been made for a key of `key_algo`.
#[allow(deprecated)] // RSAEncrypt, ElGamalEncryptSign: still valid in keys made long ago.
fn same_family(algo: PublicKeyAlgorithm, key_algo: PublicKeyAlgorithm) -> bool {
    use PublicKeyAlgorithm::*;
    let family = |a| match a {
        RSAEncryptSign | RSAEncrypt => 1,
        ElGamalEncrypt | ElGamalEncryptSign => 2,
        ECDH => 3,
        X25519 => 4,
        X448 => 5,
        _ => 0,
    };
    family(algo) != 0 && family(algo) == family(key_algo)
}

/// Whether `key` may be the recipient of `pkesk`: `Some(true)` if the PKESK names it,
/// `Some(false)` if it is anonymous and `key` has the right algorithm, `None` otherwise.
fn fits(pkesk: &PKESK, key: &Key<SecretParts, UnspecifiedRole>) -> Option<bool> {
    match pkesk.recipient() {
        Some(r) => {
            (r.aliases(KeyHandle::from(key.keyid())) || r.aliases(key.key_handle())).then_some(true)
        }
        None => same_family(pkesk.pk_algo(), key.pk_algo()).then_some(false),
    }
}

/// Tries the keys on the PKESKs: named recipients first, then anonymous ones against every key
/// of the same algorithm. On success the SEIPD packet has been decrypted with the session key
/// (its quick check passed) and is ready to read; the session key itself is then dropped (wiped).
fn open_session(
    pkesks: &[PKESK],
    secrets: &mut SecretKeys<'_>,
    seipd: &mut PacketParser<'_>,
) -> bool {
    let mut operations = 0usize;
    for anonymous in [false, true] {
        for pkesk in pkesks {
            for key in secrets.keys.iter_mut() {
                if fits(pkesk, &key.key) != Some(!anonymous) {
                    continue;
                }
                let Some(pair) = key.keypair() else {
                    continue;
                };
                if operations == MAX_KEY_OPERATIONS {
                    return false;
                }
                operations += 1;
                let mut decryptor = CheckedDecryptor(pair);
                let Some((algo, session)) = pkesk.decrypt(&mut decryptor, None) else {
                    continue;
                };
                let Some(algo) = algo else {
                    continue;
                };
                if open_seipd(seipd, algo, &session) {
                    return true;
                }
            }
        }
    }
    false
}

/// Decrypts the SEIPD packet with `session` if its quick check passes.
///
/// sequoia unwraps a read of the first block plus two octets after setting aside the 22 octets
/// of the MDC, so a body shorter than that would panic; anyone with the recipient's public key can
/// write one. Such a body is refused here first.
fn open_seipd(
    seipd: &mut PacketParser<'_>,
    algo: SymmetricAlgorithm,
    session: &SessionKey,
) -> bool {
    let Ok(block) = algo.block_size() else {
        return false;
    };
    let shortest = block + 2 + MDC_PACKET_LEN;
    if seipd.data_hard(shortest).is_err() {
        return false;
    }
    seipd.decrypt(algo, session).is_ok()
}

/// An MDC packet: CTB, length, SHA-1.
const MDC_PACKET_LEN: usize = 1 + 1 + 20;

/// Refuses decrypted session-key plaintexts too short to hold a cipher octet and a checksum:
/// sequoia indexes into them unchecked, and a PKESK that is valid RSA but has an empty payload
/// (anyone with the public key can make one) would otherwise panic.
struct CheckedDecryptor<'a>(&'a mut KeyPair);

/// Cipher octet + two checksum octets.
const MIN_SESSION_PLAINTEXT: usize = 3;

impl Decryptor for CheckedDecryptor<'_> {
    fn public(&self) -> &Key<openpgp::packet::key::PublicParts, UnspecifiedRole> {
        self.0.public()
    }

    fn decrypt(
        &mut self,
        ciphertext: &mpi::Ciphertext,
        plaintext_len: Option<usize>,
    ) -> openpgp::Result<SessionKey> {
        let plain = self.0.decrypt(ciphertext, plaintext_len)?;
        if plain.len() < MIN_SESSION_PLAINTEXT {
            return Err(openpgp::Error::InvalidSessionKey("too short".into()).into());
        }
        Ok(plain)
    }
}

/// `1 pgp recipient: key 0x…` plus, per recipient, why the matching local keys did not open it,
/// and notes on keyrings that yielded no secret key.
fn describe_recipients(pkesks: &[PKESK], secrets: &SecretKeys<'_>) -> String {
    let mut out = match pkesks.len() {
        0 => "no pgp recipient (the message has no PKESK packet)".to_string(),
        1 => "1 pgp recipient: ".to_string(),
        n => format!("{n} pgp recipients: "),
    };
    for (i, pkesk) in pkesks.iter().enumerate().take(16) {
        if i > 0 {
            out.push_str(", ");
        }
        match pkesk.recipient() {
            Some(KeyHandle::KeyID(id)) => {
                let _ = write!(out, "key 0x{}", id.to_hex());
            }
            Some(KeyHandle::Fingerprint(fp)) => {
                let _ = write!(out, "key {}", fp.to_hex());
            }
            None => {
                let _ = write!(out, "anonymous {} key", algo_name(pkesk.pk_algo()));
            }
        }
        let reasons: Vec<String> = secrets
            .keys
            .iter()
            .filter(|k| fits(pkesk, &k.key).is_some())
            .filter_map(|k| match k.state {
                KeyState::Unusable(why) => Some(why_unusable(why, &k.origin.source)),
                KeyState::Ready(_) => Some(format!(
                    "the secret key in {} does not decrypt it",
                    k.origin.source
                )),
                KeyState::Untried => None,
            })
            .collect();
        if !reasons.is_empty() {
            let _ = write!(out, " ({})", reasons.join("; "));
        }
    }
    if pkesks.len() > 16 {
        let _ = write!(out, " and {} more", pkesks.len() - 16);
    }
    for note in secrets.notes.iter().take(4) {
        let _ = write!(out, "; {note}");
    }
    out
}

fn why_unusable(why: Unusable, source: &KeySource) -> String {
    match why {
        Unusable::NoPassphrase => {
            let hint = match source {
                KeySource::File(p) => format!("put it in {}.password", p.display()),
                KeySource::Payload { index, .. } => {
                    format!("send it as gpg-privatekeys-passwords[{index}]")
                }
            };
            format!(
                "its secret key in {source} is passphrase-protected and no passphrase was \
                 given: {hint}"
            )
        }
        Unusable::WrongPassphrase => {
            format!("its secret key in {source} did not unlock: wrong passphrase")
        }
        Unusable::Stub => format!(
            "{source} holds only a stub of its secret key (the key lives on a smartcard or was \
             exported with --export-secret-subkeys)"
        ),
        Unusable::Unsupported => format!(
            "its secret key in {source} uses an algorithm or passphrase protection this decoder \
             does not support"
        ),
    }
}

#[allow(deprecated)]
fn algo_name(algo: PublicKeyAlgorithm) -> String {
    use PublicKeyAlgorithm::*;
    match algo {
        RSAEncryptSign | RSAEncrypt => "RSA".into(),
        ElGamalEncrypt | ElGamalEncryptSign => "ElGamal".into(),
        ECDH => "ECDH".into(),
        X25519 => "X25519".into(),
        X448 => "X448".into(),
        other => format!("algorithm {}", u8::from(other)),
    }
}

#[cfg(test)]
mod tests;
