//! A minimal, strict-where-it-matters DER/BER TLV reader.
//!
//! Used to sniff key files and to read the CMS `EnvelopedData` that Go ocicrypt writes, whose
//! encoding is not valid DER (a primitive universal-16 element for the GCM parameters, see
//! protocol.md §4.2), so general-purpose DER crates reject it. Only definite lengths are
//! accepted; every length is checked against the remaining input before use.

/// Why a TLV could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DerError {
    /// The input ended inside a header or value.
    #[error("truncated DER")]
    Truncated,
    /// Indefinite lengths, lengths over 4 bytes, or high tag numbers.
    #[error("unsupported DER encoding")]
    Unsupported,
    /// A different tag was expected.
    #[error("unexpected DER tag {0:#04x}")]
    UnexpectedTag(u8),
}

/// Common tag bytes.
pub mod tag {
    /// INTEGER
    pub const INTEGER: u8 = 0x02;
    /// OCTET STRING
    pub const OCTET_STRING: u8 = 0x04;
    /// OBJECT IDENTIFIER
    pub const OID: u8 = 0x06;
    /// SEQUENCE (constructed)
    pub const SEQUENCE: u8 = 0x30;
    /// SET (constructed)
    pub const SET: u8 = 0x31;
    /// NULL
    pub const NULL: u8 = 0x05;
    /// The constructed bit of an identifier octet.
    pub const CONSTRUCTED: u8 = 0x20;
    /// Context-specific class `[n]`, primitive: `CONTEXT | n`.
    pub const CONTEXT: u8 = 0x80;
    /// Context-specific class `[n]`, constructed: `CONTEXT_CONSTRUCTED | n`.
    pub const CONTEXT_CONSTRUCTED: u8 = 0xa0;
}

/// One element: its identifier octet and its contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// Identifier octet (class, constructed bit, tag number < 31).
    pub tag: u8,
    /// Contents octets.
    pub value: &'a [u8],
}

impl<'a> Tlv<'a> {
    /// A reader over the contents.
    pub fn reader(&self) -> Reader<'a> {
        Reader::new(self.value)
    }

    /// Whether the constructed bit is set.
    pub fn is_constructed(&self) -> bool {
        self.tag & tag::CONSTRUCTED != 0
    }

    /// Fails unless the tag is `expected`.
    pub fn expect(self, expected: u8) -> Result<Self, DerError> {
        if self.tag == expected {
            Ok(self)
        } else {
            Err(DerError::UnexpectedTag(self.tag))
        }
    }
}

/// Sequential reader over concatenated TLVs.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Reads `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    /// Whether all input was consumed.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The unread input.
    pub fn rest(&self) -> &'a [u8] {
        self.data
    }

    /// The tag of the next element, without consuming it.
    pub fn peek_tag(&self) -> Option<u8> {
        self.data.first().copied()
    }

    /// Reads the next element.
    pub fn read(&mut self) -> Result<Tlv<'a>, DerError> {
        let (&tag, rest) = self.data.split_first().ok_or(DerError::Truncated)?;
        if tag & 0x1f == 0x1f {
            return Err(DerError::Unsupported);
        }
        let (&first, mut rest) = rest.split_first().ok_or(DerError::Truncated)?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 {
                return Err(DerError::Unsupported);
            }
            if rest.len() < count {
                return Err(DerError::Truncated);
            }
            let (bytes, after) = rest.split_at(count);
            rest = after;
            bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
        };
        if rest.len() < len {
            return Err(DerError::Truncated);
        }
        let (value, after) = rest.split_at(len);
        self.data = after;
        Ok(Tlv { tag, value })
    }

    /// Reads the next element and checks its tag.
    pub fn read_tag(&mut self, expected: u8) -> Result<Tlv<'a>, DerError> {
        self.read()?.expect(expected)
    }

    /// Reads the next element only if its tag is `expected` (an OPTIONAL field).
    pub fn read_if(&mut self, expected: u8) -> Result<Option<Tlv<'a>>, DerError> {
        if self.peek_tag() == Some(expected) {
            self.read().map(Some)
        } else {
            Ok(None)
        }
    }

    /// Reads the next element and also returns its whole encoding (identifier, length and
    /// contents), for comparing or re-parsing it elsewhere.
    pub fn read_raw(&mut self) -> Result<(Tlv<'a>, &'a [u8]), DerError> {
        let before = self.data;
        let tlv = self.read()?;
        let used = before.len() - self.data.len();
        Ok((tlv, &before[..used]))
    }
}

/// Largest OID accepted by [`oid_text`], in contents octets.
const MAX_OID_LEN: usize = 64;

/// Dotted text of OID contents (`1.2.840.113549.1.7.3`), for messages. `None` when the
/// contents are empty, longer than 64 bytes, end inside an arc, or an arc overflows `u64`.
pub fn oid_text(contents: &[u8]) -> Option<String> {
    if contents.is_empty() || contents.len() > MAX_OID_LEN {
        return None;
    }
    let mut arcs: Vec<u64> = Vec::new();
    let mut value: u64 = 0;
    for (i, &b) in contents.iter().enumerate() {
        if value > u64::MAX >> 7 {
            return None;
        }
        value = (value << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (value / 40).min(2);
                arcs.push(first);
                arcs.push(value - first * 40);
            } else {
                arcs.push(value);
            }
            value = 0;
        } else if i + 1 == contents.len() {
            return None;
        }
    }
    Some(
        arcs.iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join("."),
    )
}

/// Encodes an OID from its dotted text into DER contents (test and constant helper).
pub fn oid(text: &str) -> Vec<u8> {
    let arcs: Vec<u64> = text.split('.').filter_map(|a| a.parse().ok()).collect();
    let mut out = Vec::new();
    if arcs.len() < 2 {
        return out;
    }
    let mut push = |mut v: u64| {
        let mut tmp = vec![(v & 0x7f) as u8];
        v >>= 7;
        while v > 0 {
            tmp.push(0x80 | (v & 0x7f) as u8);
            v >>= 7;
        }
        tmp.reverse();
        out.extend_from_slice(&tmp);
    };
    push(arcs[0] * 40 + arcs[1]);
    for &a in &arcs[2..] {
        push(a);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_short_and_long_lengths() {
        let data = [0x30, 0x03, 0x02, 0x01, 0x05, 0x04, 0x81, 0x02, 0xaa, 0xbb];
        let mut r = Reader::new(&data);
        let seq = r.read_tag(tag::SEQUENCE).unwrap();
        assert_eq!(seq.reader().read_tag(tag::INTEGER).unwrap().value, &[5]);
        assert_eq!(r.read_tag(tag::OCTET_STRING).unwrap().value, &[0xaa, 0xbb]);
        assert!(r.is_empty());
    }

    #[test]
    fn rejects_bad_lengths() {
        assert_eq!(Reader::new(&[0x30]).read(), Err(DerError::Truncated));
        assert_eq!(
            Reader::new(&[0x30, 0x05, 0x00]).read(),
            Err(DerError::Truncated)
        );
        assert_eq!(
            Reader::new(&[0x30, 0x80]).read(),
            Err(DerError::Unsupported)
        );
        assert_eq!(
            Reader::new(&[0x30, 0x85, 1, 1, 1, 1, 1]).read(),
            Err(DerError::Unsupported)
        );
        assert_eq!(
            Reader::new(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).read(),
            Err(DerError::Truncated)
        );
        assert_eq!(
            Reader::new(&[0x1f, 0x01, 0x00]).read(),
            Err(DerError::Unsupported)
        );
        assert_eq!(
            Reader::new(&[0x02, 0x00]).read_tag(tag::SEQUENCE),
            Err(DerError::UnexpectedTag(2))
        );
    }

    #[test]
    fn optional_fields_and_raw_encodings() {
        let data = [0xa0, 0x02, 0x05, 0x00, 0x04, 0x81, 0x01, 0xaa];
        let mut r = Reader::new(&data);
        assert_eq!(r.read_if(tag::SEQUENCE), Ok(None));
        let (opt, raw) = r.read_raw().unwrap();
        assert_eq!(opt.tag, tag::CONTEXT_CONSTRUCTED);
        assert!(opt.is_constructed());
        assert_eq!(raw, &data[..4]);
        let octets = r.read_if(tag::OCTET_STRING).unwrap().unwrap();
        assert!(!octets.is_constructed());
        assert_eq!(octets.value, &[0xaa]);
        assert_eq!(r.read_if(tag::OCTET_STRING), Ok(None));
        assert!(r.is_empty());
        assert_eq!(
            Reader::new(&[0x04, 0x02, 0x00]).read_if(tag::OCTET_STRING),
            Err(DerError::Truncated)
        );
    }

    #[test]
    fn oid_text_round_trips_and_rejects_junk() {
        for text in [
            "1.2.840.113549.1.7.3",
            "2.16.840.1.101.3.4.1.46",
            "2.999.1",
            "0.9.2342",
        ] {
            assert_eq!(oid_text(&oid(text)).as_deref(), Some(text));
        }
        assert_eq!(oid_text(&[]), None);
        assert_eq!(oid_text(&[0x2a, 0x86]), None);
        assert_eq!(oid_text(&[0xff; 20]), None);
        assert_eq!(oid_text(&[0x2a; 65]), None);
    }

    #[test]
    fn encodes_oids() {
        assert_eq!(
            oid("1.2.840.113549.1.7.3"),
            vec![0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03]
        );
        assert_eq!(
            oid("2.16.840.1.101.3.4.1.6"),
            vec![0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x06]
        );
    }
}
