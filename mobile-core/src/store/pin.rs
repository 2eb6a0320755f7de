//! The agent's PIN: unlocks the app offline. Stored only as an argon2id hash with its own
//! salt; wrong guesses are counted in the database (so closing the app does not reset them)
//! and lock the app for a time that doubles with each lockout.

use argon2::{
    Argon2,
    password_hash::{PasswordHasher, PasswordVerifier},
};
use rusqlite::{Transaction, params};
use uuid::Uuid;

use crate::error::{Error, Result};

/// Wrong PINs allowed before a lockout.
pub const ATTEMPTS: u32 = 5;
/// The first lockout; each further one doubles, up to a day.
pub const FIRST_LOCKOUT_SECONDS: u64 = 30;
const MAX_LOCKOUT_SECONDS: u64 = 24 * 3600;

/// The length of lockout number `n` (from 0), in ms.
fn lockout_ms(n: u32) -> i64 {
    ((FIRST_LOCKOUT_SECONDS << n.min(16)).min(MAX_LOCKOUT_SECONDS) * 1000) as i64
}

/// Refuses PINs a bystander would guess: too short, one repeated digit, or a straight run.
pub fn check_strength(pin: &str) -> Result<()> {
    if !(4..=12).contains(&pin.len()) || !pin.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::invalid("the PIN must be 4 to 12 digits"));
    }
    let digits: Vec<i32> = pin.bytes().map(|b| (b - b'0') as i32).collect();
    let steps: Vec<i32> = digits.windows(2).map(|w| w[1] - w[0]).collect();
    if steps.iter().all(|s| *s == 0) {
        return Err(Error::invalid("the PIN must not repeat one digit"));
    }
    if steps.iter().all(|s| *s == 1) || steps.iter().all(|s| *s == -1) {
        return Err(Error::invalid("the PIN must not be a run like 1234"));
    }
    Ok(())
}

pub fn hash(pin: &str) -> Result<String> {
    // A fresh random salt each time (argon2's default PHC string holds it).
    Argon2::default()
        .hash_password(pin.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| Error::Internal {
            reason: format!("hashing the PIN: {e}"),
        })
}

/// Checks the PIN of an enrolment, counting failures; `now_ms` is the phone's clock. The
/// outer result is the storage's; the inner one the PIN's, so the caller commits the count of
/// failures even when the PIN is wrong.
pub fn verify(tx: &Transaction, enrolment: Uuid, pin: &str, now_ms: i64) -> Result<Result<()>> {
    let (stored, failed, lockouts, locked_until): (String, u32, u32, i64) = tx.query_row(
        "SELECT pin_hash, failed_pins, lockouts, locked_until_ms FROM enrolments WHERE id = ?1",
        [enrolment],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    // A clock set back only lengthens the wait; one set forward shortens it (the phone has no
    // other clock to trust offline).
    if now_ms < locked_until {
        return Ok(Err(Error::PinLocked {
            retry_after_seconds: ((locked_until - now_ms) as u64).div_ceil(1000),
        }));
    }
    if Argon2::default()
        .verify_password(pin.as_bytes(), stored.as_str())
        .is_ok()
    {
        tx.execute(
            "UPDATE enrolments SET failed_pins = 0, lockouts = 0, locked_until_ms = 0 WHERE id = ?1",
            [enrolment],
        )?;
        return Ok(Ok(()));
    }
    let failed = failed + 1;
    if failed >= ATTEMPTS {
        let seconds = lockout_ms(lockouts) as u64 / 1000;
        tx.execute(
            "UPDATE enrolments SET failed_pins = 0, lockouts = lockouts + 1, locked_until_ms = ?2
             WHERE id = ?1",
            params![enrolment, now_ms + seconds as i64 * 1000],
        )?;
        return Ok(Err(Error::PinLocked {
            retry_after_seconds: seconds,
        }));
    }
    tx.execute(
        "UPDATE enrolments SET failed_pins = ?2 WHERE id = ?1",
        params![enrolment, failed],
    )?;
    Ok(Err(Error::WrongPin {
        attempts_left: ATTEMPTS - failed,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_pins_are_refused() {
        for pin in ["123", "1111", "123456", "98765", "12a4", "1234567890123"] {
            assert!(check_strength(pin).is_err(), "{pin}");
        }
        for pin in ["2580", "135790", "1212"] {
            check_strength(pin).unwrap();
        }
    }
}
