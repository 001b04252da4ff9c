//! `pkcs7` wrapped keys: `keywrap::pkcs7::parse`, then `Pkcs7.unwrap_key` with the fixture key,
//! its certificate and the CA certificate (test-only).
//!
//! Never panics; whatever `parse` refuses is reported as malformed. A blob whose content is
//! AES-GCM (what Go ocicrypt writes; authenticated) only ever opens to a plaintext that one of
//! the seeds wrapped: no forgery. CBC content (OpenSSL's CMS default) is not authenticated, so a
//! flipped IV bit flips the same plaintext bit: for those, only what the decoder promises is
//! checked, that the plaintext is private options with a 32-byte layer key (the layer HMAC,
//! keyed by it, is what authenticates the layer; see the `keywrap::pkcs7` module docs).

#![no_main]

use ctd_decoder::der;
use ctd_decoder::keywrap::pkcs7::{self, Pkcs7};
use ctd_decoder::keywrap::{KeyUnwrapper, UnwrapError};
use ctd_decoder::options;
use ctd_decoder_fuzz::{pkcs7_plaintexts, pkcs7_ring};
use libfuzzer_sys::fuzz_target;

/// Whether `data` names an unauthenticated (CBC) content cipher anywhere.
fn mentions_cbc(data: &[u8]) -> bool {
    [
        "2.16.840.1.101.3.4.1.2",
        "2.16.840.1.101.3.4.1.22",
        "2.16.840.1.101.3.4.1.42",
        "1.2.840.113549.3.7",
    ]
    .iter()
    .any(|oid| {
        let mut tlv = vec![0x06, 0];
        tlv.extend(der::oid(oid));
        tlv[1] = (tlv.len() - 2) as u8;
        data.windows(tlv.len()).any(|w| w == tlv.as_slice())
    })
}

fuzz_target!(|data: &[u8]| {
    // Every input is a run of its own: a full private-key operation budget.
    pkcs7_ring().reset_operation_budget();
    let parsed_ok = match pkcs7::parse(data) {
        Ok(envelope) => {
            assert!(!envelope.recipients.is_empty());
            true
        }
        Err(e) => {
            assert!(!e.is_empty());
            false
        }
    };
    let result = Pkcs7.unwrap_key(pkcs7_ring(), data);
    if !parsed_ok {
        assert!(
            matches!(result, Err(UnwrapError::Malformed(_))),
            "{result:?}"
        );
    }
    if let Ok(plaintext) = result {
        if pkcs7_plaintexts().iter().any(|p| p == plaintext.expose()) {
            return;
        }
        assert!(
            mentions_cbc(data),
            "an authenticated pkcs7 blob opened to a plaintext no seed wrapped"
        );
        let private = options::parse_private(plaintext.expose()).expect("CBC plaintext is options");
        assert_eq!(private.symkey.len(), 32);
    }
});
