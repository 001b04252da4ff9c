//! Layer annotations and the public and private options.
//!
//! * Input without a NUL byte: read as a JSON map of annotations for `annotations::parse`, and
//!   as public and as private options JSON on its own.
//! * `public \0 private`: both option sets parsed and resolved into stream parameters.
//!
//! Never panics; private-options errors never quote a value; a resolved set is exactly what the
//! options say, and never takes a nonce from the public options.

#![no_main]

use std::collections::BTreeMap;

use ctd_decoder::annotations;
use ctd_decoder::encoding::field_is;
use ctd_decoder::options::{self, AES_256_CTR_HMAC_SHA256};
use ctd_decoder_fuzz::assert_no_echo;
use libfuzzer_sys::fuzz_target;

fn private(json: &[u8]) -> Option<options::PrivateOptions> {
    match options::parse_private(json) {
        Ok(p) => Some(p),
        Err(e) => {
            assert_no_echo(&e.to_string(), json);
            None
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Some(nul) = data.iter().position(|&b| b == 0) {
        let (public_json, private_json) = (&data[..nul], &data[nul + 1..]);
        let public = options::parse_public(public_json);
        let private = private(private_json);
        let (Ok(public), Some(private)) = (public, private) else {
            return;
        };
        match options::resolve(&public, &private) {
            Ok(params) => {
                assert_eq!(public.cipher, AES_256_CTR_HMAC_SHA256);
                assert_eq!(&params.mac[..], &public.hmac[..]);
                assert!(!public.cipher_options.keys().any(|k| field_is(k, "nonce")));
                assert_eq!(&params.key.expose()[..], private.symkey.expose());
                let nonce = private.cipher_options.get("nonce").expect("a nonce");
                assert_eq!(&params.nonce.expose()[..], nonce.expose());
            }
            // The cipher name comes from the public options and is quoted on purpose.
            Err(options::OptionsError::UnsupportedCipher(_)) => {}
            Err(e) => assert_no_echo(&e.to_string(), private_json),
        }
        return;
    }
    if let Ok(map) = serde_json::from_slice::<BTreeMap<String, String>>(data) {
        if let Ok(a) = annotations::parse(&map) {
            assert!(!a.wrapped.is_empty());
            for (scheme, keys) in &a.wrapped {
                assert!(!scheme.is_empty());
                for (i, k) in keys.iter().enumerate() {
                    assert_eq!(k.index, i);
                }
            }
        }
    }
    let _ = options::parse_public(data);
    let _ = private(data);
});
