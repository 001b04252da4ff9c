//! `pkcs7` recipients (protocol.md §4.2): a CMS `EnvelopedData` (RFC 5652) whose content is the
//! private-options JSON, its content-encryption key (CEK) wrapped with RSA to each recipient's
//! certificate.
//!
//! # What is read
//!
//! Go ocicrypt's encoder (fullsailor → go.mozilla.org → smallstep `pkcs7.Encrypt`) writes one
//! `ContentInfo { envelopedData, [0] EnvelopedData }` with issuer+serial recipients, RSA PKCS#1
//! v1.5 key transport (`rsaEncryption` without a NULL parameter) and AES-128-GCM content, in an
//! encoding that is not DER and that general DER/CMS crates reject:
//! * the GCM parameters are a *primitive* universal-16 element whose contents are the whole DER
//!   `SEQUENCE { [4] IMPLICIT nonce, INTEGER icvLen }` (`10 13 30 11 84 0c <nonce> 02 01 10`);
//! * `encryptedContent` is a *constructed* `[0]` wrapping one OCTET STRING of ciphertext‖tag.
//!
//! The parser here is ours (over [`crate::der`]), so it takes those as they are, and also the
//! standard forms other CMS writers use (OpenSSL `cms -encrypt`): `[0] IMPLICIT` primitive
//! content or a constructed one of several OCTET STRINGs, RFC 5084 `GCMParameters`
//! (`SEQUENCE { OCTET STRING nonce, INTEGER icvLen DEFAULT 12 }`, tag appended to the
//! ciphertext in `EnvelopedData`), `rsaEncryption` with NULL, RSAES-OAEP (RFC 4055; hash, MGF1
//! hash and label from the parameters, SHA-1 by default, as smallstep's decrypter also accepts),
//! and `[0]` subjectKeyIdentifier recipients. Content ciphers: AES-128/192/256-GCM,
//! AES-128/192/256-CBC and DES-EDE3-CBC. Anything else (single DES, RC2, key agreement, KEK or
//! password recipients) is refused with a reason naming it. Every length is checked, the blob
//! is at most [`MAX_PKCS7_LEN`] and has at most [`MAX_RECIPIENTS`] recipients, and at most
//! [`MAX_KEY_ATTEMPTS`] (recipient, key) pairs are tried on one blob.
//!
//! # Which keys are tried
//!
//! Go tries every (private key, certificate) pair: the certificate selects the recipient by
//! issuer+serial, then the key decrypts. Here a recipient is first tried with the RSA keys whose
//! public key equals that of a local certificate naming the recipient (issuer+serial, or subject
//! key identifier); the certificate-less fallback below comes after all of those, and a key
//! found twice (directory and payload) is tried once. All private-key operations are OpenSSL's
//! (blinded, constant-time RSA).
//!
//! # Leniency beyond Go
//!
//! * **No certificate needed.** When no local certificate with its key names a recipient, every
//!   RSA key whose modulus is as long as that recipient's `encryptedKey` is tried on it: operators
//!   often copy only the key, and a renewed certificate keeps the key but changes the serial.
//! * `AuthEnvelopedData` (RFC 5083, `1.2.840.113549.1.9.16.1.23`) with AES-GCM and no
//!   authenticated attributes, which is what OpenSSL writes for `cms -encrypt -aes-128-gcm`. Go
//!   ocicrypt never writes it; it is accepted because it is the standard home of GCM in CMS.
//! * RSAES-OAEP with an explicit MGF1 hash or a label, which smallstep ignores. When the
//!   parameters name a hash other than SHA-1 but no MGF1 hash, both readings are tried: RFC
//!   4055's default (MGF1-SHA-1) and Go's (`rsa.EncryptOAEP` uses the OAEP hash for MGF1).
//!
//! # Why a wrong key is never accepted
//!
//! A wrong RSA key does not always fail: PKCS#1 v1.5 decryption with the wrong key usually
//! reports a padding error, but now and then "succeeds" with garbage, and with OpenSSL ≥ 3.2's
//! implicit rejection it always yields a pseudo-random CEK.
//! Whatever the RSA step yields, a CEK of the wrong length, or an RSA failure, is replaced by
//! random bytes of the right length (RFC 3218 §2.3.2), so every wrong key takes the same path
//! and ends in the same "no key fits" result: the decoder offers no padding oracle in its error
//! text, and less of one in its timing. Then:
//! * **GCM** authenticates the content with the CEK: a wrong CEK fails the tag (2^-96 or
//!   better), so the plaintext of a wrong key is never returned.
//! * **CBC** is not authenticated: a random CEK passes the padding check with probability about
//!   1/256. The plaintext is therefore only returned if it also parses as ocicrypt private
//!   options (a JSON object with a 32-byte `symkey`), otherwise the next key is tried. Even
//!   garbage that passed both would be harmless: its `symkey` is also the HMAC key that must
//!   verify the whole layer before the decoder exits 0 (protocol.md §3.5), so a wrong key can
//!   make a run fail, never succeed with the wrong bytes.
//!
//! The CEK and the plaintext live in zeroizing buffers; OpenSSL cleanses its cipher contexts.

use openssl::md::{Md, MdRef};
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Private, Public};
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::Padding;
use openssl::symm::{Cipher, Crypter, Mode};
use openssl::x509::X509Name;
use zeroize::Zeroizing;

use super::{KeyUnwrapper, UnwrapError};
use crate::der::{self, tag, DerError, Reader, Tlv};
use crate::keys::{Certificate, KeyRing, PrivateKey};
use crate::options;
use crate::secret::{SecretBytes, LAYER_KEY_LEN};

/// Largest blob accepted. Go's is ~0.4 KiB plus ~0.3 KiB per recipient.
pub const MAX_PKCS7_LEN: usize = 1 << 20;
/// Most recipients accepted in one blob.
pub const MAX_RECIPIENTS: usize = 256;
/// Most (recipient, key) pairs tried on one blob: each is one RSA decryption, two for OAEP
/// parameters that leave the MGF1 hash open.
pub const MAX_KEY_ATTEMPTS: usize = 64;
/// Most OCTET STRING pieces in a constructed `encryptedContent`.
const MAX_CONTENT_PIECES: usize = 1024;
/// Recipients named in an error message before "and N more".
const MAX_DESCRIBED: usize = 4;

/// OID contents octets.
mod oid {
    pub(super) const ENVELOPED_DATA: &[u8] =
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03];
    pub(super) const AUTH_ENVELOPED_DATA: &[u8] = &[
        0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x10, 0x01, 0x17,
    ];
    pub(super) const RSA_ENCRYPTION: &[u8] =
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    pub(super) const RSAES_OAEP: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x07];
    pub(super) const MGF1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08];
    pub(super) const P_SPECIFIED: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x09];
    pub(super) const SHA1: &[u8] = &[0x2b, 0x0e, 0x03, 0x02, 0x1a];
    pub(super) const SHA224: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x04];
    pub(super) const SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
    pub(super) const SHA384: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02];
    pub(super) const SHA512: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03];
    pub(super) const AES128_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x02];
    pub(super) const AES192_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x16];
    pub(super) const AES256_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a];
    pub(super) const AES128_GCM: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x06];
    pub(super) const AES192_GCM: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x1a];
    pub(super) const AES256_GCM: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2e];
    pub(super) const DES_EDE3_CBC: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x03, 0x07];
    pub(super) const DES_CBC: &[u8] = &[0x2b, 0x0e, 0x03, 0x02, 0x07];
    pub(super) const RC2_CBC: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x03, 0x02];
}

/// Tags of the context-specific fields used here.
const CTX0: u8 = tag::CONTEXT_CONSTRUCTED; // [0] constructed: explicit content, originatorInfo
const CTX1: u8 = tag::CONTEXT_CONSTRUCTED | 1; // [1]: unprotectedAttrs, authAttrs, OAEP maskGen
const CTX2: u8 = tag::CONTEXT_CONSTRUCTED | 2; // [2]: unauthAttrs, OAEP pSource
const KEY_ID: u8 = tag::CONTEXT; // [0] IMPLICIT SubjectKeyIdentifier
const CONTENT_PRIMITIVE: u8 = tag::CONTEXT; // [0] IMPLICIT OCTET STRING, primitive
/// Go's GCM parameters: universal 16 (SEQUENCE) with the constructed bit clear.
const PRIMITIVE_SEQUENCE: u8 = 0x10;
/// Go's GCM nonce: `[4] IMPLICIT OCTET STRING`.
const GO_NONCE: u8 = tag::CONTEXT | 4;

/// GCM nonce length accepted (Go requires it; every writer uses it).
const GCM_NONCE_LEN: usize = 12;

/// The `pkcs7` key unwrapper.
#[derive(Debug, Clone, Copy)]
pub struct Pkcs7;

impl KeyUnwrapper for Pkcs7 {
    fn scheme(&self) -> &'static str {
        "pkcs7"
    }

    fn unwrap_key(&self, keys: &KeyRing, blob: &[u8]) -> Result<SecretBytes, UnwrapError> {
        let envelope = parse(blob).map_err(UnwrapError::Malformed)?;
        let certs: Vec<CertInfo> = keys.certificates.iter().filter_map(CertInfo::new).collect();
        let plan = envelope.plan(&certs, &keys.private_keys);
        let mut recipients = envelope.describe_recipients();
        if plan.is_empty() {
            return Err(UnwrapError::NoUsableKeys { recipients });
        }
        for (recipient, key) in plan.iter().take(MAX_KEY_ATTEMPTS) {
            if !keys.spend_operation() {
                return Err(UnwrapError::Malformed(crate::keys::BUDGET_EXHAUSTED.into()));
            }
            if let Some(plaintext) = envelope.open(recipient, &key.key) {
                return Ok(plaintext);
            }
        }
        if plan.len() > MAX_KEY_ATTEMPTS {
            recipients.push_str(&format!(
                "; gave up after {MAX_KEY_ATTEMPTS} of {} key attempts",
                plan.len()
            ));
        }
        Err(UnwrapError::NoKeyFits { recipients })
    }
}

/// Which CMS content type carried the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Container {
    /// `EnvelopedData`: a GCM tag is appended to the ciphertext.
    Enveloped,
    /// `AuthEnvelopedData`: the GCM tag is the `mac` field.
    AuthEnveloped,
}

/// A parsed blob.
#[derive(Debug)]
pub struct Envelope<'a> {
    container: Container,
    /// The recipients, in order.
    pub recipients: Vec<Recipient<'a>>,
    cipher: ContentCipher,
    /// Ciphertext (with the appended GCM tag for `EnvelopedData` GCM).
    ciphertext: Vec<u8>,
    /// The `AuthEnvelopedData` tag.
    mac: Option<&'a [u8]>,
}

/// One `RecipientInfo`.
#[derive(Debug)]
pub struct Recipient<'a> {
    id: RecipientId<'a>,
    /// The key transport, or why it is not supported.
    transport: Result<KeyTransport, String>,
    encrypted_key: &'a [u8],
}

#[derive(Debug)]
enum RecipientId<'a> {
    /// `IssuerAndSerialNumber`: the issuer's whole encoding and the serial's contents.
    IssuerSerial { issuer: &'a [u8], serial: &'a [u8] },
    /// `[0] SubjectKeyIdentifier`.
    KeyId(&'a [u8]),
    /// A recipient kind other than key transport.
    Other(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyTransport {
    Pkcs1v15,
    Oaep {
        hash: Hash,
        /// `None`: the parameters did not say (RFC 4055 default SHA-1; smallstep uses `hash`).
        mgf1: Option<Hash>,
        label: Vec<u8>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hash {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    fn md(self) -> &'static MdRef {
        match self {
            Hash::Sha1 => Md::sha1(),
            Hash::Sha224 => Md::sha224(),
            Hash::Sha256 => Md::sha256(),
            Hash::Sha384 => Md::sha384(),
            Hash::Sha512 => Md::sha512(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Hash::Sha1 => "SHA-1",
            Hash::Sha224 => "SHA-224",
            Hash::Sha256 => "SHA-256",
            Hash::Sha384 => "SHA-384",
            Hash::Sha512 => "SHA-512",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ContentAlgorithm {
    Aes128Gcm,
    Aes192Gcm,
    Aes256Gcm,
    Aes128Cbc,
    Aes192Cbc,
    Aes256Cbc,
    DesEde3Cbc,
}

impl ContentAlgorithm {
    fn from_oid(oid_bytes: &[u8]) -> Result<Self, String> {
        Ok(match oid_bytes {
            oid::AES128_GCM => Self::Aes128Gcm,
            oid::AES192_GCM => Self::Aes192Gcm,
            oid::AES256_GCM => Self::Aes256Gcm,
            oid::AES128_CBC => Self::Aes128Cbc,
            oid::AES192_CBC => Self::Aes192Cbc,
            oid::AES256_CBC => Self::Aes256Cbc,
            oid::DES_EDE3_CBC => Self::DesEde3Cbc,
            oid::DES_CBC => {
                return Err("pkcs7 content cipher DES-CBC (56-bit single DES) is refused".into())
            }
            oid::RC2_CBC => return Err("pkcs7 content cipher RC2-CBC is refused".into()),
            other => {
                return Err(format!(
                "pkcs7 content cipher {} is not supported (AES-GCM, AES-CBC and DES-EDE3-CBC are)",
                oid_name(other)
            ))
            }
        })
    }

    fn cipher(self) -> Cipher {
        match self {
            Self::Aes128Gcm => Cipher::aes_128_gcm(),
            Self::Aes192Gcm => Cipher::aes_192_gcm(),
            Self::Aes256Gcm => Cipher::aes_256_gcm(),
            Self::Aes128Cbc => Cipher::aes_128_cbc(),
            Self::Aes192Cbc => Cipher::aes_192_cbc(),
            Self::Aes256Cbc => Cipher::aes_256_cbc(),
            Self::DesEde3Cbc => Cipher::des_ede3_cbc(),
        }
    }

    fn key_len(self) -> usize {
        match self {
            Self::Aes128Gcm | Self::Aes128Cbc => 16,
            Self::Aes192Gcm | Self::Aes192Cbc | Self::DesEde3Cbc => 24,
            Self::Aes256Gcm | Self::Aes256Cbc => 32,
        }
    }

    fn block_len(self) -> usize {
        match self {
            Self::DesEde3Cbc => 8,
            _ => 16,
        }
    }

    fn is_gcm(self) -> bool {
        matches!(self, Self::Aes128Gcm | Self::Aes192Gcm | Self::Aes256Gcm)
    }
}

/// The content cipher and its parameters.
#[derive(Debug, Clone)]
struct ContentCipher {
    algorithm: ContentAlgorithm,
    /// GCM nonce or CBC IV.
    iv: Vec<u8>,
    /// GCM tag length (0 for CBC).
    icv_len: usize,
}

/// An `AlgorithmIdentifier`.
struct AlgorithmId<'a> {
    oid: &'a [u8],
    params: Option<Tlv<'a>>,
}

impl AlgorithmId<'_> {
    /// Parameters absent or NULL.
    fn has_no_params(&self) -> bool {
        match &self.params {
            None => true,
            Some(p) => p.tag == tag::NULL && p.value.is_empty(),
        }
    }
}

/// `"pkcs7 <what> is malformed (truncated DER)"`.
fn bad(what: &'static str) -> impl Fn(DerError) -> String {
    move |e| format!("pkcs7 {what} is malformed ({e})")
}

/// Fails if `r` has bytes left.
fn end(r: &Reader<'_>, what: &str) -> Result<(), String> {
    if r.is_empty() {
        Ok(())
    } else {
        Err(format!("pkcs7 {what} has unexpected trailing data"))
    }
}

fn oid_name(contents: &[u8]) -> String {
    der::oid_text(contents).unwrap_or_else(|| "(unreadable OID)".into())
}

fn algorithm_id<'a>(tlv: Tlv<'a>, what: &'static str) -> Result<AlgorithmId<'a>, String> {
    let tlv = tlv.expect(tag::SEQUENCE).map_err(bad(what))?;
    let mut r = tlv.reader();
    let oid = r.read_tag(tag::OID).map_err(bad(what))?.value;
    let params = if r.is_empty() {
        None
    } else {
        Some(r.read().map_err(bad(what))?)
    };
    end(&r, what)?;
    Ok(AlgorithmId { oid, params })
}

/// Parses and checks a blob; nothing is decrypted.
pub fn parse(blob: &[u8]) -> Result<Envelope<'_>, String> {
    if blob.len() > MAX_PKCS7_LEN {
        return Err(format!(
            "pkcs7 blob larger than {} KiB",
            MAX_PKCS7_LEN >> 10
        ));
    }
    let mut top = Reader::new(blob);
    let info = top.read_tag(tag::SEQUENCE).map_err(bad("ContentInfo"))?;
    end(&top, "blob")?;
    let mut r = info.reader();
    let content_type = r.read_tag(tag::OID).map_err(bad("ContentInfo"))?.value;
    let container = match content_type {
        oid::ENVELOPED_DATA => Container::Enveloped,
        oid::AUTH_ENVELOPED_DATA => Container::AuthEnveloped,
        other => {
            return Err(format!(
                "pkcs7 blob holds CMS content type {}, not EnvelopedData",
                oid_name(other)
            ))
        }
    };
    let explicit = r.read_tag(CTX0).map_err(bad("ContentInfo"))?;
    end(&r, "ContentInfo")?;
    let mut inner = explicit.reader();
    let data = inner
        .read_tag(tag::SEQUENCE)
        .map_err(bad("EnvelopedData"))?;
    end(&inner, "ContentInfo")?;

    let mut r = data.reader();
    r.read_tag(tag::INTEGER).map_err(bad("EnvelopedData"))?;
    r.read_if(CTX0).map_err(bad("originatorInfo"))?;
    let set = r.read_tag(tag::SET).map_err(bad("recipientInfos"))?;
    let recipients = parse_recipients(set)?;
    let content_info = r
        .read_tag(tag::SEQUENCE)
        .map_err(bad("encryptedContentInfo"))?;
    let (cipher, ciphertext) = parse_content(content_info)?;
    let mac = match container {
        Container::Enveloped => {
            r.read_if(CTX1).map_err(bad("unprotectedAttrs"))?;
            None
        }
        Container::AuthEnveloped => {
            if r.peek_tag() == Some(CTX1) {
                return Err(
                    "pkcs7 AuthEnvelopedData with authenticated attributes is not supported".into(),
                );
            }
            let mac = r.read_tag(tag::OCTET_STRING).map_err(bad("mac"))?.value;
            r.read_if(CTX2).map_err(bad("unauthAttrs"))?;
            Some(mac)
        }
    };
    end(&r, "EnvelopedData")?;

    let algorithm = cipher.algorithm;
    if algorithm.is_gcm() {
        match mac {
            Some(mac) if mac.len() != cipher.icv_len => {
                return Err(format!(
                    "pkcs7 AES-GCM tag is {} bytes, the parameters say {}",
                    mac.len(),
                    cipher.icv_len
                ))
            }
            None if ciphertext.len() < cipher.icv_len => {
                return Err(format!(
                    "pkcs7 AES-GCM content of {} bytes is shorter than its {}-byte tag",
                    ciphertext.len(),
                    cipher.icv_len
                ))
            }
            _ => {}
        }
    } else {
        if container == Container::AuthEnveloped {
            return Err("pkcs7 AuthEnvelopedData must use AES-GCM".into());
        }
        if ciphertext.is_empty() || ciphertext.len() % algorithm.block_len() != 0 {
            return Err(format!(
                "pkcs7 CBC ciphertext of {} bytes is not a whole number of blocks",
                ciphertext.len()
            ));
        }
    }
    Ok(Envelope {
        container,
        recipients,
        cipher,
        ciphertext,
        mac,
    })
}

fn parse_recipients(set: Tlv<'_>) -> Result<Vec<Recipient<'_>>, String> {
    let mut r = set.reader();
    let mut out = Vec::new();
    while !r.is_empty() {
        if out.len() == MAX_RECIPIENTS {
            return Err(format!(
                "pkcs7 blob has more than {MAX_RECIPIENTS} recipients"
            ));
        }
        let info = r.read().map_err(bad("RecipientInfo"))?;
        let other = match info.tag {
            tag::SEQUENCE => {
                out.push(parse_key_transport(info)?);
                continue;
            }
            t if t == CTX1 => "key-agreement",
            t if t == CTX2 => "KEK",
            t if t == tag::CONTEXT_CONSTRUCTED | 3 => "password",
            t if t == tag::CONTEXT_CONSTRUCTED | 4 => "other-type",
            t => return Err(format!("pkcs7 RecipientInfo has unexpected tag {t:#04x}")),
        };
        out.push(Recipient {
            id: RecipientId::Other(other),
            transport: Err("not supported".into()),
            encrypted_key: &[],
        });
    }
    if out.is_empty() {
        return Err("pkcs7 blob has no recipients".into());
    }
    Ok(out)
}

fn parse_key_transport(info: Tlv<'_>) -> Result<Recipient<'_>, String> {
    const WHAT: &str = "KeyTransRecipientInfo";
    let mut r = info.reader();
    r.read_tag(tag::INTEGER).map_err(bad(WHAT))?;
    let rid = r.read().map_err(bad(WHAT))?;
    let id = match rid.tag {
        tag::SEQUENCE => {
            let mut ias = rid.reader();
            let (name, issuer) = ias.read_raw().map_err(bad("issuerAndSerialNumber"))?;
            name.expect(tag::SEQUENCE)
                .map_err(bad("issuerAndSerialNumber"))?;
            let serial = ias
                .read_tag(tag::INTEGER)
                .map_err(bad("issuerAndSerialNumber"))?
                .value;
            end(&ias, "issuerAndSerialNumber")?;
            RecipientId::IssuerSerial { issuer, serial }
        }
        KEY_ID => RecipientId::KeyId(rid.value),
        t => {
            return Err(format!(
                "pkcs7 recipient identifier has unexpected tag {t:#04x}"
            ))
        }
    };
    let algorithm = algorithm_id(r.read().map_err(bad(WHAT))?, "keyEncryptionAlgorithm")?;
    let encrypted_key = r.read_tag(tag::OCTET_STRING).map_err(bad(WHAT))?.value;
    end(&r, WHAT)?;
    Ok(Recipient {
        id,
        transport: key_transport(&algorithm),
        encrypted_key,
    })
}

fn key_transport(algorithm: &AlgorithmId<'_>) -> Result<KeyTransport, String> {
    match algorithm.oid {
        oid::RSA_ENCRYPTION if algorithm.has_no_params() => Ok(KeyTransport::Pkcs1v15),
        oid::RSA_ENCRYPTION => Err("rsaEncryption with parameters".into()),
        oid::RSAES_OAEP => oaep_params(algorithm.params),
        other => Err(format!(
            "key transport {} not supported; rsaEncryption and RSAES-OAEP are",
            oid_name(other)
        )),
    }
}

/// RFC 4055 `RSAES-OAEP-params`; absent or NULL parameters mean all defaults.
fn oaep_params(params: Option<Tlv<'_>>) -> Result<KeyTransport, String> {
    const WHAT: &str = "RSAES-OAEP parameters";
    let mut hash = Hash::Sha1;
    let mut mgf1 = None;
    let mut label = Vec::new();
    match params {
        None => {}
        Some(p) if p.tag == tag::NULL && p.value.is_empty() => {}
        Some(p) if p.tag == tag::SEQUENCE => {
            let mut r = p.reader();
            if let Some(h) = r.read_if(tag::CONTEXT_CONSTRUCTED).map_err(bad(WHAT))? {
                hash = hash_algorithm(explicit_algorithm(h)?)?;
            }
            if let Some(m) = r.read_if(CTX1).map_err(bad(WHAT))? {
                let mask = explicit_algorithm(m)?;
                if mask.oid != oid::MGF1 {
                    return Err(format!(
                        "OAEP mask generation {} not supported",
                        oid_name(mask.oid)
                    ));
                }
                let inner = mask.params.ok_or("OAEP MGF1 without a hash")?;
                mgf1 = Some(hash_algorithm(algorithm_id(inner, WHAT)?)?);
            }
            if let Some(s) = r.read_if(CTX2).map_err(bad(WHAT))? {
                let source = explicit_algorithm(s)?;
                if source.oid != oid::P_SPECIFIED {
                    return Err(format!(
                        "OAEP label source {} not supported",
                        oid_name(source.oid)
                    ));
                }
                if let Some(l) = source.params {
                    label = l
                        .expect(tag::OCTET_STRING)
                        .map_err(bad(WHAT))?
                        .value
                        .to_vec();
                }
            }
            end(&r, WHAT)?;
        }
        Some(_) => return Err("malformed RSAES-OAEP parameters".into()),
    }
    Ok(KeyTransport::Oaep { hash, mgf1, label })
}

/// `[n] EXPLICIT AlgorithmIdentifier`.
fn explicit_algorithm(tlv: Tlv<'_>) -> Result<AlgorithmId<'_>, String> {
    const WHAT: &str = "RSAES-OAEP parameters";
    let mut r = tlv.reader();
    let inner = r.read().map_err(bad(WHAT))?;
    end(&r, WHAT)?;
    algorithm_id(inner, WHAT)
}

fn hash_algorithm(algorithm: AlgorithmId<'_>) -> Result<Hash, String> {
    if !algorithm.has_no_params() {
        return Err("OAEP hash with parameters".into());
    }
    Ok(match algorithm.oid {
        oid::SHA1 => Hash::Sha1,
        oid::SHA224 => Hash::Sha224,
        oid::SHA256 => Hash::Sha256,
        oid::SHA384 => Hash::Sha384,
        oid::SHA512 => Hash::Sha512,
        other => return Err(format!("OAEP hash {} not supported", oid_name(other))),
    })
}

/// `EncryptedContentInfo`: the cipher with its parameters, and the ciphertext.
fn parse_content(info: Tlv<'_>) -> Result<(ContentCipher, Vec<u8>), String> {
    const WHAT: &str = "encryptedContentInfo";
    let mut r = info.reader();
    r.read_tag(tag::OID).map_err(bad(WHAT))?;
    let algorithm_tlv = r.read().map_err(bad(WHAT))?;
    let algorithm_id = algorithm_id(algorithm_tlv, "contentEncryptionAlgorithm")?;
    let algorithm = ContentAlgorithm::from_oid(algorithm_id.oid)?;
    let cipher = if algorithm.is_gcm() {
        gcm_params(algorithm, algorithm_id.params)?
    } else {
        let iv = algorithm_id
            .params
            .ok_or("pkcs7 CBC content has no IV")?
            .expect(tag::OCTET_STRING)
            .map_err(bad("CBC IV"))?
            .value;
        if iv.len() != algorithm.block_len() {
            return Err(format!(
                "pkcs7 CBC IV is {} bytes, {} expected",
                iv.len(),
                algorithm.block_len()
            ));
        }
        ContentCipher {
            algorithm,
            iv: iv.to_vec(),
            icv_len: 0,
        }
    };
    if r.is_empty() {
        return Err("pkcs7 encrypted content is absent (detached content is not supported)".into());
    }
    let content = r.read().map_err(bad("encryptedContent"))?;
    end(&r, WHAT)?;
    let ciphertext = match content.tag {
        CONTENT_PRIMITIVE => content.value.to_vec(),
        CTX0 => {
            // Go: exactly one OCTET STRING; BER writers may split it into several.
            let mut pieces = content.reader();
            let mut out = Vec::with_capacity(content.value.len());
            let mut count = 0;
            while !pieces.is_empty() {
                count += 1;
                if count > MAX_CONTENT_PIECES {
                    return Err("pkcs7 encrypted content is split into too many pieces".into());
                }
                let piece = pieces
                    .read_tag(tag::OCTET_STRING)
                    .map_err(bad("encryptedContent"))?;
                out.extend_from_slice(piece.value);
            }
            out
        }
        t => {
            return Err(format!(
                "pkcs7 encryptedContent has unexpected tag {t:#04x}"
            ))
        }
    };
    Ok((cipher, ciphertext))
}

/// GCM parameters in Go's form (primitive universal 16 holding the DER of the SEQUENCE, nonce
/// tagged `[4]`) or RFC 5084's (`SEQUENCE { OCTET STRING, INTEGER DEFAULT 12 }`).
fn gcm_params(
    algorithm: ContentAlgorithm,
    params: Option<Tlv<'_>>,
) -> Result<ContentCipher, String> {
    const WHAT: &str = "AES-GCM parameters";
    let params = params.ok_or("pkcs7 AES-GCM content has no parameters")?;
    let sequence = match params.tag {
        tag::SEQUENCE => params,
        PRIMITIVE_SEQUENCE => {
            let mut r = params.reader();
            let inner = r.read_tag(tag::SEQUENCE).map_err(bad(WHAT))?;
            end(&r, WHAT)?;
            inner
        }
        t => {
            return Err(format!(
                "pkcs7 AES-GCM parameters have unexpected tag {t:#04x}"
            ))
        }
    };
    let mut r = sequence.reader();
    let nonce = r.read().map_err(bad(WHAT))?;
    if nonce.tag != tag::OCTET_STRING && nonce.tag != GO_NONCE {
        return Err(format!(
            "pkcs7 AES-GCM nonce has unexpected tag {:#04x}",
            nonce.tag
        ));
    }
    if nonce.value.len() != GCM_NONCE_LEN {
        return Err(format!(
            "pkcs7 AES-GCM nonce is {} bytes, {GCM_NONCE_LEN} expected",
            nonce.value.len()
        ));
    }
    let icv_len = match r.read_if(tag::INTEGER).map_err(bad(WHAT))? {
        None => 12,
        Some(i) => small_uint(i.value).ok_or("pkcs7 AES-GCM tag length is not a small integer")?,
    };
    end(&r, WHAT)?;
    if !(12..=16).contains(&icv_len) {
        return Err(format!(
            "pkcs7 AES-GCM tag length {icv_len} is not 12 to 16 bytes"
        ));
    }
    Ok(ContentCipher {
        algorithm,
        iv: nonce.value.to_vec(),
        icv_len,
    })
}

/// A non-negative INTEGER of at most 2 significant bytes.
fn small_uint(contents: &[u8]) -> Option<usize> {
    let (&first, _) = contents.split_first()?;
    if first & 0x80 != 0 {
        return None;
    }
    let significant = strip_zeros(contents);
    if significant.len() > 2 {
        return None;
    }
    Some(
        significant
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b)),
    )
}

/// INTEGER contents without leading zero bytes (serials are compared by magnitude, as Go does).
fn strip_zeros(contents: &[u8]) -> &[u8] {
    let first = contents
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(contents.len());
    &contents[first..]
}

/// What a local certificate can identify.
struct CertInfo {
    /// Whole encoding of the issuer name (Go compares `RawIssuer` byte for byte).
    issuer: Vec<u8>,
    serial: Vec<u8>,
    key_id: Option<Vec<u8>>,
    public: PKey<Public>,
}

impl CertInfo {
    fn new(cert: &Certificate) -> Option<Self> {
        let public = cert.cert.public_key().ok()?;
        if public.id() != Id::RSA {
            return None;
        }
        let der = cert.cert.to_der().ok()?;
        let (issuer, serial) = cert_issuer_serial(&der).ok()?;
        Some(Self {
            issuer: issuer.to_vec(),
            serial: strip_zeros(serial).to_vec(),
            key_id: cert.cert.subject_key_id().map(|k| k.as_slice().to_vec()),
            public,
        })
    }

    fn names(&self, id: &RecipientId<'_>) -> bool {
        match id {
            RecipientId::IssuerSerial { issuer, serial } => {
                *issuer == self.issuer.as_slice() && strip_zeros(serial) == self.serial.as_slice()
            }
            RecipientId::KeyId(k) => self.key_id.as_deref() == Some(*k),
            RecipientId::Other(_) => false,
        }
    }
}

/// The issuer's whole encoding and the serial's contents, from a certificate's DER.
fn cert_issuer_serial(der: &[u8]) -> Result<(&[u8], &[u8]), DerError> {
    let cert = Reader::new(der).read_tag(tag::SEQUENCE)?;
    let tbs = cert.reader().read_tag(tag::SEQUENCE)?;
    let mut r = tbs.reader();
    r.read_if(tag::CONTEXT_CONSTRUCTED)?; // [0] EXPLICIT version
    let serial = r.read_tag(tag::INTEGER)?.value;
    r.read_tag(tag::SEQUENCE)?; // signature algorithm
    let (name, issuer) = r.read_raw()?;
    name.expect(tag::SEQUENCE)?;
    Ok((issuer, serial))
}

impl<'a> Envelope<'a> {
    /// The (recipient, key) pairs to try, best first: keys named by a local certificate, then the
    /// certificate-less fallback for recipients no local certificate with its key names.
    fn plan<'k>(
        &self,
        certs: &[CertInfo],
        keys: &'k [PrivateKey],
    ) -> Vec<(&Recipient<'a>, &'k PrivateKey)> {
        // The same key may come from the directory and the payload: try it once.
        let mut rsa: Vec<&'k PrivateKey> = Vec::new();
        for key in keys.iter().filter(|k| k.key.id() == Id::RSA) {
            if !rsa.iter().any(|k| k.key.public_eq(&key.key)) {
                rsa.push(key);
            }
        }
        let rsa_keys = || rsa.iter().copied();
        let mut named = Vec::new();
        let mut fallback = Vec::new();
        for recipient in &self.recipients {
            if recipient.transport.is_err() {
                continue;
            }
            let certified: Vec<&PrivateKey> = rsa_keys()
                .filter(|k| {
                    certs
                        .iter()
                        .any(|c| c.names(&recipient.id) && c.public.public_eq(&k.key))
                })
                .collect();
            if certified.is_empty() {
                fallback.extend(
                    rsa_keys()
                        .filter(|k| k.key.size() == recipient.encrypted_key.len())
                        .map(|k| (recipient, k)),
                );
            } else {
                named.extend(certified.into_iter().map(|k| (recipient, k)));
            }
        }
        named.extend(fallback);
        named
    }

    /// Decrypts the content with `key` as `recipient`; `None` if it does not fit.
    fn open(&self, recipient: &Recipient<'_>, key: &PKey<Private>) -> Option<SecretBytes> {
        let transport = recipient.transport.as_ref().ok()?;
        let cek = unwrap_cek(
            transport,
            key,
            recipient.encrypted_key,
            self.cipher.algorithm.key_len(),
        )?;
        let plaintext = self.decrypt_content(&cek)?;
        if !self.cipher.algorithm.is_gcm() && !looks_like_private_options(&plaintext) {
            return None;
        }
        Some(SecretBytes::from(plaintext))
    }

    fn decrypt_content(&self, cek: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        let cipher = self.cipher.algorithm.cipher();
        let (input, tag) = if self.cipher.algorithm.is_gcm() {
            match self.mac {
                Some(mac) => (self.ciphertext.as_slice(), Some(mac)),
                None => {
                    let split = self.ciphertext.len().checked_sub(self.cipher.icv_len)?;
                    let (ct, tag) = self.ciphertext.split_at(split);
                    (ct, Some(tag))
                }
            }
        } else {
            (self.ciphertext.as_slice(), None)
        };
        let mut crypter = Crypter::new(cipher, Mode::Decrypt, cek, Some(&self.cipher.iv)).ok()?;
        if let Some(tag) = tag {
            crypter.set_tag(tag).ok()?;
        }
        let mut out = Zeroizing::new(vec![0u8; input.len() + cipher.block_size()]);
        let n = crypter.update(input, &mut out).ok()?;
        let m = crypter.finalize(out.get_mut(n..)?).ok()?;
        out.truncate(n + m);
        Some(out)
    }

    fn describe_recipients(&self) -> String {
        let mut parts: Vec<String> = self
            .recipients
            .iter()
            .take(MAX_DESCRIBED)
            .map(Recipient::describe)
            .collect();
        if self.recipients.len() > MAX_DESCRIBED {
            parts.push(format!(
                "and {} more",
                self.recipients.len() - MAX_DESCRIBED
            ));
        }
        let kind = match self.container {
            Container::Enveloped => "pkcs7",
            Container::AuthEnveloped => "pkcs7 (AuthEnvelopedData)",
        };
        match self.recipients.len() {
            1 => format!("1 {kind} recipient: {}", parts.join(", ")),
            n => format!("{n} {kind} recipients: {}", parts.join(", ")),
        }
    }
}

impl Recipient<'_> {
    fn describe(&self) -> String {
        let who = match &self.id {
            RecipientId::IssuerSerial { issuer, serial } => format!(
                "issuer {} serial 0x{}",
                name_text(issuer),
                hex_upper(strip_zeros(serial))
            ),
            RecipientId::KeyId(id) => format!("subject key id {}", hex_upper(id)),
            RecipientId::Other(kind) => format!("a {kind} recipient"),
        };
        let how = match &self.transport {
            Ok(KeyTransport::Pkcs1v15) => format!("RSA-{}", self.encrypted_key.len() * 8),
            Ok(KeyTransport::Oaep { hash, .. }) => {
                format!("RSA-{} OAEP {}", self.encrypted_key.len() * 8, hash.name())
            }
            Err(why) => why.clone(),
        };
        format!("{who} ({how})")
    }
}

/// Whether unauthenticated (CBC) plaintext is ocicrypt private options with a layer key of the
/// right length; anything else came from a wrong key.
fn looks_like_private_options(plaintext: &[u8]) -> bool {
    options::parse_private(plaintext).is_ok_and(|o| o.symkey.len() == LAYER_KEY_LEN)
}

/// `CN=…` (or the last attribute when there is no CN) of a DER `Name`, for messages only:
/// control characters dropped, at most 64 characters.
fn name_text(der_name: &[u8]) -> String {
    let Ok(name) = X509Name::from_der(der_name) else {
        return "(unreadable name)".into();
    };
    let entries: Vec<_> = name.entries().collect();
    let chosen = entries
        .iter()
        .rev()
        .find(|e| e.object().nid() == Nid::COMMONNAME)
        .or(entries.last());
    let Some(entry) = chosen else {
        return "(empty name)".into();
    };
    let key = entry.object().nid().short_name().unwrap_or("?");
    let value = entry.data().to_string().unwrap_or_else(|_| "?".into());
    format!("{key}={value}")
        .chars()
        .filter(|c| !c.is_control())
        .take(64)
        .collect()
}

/// Upper-case hex of at most 20 bytes (RFC 5280's longest serial), `…` beyond.
fn hex_upper(bytes: &[u8]) -> String {
    let mut s: String = bytes.iter().take(20).map(|b| format!("{b:02X}")).collect();
    if s.is_empty() {
        s.push('0');
    }
    if bytes.len() > 20 {
        s.push('…');
    }
    s
}

/// RSA-decrypts the CEK. A failure or a CEK of the wrong length yields random bytes of the
/// right length instead (RFC 3218 §2.3.2), which the content decryption then rejects like any
/// other wrong key. `None` only if no random bytes could be had.
fn unwrap_cek(
    transport: &KeyTransport,
    key: &PKey<Private>,
    encrypted: &[u8],
    key_len: usize,
) -> Option<Zeroizing<Vec<u8>>> {
    let attempts: Vec<Option<Hash>> = match transport {
        KeyTransport::Pkcs1v15 => vec![None],
        // No MGF1 in the parameters: RFC 4055 says SHA-1, smallstep uses the OAEP hash.
        KeyTransport::Oaep {
            hash, mgf1: None, ..
        } if *hash != Hash::Sha1 => vec![Some(Hash::Sha1), Some(*hash)],
        KeyTransport::Oaep { hash, mgf1, .. } => vec![Some(mgf1.unwrap_or(*hash))],
    };
    for mgf1 in attempts {
        if let Some(cek) = rsa_decrypt(transport, mgf1, key, encrypted) {
            if cek.len() == key_len {
                return Some(cek);
            }
        }
    }
    let mut random = Zeroizing::new(vec![0u8; key_len]);
    openssl::rand::rand_bytes(&mut random).ok()?;
    Some(random)
}

fn rsa_decrypt(
    transport: &KeyTransport,
    mgf1: Option<Hash>,
    key: &PKey<Private>,
    encrypted: &[u8],
) -> Option<Zeroizing<Vec<u8>>> {
    let mut ctx = PkeyCtx::new(key).ok()?;
    ctx.decrypt_init().ok()?;
    match transport {
        KeyTransport::Pkcs1v15 => ctx.set_rsa_padding(Padding::PKCS1).ok()?,
        KeyTransport::Oaep { hash, label, .. } => {
            ctx.set_rsa_padding(Padding::PKCS1_OAEP).ok()?;
            ctx.set_rsa_oaep_md(hash.md()).ok()?;
            ctx.set_rsa_mgf1_md(mgf1.unwrap_or(*hash).md()).ok()?;
            if !label.is_empty() {
                ctx.set_rsa_oaep_label(label).ok()?;
            }
        }
    }
    let mut out = Zeroizing::new(Vec::new());
    ctx.decrypt_to_vec(encrypted, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests;
