//! Codes from an authenticator app that the server has not seen yet.

use std::{collections::HashMap, sync::Mutex, time::Duration};

/// Seconds per TOTP step (RFC 6238's default, which Outpost uses).
const STEP_SECONDS: i64 = 30;

/// Hands out TOTP steps so that no two calls for one user share a step: a server accepts
/// each code once. The server accepts the step before its own, its own and the one after, so
/// two codes in a row need no wait (three early in a step); only the next waits for the clock.
#[derive(Debug, Default)]
pub struct FreshCodes {
    spent: Mutex<HashMap<String, i64>>,
}

impl FreshCodes {
    /// A code for `username` (`code_at` makes the code of the step holding a Unix time), and
    /// how long to sleep before sending it.
    pub fn next(&self, username: &str, code_at: impl FnOnce(i64) -> String) -> (String, Duration) {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let step_ms = STEP_SECONDS * 1000;
        let current = now_ms.div_euclid(step_ms);
        // The step before now is safe only if the request is checked before this step ends:
        // a token request runs argon2 first, slow in a debug build on a busy machine, so only
        // in a step's first third (20 s to spare, not 5).
        let earliest = if now_ms - current * step_ms < step_ms / 3 {
            current - 1
        } else {
            current
        };
        let step = {
            let mut spent = self.spent.lock().unwrap_or_else(|p| p.into_inner());
            let step = spent
                .get(username)
                .map_or(earliest, |last| (last + 1).max(earliest));
            spent.insert(username.to_owned(), step);
            step
        };
        // A step after the next is accepted once the clock is one step short of it.
        let wait_ms = ((step - 1) * step_ms - now_ms).max(0);
        (
            code_at(step * STEP_SECONDS),
            Duration::from_millis(wait_ms as u64),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_two_codes_for_one_user_share_a_step_and_users_do_not_wait_for_each_other() {
        let codes = FreshCodes::default();
        let step = |at: i64| (at / STEP_SECONDS).to_string();
        let (a, _) = codes.next("ana", step);
        let (b, _) = codes.next("ana", step);
        let (c, wait) = codes.next("ana", step);
        let (steps, others): (Vec<i64>, _) = (
            [&a, &b, &c].map(|s| s.parse().unwrap()).to_vec(),
            codes.next("ben", step),
        );
        assert!(steps[0] < steps[1] && steps[1] < steps[2], "{steps:?}");
        assert!(wait <= Duration::from_secs(STEP_SECONDS as u64 * 2));
        assert!(
            others.0.parse::<i64>().unwrap() <= steps[0] + 1,
            "another user starts at the clock"
        );
    }
}
