//! `jwe` recipients (protocol.md §4.1): a JWE in JSON serialization whose plaintext is the
//! private-options JSON.
//!
//! Parsing is ours, so that nothing an attacker writes reaches a decompressor or an unbounded
//! allocation: the size and recipient count are bounded, every header member is checked, `zip`
//! and `crit` are refused, and only Go ocicrypt's algorithms are accepted (key management
//! `RSA-OAEP`, `RSA-OAEP-256`, `ECDH-ES+A128KW/A192KW/A256KW`; content `A128/192/256GCM`,
//! `A128CBC-HS256/A192CBC-HS384/A256CBC-HS512`). go-jose's general serialization also repeats
//! recipient 0's `encrypted_key` at the top level; that member is ignored.
//!
//! Each recipient is then re-assembled as a flattened JWE and handed to `josekit` for the content
//! decryption, with our own key unwrapping (`cek`) on the OpenSSL key the key ring already holds
//! (constant-time, blinded RSA decryption; ECDH with curve checks). A recipient is
//! only tried with keys that can fit it: RSA keys whose modulus is as long as its
//! `encrypted_key`, EC keys on the curve of its `epk`.

use josekit::jwe;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Private};
use serde_json::{Map, Value};

use super::{KeyUnwrapper, UnwrapError};
use crate::encoding::decode_url;
use crate::keys::{KeyRing, PrivateKey};
use crate::secret::SecretBytes;

/// Largest JWE accepted. A real one is ~1 KiB per recipient.
pub const MAX_JWE_LEN: usize = 1 << 20;
/// Most recipients accepted in one JWE.
pub const MAX_RECIPIENTS: usize = 256;

/// A JSON object used as a JOSE header.
type Header = Map<String, Value>;

const KEY_ALGORITHMS: &[&str] = &[
    "RSA-OAEP",
    "RSA-OAEP-256",
    "ECDH-ES+A128KW",
    "ECDH-ES+A192KW",
    "ECDH-ES+A256KW",
];
const CONTENT_ALGORITHMS: &[&str] = &[
    "A128GCM",
    "A192GCM",
    "A256GCM",
    "A128CBC-HS256",
    "A192CBC-HS384",
    "A256CBC-HS512",
];

/// The `jwe` key unwrapper.
#[derive(Debug, Clone, Copy)]
pub struct Jwe;

impl KeyUnwrapper for Jwe {
    fn scheme(&self) -> &'static str {
        "jwe"
    }

    fn unwrap_key(&self, keys: &KeyRing, blob: &[u8]) -> Result<SecretBytes, UnwrapError> {
        let parsed = parse(blob).map_err(UnwrapError::Malformed)?;
        let recipients = parsed.describe_recipients();
        let mut any_candidate = false;
        for recipient in &parsed.recipients {
            let Some(alg) = recipient.algorithm() else {
                continue;
            };
            for key in keys.private_keys.iter().filter(|k| recipient.fits(k)) {
                any_candidate = true;
                if !keys.spend_operation() {
                    return Err(UnwrapError::Malformed(crate::keys::BUDGET_EXHAUSTED.into()));
                }
                if let Some(plaintext) = decrypt_with(&parsed, recipient, alg, key) {
                    return Ok(plaintext);
                }
            }
        }
        if any_candidate {
            Err(UnwrapError::NoKeyFits { recipients })
        } else {
            Err(UnwrapError::NoUsableKeys { recipients })
        }
    }
}

/// A JWE, split into recipients.
#[derive(Debug, Clone)]
pub struct ParsedJwe {
    protected_b64: Option<String>,
    unprotected: Option<Map<String, Value>>,
    iv: Option<String>,
    ciphertext: String,
    tag: Option<String>,
    aad: Option<String>,
    /// The recipients, with their merged headers.
    pub recipients: Vec<Recipient>,
}

/// One recipient: its own header, the merged header, and its `encrypted_key`.
#[derive(Debug, Clone)]
pub struct Recipient {
    header: Option<Map<String, Value>>,
    merged: Map<String, Value>,
    encrypted_key: Option<String>,
    encrypted_key_len: usize,
}

impl Recipient {
    /// The key-management algorithm.
    pub fn algorithm(&self) -> Option<&str> {
        self.merged.get("alg").and_then(Value::as_str)
    }

    fn epk_curve(&self) -> Option<&str> {
        self.merged.get("epk")?.get("crv")?.as_str()
    }

    /// Whether `key` could possibly be this recipient's key.
    fn fits(&self, key: &PrivateKey) -> bool {
        match self.algorithm() {
            Some("RSA-OAEP" | "RSA-OAEP-256") => {
                key.key.id() == Id::RSA && key.key.size() == self.encrypted_key_len
            }
            Some(alg) if alg.starts_with("ECDH-ES+") => {
                key.key.id() == Id::EC && Some(curve_name(&key.key)) == self.epk_curve()
            }
            _ => false,
        }
    }

    fn describe(&self) -> String {
        match self.algorithm() {
            Some(alg @ ("RSA-OAEP" | "RSA-OAEP-256")) => {
                format!("{alg} to RSA-{}", self.encrypted_key_len * 8)
            }
            Some(alg) => format!("{alg} to EC {}", self.epk_curve().unwrap_or("?")),
            None => "?".into(),
        }
    }
}

impl ParsedJwe {
    fn describe_recipients(&self) -> String {
        const SHOWN: usize = 4;
        let mut parts: Vec<String> = self
            .recipients
            .iter()
            .take(SHOWN)
            .map(Recipient::describe)
            .collect();
        if self.recipients.len() > SHOWN {
            parts.push(format!("and {} more", self.recipients.len() - SHOWN));
        }
        match self.recipients.len() {
            1 => format!("1 jwe recipient: {}", parts[0]),
            n => format!("{n} jwe recipients: {}", parts.join(", ")),
        }
    }
}

fn curve_name(key: &PKey<Private>) -> &'static str {
    match key.ec_key().ok().and_then(|k| k.group().curve_name()) {
        Some(Nid::X9_62_PRIME256V1) => "P-256",
        Some(Nid::SECP384R1) => "P-384",
        Some(Nid::SECP521R1) => "P-521",
        _ => "",
    }
}

/// Parses and validates a JWE (JSON general or flattened, or compact serialization).
pub fn parse(blob: &[u8]) -> Result<ParsedJwe, String> {
    if blob.len() > MAX_JWE_LEN {
        return Err(format!("JWE larger than {} KiB", MAX_JWE_LEN >> 10));
    }
    let first = blob.iter().find(|b| !b.is_ascii_whitespace());
    let mut object = match first {
        Some(b'{') => match serde_json::from_slice::<Value>(blob) {
            Ok(Value::Object(map)) => map,
            _ => return Err("JWE is not a JSON object".into()),
        },
        Some(_) => compact_to_json(blob)?,
        None => return Err("empty JWE".into()),
    };
    let protected_b64 = take_string(&mut object, "protected")?;
    let protected = match &protected_b64 {
        Some(p) => Some(decode_header(p, "protected")?),
        None => None,
    };
    let unprotected = match object.remove("unprotected") {
        None => None,
        Some(Value::Object(m)) => Some(m),
        Some(_) => return Err("JWE member \"unprotected\" is not an object".into()),
    };
    let iv = take_string(&mut object, "iv")?;
    let ciphertext =
        take_string(&mut object, "ciphertext")?.ok_or("JWE has no \"ciphertext\"".to_string())?;
    let tag = take_string(&mut object, "tag")?;
    let aad = take_string(&mut object, "aad")?;
    for (name, value) in [
        ("iv", &iv),
        ("ciphertext", &Some(ciphertext.clone())),
        ("tag", &tag),
        ("aad", &aad),
    ] {
        if let Some(v) = value {
            decode_url(v).map_err(|_| format!("JWE member {name:?} is not base64url"))?;
        }
    }

    let raw_recipients: Vec<(Option<Header>, Option<String>)> = match object.remove("recipients") {
        Some(Value::Array(list)) => {
            if list.is_empty() {
                return Err("JWE has an empty \"recipients\" list".into());
            }
            if list.len() > MAX_RECIPIENTS {
                return Err(format!("JWE has more than {MAX_RECIPIENTS} recipients"));
            }
            // go-jose repeats recipient 0's encrypted_key at the top level: ignore it.
            object.remove("encrypted_key");
            object.remove("header");
            let mut out = Vec::with_capacity(list.len());
            for r in list {
                let Value::Object(mut r) = r else {
                    return Err("a JWE recipient is not an object".into());
                };
                let header = take_object(&mut r, "header")?;
                let ek = take_string(&mut r, "encrypted_key")?;
                out.push((header, ek));
            }
            out
        }
        Some(_) => return Err("JWE member \"recipients\" is not a list".into()),
        None => {
            let header = take_object(&mut object, "header")?;
            let ek = take_string(&mut object, "encrypted_key")?;
            vec![(header, ek)]
        }
    };

    let mut recipients = Vec::with_capacity(raw_recipients.len());
    for (header, encrypted_key) in raw_recipients {
        let mut merged = Map::new();
        for part in [&protected, &unprotected, &header].into_iter().flatten() {
            for (k, v) in part {
                if merged.insert(k.clone(), v.clone()).is_some() {
                    return Err(format!("JWE header member {:?} appears twice", short(k)));
                }
            }
        }
        check_header(&merged)?;
        check_iv_and_tag(&merged, iv.as_deref(), tag.as_deref())?;
        let encrypted_key_len = match &encrypted_key {
            Some(ek) => decode_url(ek)
                .map_err(|_| "JWE encrypted_key is not base64url".to_string())?
                .len(),
            None => 0,
        };
        check_wrapped_key_len(&merged, encrypted_key.is_some(), encrypted_key_len)?;
        recipients.push(Recipient {
            header,
            merged,
            encrypted_key,
            encrypted_key_len,
        });
    }
    Ok(ParsedJwe {
        protected_b64,
        unprotected,
        iv,
        ciphertext,
        tag,
        aad,
        recipients,
    })
}

fn short(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(32).collect()
}

fn check_header(h: &Map<String, Value>) -> Result<(), String> {
    let alg = h
        .get("alg")
        .and_then(Value::as_str)
        .ok_or("JWE recipient has no \"alg\"")?;
    if !KEY_ALGORITHMS.contains(&alg) {
        return Err(format!(
            "JWE key algorithm {:?} is not one ocicrypt accepts",
            short(alg)
        ));
    }
    let enc = h
        .get("enc")
        .and_then(Value::as_str)
        .ok_or("JWE has no \"enc\"")?;
    if !CONTENT_ALGORITHMS.contains(&enc) {
        return Err(format!(
            "JWE content encryption {:?} is not one ocicrypt accepts",
            short(enc)
        ));
    }
    if h.contains_key("zip") {
        return Err("JWE uses compression (\"zip\"), which is refused (decompression bomb)".into());
    }
    if h.contains_key("crit") {
        return Err(
            "JWE has critical header extensions (\"crit\"), which are not supported".into(),
        );
    }
    if alg.starts_with("ECDH-ES") {
        let epk = h
            .get("epk")
            .and_then(Value::as_object)
            .ok_or("ECDH-ES recipient has no \"epk\"")?;
        if epk.get("kty").and_then(Value::as_str) != Some("EC") {
            return Err("ECDH-ES \"epk\" is not an EC key".into());
        }
        match epk.get("crv").and_then(Value::as_str) {
            Some("P-256" | "P-384" | "P-521") => {}
            _ => return Err("ECDH-ES \"epk\" is not on P-256, P-384 or P-521".into()),
        }
    }
    Ok(())
}

/// An ECDH-ES key-wrap recipient's `encrypted_key` is the content key wrapped with AES-KW: exactly
/// 8 bytes longer than the key `enc` uses. Checked here because josekit allocates
/// `encrypted_key.len() - 8` bytes, which underflows for a shorter one (a panic with overflow
/// checks, an impossible allocation and an abort without).
fn check_wrapped_key_len(h: &Map<String, Value>, present: bool, len: usize) -> Result<(), String> {
    let Some(alg) = h.get("alg").and_then(Value::as_str) else {
        return Ok(());
    };
    if !alg.starts_with("ECDH-ES+") {
        return Ok(());
    }
    let cek_len = match h.get("enc").and_then(Value::as_str) {
        Some("A128GCM") => 16,
        Some("A192GCM") => 24,
        Some("A256GCM" | "A128CBC-HS256") => 32,
        Some("A192CBC-HS384") => 48,
        Some("A256CBC-HS512") => 64,
        _ => return Err("JWE has no \"enc\"".into()),
    };
    if !present {
        return Err(format!("{alg} recipient has no \"encrypted_key\""));
    }
    if len != cek_len + 8 {
        return Err(format!(
            "{alg} recipient's \"encrypted_key\" is {len} bytes; its content encryption needs {}",
            cek_len + 8
        ));
    }
    Ok(())
}

/// The content algorithm needs an `iv` and a `tag` of exactly its sizes (go-jose refuses other
/// sizes too). Checked here because josekit hands a missing `iv` to OpenSSL's `Crypter`, which
/// panics ("an IV is required for this cipher").
fn check_iv_and_tag(
    h: &Map<String, Value>,
    iv: Option<&str>,
    tag: Option<&str>,
) -> Result<(), String> {
    let (iv_len, tag_len) = match h.get("enc").and_then(Value::as_str) {
        Some("A128GCM" | "A192GCM" | "A256GCM") => (12, 16),
        Some("A128CBC-HS256") => (16, 16),
        Some("A192CBC-HS384") => (16, 24),
        Some("A256CBC-HS512") => (16, 32),
        _ => return Err("JWE has no \"enc\"".into()),
    };
    let decoded_len = |v: &str| decode_url(v).map(|b| b.len()).unwrap_or(usize::MAX);
    match iv.map(decoded_len) {
        Some(n) if n == iv_len => {}
        Some(n) if n != usize::MAX => {
            return Err(format!(
                "JWE \"iv\" is {n} bytes; its content encryption needs {iv_len}"
            ))
        }
        Some(_) => return Err("JWE member \"iv\" is not base64url".into()),
        None => return Err("JWE has no \"iv\"".into()),
    }
    match tag.map(decoded_len) {
        Some(n) if n == tag_len => Ok(()),
        Some(n) if n != usize::MAX => Err(format!(
            "JWE \"tag\" is {n} bytes; its content encryption needs {tag_len}"
        )),
        Some(_) => Err("JWE member \"tag\" is not base64url".into()),
        None => Err("JWE has no \"tag\"".into()),
    }
}

fn take_string(map: &mut Map<String, Value>, name: &str) -> Result<Option<String>, String> {
    match map.remove(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("JWE member {name:?} is not a string")),
    }
}

fn take_object(
    map: &mut Map<String, Value>,
    name: &str,
) -> Result<Option<Map<String, Value>>, String> {
    match map.remove(name) {
        None => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(format!("JWE member {name:?} is not an object")),
    }
}

fn decode_header(b64: &str, name: &str) -> Result<Map<String, Value>, String> {
    let bytes = decode_url(b64).map_err(|_| format!("JWE {name} header is not base64url"))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(format!("JWE {name} header is not a JSON object")),
    }
}

/// Compact serialization `protected.encrypted_key.iv.ciphertext.tag` as a flattened object.
fn compact_to_json(blob: &[u8]) -> Result<Map<String, Value>, String> {
    let text =
        std::str::from_utf8(blob).map_err(|_| "JWE is neither JSON nor compact".to_string())?;
    let parts: Vec<&str> = text.trim().split('.').collect();
    if parts.len() != 5 {
        return Err("JWE is neither JSON nor compact serialization".into());
    }
    let mut map = Map::new();
    for (name, part) in ["protected", "encrypted_key", "iv", "ciphertext", "tag"]
        .iter()
        .zip(&parts)
    {
        if !part.is_empty() {
            map.insert(name.to_string(), Value::String(part.to_string()));
        }
    }
    Ok(map)
}

/// Re-assembles one recipient as a flattened JWE and decrypts it with `key`.
fn decrypt_with(
    parsed: &ParsedJwe,
    r: &Recipient,
    alg: &str,
    key: &PrivateKey,
) -> Option<SecretBytes> {
    let mut flat = Map::new();
    if let Some(p) = &parsed.protected_b64 {
        flat.insert("protected".into(), Value::String(p.clone()));
    }
    if let Some(u) = &parsed.unprotected {
        flat.insert("unprotected".into(), Value::Object(u.clone()));
    }
    if let Some(h) = &r.header {
        flat.insert("header".into(), Value::Object(h.clone()));
    }
    if let Some(ek) = &r.encrypted_key {
        flat.insert("encrypted_key".into(), Value::String(ek.clone()));
    }
    for (name, value) in [
        ("iv", &parsed.iv),
        ("tag", &parsed.tag),
        ("aad", &parsed.aad),
    ] {
        if let Some(v) = value {
            flat.insert(name.into(), Value::String(v.clone()));
        }
    }
    flat.insert(
        "ciphertext".into(),
        Value::String(parsed.ciphertext.clone()),
    );
    let flat = serde_json::to_string(&Value::Object(flat)).ok()?;

    let content = content_of(parsed)?;
    let decrypter = cek::Unwrapper::new(alg, &key.key, &content)?;
    let (plaintext, _header) = jwe::deserialize_json(&flat, &decrypter).ok()?;
    Some(SecretBytes::new(plaintext))
}

/// What the content tag covers, decoded.
fn content_of(parsed: &ParsedJwe) -> Option<cek::Content> {
    let mut aad = parsed
        .protected_b64
        .clone()
        .unwrap_or_default()
        .into_bytes();
    if let Some(extra) = &parsed.aad {
        aad.push(b'.');
        aad.extend_from_slice(extra.as_bytes());
    }
    let decode = |v: &Option<String>| match v {
        Some(text) => decode_url(text).ok(),
        None => Some(Vec::new()),
    };
    Some(cek::Content {
        aad,
        iv: decode(&parsed.iv)?,
        ciphertext: decode_url(&parsed.ciphertext).ok()?,
        tag: decode(&parsed.tag)?,
    })
}

mod cek;

#[cfg(test)]
mod tests;
