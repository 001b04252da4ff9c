//! The fd-3 payload: protobuf `Any` → imgcrypt payload JSON → descriptor and parameters.
//!
//! Never panics; a parsed payload survives `payload::encode` unchanged (up to the size that
//! `encode` always writes); JSON errors never quote a parameter value; the descriptor's
//! annotations go on to `annotations::parse`. Raw JSON seeds reach `parse_json` directly.

#![no_main]

use std::collections::BTreeMap;

use ctd_decoder::annotations;
use ctd_decoder::payload::{self, Payload, PayloadError};
use ctd_decoder_fuzz::assert_no_echo;
use libfuzzer_sys::fuzz_target;

fn params_map(p: &Payload) -> BTreeMap<String, Vec<Option<Vec<u8>>>> {
    p.params
        .keys()
        .map(|k| {
            let values = p
                .params
                .get(k)
                .iter()
                .map(|v| v.as_ref().map(|b| b.expose().to_vec()))
                .collect();
            (k.to_string(), values)
        })
        .collect()
}

fn check(p: &Payload) {
    let params = params_map(p);
    let descriptor = p.descriptor.clone().unwrap_or_default();
    let again = payload::parse(&payload::encode(&params, &descriptor))
        .expect("an encoded payload parses")
        .expect("an encoded payload is not empty");
    assert_eq!(
        params_map(&again),
        params,
        "parameters changed in a round trip"
    );
    let mut expected = p.descriptor.clone();
    if let Some(d) = expected.as_mut() {
        d.size = Some(d.size.unwrap_or(0));
    }
    assert_eq!(
        again.descriptor, expected,
        "descriptor changed in a round trip"
    );
    if let Some(d) = &p.descriptor {
        let _ = d.display_name();
        let _ = annotations::parse(&d.annotations);
    }
}

fuzz_target!(|data: &[u8]| {
    match payload::parse(data) {
        Ok(Some(p)) => check(&p),
        Ok(None) => {}
        Err(e) => {
            let _ = e.to_string();
        }
    }
    match payload::parse_json(data) {
        Ok(p) => check(&p),
        Err(e) => {
            assert!(matches!(e, PayloadError::Json(_)));
            assert_no_echo(&e.to_string(), data);
        }
    }
});
