//! Device request signatures and beneficiary cards, both Ed25519 (ring).
//!
//! Device and server build the signed text with the same function, so they cannot drift.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ring::{
    digest,
    signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey},
};
use uuid::Uuid;

/// A request's timestamp may differ from the server's clock by at most this much. Devices
/// correct their clocks by the offset they measure, so this only has to cover latency.
pub const TIMESTAMP_WINDOW_MS: u64 = 5 * 60 * 1000;

/// What a device signs: method, path, device, timestamp, nonce and the body's SHA-256, one per
/// line behind a version tag. `device` is empty when enrolling (the key is in the body).
pub fn signed_text(
    method: &str,
    path: &str,
    device: &str,
    timestamp_ms: u64,
    nonce: &str,
    body: &[u8],
) -> Vec<u8> {
    let hash = digest::digest(&digest::SHA256, body);
    let mut text = format!(
        "OUTPOST-REQUEST-1\n{}\n{path}\n{device}\n{timestamp_ms}\n{nonce}\n",
        method.to_ascii_uppercase()
    )
    .into_bytes();
    text.extend(hash.as_ref().iter().flat_map(|b| {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        [HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]
    }));
    text
}

/// Signs a request; returns the `outpost-signature` header value.
pub fn sign(key: &Ed25519KeyPair, text: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(key.sign(text).as_ref())
}

/// Checks an `outpost-signature` header value against a device's public key.
pub fn verify(public_key: &[u8], text: &[u8], signature: &str) -> bool {
    let Ok(signature) = URL_SAFE_NO_PAD.decode(signature.trim()) else {
        return false;
    };
    UnparsedPublicKey::new(&ED25519, public_key)
        .verify(text, &signature)
        .is_ok()
}

/// Whether an `outpost-signature` header value has the shape of one (64 bytes in base64url),
/// checked before a request's body is read; [`verify`] is the real check.
pub fn signature_is_well_formed(signature: &str) -> bool {
    URL_SAFE_NO_PAD
        .decode(signature.trim())
        .is_ok_and(|bytes| bytes.len() == 64)
}

/// A fresh nonce: 16 random bytes, base64url.
pub fn nonce() -> String {
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .expect("the system random source works");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Generates an Ed25519 key pair; returns the PKCS#8 document to keep (encrypted, by the
/// caller) and the public key.
pub fn generate_key() -> Result<(Vec<u8>, Vec<u8>), CardError> {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| CardError::Key)?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| CardError::Key)?;
    Ok((pkcs8.as_ref().to_vec(), pair.public_key().as_ref().to_vec()))
}

// ---------------------------------------------------------------------------------------------
// Beneficiary cards

/// Prefix of a card's QR text; the digit is the card format version.
pub const CARD_PREFIX: &str = "OPC1.";
const CARD_DOMAIN: &[u8] = b"OUTPOST-CARD-1";
const CARD_BODY: usize = 16 + 16 + 16 + 8 + 4;
const CARD_LEN: usize = CARD_BODY + 64;

/// What a card says; the programme's signature makes it checkable offline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Card {
    pub beneficiary_id: Uuid,
    /// Who holds the card: the beneficiary's person, or a household recipient.
    pub holder_id: Uuid,
    pub plan_id: Uuid,
    pub serial: u64,
    /// Days since 1970-01-01.
    pub issued_days: i32,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CardError {
    #[error("this is not an Outpost card (it does not start with {CARD_PREFIX})")]
    NotACard,
    #[error("the card's code is damaged or incomplete")]
    Damaged,
    #[error("the card's signature is not the programme's: it may be forged")]
    Forged,
    #[error("the key cannot be used")]
    Key,
}

impl Card {
    fn body(&self) -> [u8; CARD_BODY] {
        let mut b = [0u8; CARD_BODY];
        b[..16].copy_from_slice(self.beneficiary_id.as_bytes());
        b[16..32].copy_from_slice(self.holder_id.as_bytes());
        b[32..48].copy_from_slice(self.plan_id.as_bytes());
        b[48..56].copy_from_slice(&self.serial.to_be_bytes());
        b[56..60].copy_from_slice(&self.issued_days.to_be_bytes());
        b
    }

    /// The QR text: prefix + base64url(body ‖ signature), about 180 characters.
    pub fn sign(&self, programme_key: &Ed25519KeyPair) -> String {
        let body = self.body();
        let mut message = CARD_DOMAIN.to_vec();
        message.extend_from_slice(&body);
        let mut bytes = body.to_vec();
        bytes.extend_from_slice(programme_key.sign(&message).as_ref());
        format!("{CARD_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Reads a scanned card and checks the programme's signature. Whether the serial is
    /// revoked is the caller's question (the revocation list is in the replica).
    pub fn verify(text: &str, programme_public_key: &[u8]) -> Result<Card, CardError> {
        let encoded = text
            .trim()
            .strip_prefix(CARD_PREFIX)
            .ok_or(CardError::NotACard)?;
        let bytes = URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| CardError::Damaged)?;
        if bytes.len() != CARD_LEN {
            return Err(CardError::Damaged);
        }
        let (body, signature) = bytes.split_at(CARD_BODY);
        let mut message = CARD_DOMAIN.to_vec();
        message.extend_from_slice(body);
        UnparsedPublicKey::new(&ED25519, programme_public_key)
            .verify(&message, signature)
            .map_err(|_| CardError::Forged)?;
        let uuid = |r: std::ops::Range<usize>| Uuid::from_slice(&body[r]).expect("16 bytes");
        Ok(Card {
            beneficiary_id: uuid(0..16),
            holder_id: uuid(16..32),
            plan_id: uuid(32..48),
            serial: u64::from_be_bytes(body[48..56].try_into().expect("8 bytes")),
            issued_days: i32::from_be_bytes(body[56..60].try_into().expect("4 bytes")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> (Ed25519KeyPair, Vec<u8>) {
        let (pkcs8, public) = generate_key().unwrap();
        (Ed25519KeyPair::from_pkcs8(&pkcs8).unwrap(), public)
    }

    #[test]
    fn a_signed_request_verifies_and_any_change_breaks_it() {
        let (pair, public) = key();
        let text = signed_text(
            "post",
            "/sync/v1/push",
            "dev",
            1_700_000_000_000,
            "n1",
            b"body",
        );
        let signature = sign(&pair, &text);
        assert!(verify(&public, &text, &signature));
        for other in [
            signed_text(
                "POST",
                "/sync/v1/push",
                "dev",
                1_700_000_000_001,
                "n1",
                b"body",
            ),
            signed_text(
                "POST",
                "/sync/v1/pull",
                "dev",
                1_700_000_000_000,
                "n1",
                b"body",
            ),
            signed_text(
                "POST",
                "/sync/v1/push",
                "dev",
                1_700_000_000_000,
                "n2",
                b"body",
            ),
            signed_text(
                "POST",
                "/sync/v1/push",
                "dev",
                1_700_000_000_000,
                "n1",
                b"bodY",
            ),
            signed_text(
                "POST",
                "/sync/v1/push",
                "dev2",
                1_700_000_000_000,
                "n1",
                b"body",
            ),
        ] {
            assert!(!verify(&public, &other, &signature));
        }
        let (_, stranger) = key();
        assert!(!verify(&stranger, &text, &signature));
        assert!(!verify(&public, &text, "not base64 !"));
    }

    #[test]
    fn cards_verify_offline_and_forgeries_do_not() {
        let (pair, public) = key();
        let card = Card {
            beneficiary_id: Uuid::now_v7(),
            holder_id: Uuid::now_v7(),
            plan_id: Uuid::now_v7(),
            serial: 123,
            issued_days: 20_000,
        };
        let text = card.sign(&pair);
        assert!(text.len() < 200, "{} chars", text.len());
        assert_eq!(Card::verify(&text, &public).unwrap(), card);

        let (other, _) = key();
        assert_eq!(
            Card::verify(&card.sign(&other), &public),
            Err(CardError::Forged)
        );
        // Flip one character of the body: the serial or an id changes, the signature fails.
        let mut chars: Vec<char> = text.chars().collect();
        chars[20] = if chars[20] == 'A' { 'B' } else { 'A' };
        let tampered: String = chars.into_iter().collect();
        assert_eq!(Card::verify(&tampered, &public), Err(CardError::Forged));
        assert_eq!(Card::verify("hello", &public), Err(CardError::NotACard));
        assert_eq!(
            Card::verify(&text[..text.len() - 4], &public),
            Err(CardError::Damaged)
        );
    }
}
