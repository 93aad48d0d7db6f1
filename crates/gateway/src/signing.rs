//! Optional HMAC request signing, on top of the API key.
//!
//! Header: `Tally-Signature: t=<unix_ms>,nonce=<hex>,v1=<hex>` where `v1` is
//! HMAC-SHA256(secret, `t.nonce.METHOD.path.body`) over the raw body bytes. The timestamp bounds
//! how long a captured request stays usable; the nonce, remembered for exactly that long, makes
//! it usable once. Everything fails closed: a header that is not exactly this shape is refused,
//! never half-checked.
//!
//! The signed string has no length prefixes, so it is unambiguous only while no part but the
//! last can contain `.`: `t` and `nonce` are digits and hex, the method is letters, and a path
//! with a `.` is refused (clients percent-encode it as `%2E`). Otherwise `/a.b` + body `c` and
//! `/a` + body `b.c` would share a signature.

use crate::config::{check_range, ConfigError};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use std::collections::{BTreeMap, BTreeSet};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// The HTTP header (and gRPC metadata key, lowercased) that carries the signature.
pub const SIGNATURE_HEADER_NAME: &str = "Tally-Signature";
/// How far a signature's timestamp may be from the server's clock, either way.
pub const SIGNATURE_TOLERANCE_MS: u64 = 300_000;
/// The longest header accepted; a well-formed one is under 160 bytes.
pub const SIGNATURE_HEADER_BYTES_MAX: usize = 256;
/// Shortest signing secret accepted: a shorter one is a configuration bug, refused rather than
/// used.
pub const SIGNING_SECRET_BYTES_MIN: usize = 32;
/// Nonce length bounds. 8 random bytes make an accidental repeat within a replay window
/// negligible; 32 caps what the nonce cache stores per entry.
pub const SIGNATURE_NONCE_BYTES_MIN: usize = 8;
pub const SIGNATURE_NONCE_BYTES_MAX: usize = 32;
/// Nonce length `new_nonce` produces.
pub const SIGNATURE_NONCE_BYTES: usize = 16;
/// Longest method and path accepted for signing.
pub const SIGNED_METHOD_BYTES_MAX: usize = 16;
pub const SIGNED_PATH_BYTES_MAX: usize = 8_192;
/// Default and largest bound of a `NonceCache`, in entries (about 10 MB at the largest nonces).
pub const NONCE_CACHE_ENTRIES_MAX: usize = 100_000;

const MAC_BYTES: usize = 32;

/// Why a signed request was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error(
        "the signing secret is too short: use at least {SIGNING_SECRET_BYTES_MIN} random bytes"
    )]
    SecretTooShort,
    #[error("the Tally-Signature header is malformed ({reason}); send exactly `t=<unix_ms>,nonce=<16-64 lowercase hex>,v1=<64 lowercase hex>`")]
    Malformed { reason: &'static str },
    #[error("the request method cannot be signed: use an uppercase HTTP method such as POST")]
    MethodInvalid,
    #[error("the request path cannot be signed: it must start with `/`, be at most {SIGNED_PATH_BYTES_MAX} bytes of visible ASCII, and contain no `.` (percent-encode it as %2E)")]
    PathUnsignable,
    #[error("the signature timestamp is {skew_ms} ms away from the server clock, beyond the {SIGNATURE_TOLERANCE_MS} ms tolerance; sign with a synchronised clock and send promptly")]
    TimestampOutOfTolerance { skew_ms: u64 },
    #[error("the signature does not match: sign `t.nonce.METHOD.path.body` over the raw body bytes with this merchant's signing secret")]
    Mismatch,
    #[error("this nonce was already used within the replay window: use a fresh random nonce for every request")]
    NonceReplayed,
    #[error(
        "too many signed requests within the replay window to remember their nonces; retry shortly"
    )]
    NonceCacheFull,
}

impl SignatureError {
    /// The stable, machine-readable code of this refusal.
    pub fn code(&self) -> &'static str {
        match self {
            SignatureError::SecretTooShort => "signing_secret_too_short",
            SignatureError::Malformed { .. } => "signature_malformed",
            SignatureError::MethodInvalid => "signature_method_invalid",
            SignatureError::PathUnsignable => "signature_path_unsignable",
            SignatureError::TimestampOutOfTolerance { .. } => {
                "signature_timestamp_out_of_tolerance"
            }
            SignatureError::Mismatch => "signature_mismatch",
            SignatureError::NonceReplayed => "signature_nonce_replayed",
            SignatureError::NonceCacheFull => "signature_nonce_cache_full",
        }
    }
}

/// A fresh nonce for `sign`. Pass a cryptographically secure generator (`rand::rng()`).
pub fn new_nonce(rng: &mut impl RngCore) -> [u8; SIGNATURE_NONCE_BYTES] {
    let mut nonce = [0u8; SIGNATURE_NONCE_BYTES];
    rng.fill_bytes(&mut nonce);
    nonce
}

/// The `Tally-Signature` header value for a request, as a client computes it.
pub fn sign(
    secret: &[u8],
    t_ms: u64,
    nonce: &[u8],
    method: &str,
    path: &str,
    body: &[u8],
) -> Result<String, SignatureError> {
    check_secret(secret)?;
    check_method_and_path(method, path)?;
    if !(SIGNATURE_NONCE_BYTES_MIN..=SIGNATURE_NONCE_BYTES_MAX).contains(&nonce.len()) {
        return Err(SignatureError::Malformed {
            reason: "nonce must be 8 to 32 bytes",
        });
    }
    let t = t_ms.to_string();
    let nonce_hex = hex::encode(nonce);
    let mac = compute_mac(secret, &t, &nonce_hex, method, path, body);
    Ok(format!("t={t},nonce={nonce_hex},v1={}", hex::encode(mac)))
}

/// A signature that verified: its nonce and timestamp, still to be remembered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    pub nonce: Vec<u8>,
    pub t_ms: u64,
}

/// Checks a request's `Tally-Signature` header at `now_ms` against any of `secrets` (the
/// current signing secret and, during a rotation, the previous one). Remembering the nonce is
/// the caller's next step: the MAC is checked first, so unauthenticated requests can neither
/// burn a client's nonces nor fill a nonce store.
pub fn check(
    secrets: &[&[u8]],
    header: &str,
    method: &str,
    path: &str,
    body: &[u8],
    now_ms: u64,
) -> Result<Checked, SignatureError> {
    for secret in secrets {
        check_secret(secret)?;
    }
    let parsed = parse_header(header)?;
    check_method_and_path(method, path)?;
    check_timestamp(parsed.t_ms, now_ms)?;
    let matched = secrets.iter().any(|secret| {
        let expected = compute_mac(secret, parsed.t, parsed.nonce_hex, method, path, body);
        bool::from(expected.ct_eq(&parsed.mac))
    });
    if !matched {
        return Err(SignatureError::Mismatch);
    }
    Ok(Checked {
        nonce: parsed.nonce,
        t_ms: parsed.t_ms,
    })
}

/// [`check`] with one secret, then the nonce remembered in `nonces`.
pub fn verify(
    secret: &[u8],
    header: &str,
    method: &str,
    path: &str,
    body: &[u8],
    now_ms: u64,
    nonces: &mut NonceCache,
) -> Result<(), SignatureError> {
    let checked = check(&[secret], header, method, path, body, now_ms)?;
    nonces.remember(&checked, now_ms)
}

/// Nonces seen within the replay window, each kept until its request's timestamp falls out of
/// tolerance (after which a replay fails the timestamp check instead). Bounded: when full of
/// live nonces it refuses new requests rather than forget one that could still be replayed.
pub struct NonceCache {
    entries_max: usize,
    expires_at_by_nonce: BTreeMap<Vec<u8>, u64>,
    by_expiry: BTreeSet<(u64, Vec<u8>)>,
    /// The latest `now_ms` seen. Pruning uses it, so timestamps are also judged against it: if
    /// the clock steps back, a request whose nonce was already pruned must not pass again.
    now_ms_high: u64,
}

impl Default for NonceCache {
    fn default() -> Self {
        Self::new(NONCE_CACHE_ENTRIES_MAX).expect("the default bound is in range")
    }
}

impl NonceCache {
    pub fn new(entries_max: usize) -> Result<Self, ConfigError> {
        check_range(
            "signing.nonce_cache_entries_max",
            entries_max as u64,
            1,
            NONCE_CACHE_ENTRIES_MAX as u64,
        )?;
        Ok(NonceCache {
            entries_max,
            expires_at_by_nonce: BTreeMap::new(),
            by_expiry: BTreeSet::new(),
            now_ms_high: 0,
        })
    }

    /// Nonces currently remembered.
    pub fn len(&self) -> usize {
        self.expires_at_by_nonce.len()
    }

    pub fn is_empty(&self) -> bool {
        self.expires_at_by_nonce.is_empty()
    }

    /// Remembers a checked signature's nonce; refuses one seen within the window.
    pub fn remember(&mut self, checked: &Checked, now_ms: u64) -> Result<(), SignatureError> {
        let (nonce, t_ms) = (checked.nonce.as_slice(), checked.t_ms);
        self.now_ms_high = self.now_ms_high.max(now_ms);
        self.prune();
        let expires_at_ms = t_ms.saturating_add(SIGNATURE_TOLERANCE_MS);
        if expires_at_ms < self.now_ms_high {
            return Err(SignatureError::TimestampOutOfTolerance {
                skew_ms: self.now_ms_high - t_ms,
            });
        }
        if self.expires_at_by_nonce.contains_key(nonce) {
            return Err(SignatureError::NonceReplayed);
        }
        if self.expires_at_by_nonce.len() >= self.entries_max {
            return Err(SignatureError::NonceCacheFull);
        }
        self.expires_at_by_nonce
            .insert(nonce.to_vec(), expires_at_ms);
        self.by_expiry.insert((expires_at_ms, nonce.to_vec()));
        debug_assert_eq!(self.expires_at_by_nonce.len(), self.by_expiry.len());
        Ok(())
    }

    fn prune(&mut self) {
        while let Some((expires_at_ms, _)) = self.by_expiry.first() {
            if *expires_at_ms >= self.now_ms_high {
                break;
            }
            let (_, nonce) = self.by_expiry.pop_first().expect("first() was Some");
            let removed = self.expires_at_by_nonce.remove(&nonce);
            assert!(
                removed.is_some(),
                "the expiry index and the nonces disagree"
            );
        }
    }
}

struct ParsedHeader<'a> {
    t: &'a str,
    t_ms: u64,
    nonce_hex: &'a str,
    nonce: Vec<u8>,
    mac: [u8; MAC_BYTES],
}

fn parse_header(header: &str) -> Result<ParsedHeader<'_>, SignatureError> {
    let malformed = |reason| SignatureError::Malformed { reason };
    if header.len() > SIGNATURE_HEADER_BYTES_MAX {
        return Err(malformed("longer than 256 bytes"));
    }
    let mut parts = header.split(',');
    let mut field = |name: &'static str, reason: &'static str| {
        parts
            .next()
            .and_then(|part| part.strip_prefix(name))
            .ok_or(malformed(reason))
    };
    let t = field("t=", "expected `t=` first")?;
    let nonce_hex = field("nonce=", "expected `nonce=` second")?;
    let v1 = field("v1=", "expected `v1=` third")?;
    if parts.next().is_some() {
        return Err(malformed("unexpected field after `v1=`"));
    }

    // `u64::from_str` would also take a leading `+`; only plain digits are the signed form.
    if t.is_empty() || t.len() > 20 || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed("`t` must be unix milliseconds in decimal digits"));
    }
    let t_ms = t
        .parse::<u64>()
        .map_err(|_| malformed("`t` does not fit in 64 bits"))?;

    let nonce_bytes = nonce_hex.len() / 2;
    if nonce_hex.len() % 2 != 0
        || !(SIGNATURE_NONCE_BYTES_MIN..=SIGNATURE_NONCE_BYTES_MAX).contains(&nonce_bytes)
        || !is_lower_hex(nonce_hex)
    {
        return Err(malformed(
            "`nonce` must be 16 to 64 lowercase hex characters",
        ));
    }
    let nonce = hex::decode(nonce_hex).map_err(|_| malformed("`nonce` is not hex"))?;

    if v1.len() != 2 * MAC_BYTES || !is_lower_hex(v1) {
        return Err(malformed("`v1` must be 64 lowercase hex characters"));
    }
    let mut mac = [0u8; MAC_BYTES];
    hex::decode_to_slice(v1, &mut mac).map_err(|_| malformed("`v1` is not hex"))?;

    Ok(ParsedHeader {
        t,
        t_ms,
        nonce_hex,
        nonce,
        mac,
    })
}

fn check_secret(secret: &[u8]) -> Result<(), SignatureError> {
    if secret.len() < SIGNING_SECRET_BYTES_MIN {
        return Err(SignatureError::SecretTooShort);
    }
    Ok(())
}

fn check_method_and_path(method: &str, path: &str) -> Result<(), SignatureError> {
    if method.is_empty()
        || method.len() > SIGNED_METHOD_BYTES_MAX
        || !method.bytes().all(|b| b.is_ascii_uppercase())
    {
        return Err(SignatureError::MethodInvalid);
    }
    if !path.starts_with('/')
        || path.len() > SIGNED_PATH_BYTES_MAX
        || !path.bytes().all(|b| b.is_ascii_graphic() && b != b'.')
    {
        return Err(SignatureError::PathUnsignable);
    }
    Ok(())
}

fn check_timestamp(t_ms: u64, now_ms: u64) -> Result<(), SignatureError> {
    let skew_ms = t_ms.abs_diff(now_ms);
    if skew_ms > SIGNATURE_TOLERANCE_MS {
        return Err(SignatureError::TimestampOutOfTolerance { skew_ms });
    }
    Ok(())
}

fn compute_mac(
    secret: &[u8],
    t: &str,
    nonce_hex: &str,
    method: &str,
    path: &str,
    body: &[u8],
) -> [u8; MAC_BYTES] {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    for part in [
        t.as_bytes(),
        nonce_hex.as_bytes(),
        method.as_bytes(),
        path.as_bytes(),
    ] {
        mac.update(part);
        mac.update(b".");
    }
    mac.update(body);
    mac.finalize().into_bytes().into()
}

fn is_lower_hex(text: &str) -> bool {
    text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    const SECRET: &[u8] = b"whsec-0123456789abcdef0123456789abcdef";
    const NOW_MS: u64 = 1_718_000_000_000;
    const NONCE: [u8; 16] = *b"0123456789abcdef";
    const BODY: &[u8] = br#"{"amount":"10.00","currency":"EUR"}"#;

    fn signed(t_ms: u64, nonce: &[u8]) -> String {
        sign(SECRET, t_ms, nonce, "POST", "/v1/payments", BODY).unwrap()
    }

    fn check(header: &str, now_ms: u64, cache: &mut NonceCache) -> Result<(), SignatureError> {
        verify(SECRET, header, "POST", "/v1/payments", BODY, now_ms, cache)
    }

    #[test]
    fn a_signed_request_verifies() {
        let mut cache = NonceCache::default();
        assert_eq!(check(&signed(NOW_MS, &NONCE), NOW_MS, &mut cache), Ok(()));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn the_signed_string_is_t_nonce_method_path_body() {
        // Pins the wire format clients implement, independently of `sign`.
        let nonce_hex = hex::encode(NONCE);
        let mut mac = HmacSha256::new_from_slice(SECRET).unwrap();
        mac.update(format!("{NOW_MS}.{nonce_hex}.POST./v1/payments.").as_bytes());
        mac.update(BODY);
        let v1 = hex::encode(mac.finalize().into_bytes());
        assert_eq!(
            signed(NOW_MS, &NONCE),
            format!("t={NOW_MS},nonce={nonce_hex},v1={v1}")
        );
    }

    #[test]
    fn any_tampering_is_a_mismatch() {
        let header = signed(NOW_MS, &NONCE);
        let mut cache = NonceCache::default();
        let attempts: [(&[u8], &str, &str, &[u8]); 5] = [
            (
                b"whsec-0123456789abcdef0123456789abcdeX",
                "POST",
                "/v1/payments",
                BODY,
            ),
            (SECRET, "PUT", "/v1/payments", BODY),
            (SECRET, "POST", "/v1/refunds", BODY),
            (
                SECRET,
                "POST",
                "/v1/payments",
                br#"{"amount":"99.00","currency":"EUR"}"#,
            ),
            (SECRET, "POST", "/v1/payments", b""),
        ];
        for (secret, method, path, body) in attempts {
            assert_eq!(
                verify(secret, &header, method, path, body, NOW_MS, &mut cache),
                Err(SignatureError::Mismatch)
            );
        }
        let other_t = header.replacen(&format!("t={NOW_MS}"), &format!("t={}", NOW_MS + 1), 1);
        assert_eq!(
            check(&other_t, NOW_MS, &mut cache),
            Err(SignatureError::Mismatch)
        );
        let other_nonce = header.replacen("nonce=3031", "nonce=3131", 1);
        assert_eq!(
            check(&other_nonce, NOW_MS, &mut cache),
            Err(SignatureError::Mismatch)
        );
        // Nothing unauthenticated was remembered.
        assert!(cache.is_empty());
    }

    #[test]
    fn a_replayed_nonce_is_refused() {
        let mut cache = NonceCache::default();
        let header = signed(NOW_MS, &NONCE);
        assert_eq!(check(&header, NOW_MS, &mut cache), Ok(()));
        let err = check(&header, NOW_MS + 1_000, &mut cache).unwrap_err();
        assert_eq!(err, SignatureError::NonceReplayed);
        assert_eq!(err.code(), "signature_nonce_replayed");
        // A different request reusing the nonce is a replay too.
        let other = sign(SECRET, NOW_MS, &NONCE, "POST", "/v1/refunds", b"{}").unwrap();
        assert_eq!(
            verify(
                SECRET,
                &other,
                "POST",
                "/v1/refunds",
                b"{}",
                NOW_MS,
                &mut cache
            ),
            Err(SignatureError::NonceReplayed)
        );
    }

    #[test]
    fn a_forged_request_does_not_burn_the_clients_nonce() {
        let mut cache = NonceCache::default();
        let forged = format!(
            "t={NOW_MS},nonce={},v1={}",
            hex::encode(NONCE),
            "ab".repeat(32)
        );
        assert_eq!(
            check(&forged, NOW_MS, &mut cache),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(check(&signed(NOW_MS, &NONCE), NOW_MS, &mut cache), Ok(()));
    }

    #[test]
    fn timestamps_within_tolerance_either_way_pass_and_beyond_fail() {
        let mut cache = NonceCache::default();
        let mut rng = StdRng::seed_from_u64(1);
        for t_ms in [
            NOW_MS - SIGNATURE_TOLERANCE_MS,
            NOW_MS + SIGNATURE_TOLERANCE_MS,
        ] {
            let header = signed(t_ms, &new_nonce(&mut rng));
            assert_eq!(check(&header, NOW_MS, &mut cache), Ok(()));
        }
        for t_ms in [
            NOW_MS - SIGNATURE_TOLERANCE_MS - 1,
            NOW_MS + SIGNATURE_TOLERANCE_MS + 1,
        ] {
            let header = signed(t_ms, &new_nonce(&mut rng));
            let err = check(&header, NOW_MS, &mut cache).unwrap_err();
            assert_eq!(
                err,
                SignatureError::TimestampOutOfTolerance {
                    skew_ms: SIGNATURE_TOLERANCE_MS + 1
                }
            );
            assert_eq!(err.code(), "signature_timestamp_out_of_tolerance");
        }
    }

    #[test]
    fn a_replay_after_the_window_fails_on_its_timestamp() {
        let mut cache = NonceCache::default();
        let header = signed(NOW_MS, &NONCE);
        assert_eq!(check(&header, NOW_MS, &mut cache), Ok(()));
        let later = NOW_MS + SIGNATURE_TOLERANCE_MS + 1;
        assert!(matches!(
            check(&header, later, &mut cache),
            Err(SignatureError::TimestampOutOfTolerance { .. })
        ));
    }

    #[test]
    fn a_clock_stepping_back_does_not_reopen_a_pruned_nonce() {
        let mut cache = NonceCache::default();
        let mut rng = StdRng::seed_from_u64(2);
        let header = signed(NOW_MS, &NONCE);
        assert_eq!(check(&header, NOW_MS, &mut cache), Ok(()));
        // Time moves past the window and another request prunes the first nonce...
        let later = NOW_MS + SIGNATURE_TOLERANCE_MS + 10;
        assert_eq!(
            check(&signed(later, &new_nonce(&mut rng)), later, &mut cache),
            Ok(())
        );
        assert_eq!(cache.len(), 1);
        // ...then the clock steps back to where the old request looks fresh again.
        let stepped_back = NOW_MS + 1;
        assert!(matches!(
            check(&header, stepped_back, &mut cache),
            Err(SignatureError::TimestampOutOfTolerance { .. })
        ));
    }

    #[test]
    fn a_full_cache_refuses_instead_of_forgetting_live_nonces() {
        let mut cache = NonceCache::new(2).unwrap();
        let mut rng = StdRng::seed_from_u64(3);
        let first = signed(NOW_MS, &new_nonce(&mut rng));
        assert_eq!(check(&first, NOW_MS, &mut cache), Ok(()));
        assert_eq!(
            check(&signed(NOW_MS, &new_nonce(&mut rng)), NOW_MS, &mut cache),
            Ok(())
        );
        let err = check(&signed(NOW_MS, &new_nonce(&mut rng)), NOW_MS, &mut cache).unwrap_err();
        assert_eq!(err, SignatureError::NonceCacheFull);
        assert_eq!(err.code(), "signature_nonce_cache_full");
        assert_eq!(cache.len(), 2);
        // The live nonces are still remembered.
        assert_eq!(
            check(&first, NOW_MS, &mut cache),
            Err(SignatureError::NonceReplayed)
        );
        // Once they expire there is room again.
        let later = NOW_MS + SIGNATURE_TOLERANCE_MS + 1;
        assert_eq!(
            check(&signed(later, &new_nonce(&mut rng)), later, &mut cache),
            Ok(())
        );
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn malformed_headers_fail_closed() {
        let good = signed(NOW_MS, &NONCE);
        let v1 = good.rsplit_once("v1=").unwrap().1.to_string();
        let nonce_hex = hex::encode(NONCE);
        let bad = [
            String::new(),
            "garbage".to_string(),
            format!("nonce={nonce_hex},t={NOW_MS},v1={v1}"),
            format!("t={NOW_MS},nonce={nonce_hex}"),
            format!("t={NOW_MS},nonce={nonce_hex},v1={v1},v1={v1}"),
            format!("t={NOW_MS},nonce={nonce_hex},v1={v1},"),
            format!(" t={NOW_MS},nonce={nonce_hex},v1={v1}"),
            format!("t=+{NOW_MS},nonce={nonce_hex},v1={v1}"),
            format!("t=,nonce={nonce_hex},v1={v1}"),
            format!("t=99999999999999999999,nonce={nonce_hex},v1={v1}"),
            format!("t={NOW_MS},nonce=abcd,v1={v1}"),
            format!("t={NOW_MS},nonce={},v1={v1}", "ab".repeat(33)),
            format!("t={NOW_MS},nonce={}0,v1={v1}", &nonce_hex),
            format!("t={NOW_MS},nonce=ABCDEF0123456789,v1={v1}"),
            format!("t={NOW_MS},nonce={nonce_hex},v1={}", v1.to_uppercase()),
            format!("t={NOW_MS},nonce={nonce_hex},v1={}", &v1[..62]),
            format!("t={NOW_MS},nonce={nonce_hex},v1={}", "zz".repeat(32)),
            format!("{good}{}", " ".repeat(SIGNATURE_HEADER_BYTES_MAX)),
        ];
        let mut cache = NonceCache::default();
        for header in bad {
            let err = check(&header, NOW_MS, &mut cache).unwrap_err();
            assert_eq!(err.code(), "signature_malformed", "{header:?}");
        }
        assert!(cache.is_empty());
    }

    #[test]
    fn paths_and_methods_that_would_be_ambiguous_are_refused() {
        let mut cache = NonceCache::default();
        for path in ["/v1/files/report.csv", "v1/payments", "/v1/a b", ""] {
            assert_eq!(
                sign(SECRET, NOW_MS, &NONCE, "POST", path, b"").unwrap_err(),
                SignatureError::PathUnsignable
            );
            let header = signed(NOW_MS, &NONCE);
            assert_eq!(
                verify(SECRET, &header, "POST", path, BODY, NOW_MS, &mut cache).unwrap_err(),
                SignatureError::PathUnsignable
            );
        }
        for method in ["post", "", "PO.ST", "VERYLONGMETHODNAME"] {
            assert_eq!(
                sign(SECRET, NOW_MS, &NONCE, method, "/v1", b"").unwrap_err(),
                SignatureError::MethodInvalid
            );
        }
        assert!(sign(
            SECRET,
            NOW_MS,
            &NONCE,
            "POST",
            "/v1/files/report%2Ecsv",
            b""
        )
        .is_ok());
    }

    #[test]
    fn short_secrets_and_nonces_are_refused() {
        let mut cache = NonceCache::default();
        let header = signed(NOW_MS, &NONCE);
        let short = &SECRET[..SIGNING_SECRET_BYTES_MIN - 1];
        assert_eq!(
            verify(
                short,
                &header,
                "POST",
                "/v1/payments",
                BODY,
                NOW_MS,
                &mut cache
            ),
            Err(SignatureError::SecretTooShort)
        );
        assert_eq!(
            sign(short, NOW_MS, &NONCE, "POST", "/v1", b""),
            Err(SignatureError::SecretTooShort)
        );
        assert_eq!(
            sign(SECRET, NOW_MS, &NONCE[..7], "POST", "/v1", b"")
                .unwrap_err()
                .code(),
            "signature_malformed"
        );
    }

    #[test]
    fn nonce_cache_bound_is_checked() {
        assert!(NonceCache::new(0).is_err());
        assert!(NonceCache::new(NONCE_CACHE_ENTRIES_MAX + 1).is_err());
        assert!(NonceCache::new(NONCE_CACHE_ENTRIES_MAX).is_ok());
    }
}
