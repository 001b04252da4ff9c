//! The three-stage pipeline behind [`super::decrypt`].

use std::io::{self, Read, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread;

use super::cipher::{Authenticator, Keystream};
use super::holdback::releasable;
use super::{StreamConfig, StreamError};
use crate::options::StreamParams;
use crate::secret::MAC_LEN;

/// Chunks queued for the MAC thread. The MAC is the serial bound of the whole pipeline, so two
/// chunks wait for it: it never idles while the reader refills a buffer.
const MAC_DEPTH: usize = 2;
/// Chunks queued for the last stage. Decryption runs at several times the MAC's speed, so one
/// queued chunk is enough; more only added resident memory (see [`super::DEFAULT_CHUNK`]).
const OUT_DEPTH: usize = 1;

struct Chunk {
    buf: Vec<u8>,
    len: usize,
}

enum Msg {
    Data(Chunk),
    /// End of input: `Ok(total bytes)` or the reason the stream is bad.
    End(Result<u64, StreamError>),
}

/// Buffers in flight: one in the reader, `MAC_DEPTH` queued, one in the MAC thread, `OUT_DEPTH`
/// queued and one being decrypted and written. With every slot full the reader waits for a buffer
/// to come back, which is the back-pressure. The hold-back lives in its own small buffer
/// ([`Tail`]), so it does not count here.
fn pool_size() -> usize {
    1 + MAC_DEPTH + 1 + OUT_DEPTH + 1
}

/// What the last stage does with each authenticated-so-far chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// Decrypt and write plaintext, withholding the tail until the verdict.
    Decrypt,
    /// Write the ciphertext as is (to a private spool file); nothing is withheld.
    Spool,
}

pub(super) fn run<R, W>(
    input: R,
    mut output: W,
    params: &StreamParams,
    config: &StreamConfig,
    mode: Mode,
) -> Result<u64, StreamError>
where
    R: Read + Send + 'static,
    W: Write,
{
    let chunk = config.chunk_size.max(1);
    let pool = pool_size();
    let (free_tx, free_rx) = sync_channel::<Vec<u8>>(pool);
    for _ in 0..pool {
        // Cannot fail: the channel has room for exactly `pool` buffers and the receiver lives.
        let _ = free_tx.send(vec![0u8; chunk]);
    }
    let (mac_tx, mac_rx) = sync_channel::<Msg>(MAC_DEPTH);
    let (out_tx, out_rx) = sync_channel::<Msg>(OUT_DEPTH);

    let expected_size = config.expected_size;
    let reader = thread::Builder::new()
        .name("ctd-read".into())
        .spawn(move || read_stage(input, free_rx, mac_tx, expected_size))
        .map_err(|_| StreamError::Internal)?;
    let key = params.key.clone();
    let mac = params.mac;
    let authenticator = thread::Builder::new()
        .name("ctd-mac".into())
        .spawn(move || mac_stage(Authenticator::new(&key), mac, mac_rx, out_tx))
        .map_err(|_| StreamError::Internal)?;

    let mut keystream = match mode {
        Mode::Decrypt => Some(Keystream::new(&params.key, &params.nonce)),
        Mode::Spool => None,
    };
    let hold_back = match mode {
        Mode::Decrypt => config.hold_back,
        Mode::Spool => 0,
    };
    let result = write_stage(keystream.as_mut(), &mut output, out_rx, free_tx, hold_back);
    if result.is_ok() {
        // Both stages have sent their final message, so they are returning; joining is quick.
        // On failure they may be blocked on I/O and are left to die with the process.
        let _ = reader.join();
        let _ = authenticator.join();
    }
    result
}

fn read_stage<R: Read>(
    mut input: R,
    free: Receiver<Vec<u8>>,
    next: SyncSender<Msg>,
    expected_size: Option<u64>,
) {
    let mut total: u64 = 0;
    loop {
        let Ok(mut buf) = free.recv() else { return };
        let mut len = 0;
        let status = loop {
            if len == buf.len() {
                break Ok(false);
            }
            match input.read(&mut buf[len..]) {
                Ok(0) => break Ok(true),
                Ok(n) => len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        total += len as u64;
        if let Some(expected) = expected_size {
            if total > expected {
                let _ = next.send(Msg::End(Err(StreamError::Extended { expected })));
                return;
            }
        }
        if len > 0 && next.send(Msg::Data(Chunk { buf, len })).is_err() {
            return;
        }
        match status {
            Ok(false) => {}
            Ok(true) => {
                let end = match expected_size {
                    Some(expected) if total < expected => Err(StreamError::Truncated {
                        got: total,
                        expected,
                    }),
                    _ => Ok(total),
                };
                let _ = next.send(Msg::End(end));
                return;
            }
            Err(e) => {
                let _ = next.send(Msg::End(Err(StreamError::Input(e))));
                return;
            }
        }
    }
}

fn mac_stage(
    mut auth: Authenticator,
    expected: [u8; MAC_LEN],
    input: Receiver<Msg>,
    next: SyncSender<Msg>,
) {
    for msg in input {
        match msg {
            Msg::Data(chunk) => {
                auth.update(&chunk.buf[..chunk.len]);
                if next.send(Msg::Data(chunk)).is_err() {
                    return;
                }
            }
            Msg::End(Ok(total)) => {
                let verdict = if auth.verify(&expected) {
                    Ok(total)
                } else {
                    Err(StreamError::MacMismatch { bytes: total })
                };
                let _ = next.send(Msg::End(verdict));
                return;
            }
            Msg::End(Err(e)) => {
                let _ = next.send(Msg::End(Err(e)));
                return;
            }
        }
    }
    // The reader vanished without an end message.
    let _ = next.send(Msg::End(Err(StreamError::Internal)));
}

/// The withheld tail of the plaintext, copied out of the pipeline's buffers so that every
/// buffer goes back to the pool as soon as it is decrypted (the pool then never has to cover
/// the hold-back).
struct Tail {
    buf: Vec<u8>,
    start: usize,
}

impl Tail {
    fn len(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Writes the first `n` withheld bytes.
    fn release<W: Write>(&mut self, output: &mut W, n: usize) -> Result<(), StreamError> {
        output
            .write_all(&self.buf[self.start..self.start + n])
            .map_err(StreamError::Output)?;
        self.start += n;
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        Ok(())
    }

    /// Withholds `bytes`, after what is already withheld.
    fn keep(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }
}

fn write_stage<W: Write>(
    mut keystream: Option<&mut Keystream>,
    output: &mut W,
    input: Receiver<Msg>,
    free: SyncSender<Vec<u8>>,
    hold_back: u64,
) -> Result<u64, StreamError> {
    let mut tail = Tail {
        buf: Vec::new(),
        start: 0,
    };
    let mut decrypted: u64 = 0;
    let mut released: u64 = 0;
    loop {
        match input.recv() {
            Ok(Msg::Data(mut chunk)) => {
                let data = &mut chunk.buf[..chunk.len];
                if let Some(ks) = keystream.as_deref_mut() {
                    ks.apply(data);
                }
                decrypted += data.len() as u64;
                // Release what the hold-back allows: the oldest bytes first (the tail, then
                // this chunk); withhold the rest.
                let target = releasable(decrypted, hold_back);
                let mut to_release = usize::try_from(target - released).unwrap_or(usize::MAX);
                let from_tail = to_release.min(tail.len());
                tail.release(output, from_tail)?;
                to_release -= from_tail;
                let from_chunk = to_release.min(data.len());
                output
                    .write_all(&data[..from_chunk])
                    .map_err(StreamError::Output)?;
                tail.keep(&data[from_chunk..]);
                released = target;
                // The reader may have finished already; then the buffer is simply dropped.
                let _ = free.try_send(chunk.buf);
            }
            Ok(Msg::End(Ok(total))) => {
                debug_assert_eq!(total, decrypted);
                let all = tail.len();
                tail.release(output, all)?;
                output.flush().map_err(StreamError::Output)?;
                return Ok(decrypted);
            }
            Ok(Msg::End(Err(e))) => return Err(e),
            Err(_) => return Err(StreamError::Internal),
        }
    }
}
