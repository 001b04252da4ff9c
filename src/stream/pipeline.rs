//! The three-stage pipeline behind [`super::decrypt`].

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread;

use super::cipher::{Authenticator, Keystream};
use super::holdback::releasable;
use super::{StreamConfig, StreamError};
use crate::options::StreamParams;
use crate::secret::MAC_LEN;

/// Chunks queued between two stages. Two keeps each stage busy while the next catches up.
const DEPTH: usize = 2;

struct Chunk {
    buf: Vec<u8>,
    len: usize,
}

enum Msg {
    Data(Chunk),
    /// End of input: `Ok(total bytes)` or the reason the stream is bad.
    End(Result<u64, StreamError>),
}

/// Buffers in flight: one in the reader, `DEPTH` per channel, one in the MAC thread, one being
/// decrypted, and those the hold-back keeps (the unreleased tail is at most `hold_back + 511`
/// bytes, spread over whole chunks plus a partly released one).
fn pool_size(config: &StreamConfig, chunk: usize) -> usize {
    let held = (config.hold_back as usize + 511).div_ceil(chunk) + 1;
    1 + DEPTH + 1 + DEPTH + 1 + held + 1
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
    let pool = pool_size(config, chunk);
    let (free_tx, free_rx) = sync_channel::<Vec<u8>>(pool);
    for _ in 0..pool {
        // Cannot fail: the channel has room for exactly `pool` buffers and the receiver lives.
        let _ = free_tx.send(vec![0u8; chunk]);
    }
    let (mac_tx, mac_rx) = sync_channel::<Msg>(DEPTH);
    let (out_tx, out_rx) = sync_channel::<Msg>(DEPTH);

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

struct Pending {
    chunk: Chunk,
    start: usize,
}

fn write_stage<W: Write>(
    mut keystream: Option<&mut Keystream>,
    output: &mut W,
    input: Receiver<Msg>,
    free: SyncSender<Vec<u8>>,
    hold_back: u64,
) -> Result<u64, StreamError> {
    let mut pending: VecDeque<Pending> = VecDeque::new();
    let mut decrypted: u64 = 0;
    let mut released: u64 = 0;
    loop {
        match input.recv() {
            Ok(Msg::Data(mut chunk)) => {
                if let Some(ks) = keystream.as_deref_mut() {
                    ks.apply(&mut chunk.buf[..chunk.len]);
                }
                decrypted += chunk.len as u64;
                pending.push_back(Pending { chunk, start: 0 });
                let target = releasable(decrypted, hold_back);
                release(output, &mut pending, &free, target - released)?;
                released = target;
            }
            Ok(Msg::End(Ok(total))) => {
                debug_assert_eq!(total, decrypted);
                release(output, &mut pending, &free, decrypted - released)?;
                output.flush().map_err(StreamError::Output)?;
                return Ok(decrypted);
            }
            Ok(Msg::End(Err(e))) => return Err(e),
            Err(_) => return Err(StreamError::Internal),
        }
    }
}

/// Writes the first `n` pending bytes and recycles the buffers that are done.
fn release<W: Write>(
    output: &mut W,
    pending: &mut VecDeque<Pending>,
    free: &SyncSender<Vec<u8>>,
    mut n: u64,
) -> Result<(), StreamError> {
    while n > 0 {
        let Some(front) = pending.front_mut() else {
            return Err(StreamError::Internal);
        };
        let available = front.chunk.len - front.start;
        let take = available.min(usize::try_from(n).unwrap_or(usize::MAX));
        output
            .write_all(&front.chunk.buf[front.start..front.start + take])
            .map_err(StreamError::Output)?;
        front.start += take;
        n -= take as u64;
        if front.start == front.chunk.len {
            if let Some(done) = pending.pop_front() {
                // The reader may have finished already; then the buffer is simply dropped.
                let _ = free.try_send(done.chunk.buf);
            }
        }
    }
    Ok(())
}
