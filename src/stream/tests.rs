use std::io::{self, Cursor, Write};

use super::cipher::{Authenticator, Keystream};
use super::*;
use crate::secret::{LayerKey, Nonce};

fn params_for(plaintext: &[u8]) -> (Vec<u8>, StreamParams) {
    let key = LayerKey::from_slice(&[7u8; 32]).unwrap();
    let nonce = Nonce::from_slice(&[0xfe; 16]).unwrap();
    let mut ciphertext = plaintext.to_vec();
    Keystream::new(&key, &nonce).apply(&mut ciphertext);
    let mut mac = Authenticator::new(&key);
    mac.update(&ciphertext);
    let mac = mac.finalize();
    (ciphertext, StreamParams { key, nonce, mac })
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 251) as u8).collect()
}

fn config(chunk: usize, hold_back: u64, expected: Option<u64>) -> StreamConfig {
    StreamConfig {
        hold_back,
        chunk_size: chunk,
        expected_size: expected,
    }
}

#[test]
fn round_trips_every_size_and_chunking() {
    for &len in &[0usize, 1, 15, 16, 17, 511, 512, 513, 4096, 100_000, 300_001] {
        let plain = pattern(len);
        let (ct, params) = params_for(&plain);
        for &(chunk, hold) in &[
            (1usize, 0u64),
            (7, 3),
            (4096, 1024),
            (DEFAULT_CHUNK, holdback::HOLD_BACK),
        ] {
            if chunk == 1 && len > 5000 {
                continue;
            }
            // Through `decrypt` (small layers take the in-memory path) and through the
            // pipeline itself, whatever the size.
            let mut out = Vec::new();
            let v = decrypt(
                Cursor::new(ct.clone()),
                &mut out,
                &params,
                &config(chunk, hold, Some(len as u64)),
            )
            .unwrap_or_else(|e| panic!("len {len} chunk {chunk}: {e}"));
            assert_eq!(v.bytes(), len as u64);
            assert_eq!(out, plain, "len {len} chunk {chunk}");
            let mut out = Vec::new();
            let n = pipeline::run(
                Cursor::new(ct.clone()),
                &mut out,
                &params,
                &config(chunk, hold, Some(len as u64)),
                pipeline::Mode::Decrypt,
            )
            .unwrap_or_else(|e| panic!("pipeline len {len} chunk {chunk}: {e}"));
            assert_eq!(n, len as u64);
            assert_eq!(out, plain, "pipeline len {len} chunk {chunk}");
        }
    }
}

#[test]
fn a_bad_mac_withholds_the_tail() {
    for &len in &[10usize, 70_000, 1_000_000] {
        let plain = pattern(len);
        let (mut ct, params) = params_for(&plain);
        // Flip the first, a middle and the last byte in turn.
        for pos in [0, len / 2, len - 1] {
            ct[pos] ^= 0x80;
            let mut out = Vec::new();
            let err = decrypt(
                Cursor::new(ct.clone()),
                &mut out,
                &params,
                &StreamConfig::default(),
            )
            .unwrap_err();
            assert!(matches!(err, StreamError::MacMismatch { .. }), "{err}");
            assert!(
                out.len() as u64 + holdback::HOLD_BACK <= len as u64 || out.is_empty(),
                "len {len} wrote {}",
                out.len()
            );
            assert!(
                out.is_empty() || out.len() % 512 == 1,
                "released {}",
                out.len()
            );
            ct[pos] ^= 0x80;
        }
    }
}

#[test]
fn a_wrong_expected_mac_fails() {
    let plain = pattern(1000);
    let (ct, mut params) = params_for(&plain);
    params.mac[0] ^= 1;
    let mut out = Vec::new();
    let err = decrypt(Cursor::new(ct), &mut out, &params, &StreamConfig::default()).unwrap_err();
    assert!(matches!(err, StreamError::MacMismatch { bytes: 1000 }));
    assert!(out.is_empty());
}

#[test]
fn truncation_and_extension_against_the_descriptor_size() {
    let plain = pattern(200_000);
    let (ct, params) = params_for(&plain);
    let mut out = Vec::new();
    let err = decrypt(
        Cursor::new(ct[..150_000].to_vec()),
        &mut out,
        &params,
        &config(DEFAULT_CHUNK, holdback::HOLD_BACK, Some(200_000)),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            StreamError::Truncated {
                got: 150_000,
                expected: 200_000
            }
        ),
        "{err}"
    );
    let mut longer = ct.clone();
    longer.extend_from_slice(b"trailing");
    let mut out = Vec::new();
    let err = decrypt(
        Cursor::new(longer),
        &mut out,
        &params,
        &config(4096, holdback::HOLD_BACK, Some(200_000)),
    )
    .unwrap_err();
    assert!(
        matches!(err, StreamError::Extended { expected: 200_000 }),
        "{err}"
    );
    assert!(out.len() <= 200_000 - holdback::HOLD_BACK as usize);
    // Without a descriptor size, the MAC alone still catches truncation.
    let mut out = Vec::new();
    let err = decrypt(
        Cursor::new(ct[..199_999].to_vec()),
        &mut out,
        &params,
        &StreamConfig::default(),
    )
    .unwrap_err();
    assert!(matches!(err, StreamError::MacMismatch { .. }));
}

struct FailingWriter {
    accepted: usize,
    limit: usize,
}

impl Write for FailingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.accepted >= self.limit {
            return Err(io::Error::from(io::ErrorKind::BrokenPipe));
        }
        let n = buf.len().min(self.limit - self.accepted);
        self.accepted += n;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_closed_output_is_an_error() {
    let plain = pattern(2_000_000);
    let (ct, params) = params_for(&plain);
    let mut w = FailingWriter {
        accepted: 0,
        limit: 300_000,
    };
    let err = decrypt(Cursor::new(ct), &mut w, &params, &StreamConfig::default()).unwrap_err();
    assert!(matches!(&err, StreamError::Output(e) if e.kind() == io::ErrorKind::BrokenPipe));
    assert!(err.to_string().contains("closed the pipe"), "{err}");
}

struct FailingReader {
    data: Cursor<Vec<u8>>,
}

impl io::Read for FailingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.data.read(buf)?;
        if n == 0 {
            return Err(io::Error::other("disk on fire"));
        }
        Ok(n)
    }
}

#[test]
fn an_input_error_is_reported() {
    let plain = pattern(100_000);
    let (ct, params) = params_for(&plain);
    let mut out = Vec::new();
    let err = decrypt(
        FailingReader {
            data: Cursor::new(ct),
        },
        &mut out,
        &params,
        &StreamConfig::default(),
    )
    .unwrap_err();
    assert!(matches!(err, StreamError::Input(_)), "{err}");
    assert!(out.len() <= 100_000 - holdback::HOLD_BACK as usize);
}

#[test]
fn spooled_mode_releases_nothing_before_the_verdict() {
    let dir = tempfile::tempdir().unwrap();
    for &len in &[0usize, 1, 100_000, 1_000_001] {
        let plain = pattern(len);
        let (mut ct, params) = params_for(&plain);
        let mut out = Vec::new();
        let v = decrypt_spooled(
            Cursor::new(ct.clone()),
            &mut out,
            &params,
            &config(4096, 0, Some(len as u64)),
            dir.path(),
        )
        .unwrap();
        assert_eq!(v.bytes(), len as u64);
        assert_eq!(out, plain);
        if len == 0 {
            continue;
        }
        for pos in [0, len / 2, len - 1] {
            ct[pos] ^= 4;
            let mut out = Vec::new();
            let err = decrypt_spooled(
                Cursor::new(ct.clone()),
                &mut out,
                &params,
                &StreamConfig::default(),
                dir.path(),
            )
            .unwrap_err();
            assert!(matches!(err, StreamError::MacMismatch { .. }), "{err}");
            assert!(
                out.is_empty(),
                "released {} bytes before the verdict",
                out.len()
            );
            ct[pos] ^= 4;
        }
        let mut out = Vec::new();
        let err = decrypt_spooled(
            Cursor::new(ct[..len - 1].to_vec()),
            &mut out,
            &params,
            &config(4096, 0, Some(len as u64)),
            dir.path(),
        )
        .unwrap_err();
        assert!(matches!(err, StreamError::Truncated { .. }), "{err}");
        assert!(out.is_empty());
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    let err = decrypt_spooled(
        Cursor::new(vec![1u8]),
        Vec::new(),
        &params_for(&[0]).1,
        &StreamConfig::default(),
        std::path::Path::new("/nonexistent/spool"),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("cannot spool the encrypted layer in /nonexistent/spool"),
        "{err}"
    );
}

#[test]
fn small_layers_are_verified_before_any_output() {
    for &len in &[0usize, 1, 70_000, SMALL_LAYER as usize] {
        let plain = pattern(len);
        let (mut ct, params) = params_for(&plain);
        let cfg = config(DEFAULT_CHUNK, holdback::HOLD_BACK, Some(len as u64));
        let mut out = Vec::new();
        let v = decrypt(Cursor::new(ct.clone()), &mut out, &params, &cfg).unwrap();
        assert_eq!(v.bytes(), len as u64);
        assert_eq!(out, plain);
        if len == 0 {
            continue;
        }
        ct[len / 2] ^= 1;
        let mut out = Vec::new();
        let err = decrypt(Cursor::new(ct.clone()), &mut out, &params, &cfg).unwrap_err();
        assert!(matches!(err, StreamError::MacMismatch { .. }), "{err}");
        assert!(out.is_empty());
        let mut out = Vec::new();
        let err =
            decrypt(Cursor::new(ct[..len - 1].to_vec()), &mut out, &params, &cfg).unwrap_err();
        assert!(matches!(err, StreamError::Truncated { .. }), "{err}");
        ct.push(0);
        let err = decrypt(Cursor::new(ct), &mut out, &params, &cfg).unwrap_err();
        assert!(matches!(err, StreamError::Extended { .. }), "{err}");
        assert!(out.is_empty());
    }
}
