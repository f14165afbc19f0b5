//! The signature of a delivery: `Granary-Signature: t=<unix seconds>,v1=<hex
//! HMAC-SHA256(secret, "<t>.<body>")>`, made at send time, and [`verify`], the check a Rust
//! receiver (and the conformance suite) runs: the HMAC compared in constant time, a `t`
//! outside the replay window refused.

use std::time::Duration;

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// The header that carries the signature.
pub const SIGNATURE_HEADER: &str = "Granary-Signature";
/// The header that names the event type (`refreshed`, ...).
pub const EVENT_HEADER: &str = "Granary-Event";
/// The header that carries the delivery's id: the same on every attempt of one delivery, so
/// that a receiver dedupes by it.
pub const DELIVERY_HEADER: &str = "Granary-Delivery";
/// The replay window receivers should use: a signature older than this is refused.
pub const DEFAULT_REPLAY_WINDOW: Duration = Duration::from_secs(5 * 60);

const BLOCK: usize = 64;

/// HMAC-SHA256 (RFC 2104) of `message` under `key`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// The `v1` value: hex HMAC-SHA256 of `"<t>.<body>"` under `secret`.
fn v1(secret: &[u8], t: u64, body: &[u8]) -> [u8; 32] {
    let mut message = Vec::with_capacity(body.len() + 21);
    message.extend_from_slice(t.to_string().as_bytes());
    message.push(b'.');
    message.extend_from_slice(body);
    hmac_sha256(secret, &message)
}

/// The `Granary-Signature` value of `body` sent at `t` (unix seconds), under `secret` (the
/// secret's text as shown at creation, its bytes as the HMAC key).
pub fn sign(secret: &[u8], t: u64, body: &[u8]) -> String {
    format!("t={t},v1={}", hex::encode(v1(secret, t, body)))
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The header is not `t=<seconds>,v1=<hex>`.
    #[error("the Granary-Signature header is not `t=<unix seconds>,v1=<hex HMAC>`")]
    Malformed,
    /// `t` is further from now than the window (a replay, or a clock far off).
    #[error(
        "the signature's time t={t} is more than {window_secs} s from now ({now}): a replay, or a clock that is off"
    )]
    OutsideWindow {
        /// The signature's time.
        t: u64,
        /// The receiver's time.
        now: u64,
        /// The window, in seconds.
        window_secs: u64,
    },
    /// No `v1` matches the body under this secret (altered body, another secret).
    #[error(
        "no v1 signature matches the body under this secret: the body was altered, or the secret is not this endpoint's"
    )]
    Mismatch,
}

/// Checks a `Granary-Signature` header: `t` within `window` of `now` (unix seconds, either
/// side), and one of its `v1` values equal, in constant time, to the HMAC of `"<t>.<body>"`
/// under `secret` (the secret's text as shown at creation).
///
/// # Errors
/// [`VerifyError`] naming what failed.
pub fn verify(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now: u64,
    window: Duration,
) -> Result<(), VerifyError> {
    let mut t = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        let (key, value) = part.trim().split_once('=').ok_or(VerifyError::Malformed)?;
        match key {
            "t" if t.is_none() => {
                t = Some(value.parse::<u64>().map_err(|_| VerifyError::Malformed)?);
            }
            "t" => return Err(VerifyError::Malformed),
            "v1" => signatures.push(hex::decode(value).map_err(|_| VerifyError::Malformed)?),
            // Other schemes (a future v2) are skipped.
            _ => {}
        }
    }
    let t = t.ok_or(VerifyError::Malformed)?;
    if signatures.is_empty() {
        return Err(VerifyError::Malformed);
    }
    if t.abs_diff(now) > window.as_secs() {
        return Err(VerifyError::OutsideWindow {
            t,
            now,
            window_secs: window.as_secs(),
        });
    }
    let expected = v1(secret, t, body);
    let mut matched = subtle::Choice::from(0);
    for signature in &signatures {
        matched |= expected.as_slice().ct_eq(signature.as_slice());
    }
    if bool::from(matched) {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test cases 1, 2 and 6 (a key longer than a block).
        assert_eq!(
            hex::encode(hmac_sha256(&[0x0b; 20], b"Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex::encode(hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn malformed_headers_are_refused() {
        for header in [
            "",
            "t=1",
            "v1=00",
            "t=x,v1=00",
            "t=1,v1=zz",
            "t=1,t=1,v1=00",
            "garbage",
        ] {
            assert_eq!(
                verify(b"k", header, b"{}", 1, DEFAULT_REPLAY_WINDOW),
                Err(VerifyError::Malformed),
                "{header}"
            );
        }
    }
}
