//! How much decrypted plaintext may leave the process before the MAC verdict.
//!
//! ocicrypt authenticates the whole layer with one HMAC at the end, so a streaming decoder has
//! to release plaintext it has not authenticated yet. Two rules keep a failed layer from ever
//! looking complete to containerd:
//!
//! 1. **Hold back the tail.** The last [`HOLD_BACK`] bytes (64 KiB, or the whole layer if it is
//!    smaller) are written only after the MAC verifies. Go ocicrypt holds back 10 KiB. 64 KiB
//!    covers the end of any tar stream — the two zero end-of-archive blocks plus record padding
//!    at any blocking factor up to 128 (GNU tar's `-b` maximum; the default record is 10 KiB) —
//!    and the gzip/zstd trailer with the last compressed blocks before it, at the cost of 64 KiB
//!    of memory and nothing in throughput.
//! 2. **Never stop on a tar block boundary.** Go's `archive/tar` treats end-of-input at a
//!    512-byte header boundary as a clean end of archive. So the number of bytes released before
//!    the verdict is always 0 or `1 (mod 512)`: if the decoder then fails, a tar reader hits an
//!    unexpected EOF in the middle of a block instead of a plausible end. (Compressed layers fail
//!    on truncation anyway.) containerd's diffID check remains the last line of defence, and the
//!    exit status is the authoritative verdict.

/// Bytes withheld until the MAC verdict.
pub const HOLD_BACK: u64 = 64 * 1024;

/// Tar block size.
const TAR_BLOCK: u64 = 512;

/// The number of plaintext bytes that may have been released once `decrypted` bytes have been
/// decrypted and no verdict exists yet. Monotonic in `decrypted`; always 0 or `1 (mod 512)`.
pub fn releasable(decrypted: u64, hold_back: u64) -> u64 {
    let allowed = decrypted.saturating_sub(hold_back);
    if allowed == 0 {
        0
    } else {
        1 + (allowed - 1) / TAR_BLOCK * TAR_BLOCK
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_releases_the_tail() {
        assert_eq!(releasable(0, HOLD_BACK), 0);
        assert_eq!(releasable(HOLD_BACK, HOLD_BACK), 0);
        assert_eq!(releasable(HOLD_BACK + 1, HOLD_BACK), 1);
        assert_eq!(releasable(HOLD_BACK + 512, HOLD_BACK), 1);
        assert_eq!(releasable(HOLD_BACK + 513, HOLD_BACK), 513);
        for d in (0..5_000_000u64).step_by(997) {
            let r = releasable(d, HOLD_BACK);
            assert!(r + HOLD_BACK <= d || r == 0, "{d} {r}");
            assert!(r == 0 || r % 512 == 1, "{d} {r}");
            assert!(releasable(d + 1, HOLD_BACK) >= r);
            // Never more than one block plus the hold-back stays behind.
            assert!(d.saturating_sub(HOLD_BACK) - r < 512);
        }
    }
}
