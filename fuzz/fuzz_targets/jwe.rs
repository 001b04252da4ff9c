//! `jwe` wrapped keys: `keywrap::jwe::parse`, then `Jwe.unwrap_key` with the five keys of the
//! known-answer vectors (RSA-2048, RSA-3072, EC P-256/384/521; test-only).
//!
//! Never panics; whatever `parse` refuses is reported as malformed; and a JWE only ever opens to
//! a plaintext that one of the seeds wrapped (no forgery, no plaintext from a wrong key).

#![no_main]

use ctd_decoder::keywrap::jwe::{self, Jwe};
use ctd_decoder::keywrap::{KeyUnwrapper, UnwrapError};
use ctd_decoder_fuzz::{jwe_plaintexts, jwe_ring};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Every input is a run of its own: a full private-key operation budget.
    jwe_ring().reset_operation_budget();
    let parsed = jwe::parse(data);
    let result = Jwe.unwrap_key(jwe_ring(), data);
    match (&parsed, &result) {
        (Err(_), Err(UnwrapError::Malformed(_))) => {}
        (Err(e), other) => panic!("parse refused ({e}) but unwrap_key gave {other:?}"),
        (Ok(p), _) => {
            assert!(!p.recipients.is_empty());
            for r in &p.recipients {
                let _ = r.algorithm();
            }
        }
    }
    if let Ok(plaintext) = result {
        assert!(
            jwe_plaintexts().iter().any(|p| p == plaintext.expose()),
            "a JWE opened to a plaintext no seed wrapped"
        );
    }
});
