//! Key files: `keys::parse::parse` with and without a password (PEM, DER PKCS#8/PKCS#1/SEC1,
//! encrypted PKCS#8, legacy encrypted PEM, X.509, OpenPGP sniffing, JWK and JWK Sets), and the
//! PEM block scanner.
//!
//! Never panics; every private key returned is one ocicrypt can use (RSA ≥ 2048 bits, EC on
//! P-256/384/521); PEM blocks are well-formed slices of the input.

#![no_main]

use ctd_decoder::keys::parse::{self, Item, MIN_RSA_BITS};
use ctd_decoder_fuzz::KEY_PASSWORD;
use libfuzzer_sys::fuzz_target;
use openssl::nid::Nid;
use openssl::pkey::Id;

fn check(items: Vec<Item>) {
    assert!(!items.is_empty(), "parse returns at least one item");
    for item in items {
        match item {
            Item::Private(key) => match key.id() {
                Id::RSA => assert!(key.bits() >= MIN_RSA_BITS),
                Id::EC => {
                    let nid = key.ec_key().unwrap().group().curve_name();
                    assert!(matches!(
                        nid,
                        Some(Nid::X9_62_PRIME256V1 | Nid::SECP384R1 | Nid::SECP521R1)
                    ));
                }
                other => panic!("unusable key type {other:?} returned as usable"),
            },
            Item::Unusable(reason) | Item::NotAKey(reason) => assert!(!reason.is_empty()),
            Item::Certificate(_) | Item::OpenPgp(_) => {}
        }
    }
}

fuzz_target!(|data: &[u8]| {
    check(parse::parse(data, None));
    check(parse::parse(data, Some(KEY_PASSWORD)));
    let blocks = parse::pem_blocks(data);
    assert!(blocks.len() <= 64);
    for b in blocks {
        assert!(b.text.starts_with(b"-----BEGIN "));
        let end = format!("-----END {}-----", b.label);
        assert!(b.text.ends_with(end.as_bytes()));
        let start = b.text.as_ptr() as usize - data.as_ptr() as usize;
        assert!(start + b.text.len() <= data.len());
    }
});
