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
