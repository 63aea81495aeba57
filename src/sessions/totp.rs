//! The second factor: TOTP (RFC 6238: HMAC-SHA-1, 6 digits, 30-second
//! steps, one step of clock skew either way) through `totp-rs`, the
//! `otpauth://` URI and its QR code as SVG for authenticator apps, and
//! single-use backup codes (shown once, stored as SHA-256).

use qrcode::render::svg;
use qrcode::QrCode;
use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, Secret, TOTP};

use crate::people::secret_hash;

/// Seconds of one step.
pub const STEP: u64 = 30;
/// Digits of a code.
pub const DIGITS: usize = 6;
/// Backup codes made at enrolment.
pub const BACKUP_CODES: usize = 10;
/// The issuer authenticator apps show.
const ISSUER: &str = "berth";
/// Alphabet of backup codes: RFC 4648 base32.
const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A new random TOTP secret (160 bits, as RFC 4226 recommends).
pub fn new_secret() -> Vec<u8> {
    match Secret::generate_secret() {
        Secret::Raw(bytes) => bytes,
        encoded => encoded.to_bytes().unwrap_or_default(),
    }
}

fn totp(secret: &[u8], account: &str) -> Option<TOTP> {
    TOTP::new(
        Algorithm::SHA1,
        DIGITS,
        1,
        STEP,
        secret.to_vec(),
        Some(ISSUER.into()),
        account.replace(':', "_"),
    )
    .ok()
}

/// What an authenticator app needs to add the account.
#[derive(Debug)]
pub struct Enrolment {
    /// The secret in base32, for typing in.
    pub secret: String,
    /// `otpauth://totp/berth:<account>?secret=...&issuer=berth`.
    pub uri: String,
    /// The URI as a QR code, an SVG document.
    pub qr_svg: String,
}

/// The enrolment of `secret` for `account`; `None` if the secret is too
/// short for TOTP (under 128 bits).
pub fn enrolment(secret: &[u8], account: &str) -> Option<Enrolment> {
    let totp = totp(secret, account)?;
    let uri = totp.get_url();
    let qr_svg = QrCode::new(uri.as_bytes())
        .ok()?
        .render::<svg::Color>()
        .min_dimensions(200, 200)
        .build();
    Some(Enrolment {
        secret: totp.get_secret_base32(),
        uri,
        qr_svg,
    })
}

/// Whether `code` looks like a TOTP code (six digits, spaces allowed).
pub fn looks_like_totp(code: &str) -> bool {
    let digits: Vec<char> = code.chars().filter(|c| !c.is_whitespace()).collect();
    digits.len() == DIGITS && digits.iter().all(char::is_ascii_digit)
}

/// The time step whose code `code` is, at `unix` seconds, within one step
/// either way; `None` if it is none of them. The caller refuses a step it
/// accepted before (a replayed code).
pub fn verify(secret: &[u8], code: &str, unix: u64) -> Option<u64> {
    if !looks_like_totp(code) {
        return None;
    }
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    let totp = totp(secret, "")?;
    let now = unix / STEP;
    let mut found = None;
    // Every candidate is computed and compared, so the time taken does
    // not say which matched.
    for step in now.saturating_sub(1)..=now + 1 {
        let expected = totp.generate(step * STEP);
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) {
            found = Some(step);
        }
    }
    found
}

/// New backup codes, `XXXXX-XXXXX` (50 random bits each), with their
/// stored forms.
pub fn new_backup_codes() -> (Vec<String>, Vec<String>) {
    let codes: Vec<String> = (0..BACKUP_CODES)
        .map(|_| {
            let chars: String = rand::random::<[u8; 10]>()
                .iter()
                .map(|b| char::from(BASE32[usize::from(b & 31)]))
                .collect();
            format!("{}-{}", &chars[..5], &chars[5..])
        })
        .collect();
    let hashes = codes.iter().map(|c| backup_hash(c)).collect();
    (codes, hashes)
}

/// The stored form of a backup code: SHA-256 of its characters in upper
/// case, without dashes or spaces (so it may be typed either way).
pub fn backup_hash(code: &str) -> String {
    let plain: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    secret_hash(&plain)
}

/// The index of `code` among the stored backup-code hashes.
pub fn find_backup(stored: &[String], code: &str) -> Option<usize> {
    let hash = backup_hash(code);
    let mut found = None;
    for (i, h) in stored.iter().enumerate() {
        if bool::from(h.as_bytes().ct_eq(hash.as_bytes())) {
            found = Some(i);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B's SHA-1 secret.
    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn codes_match_rfc_6238_within_one_step() {
        // RFC 6238, T = 59: 94287082 (8 digits); the last 6 are ours.
        assert_eq!(verify(RFC_SECRET, "287082", 59), Some(1));
        // T = 1111111109: 07081804.
        assert_eq!(
            verify(RFC_SECRET, "081804", 1_111_111_109),
            Some(37_037_036)
        );
        // One step either side is accepted, two are not.
        assert_eq!(
            verify(RFC_SECRET, "081804", 1_111_111_109 + 30),
            Some(37_037_036)
        );
        assert_eq!(
            verify(RFC_SECRET, "081804", 1_111_111_109 - 30),
            Some(37_037_036)
        );
        assert_eq!(verify(RFC_SECRET, "081804", 1_111_111_109 + 60), None);
        assert_eq!(
            verify(RFC_SECRET, "081 804", 1_111_111_109),
            Some(37_037_036)
        );
        for bad in ["081805", "81804", "0818040", "abcdef", ""] {
            assert_eq!(verify(RFC_SECRET, bad, 1_111_111_109), None, "{bad}");
        }
        assert_eq!(verify(b"short", "081804", 1_111_111_109), None);
    }

    #[test]
    fn enrolment_gives_the_uri_and_a_qr_code() {
        let secret = new_secret();
        assert_eq!(secret.len(), 20);
        assert_ne!(secret, new_secret());
        let e = enrolment(&secret, "ann@example.com").unwrap();
        assert!(
            e.uri
                .starts_with("otpauth://totp/berth:ann%40example.com?secret="),
            "{}",
            e.uri
        );
        assert!(e.uri.contains(&format!("secret={}", e.secret)));
        assert!(e.uri.contains("issuer=berth"));
        assert!(e.qr_svg.contains("<svg"), "{}", e.qr_svg);
        // The code an app computes from the shown secret verifies.
        let shown = Secret::Encoded(e.secret.clone()).to_bytes().unwrap();
        assert_eq!(shown, secret);
        let code = totp(&shown, "x").unwrap().generate(1_800_000_000);
        assert_eq!(verify(&secret, &code, 1_800_000_000), Some(60_000_000));
    }

    #[test]
    fn backup_codes_are_random_stored_hashed_and_typed_loosely() {
        let (codes, hashes) = new_backup_codes();
        assert_eq!(codes.len(), BACKUP_CODES);
        assert_eq!(hashes.len(), BACKUP_CODES);
        let unique: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(unique.len(), BACKUP_CODES);
        for (i, code) in codes.iter().enumerate() {
            assert_eq!(code.len(), 11);
            assert_eq!(&code[5..6], "-");
            assert!(!hashes.iter().any(|h| h == code), "stored hashed");
            assert_eq!(find_backup(&hashes, code), Some(i));
            let loose = code.replace('-', " ").to_lowercase();
            assert_eq!(find_backup(&hashes, &loose), Some(i));
        }
        assert_eq!(find_backup(&hashes, "AAAAA-AAAAA"), None);
        assert!(!looks_like_totp(&codes[0]));
        assert!(looks_like_totp("123 456"));
    }
}
