//! Streaming decryption (`stream::decrypt`) of arbitrary ciphertext under an arbitrary key, nonce
//! and MAC, with a small hold-back and chunk size, checked against OpenSSL's AES-256-CTR and
//! HMAC-SHA256 as an independent oracle.
//!
//! Input: `key[32] nonce[16] mac[32] flags hold_back chunk ciphertext…`. Flags: bit 0 replaces
//! the MAC by the right one (so the success path is reached), bit 1 gives the descriptor size
//! as the ciphertext length, bit 2 (with bit 1) makes that size wrong by `chunk - 128`, bit 3
//! makes stdout fail after `hold_back` bytes.
//!
//! Must never panic; must never return `Verified` when the MAC is wrong, the size is wrong or
//! stdout failed; must return it, with exactly the plaintext, when all is right; on failure
//! only a prefix of the plaintext is out, never its last `hold_back` bytes, and its length is 0
//! or 1 (mod 512).

#![no_main]

use std::io::{self, Cursor, Write};

use ctd_decoder::options::StreamParams;
use ctd_decoder::secret::{LayerKey, Nonce};
use ctd_decoder::stream::{self, StreamConfig, StreamError};
use libfuzzer_sys::fuzz_target;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;
use openssl::symm::{decrypt, Cipher};

/// A stdout that takes `limit` bytes, then fails like a closed pipe.
struct Sink {
    out: Vec<u8>,
    limit: Option<usize>,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = match self.limit {
            Some(limit) => limit - self.out.len(),
            None => buf.len(),
        };
        if room == 0 && !buf.is_empty() {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let n = room.min(buf.len());
        self.out.extend_from_slice(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let pkey = PKey::hmac(key).unwrap();
    let mut signer = Signer::new(MessageDigest::sha256(), &pkey).unwrap();
    signer.update(data).unwrap();
    signer.sign_to_vec().unwrap().try_into().unwrap()
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 83 {
        return;
    }
    let (key, rest) = data.split_at(32);
    let (nonce, rest) = rest.split_at(16);
    let (mac, rest) = rest.split_at(32);
    let (flags, hold_back, chunk) = (rest[0], rest[1], rest[2]);
    let ciphertext = &rest[3..];
    let len = ciphertext.len() as u64;

    let right_mac = hmac(key, ciphertext);
    let mac: [u8; 32] = if flags & 1 != 0 {
        right_mac
    } else {
        mac.try_into().unwrap()
    };
    let hold_back = 1 + u64::from(hold_back) * 4;
    let chunk_size = 1 + usize::from(chunk) * 3;
    let expected_size = match flags & 6 {
        2 => Some(len),
        6 => Some(len.saturating_add_signed(i64::from(chunk) - 128)),
        _ => None,
    };
    let limit = (flags & 8 != 0).then_some(hold_back as usize);

    let params = StreamParams {
        key: LayerKey::from_slice(key).unwrap(),
        nonce: Nonce::from_slice(nonce).unwrap(),
        mac,
    };
    let config = StreamConfig {
        hold_back,
        chunk_size,
        expected_size,
    };
    let mut sink = Sink {
        out: Vec::new(),
        limit,
    };
    let result = stream::decrypt(
        Cursor::new(ciphertext.to_vec()),
        &mut sink,
        &params,
        &config,
    );

    let plaintext = decrypt(Cipher::aes_256_ctr(), key, Some(nonce), ciphertext).unwrap();
    let mac_ok = mac == right_mac;
    let size_ok = expected_size.is_none_or(|e| e == len);
    let sink_ok = limit.is_none_or(|l| l >= plaintext.len());
    match result {
        Ok(verified) => {
            assert!(mac_ok, "Verified with a wrong MAC");
            assert!(size_ok, "Verified with a wrong size");
            assert!(sink_ok, "Verified although stdout failed");
            assert_eq!(verified.bytes(), len);
            assert!(sink.out == plaintext, "Verified with the wrong plaintext");
        }
        Err(e) => {
            assert!(!(mac_ok && size_ok && sink_ok), "a good layer failed: {e}");
            match e {
                StreamError::MacMismatch { bytes } => {
                    assert!(!mac_ok);
                    assert_eq!(bytes, len);
                }
                StreamError::Truncated { got, expected } => {
                    assert_eq!((Some(got), Some(expected)), (Some(len), expected_size));
                    assert!(got < expected);
                }
                StreamError::Extended { expected } => {
                    assert_eq!(Some(expected), expected_size);
                    assert!(len > expected);
                }
                StreamError::Output(_) => assert!(!sink_ok),
                StreamError::Input(_) | StreamError::Internal | StreamError::Spool { .. } => {
                    panic!("unexpected {e}")
                }
            }
            let out = sink.out.len() as u64;
            assert!(
                sink.out[..] == plaintext[..sink.out.len()],
                "output is not plaintext"
            );
            if limit.is_none() {
                assert!(out == 0 || out + hold_back <= len, "released the tail");
                assert!(
                    out == 0 || out % 512 == 1,
                    "stopped on a tar block boundary"
                );
            }
        }
    }
});
