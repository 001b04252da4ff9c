//! The DER/BER reader every binary parser builds on (`der::Reader`, `der::oid_text`).
//!
//! Never panics; every element read is a consistent slice of the input (header + value, nothing
//! skipped or overlapping); the ways of reading an element agree; OID text round-trips.

#![no_main]

use ctd_decoder::der::{self, tag, Reader};
use libfuzzer_sys::fuzz_target;

fn walk(data: &[u8], depth: usize) {
    let mut r = Reader::new(data);
    while !r.is_empty() {
        let before = r.rest();
        let peek = r.peek_tag();
        let mut plain = r.clone();
        let mut optional = r.clone();
        let mut typed = r.clone();
        match r.read_raw() {
            Ok((tlv, raw)) => {
                assert_eq!(Some(tlv.tag), peek);
                assert_eq!(raw.len() + r.rest().len(), before.len());
                assert_eq!(raw.as_ptr(), before.as_ptr());
                assert!(raw.ends_with(tlv.value));
                assert!(raw.len() >= tlv.value.len() + 2 && raw.len() <= tlv.value.len() + 6);
                assert_eq!(plain.read(), Ok(tlv));
                assert_eq!(optional.read_if(tlv.tag), Ok(Some(tlv)));
                assert!(typed.read_tag(tlv.tag ^ 0x01).is_err());
                assert_eq!(tlv.is_constructed(), tlv.tag & tag::CONSTRUCTED != 0);
                if tlv.tag == tag::OID {
                    if let Some(text) = der::oid_text(tlv.value) {
                        assert_eq!(der::oid_text(&der::oid(&text)).as_deref(), Some(&*text));
                    }
                }
                if depth < 64 && !tlv.value.is_empty() {
                    walk(tlv.value, depth + 1);
                }
            }
            Err(e) => {
                assert_eq!(plain.read(), Err(e));
                assert!(optional.read_if(peek.unwrap_or(0)).is_err());
                break;
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    walk(data, 0);
    let _ = der::oid_text(data);
});
