//! OpenPGP packet framing (RFC 9580 §4.2), read by hand.
//!
//! Go's writer (`golang.org/x/crypto/openpgp`, in skopeo and ocicrypt) starts its partial body
//! lengths with chunks far below the 512 octets RFC 9580 §4.2.1.4 requires, and sequoia's parser
//! refuses such packets; GnuPG and Go accept them. So the message is framed here: every length
//! form is accepted, partial and indeterminate lengths only for data packets, and a body is
//! copied once into a buffer of its exact size that is wiped on drop (bodies inside the
//! encrypted data are secret).

use zeroize::Zeroizing;

pub(super) const TAG_PKESK: u8 = 1;
pub(super) const TAG_COMPRESSED: u8 = 8;
pub(super) const TAG_SED: u8 = 9;
pub(super) const TAG_LITERAL: u8 = 11;
pub(super) const TAG_SEIPD: u8 = 18;
const TAG_AEAD_OCB: u8 = 20;

/// One packet.
pub(super) struct RawPacket {
    pub(super) tag: u8,
    /// The whole body, partial chunks joined.
    pub(super) body: Zeroizing<Vec<u8>>,
}

/// Packet types that may have partial or indeterminate lengths.
fn is_data(tag: u8) -> bool {
    matches!(
        tag,
        TAG_COMPRESSED | TAG_SED | TAG_LITERAL | TAG_SEIPD | TAG_AEAD_OCB
    )
}

#[derive(Clone, Copy)]
enum Length {
    Full(usize),
    Partial(usize),
    Indeterminate,
}

const MALFORMED: &str = "malformed OpenPGP packet framing";
const TRUNCATED: &str = "truncated OpenPGP packet";

/// The tag of the packet starting `data`, if it starts with a packet tag octet.
pub(super) fn peek_tag(data: &[u8]) -> Option<u8> {
    let ctb = *data.first()?;
    match ctb {
        c if c & 0x80 == 0 => None,
        c if c & 0x40 != 0 => Some(c & 0x3f),
        c => Some((c >> 2) & 0x0f),
    }
}

fn be(bytes: Option<&[u8]>) -> Result<usize, &'static str> {
    bytes
        .map(|b| b.iter().fold(0usize, |n, &x| n << 8 | usize::from(x)))
        .ok_or(TRUNCATED)
}

/// A new-format length (RFC 9580 §4.2.1): the length and how many octets it took.
fn new_length(data: &[u8]) -> Result<(Length, usize), &'static str> {
    match *data.first().ok_or(TRUNCATED)? {
        l @ 0..=191 => Ok((Length::Full(usize::from(l)), 1)),
        l @ 192..=223 => {
            let low = be(data.get(1..2))?;
            Ok((Length::Full(((usize::from(l) - 192) << 8) + low + 192), 2))
        }
        l @ 224..=254 => Ok((Length::Partial(1 << (l & 0x1f)), 1)),
        255 => Ok((Length::Full(be(data.get(1..5))?), 5)),
    }
}

/// Reads the packet at the start of `data`; returns it and what follows it.
pub(super) fn next(data: &[u8]) -> Result<(RawPacket, &[u8]), &'static str> {
    let tag = peek_tag(data).ok_or(MALFORMED)?;
    let ctb = data[0];
    let (length, header) = if ctb & 0x40 != 0 {
        let (length, n) = new_length(&data[1..])?;
        (length, 1 + n)
    } else {
        match ctb & 0x03 {
            0 => (Length::Full(be(data.get(1..2))?), 2),
            1 => (Length::Full(be(data.get(1..3))?), 3),
            2 => (Length::Full(be(data.get(1..5))?), 5),
            _ => (Length::Indeterminate, 1),
        }
    };
    if !is_data(tag) && !matches!(length, Length::Full(_)) {
        return Err(MALFORMED);
    }
    // First pass: where the body's chunks are, and where the packet ends.
    let mut chunks = Vec::new();
    let mut at = header;
    let mut length = length;
    loop {
        match length {
            Length::Full(n) => {
                let end = at.checked_add(n).ok_or(TRUNCATED)?;
                if end > data.len() {
                    return Err(TRUNCATED);
                }
                chunks.push(at..end);
                at = end;
                break;
            }
            Length::Indeterminate => {
                chunks.push(at..data.len());
                at = data.len();
                break;
            }
            Length::Partial(n) => {
                let end = at.checked_add(n).ok_or(TRUNCATED)?;
                if end > data.len() {
                    return Err(TRUNCATED);
                }
                chunks.push(at..end);
                let (next, used) = new_length(&data[end..])?;
                length = next;
                at = end + used;
            }
        }
    }
    // Second pass: one copy into a buffer that never reallocates.
    let total = chunks.iter().map(|r| r.len()).sum();
    let mut body = Zeroizing::new(Vec::with_capacity(total));
    for r in chunks {
        body.extend_from_slice(&data[r]);
    }
    Ok((RawPacket { tag, body }, &data[at..]))
}

/// "a <name> packet".
pub(super) fn name(tag: u8) -> String {
    let name = match tag {
        1 => "public-key encrypted session key (PKESK)",
        2 => "signature",
        3 => "password-encrypted session key (SKESK)",
        4 => "one-pass signature",
        5 => "secret key",
        6 => "public key",
        7 => "secret subkey",
        8 => "compressed data",
        9 => "symmetrically encrypted data (SED)",
        10 => "marker",
        11 => "literal data",
        12 => "trust",
        13 => "user ID",
        14 => "public subkey",
        17 => "user attribute",
        18 => "integrity-protected encrypted data (SEIPD)",
        19 => "modification detection code (MDC)",
        20 => "OCB encrypted data",
        21 => "padding",
        other => return format!("a packet of type {other}"),
    };
    format!("a {name} packet")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(data: &[u8]) -> (u8, Vec<u8>, usize) {
        let (p, rest) = next(data).unwrap();
        (p.tag, p.body.to_vec(), rest.len())
    }

    #[test]
    fn every_length_form() {
        assert_eq!(body(&[0xcb, 2, 7, 8, 9]), (11, vec![7, 8], 1));
        let mut two = vec![0xcb, 192, 8];
        two.extend([1; 200]);
        assert_eq!(body(&two).1.len(), 200);
        assert_eq!(body(&[0xcb, 255, 0, 0, 0, 1, 5]), (11, vec![5], 0));
        // Old format: one-, two- and four-octet lengths, and indeterminate.
        assert_eq!(body(&[0x84, 1, 3]), (1, vec![3], 0));
        assert_eq!(body(&[0x85, 0, 1, 3]), (1, vec![3], 0));
        assert_eq!(body(&[0x86, 0, 0, 0, 1, 3]), (1, vec![3], 0));
        assert_eq!(body(&[0xaf, 1, 2, 3]), (11, vec![1, 2, 3], 0));
        // Partial lengths of 1 and 2 octets (Go writes small ones), then a final one.
        assert_eq!(
            body(&[0xd2, 0xe0, 1, 0xe1, 2, 3, 1, 4, 9]),
            (18, vec![1, 2, 3, 4], 1)
        );
    }

    #[test]
    fn malformed_framing_is_an_error() {
        for bad in [
            &[][..],
            &[0x7f, 0],
            &[0xcb, 3, 1],
            &[0xcb, 192],
            &[0xcb, 255, 0, 0],
            &[0xc1, 0xe0, 1, 1],
            &[0x87, 1],
            &[0xd2, 0xe1, 1, 2],
            &[0xd2, 0xe0, 1],
            &[0xcb, 255, 0xff, 0xff, 0xff, 0xff],
        ] {
            assert!(next(bad).is_err(), "{bad:?}");
        }
    }
}
