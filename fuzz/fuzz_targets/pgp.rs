//! `pgp` wrapped keys: `Pgp.unwrap_key` with the fixture's secret keyring (test-only), seeded
//! with messages skopeo (Go ocicrypt) and GnuPG wrote for it.
//!
//! Never panics, never hangs; and a message only ever opens to the plaintext the fixtures
//! wrapped: the integrity-protected packet (MDC) must stop every other plaintext.

#![no_main]

use ctd_decoder::keywrap::pgp::Pgp;
use ctd_decoder::keywrap::KeyUnwrapper;
use ctd_decoder_fuzz::{pgp_ring, PGP_PLAINTEXT};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Every input is a run of its own: a full private-key operation budget.
    pgp_ring().reset_operation_budget();
    if let Ok(plaintext) = Pgp.unwrap_key(pgp_ring(), data) {
        assert_eq!(
            plaintext.expose(),
            PGP_PLAINTEXT,
            "a pgp message opened to a plaintext no fixture wrapped"
        );
    }
});
