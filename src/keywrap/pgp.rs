//! `pgp` recipients (protocol.md §4.3): a binary OpenPGP message whose plaintext is the
//! private-options JSON.
//!
//! Go ocicrypt writes `PKESK… SEIPD(v1, AES-256)[ Literal, MDC ]`: one public-key encrypted
//! session key per recipient, then integrity-protected data holding one literal packet, no
//! compression. This module accepts exactly that shape, plus one ZIP/ZLIB compressed packet
//! around the literal (GnuPG compresses by default), and nothing else:
//!
//! * the message is at most [`MAX_MESSAGE_LEN`] bytes, binary (never armored, like Go's
//!   `ReadMessage`), with at most [`MAX_RECIPIENTS`] PKESK packets and one SEIPD v1 packet
//!   after them; unprotected SED, SEIPD v2, and every other packet are refused;
//! * the SEIPD is decrypted whole and its MDC checked before any of the plaintext is parsed
//!   (`seipd.rs`); the content must be one literal packet (optionally in one ZIP/ZLIB compressed
//!   packet whose output is bounded), with at most [`MAX_PLAINTEXT_LEN`] bytes of data.
//!
//! Secret keys come from [`KeyRing::openpgp`]: binary or armored keyrings, several certificates
//! each. Only keys whose key ID a PKESK names are unlocked and tried (anonymous, all-zero key IDs
//! are tried against every key of the matching algorithm); a passphrase-protected key is unlocked
//! with the passphrase that came with its keyring, never by prompting. Every PKESK decryption
//! is taken from the run's budget of private-key operations ([`KeyRing::spend_operation`]), which
//! the jwe and pkcs7 unwrappers share.
//!
//! `sequoia-openpgp` parses the keyrings, unlocks the keys and decrypts the PKESKs; with its
//! OpenSSL backend RSA decryption is blinded with a constant-time padding check, every PKESK
//! failure (padding, checksum) is the same `None`, and a session key that fails the SEIPD
//! quick check counts as no key, so "no key fits" reveals nothing about padding. Packet framing
//! and the SEIPD are ours (`packet.rs`, `seipd.rs`), because sequoia refuses two things Go's
//! `golang.org/x/crypto/openpgp` writes into every or every other message: partial body
//! lengths below 512 octets, and RSA ciphertext MPIs with leading zero bits. Session keys live
//! in sequoia's `SessionKey`, plaintext in zeroizing buffers and [`SecretBytes`]; all are wiped
//! on drop (flate2's inflate window is not).

mod packet;
mod seipd;

use std::borrow::Cow;
use std::fmt::Write as _;

use sequoia_openpgp as openpgp;

use openpgp::cert::CertParser;
use openpgp::crypto::mpi;
use openpgp::crypto::{Decryptor, KeyPair, Password, SessionKey};
use openpgp::packet::key::{PublicParts, SecretKeyMaterial, SecretParts, UnspecifiedRole};
use openpgp::packet::{Key, PKESK};
use openpgp::parse::Parse;
use openpgp::types::PublicKeyAlgorithm;
use openpgp::KeyHandle;
use zeroize::Zeroizing;

use super::{KeyUnwrapper, UnwrapError};
use crate::keys::{KeyRing, KeySource, OpenPgpKey};
use crate::secret::SecretBytes;
use packet::{TAG_PKESK, TAG_SED, TAG_SEIPD};

/// Largest OpenPGP message accepted. Go's is ~0.5 KiB for one RSA-2048 recipient.
pub const MAX_MESSAGE_LEN: usize = 1 << 20;
/// Largest literal body accepted. The private-options JSON is ~150 bytes.
pub const MAX_PLAINTEXT_LEN: usize = 64 << 10;
/// Most PKESK packets accepted in one message.
pub const MAX_RECIPIENTS: usize = 256;
/// Most certificates read from one keyring.
pub const MAX_CERTS_PER_KEYRING: usize = 256;

/// The `pgp` key unwrapper.
#[derive(Debug, Clone, Copy)]
pub struct Pgp;

impl KeyUnwrapper for Pgp {
    fn scheme(&self) -> &'static str {
        "pgp"
    }

    fn unwrap_key(&self, keys: &KeyRing, blob: &[u8]) -> Result<SecretBytes, UnwrapError> {
        let message = Message::parse(blob).map_err(UnwrapError::Malformed)?;
        let mut secrets = SecretKeys::load(&keys.openpgp);
        match open(&message, &mut secrets, keys) {
            Ok(plaintext) => Ok(plaintext),
            Err(Some(refused)) => Err(UnwrapError::Malformed(refused)),
            Err(None) => {
                let recipients = describe_recipients(&message.pkesks, &secrets);
                Err(if secrets.keys.is_empty() {
                    UnwrapError::NoUsableKeys { recipients }
                } else {
                    UnwrapError::NoKeyFits { recipients }
                })
            }
        }
    }
}

/// The parts of a message: its recipients and its encrypted data.
struct Message {
    pkesks: Vec<PKESK>,
    /// The SEIPD v1 body after its version octet.
    ciphertext: Zeroizing<Vec<u8>>,
}

impl Message {
    /// `PKESK* SEIPDv1`, and nothing before, between or after.
    fn parse(blob: &[u8]) -> Result<Message, String> {
        if blob.len() > MAX_MESSAGE_LEN {
            return Err(format!(
                "OpenPGP message larger than {} KiB",
                MAX_MESSAGE_LEN >> 10
            ));
        }
        if blob.is_empty() {
            return Err("empty OpenPGP message".into());
        }
        if packet::peek_tag(blob).is_none() {
            return Err("not a binary OpenPGP message".into());
        }
        let mut pkesks = Vec::new();
        let mut rest = blob;
        loop {
            if rest.is_empty() {
                return Err("OpenPGP message has no encrypted data packet".into());
            }
            let (p, after) = packet::next(rest).map_err(str::to_string)?;
            match p.tag {
                TAG_PKESK => {
                    if pkesks.len() == MAX_RECIPIENTS {
                        return Err(format!(
                            "OpenPGP message has more than {MAX_RECIPIENTS} recipients"
                        ));
                    }
                    pkesks.push(parse_pkesk(&p.body)?);
                }
                TAG_SEIPD => {
                    match p.body.first() {
                        Some(1) => {}
                        Some(2) => {
                            return Err("OpenPGP message uses SEIPD v2 (AEAD), which ocicrypt \
                                        never writes"
                                .into())
                        }
                        _ => return Err("OpenPGP message has an unknown SEIPD version".into()),
                    }
                    if let Some(tag) = packet::peek_tag(after) {
                        return Err(unexpected(tag, "after the encrypted data"));
                    }
                    if !after.is_empty() {
                        return Err("OpenPGP message has trailing bytes".into());
                    }
                    let ciphertext = Zeroizing::new(p.body[1..].to_vec());
                    return Ok(Message { pkesks, ciphertext });
                }
                TAG_SED => {
                    return Err("OpenPGP message has symmetrically encrypted data without \
                                integrity protection (SED), which is refused"
                        .into())
                }
                other => return Err(unexpected(other, "before the encrypted data")),
            }
            rest = after;
        }
    }
}

fn unexpected(tag: u8, place: &str) -> String {
    format!(
        "OpenPGP message has {} {place}, which is refused",
        packet::name(tag)
    )
}

fn parse_pkesk(body: &[u8]) -> Result<PKESK, String> {
    let body = match canonical_rsa_pkesk(body) {
        Some(fixed) => Cow::Owned(fixed),
        None => Cow::Borrowed(body),
    };
    PKESK::from_bytes(&body[..])
        .map_err(|_| "OpenPGP message has a malformed or unsupported PKESK packet".to_string())
}

/// Go's `golang.org/x/crypto/openpgp` writes an RSA PKESK's ciphertext as an MPI of
/// `8 × len(c)` bits, whatever its leading bits are; about half of its messages therefore carry
/// a non-minimal MPI, which sequoia refuses (RFC 9580 §3.2) and GnuPG and Go accept. This
/// re-encodes the body of a v3 RSA PKESK (version, key ID, algorithm 1 or 2, one MPI) minimally;
/// `None` if it is something else or already minimal.
fn canonical_rsa_pkesk(body: &[u8]) -> Option<Vec<u8>> {
    let (&[version], rest) = body.split_first_chunk::<1>()?;
    let (_key_id, rest) = rest.split_first_chunk::<8>()?;
    let (&[algo], rest) = rest.split_first_chunk::<1>()?;
    let (&bits, value) = rest.split_first_chunk::<2>()?;
    if version != 3 || !matches!(algo, 1 | 2) {
        return None;
    }
    let bits = usize::from(u16::from_be_bytes(bits));
    if value.len() != bits.div_ceil(8) {
        return None;
    }
    let first = value.iter().position(|&b| b != 0).unwrap_or(value.len());
    let value = &value[first..];
    let minimal = match value.first() {
        Some(&top) => value.len() * 8 - top.leading_zeros() as usize,
        None => 0,
    };
    if minimal == bits {
        return None;
    }
    let mut fixed = body[..10].to_vec();
    fixed.extend_from_slice(&u16::try_from(minimal).ok()?.to_be_bytes());
    fixed.extend_from_slice(value);
    Some(fixed)
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
/// of the same algorithm. `Err(None)`: no key fits; `Err(Some(why))`: a session key was found
/// but the encrypted data is refused.
fn open(
    message: &Message,
    secrets: &mut SecretKeys<'_>,
    budget: &KeyRing,
) -> Result<SecretBytes, Option<String>> {
    let mut refused = None;
    for anonymous in [false, true] {
        for pkesk in &message.pkesks {
            for key in secrets.keys.iter_mut() {
                if fits(pkesk, &key.key) != Some(!anonymous) {
                    continue;
                }
                let Some(pair) = key.keypair() else {
                    continue;
                };
                if !budget.spend_operation() {
                    return Err(Some(crate::keys::BUDGET_EXHAUSTED.into()));
                }
                let Some((Some(algo), session)) = pkesk.decrypt(&mut CheckedDecryptor(pair), None)
                else {
                    continue;
                };
                match seipd::decrypt(algo, &session, &message.ciphertext) {
                    Ok(verified) => return seipd::literal(&verified).map_err(Some),
                    Err(seipd::Failure::WrongKey) => {}
                    Err(seipd::Failure::Refused(why)) => refused = Some(why),
                }
            }
        }
    }
    Err(refused)
}

/// Refuses decrypted session-key plaintexts too short to hold a cipher octet and a checksum:
/// sequoia 2.3 indexes into them unchecked, and a PKESK that is valid RSA but has an empty
/// payload (anyone with the public key can make one) would otherwise panic.
struct CheckedDecryptor<'a>(&'a mut KeyPair);

/// Cipher octet + two checksum octets.
const MIN_SESSION_PLAINTEXT: usize = 3;

impl Decryptor for CheckedDecryptor<'_> {
    fn public(&self) -> &Key<PublicParts, UnspecifiedRole> {
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
