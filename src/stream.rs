//! Streaming decryption of an `AES_256_CTR_HMAC_SHA256` layer.
//!
//! # Hazmat
//!
//! The format authenticates the whole layer with a single HMAC-SHA256 over the ciphertext,
//! checked at the end. CTR mode is malleable, so until that check every plaintext byte is
//! unauthenticated. A streaming decoder therefore releases unauthenticated plaintext; what it must
//! never do is *finish* a layer that fails: the tail of the plaintext is withheld until the
//! verdict ([`holdback`]), and only [`Verified`] — which nothing outside this module can build —
//! lets the caller report success. The process exit status is containerd's only signal, so
//! failure always means a non-zero exit. Operators who cannot accept any unauthenticated output
//! use the spooling mode (`--verify-before-release`).
//!
//! # Design
//!
//! Three stages connected by bounded channels, with a fixed pool of buffers so memory is flat
//! whatever the layer size:
//!
//! ```text
//!  reader thread          MAC thread              calling thread
//!  read(stdin) ──chunk──▶ HMAC-SHA256 ──chunk──▶ AES-CTR in place ─▶ hold-back ─▶ write(stdout)
//!       ▲                                                                  │
//!       └──────────────────────── free buffers ◀───────────────────────────┘
//! ```
//!
//! HMAC-SHA256 is the serial bottleneck of the format (it cannot be parallelised), so it gets a
//! thread of its own and never waits for I/O or decryption.

pub mod cipher;
pub mod holdback;
mod pipeline;
pub mod spool;

use std::io::{self, Read, Write};

use crate::options::StreamParams;

/// Size of one pipeline buffer. Per-chunk costs (a read, three thread hand-offs) weigh on the
/// second core, which also runs the reader, the decryption and the writer, so small chunks starve
/// the MAC thread; every buffer is resident memory. Measured on 2 cores (1 GiB layer, 7 rounds,
/// median of the ratio to the HMAC-only pass over the same pipe): 64 KiB × 8 buffers 0.8x,
/// 128 KiB × 8 0.93x, 256 KiB × 8 1.07x (2 MiB), 192 KiB × 6 1.10x (1.1 MiB). Six buffers of
/// 192 KiB keep the throughput and bound the pool at 1.1 MiB.
pub const DEFAULT_CHUNK: usize = 192 * 1024;

/// Tunables of one decryption.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// Bytes withheld until the MAC verdict (see [`holdback`]).
    pub hold_back: u64,
    /// Pipeline buffer size.
    pub chunk_size: usize,
    /// Length of the ciphertext from the descriptor, when known: more input is an error as soon
    /// as it arrives, less is an error at the end.
    pub expected_size: Option<u64>,
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self {
            hold_back: holdback::HOLD_BACK,
            chunk_size: DEFAULT_CHUNK,
            expected_size: None,
        }
    }
}

/// Proof that a layer's MAC verified and all of its plaintext was written.
#[derive(Debug)]
#[must_use = "a Verified is the only success signal; report it"]
pub struct Verified {
    bytes: u64,
}

impl Verified {
    /// Number of plaintext bytes written.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

/// Why a layer did not decrypt.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// Reading stdin failed.
    #[error("reading the encrypted layer from stdin failed: {0}")]
    Input(#[source] io::Error),
    /// Writing stdout failed (EPIPE when the consumer went away).
    #[error("{}", output_message(.0))]
    Output(#[source] io::Error),
    /// Fewer bytes than the descriptor's size.
    #[error(
        "the encrypted layer is truncated: {got} bytes arrived but its descriptor says {expected}"
    )]
    Truncated {
        /// Bytes read.
        got: u64,
        /// Descriptor size.
        expected: u64,
    },
    /// More bytes than the descriptor's size.
    #[error("the encrypted layer is longer than the {expected} bytes its descriptor says")]
    Extended {
        /// Descriptor size.
        expected: u64,
    },
    /// The HMAC did not verify.
    #[error(
        "the layer failed authentication: the HMAC over its {bytes} encrypted bytes does not \
         match the one in its annotations (the blob was altered or corrupted, or belongs to \
         another descriptor)"
    )]
    MacMismatch {
        /// Bytes authenticated.
        bytes: u64,
    },
    /// The spool file for `--verify-before-release` could not be created or used.
    #[error("cannot spool the encrypted layer in {} for --verify-before-release: {source}", .dir.display())]
    Spool {
        /// The spool directory.
        dir: std::path::PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A pipeline thread ended without a verdict (a bug).
    #[error("internal error: a decryption thread stopped without a verdict")]
    Internal,
}

fn output_message(e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::BrokenPipe {
        "the reader of stdout (containerd) closed the pipe before the layer was complete; \
         containerd's own log says why it stopped"
            .to_string()
    } else {
        format!("writing the decrypted layer to stdout failed: {e}")
    }
}

/// Decrypts `input` to `output`, verifying the MAC. On success every plaintext byte has been
/// written and flushed; on failure the last `config.hold_back` bytes (at least) never were.
///
/// `input` moves to a reader thread. If this returns an error, that thread may still be blocked
/// in `read`; the caller is expected to exit the process, as the binary does.
pub fn decrypt<R, W>(
    input: R,
    output: W,
    params: &StreamParams,
    config: &StreamConfig,
) -> Result<Verified, StreamError>
where
    R: Read + Send + 'static,
    W: Write,
{
    if let Some(size) = config.expected_size.filter(|&n| n <= SMALL_LAYER) {
        return decrypt_small(input, output, params, size);
    }
    pipeline::run(input, output, params, config, pipeline::Mode::Decrypt)
        .map(|bytes| Verified { bytes })
}

/// Layers up to this size (by their descriptor) are decrypted on the calling thread, in memory:
/// no threads to start, and nothing at all is written before the MAC verifies.
pub const SMALL_LAYER: u64 = 1 << 20;

fn decrypt_small<R: Read, W: Write>(
    mut input: R,
    mut output: W,
    params: &StreamParams,
    expected: u64,
) -> Result<Verified, StreamError> {
    let mut buf = Vec::with_capacity(expected as usize + 1);
    (&mut input)
        .take(expected + 1)
        .read_to_end(&mut buf)
        .map_err(StreamError::Input)?;
    let got = buf.len() as u64;
    if got > expected {
        return Err(StreamError::Extended { expected });
    }
    if got < expected {
        return Err(StreamError::Truncated { got, expected });
    }
    let mut mac = cipher::Authenticator::new(&params.key);
    mac.update(&buf);
    if !mac.verify(&params.mac) {
        return Err(StreamError::MacMismatch { bytes: got });
    }
    cipher::Keystream::new(&params.key, &params.nonce).apply(&mut buf);
    output.write_all(&buf).map_err(StreamError::Output)?;
    output.flush().map_err(StreamError::Output)?;
    Ok(Verified { bytes: got })
}

/// Like [`decrypt`], but no plaintext byte leaves the process before the MAC has verified:
/// the ciphertext is first spooled to an unlinked private file in `spool_dir` while the MAC is
/// computed, and only after the verdict is it decrypted from there to `output`. Costs a second
/// pass over the layer and its size in disk space for the duration.
pub fn decrypt_spooled<R, W>(
    input: R,
    mut output: W,
    params: &StreamParams,
    config: &StreamConfig,
    spool_dir: &std::path::Path,
) -> Result<Verified, StreamError>
where
    R: Read + Send + 'static,
    W: Write,
{
    use std::io::Seek;
    let spool_error = |source: io::Error| StreamError::Spool {
        dir: spool_dir.to_path_buf(),
        source,
    };
    let mut file = spool::create(spool_dir).map_err(spool_error)?;
    let total = pipeline::run(input, &mut file, params, config, pipeline::Mode::Spool).map_err(
        |e| match e {
            // A write error here is the spool file's, not stdout's.
            StreamError::Output(source) => spool_error(source),
            other => other,
        },
    )?;
    file.seek(io::SeekFrom::Start(0)).map_err(spool_error)?;
    let mut keystream = cipher::Keystream::new(&params.key, &params.nonce);
    let mut buf = vec![0u8; config.chunk_size.max(4096)];
    let mut written = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(spool_error(e)),
        };
        keystream.apply(&mut buf[..n]);
        output.write_all(&buf[..n]).map_err(StreamError::Output)?;
        written += n as u64;
    }
    if written != total {
        return Err(spool_error(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the spool file changed size",
        )));
    }
    output.flush().map_err(StreamError::Output)?;
    Ok(Verified { bytes: total })
}

#[cfg(test)]
mod tests;
