//! The fd-3 payload: what containerd tells the decoder about the layer (protocol.md §1.4).
//!
//! Wire format: a protobuf `google.protobuf.Any` with the bare type URL
//! `io.containerd.ocicrypt.v1.Payload`, whose value is imgcrypt's `Payload` struct marshalled by
//! Go's `encoding/json`: `{"DecryptConfig":{"Parameters":{..}},"Descriptor":{..}}`.
//!
//! Trust: the bytes come from containerd, which copies them from whichever client asked for the
//! unpack. They are parsed defensively: bounded size, typed errors, no panics. Go's JSON leniency
//! is kept where Go is lenient (case-insensitive keys, unknown keys ignored, last duplicate wins)
//! so that anything imgcrypt's decoder accepts, this one accepts too. Key bytes are decoded
//! straight into [`SecretBytes`].

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;

use prost::Message;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use zeroize::Zeroizing;

use crate::encoding::{decode_std_secret, field_is, json_error};
use crate::secret::SecretBytes;

/// The only type URL imgcrypt registers for the payload.
pub const PAYLOAD_TYPE_URL: &str = "io.containerd.ocicrypt.v1.Payload";

/// Upper bound on the fd-3 payload. A real one holds a descriptor and a few key files (a few
/// KiB); 8 MiB leaves room for hundreds of recipients and keys while keeping a hostile or
/// runaway writer from exhausting memory.
pub const MAX_PAYLOAD_LEN: usize = 8 << 20;

/// Why the payload could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// Reading fd 3 failed.
    #[error("cannot read the payload on fd 3: {0}")]
    Read(#[source] std::io::Error),
    /// The writer of fd 3 neither finished nor closed it in time.
    #[error("the payload on fd 3 did not end within {:?} (its writer never closed it)", .0)]
    Timeout(std::time::Duration),
    /// More than [`MAX_PAYLOAD_LEN`] bytes.
    #[error("the payload on fd 3 is larger than {} MiB", MAX_PAYLOAD_LEN >> 20)]
    TooLarge,
    /// Not a protobuf `Any`.
    #[error("the payload on fd 3 is not a protobuf Any message ({0})")]
    Protobuf(String),
    /// An `Any` of another type.
    #[error("the payload on fd 3 has type URL {0:?}, expected {PAYLOAD_TYPE_URL:?}")]
    TypeUrl(String),
    /// The JSON value does not have imgcrypt's `Payload` shape.
    #[error("the payload on fd 3 is not valid imgcrypt payload JSON: {0}")]
    Json(String),
}

/// A parsed fd-3 payload.
#[derive(Debug, Default)]
pub struct Payload {
    /// `DecryptConfig.Parameters`: private keys, certificates, passwords.
    pub params: DecryptParams,
    /// The layer descriptor, when the payload carries one.
    pub descriptor: Option<Descriptor>,
}

/// `DecryptConfig.Parameters`, a Go `map[string][][]byte`; each value may be `null`.
#[derive(Debug, Default)]
pub struct DecryptParams(BTreeMap<String, Vec<Option<SecretBytes>>>);

impl DecryptParams {
    /// The values under `key` (empty when absent).
    pub fn get(&self, key: &str) -> &[Option<SecretBytes>] {
        self.0.get(key).map(Vec::as_slice).unwrap_or(&[])
    }

    /// All parameter names, for diagnostics (names are never secret).
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// Whether there are no parameters at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Builds parameters directly (tests and the content-store path).
    pub fn from_map(map: BTreeMap<String, Vec<Option<SecretBytes>>>) -> Self {
        Self(map)
    }
}

/// The OCI descriptor of the layer being decrypted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// `mediaType`, e.g. `application/vnd.oci.image.layer.v1.tar+gzip+encrypted`.
    pub media_type: String,
    /// `digest` of the encrypted blob.
    pub digest: String,
    /// `size` of the encrypted blob in bytes, when given.
    pub size: Option<u64>,
    /// `annotations`, where the wrapped keys and the public options live.
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    /// A descriptor that names nothing (Go's zero value): treated as "no descriptor".
    fn is_empty(&self) -> bool {
        self.media_type.is_empty() && self.digest.is_empty() && self.annotations.is_empty()
    }

    /// A short name for error messages: the digest, or the media type if there is none.
    pub fn display_name(&self) -> &str {
        if self.digest.is_empty() {
            &self.media_type
        } else {
            &self.digest
        }
    }
}

/// How long the payload writer may take. containerd writes the payload from a goroutine right
/// after starting the decoder, so this only fires when something else holds fd 3 open.
pub const PAYLOAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Reads fd 3 to EOF, bounded in size ([`MAX_PAYLOAD_LEN`]) and time (`timeout`, normally
/// [`PAYLOAD_TIMEOUT`]).
pub fn read_fd(
    file: std::fs::File,
    timeout: std::time::Duration,
) -> Result<Zeroizing<Vec<u8>>, PayloadError> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let deadline = std::time::Instant::now() + timeout;
    let mut buf = Zeroizing::new(Vec::new());
    let mut chunk = Zeroizing::new(vec![0u8; 64 * 1024]);
    let mut file = file;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(PayloadError::Timeout(timeout));
        }
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(file.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(PayloadError::Read(e.into())),
        }
        match file.read(&mut chunk) {
            Ok(0) => return Ok(buf),
            Ok(n) => {
                if buf.len() + n > MAX_PAYLOAD_LEN {
                    return Err(PayloadError::TooLarge);
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(PayloadError::Read(e)),
        }
    }
}

/// Reads at most [`MAX_PAYLOAD_LEN`] bytes from `reader` (fd 3).
pub fn read_bounded(reader: impl Read) -> Result<Zeroizing<Vec<u8>>, PayloadError> {
    let mut buf = Zeroizing::new(Vec::new());
    let limit = MAX_PAYLOAD_LEN as u64 + 1;
    reader
        .take(limit)
        .read_to_end(&mut buf)
        .map_err(PayloadError::Read)?;
    if buf.len() > MAX_PAYLOAD_LEN {
        return Err(PayloadError::TooLarge);
    }
    Ok(buf)
}

#[derive(Clone, PartialEq, Message)]
struct Any {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

impl Drop for Any {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.value);
    }
}

/// Parses the fd-3 bytes. `Ok(None)` means "there is no payload": fd 3 was empty, which is
/// what some containerd paths leave behind (protocol.md §1.7, imgcrypt#205).
pub fn parse(bytes: &[u8]) -> Result<Option<Payload>, PayloadError> {
    if bytes.is_empty() {
        return Ok(None);
    }
    if bytes.len() > MAX_PAYLOAD_LEN {
        return Err(PayloadError::TooLarge);
    }
    let any = Any::decode(bytes).map_err(|e| PayloadError::Protobuf(e.to_string()))?;
    if any.type_url.is_empty() && any.value.is_empty() {
        return Ok(None);
    }
    if any.type_url != PAYLOAD_TYPE_URL {
        return Err(PayloadError::TypeUrl(truncate_for_display(&any.type_url)));
    }
    parse_json(&any.value).map(Some)
}

/// Parses the JSON value of the `Any`.
pub fn parse_json(json: &[u8]) -> Result<Payload, PayloadError> {
    let mut de = serde_json::Deserializer::from_slice(json);
    let payload = PayloadSeed
        .deserialize(&mut de)
        .and_then(|p| de.end().map(|()| p))
        .map_err(|e| PayloadError::Json(json_error(&e)))?;
    Ok(payload)
}

fn truncate_for_display(s: &str) -> String {
    let mut out: String = s.chars().filter(|c| !c.is_control()).take(80).collect();
    if s.chars().count() > 80 {
        out.push('…');
    }
    out
}

struct PayloadSeed;

impl<'de> DeserializeSeed<'de> for PayloadSeed {
    type Value = Payload;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Payload, D::Error> {
        d.deserialize_any(PayloadVisitor)
    }
}

struct PayloadVisitor;

impl<'de> Visitor<'de> for PayloadVisitor {
    type Value = Payload;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object with DecryptConfig and Descriptor")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Payload, E> {
        Ok(Payload::default())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Payload, A::Error> {
        let mut payload = Payload::default();
        while let Some(key) = map.next_key::<KeyString>()? {
            if field_is(&key.0, "DecryptConfig") {
                payload.params = map.next_value_seed(DecryptConfigSeed)?;
            } else if field_is(&key.0, "Descriptor") {
                let d = map.next_value_seed(DescriptorSeed)?;
                payload.descriptor = d.filter(|d| !d.is_empty());
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(payload)
    }
}

/// A map key. Keys are never secret, so a plain `String` is fine.
struct KeyString(String);

impl<'de> de::Deserialize<'de> for KeyString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <String as de::Deserialize>::deserialize(d).map(KeyString)
    }
}

struct DecryptConfigSeed;

impl<'de> DeserializeSeed<'de> for DecryptConfigSeed {
    type Value = DecryptParams;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<DecryptParams, D::Error> {
        d.deserialize_any(DecryptConfigVisitor)
    }
}

struct DecryptConfigVisitor;

impl<'de> Visitor<'de> for DecryptConfigVisitor {
    type Value = DecryptParams;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DecryptConfig: an object with Parameters, or null")
    }
    fn visit_unit<E: de::Error>(self) -> Result<DecryptParams, E> {
        Ok(DecryptParams::default())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<DecryptParams, A::Error> {
        let mut params = DecryptParams::default();
        while let Some(key) = map.next_key::<KeyString>()? {
            if field_is(&key.0, "Parameters") {
                params = map.next_value_seed(ParametersSeed)?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(params)
    }
}

struct ParametersSeed;

impl<'de> DeserializeSeed<'de> for ParametersSeed {
    type Value = DecryptParams;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<DecryptParams, D::Error> {
        d.deserialize_any(ParametersVisitor)
    }
}

struct ParametersVisitor;

impl<'de> Visitor<'de> for ParametersVisitor {
    type Value = DecryptParams;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Parameters: an object of arrays of base64 strings, or null")
    }
    fn visit_unit<E: de::Error>(self) -> Result<DecryptParams, E> {
        Ok(DecryptParams::default())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<DecryptParams, A::Error> {
        let mut out = BTreeMap::new();
        while let Some(key) = map.next_key::<KeyString>()? {
            let values = map.next_value_seed(ByteListSeed)?;
            out.insert(key.0, values);
        }
        Ok(DecryptParams(out))
    }
}

struct ByteListSeed;

impl<'de> DeserializeSeed<'de> for ByteListSeed {
    type Value = Vec<Option<SecretBytes>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(ByteListVisitor)
    }
}

struct ByteListVisitor;

impl<'de> Visitor<'de> for ByteListVisitor {
    type Value = Vec<Option<SecretBytes>>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of base64 strings or nulls")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(item) = seq.next_element_seed(SecretBase64Seed)? {
            out.push(item);
        }
        Ok(out)
    }
}

struct SecretBase64Seed;

impl<'de> DeserializeSeed<'de> for SecretBase64Seed {
    type Value = Option<SecretBytes>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(SecretBase64Visitor)
    }
}

struct SecretBase64Visitor;

impl<'de> Visitor<'de> for SecretBase64Visitor {
    type Value = Option<SecretBytes>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a base64 string or null")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        decode_std_secret(v)
            .map(Some)
            .map_err(|_| E::custom("a Parameters value is not valid base64"))
    }
}

/// Replaces a type error with `what` (serde's own text can quote the value), but keeps errors
/// about the document's end or syntax, which are about where the payload broke off, not its type.
fn retype<E: de::Error>(e: E, what: &str) -> E {
    let text = e.to_string();
    if text.contains("EOF") || text.contains("expected value") || text.contains("control character")
    {
        e
    } else {
        E::custom(what)
    }
}

struct DescriptorSeed;

impl<'de> DeserializeSeed<'de> for DescriptorSeed {
    type Value = Option<Descriptor>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(DescriptorVisitor)
    }
}

struct DescriptorVisitor;

impl<'de> Visitor<'de> for DescriptorVisitor {
    type Value = Option<Descriptor>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Descriptor: an OCI descriptor object")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut d = Descriptor::default();
        while let Some(key) = map.next_key::<KeyString>()? {
            let k = key.0.as_str();
            if field_is(k, "mediaType") {
                d.media_type = map
                    .next_value::<Option<String>>()
                    .map_err(|e| retype(e, "Descriptor.mediaType is not a string"))?
                    .unwrap_or_default();
            } else if field_is(k, "digest") {
                d.digest = map
                    .next_value::<Option<String>>()
                    .map_err(|e| retype(e, "Descriptor.digest is not a string"))?
                    .unwrap_or_default();
            } else if field_is(k, "size") {
                let size = map
                    .next_value::<Option<i64>>()
                    .map_err(|e| retype(e, "Descriptor.size is not an integer"))?;
                d.size = match size {
                    Some(s) if s < 0 => {
                        return Err(de::Error::custom("Descriptor.size is negative"))
                    }
                    Some(s) => Some(s as u64),
                    None => None,
                };
            } else if field_is(k, "annotations") {
                d.annotations = map
                    .next_value::<Option<BTreeMap<String, String>>>()
                    .map_err(|e| retype(e, "Descriptor.annotations is not an object of strings"))?
                    .unwrap_or_default();
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Some(d))
    }
}

/// Encodes a payload as containerd does (tests, fuzz seeds, and the demo use this).
pub fn encode(params: &BTreeMap<String, Vec<Option<Vec<u8>>>>, descriptor: &Descriptor) -> Vec<u8> {
    let params_json: serde_json::Map<String, serde_json::Value> = params
        .iter()
        .map(|(k, vs)| {
            let arr = vs
                .iter()
                .map(|v| match v {
                    Some(b) => serde_json::Value::String(crate::encoding::encode_std(b)),
                    None => serde_json::Value::Null,
                })
                .collect();
            (k.clone(), serde_json::Value::Array(arr))
        })
        .collect();
    let mut desc = serde_json::json!({
        "mediaType": descriptor.media_type,
        "digest": descriptor.digest,
        "size": descriptor.size.unwrap_or(0),
    });
    if !descriptor.annotations.is_empty() {
        desc["annotations"] = serde_json::to_value(&descriptor.annotations).unwrap_or_default();
    }
    let value = serde_json::json!({
        "DecryptConfig": { "Parameters": params_json },
        "Descriptor": desc,
    });
    let any = Any {
        type_url: PAYLOAD_TYPE_URL.to_string(),
        value: serde_json::to_vec(&value).unwrap_or_default(),
    };
    any.encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn any(type_url: &str, value: &[u8]) -> Vec<u8> {
        Any {
            type_url: type_url.to_string(),
            value: value.to_vec(),
        }
        .encode_to_vec()
    }

    #[test]
    fn parses_cri_payload() {
        let json = br#"{"DecryptConfig":{"Parameters":null},"Descriptor":{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip+encrypted","digest":"sha256:abc","size":1234,"annotations":{"org.opencontainers.image.enc.keys.jwe":"e30=","org.opencontainers.image.enc.pubopts":"e30="}}}"#;
        let p = parse(&any(PAYLOAD_TYPE_URL, json)).unwrap().unwrap();
        assert!(p.params.is_empty());
        let d = p.descriptor.unwrap();
        assert_eq!(
            d.media_type,
            "application/vnd.oci.image.layer.v1.tar+gzip+encrypted"
        );
        assert_eq!(d.size, Some(1234));
        assert_eq!(d.annotations.len(), 2);
    }

    #[test]
    fn parses_ctr_enc_key_payload_case_insensitively() {
        let json = br#"{"decryptconfig":{"parameters":{"privkeys":["aGVsbG8="],"privkeys-passwords":[null]}},"DESCRIPTOR":{"MediaType":"x","unknown":[1,2,{}]},"extra":true}"#;
        let p = parse(&any(PAYLOAD_TYPE_URL, json)).unwrap().unwrap();
        assert_eq!(
            p.params.get("privkeys")[0].as_ref().unwrap().expose(),
            b"hello"
        );
        assert!(p.params.get("privkeys-passwords")[0].is_none());
        assert_eq!(p.descriptor.unwrap().media_type, "x");
    }

    #[test]
    fn empty_and_missing_payloads_mean_none() {
        assert!(parse(b"").unwrap().is_none());
        let p = parse(&any(PAYLOAD_TYPE_URL, b"{}")).unwrap().unwrap();
        assert!(p.descriptor.is_none());
        let p = parse(&any(PAYLOAD_TYPE_URL, br#"{"Descriptor":null}"#))
            .unwrap()
            .unwrap();
        assert!(p.descriptor.is_none());
    }

    #[test]
    fn rejects_wrong_type_url_and_garbage() {
        assert!(matches!(
            parse(&any("type.googleapis.com/x", b"{}")),
            Err(PayloadError::TypeUrl(_))
        ));
        assert!(matches!(
            parse(b"\xff\xff\xff"),
            Err(PayloadError::Protobuf(_))
        ));
        assert!(matches!(
            parse(&any(PAYLOAD_TYPE_URL, b"{")),
            Err(PayloadError::Json(_))
        ));
        assert!(matches!(
            parse(&any(PAYLOAD_TYPE_URL, b"[]")),
            Err(PayloadError::Json(_))
        ));
        assert!(matches!(
            parse(&any(PAYLOAD_TYPE_URL, br#"{"Descriptor":{"size":"12"}}"#)),
            Err(PayloadError::Json(_))
        ));
        assert!(matches!(
            parse(&any(PAYLOAD_TYPE_URL, br#"{"Descriptor":{"size":-1}}"#)),
            Err(PayloadError::Json(_))
        ));
    }

    #[test]
    fn json_errors_never_echo_secret_values() {
        let json =
            br#"{"DecryptConfig":{"Parameters":{"privkeys":["c2VjcmV0LWtleS1tYXRlcmlhbA"]}}}"#;
        let err = parse(&any(PAYLOAD_TYPE_URL, json)).unwrap_err().to_string();
        assert!(!err.contains("c2VjcmV0"), "{err}");
        let json =
            br#"{"DecryptConfig":{"Parameters":{"privkeys":"c2VjcmV0LWtleS1tYXRlcmlhbA=="}}}"#;
        let err = parse(&any(PAYLOAD_TYPE_URL, json)).unwrap_err().to_string();
        assert!(!err.contains("c2VjcmV0"), "{err}");
    }

    #[test]
    fn encode_round_trips() {
        let mut params = BTreeMap::new();
        params.insert("privkeys".to_string(), vec![Some(b"k".to_vec())]);
        let d = Descriptor {
            media_type: "application/vnd.oci.image.layer.v1.tar+encrypted".into(),
            digest: "sha256:00".into(),
            size: Some(7),
            annotations: [("a".to_string(), "b".to_string())].into_iter().collect(),
        };
        let p = parse(&encode(&params, &d)).unwrap().unwrap();
        assert_eq!(p.descriptor.unwrap(), d);
        assert_eq!(p.params.get("privkeys")[0].as_ref().unwrap().expose(), b"k");
    }

    #[test]
    fn fd_reader_is_bounded_and_reads_to_eof() {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let writer = std::thread::spawn(move || {
            let mut f = std::fs::File::from(w);
            std::io::Write::write_all(&mut f, &vec![7u8; 200_000]).unwrap();
        });
        let got = read_fd(std::fs::File::from(r), PAYLOAD_TIMEOUT).unwrap();
        writer.join().unwrap();
        assert_eq!(got.len(), 200_000);
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let writer = std::thread::spawn(move || {
            let mut f = std::fs::File::from(w);
            let _ = std::io::Write::write_all(&mut f, &vec![7u8; MAX_PAYLOAD_LEN + 1]);
        });
        assert!(matches!(
            read_fd(std::fs::File::from(r), PAYLOAD_TIMEOUT),
            Err(PayloadError::TooLarge)
        ));
        writer.join().unwrap();
        // A writer that never closes fd 3 cannot hang the decoder.
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let t = std::time::Duration::from_millis(300);
        let start = std::time::Instant::now();
        assert!(matches!(
            read_fd(std::fs::File::from(r), t),
            Err(PayloadError::Timeout(_))
        ));
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
        drop(w);
    }

    #[test]
    fn oversized_payload_is_refused() {
        let big = vec![0u8; MAX_PAYLOAD_LEN + 10];
        assert!(matches!(
            read_bounded(&big[..]),
            Err(PayloadError::TooLarge)
        ));
    }
}
