//! The key that encrypts TOTP secrets at rest (`users.totp_secret`, `web_sessions.
//! pending_totp`), kept as a file beside the database (mode 0600) the way the programme key
//! is, so a copy of the database alone cannot mint anyone's second-factor codes.
//!
//! Values are AES-256-GCM with a random nonce each, stored as `v1:` + base64url(nonce ‖
//! ciphertext ‖ tag). SQL reaches the key through two functions every connection of the
//! store has, `totp_seal(plain)` and `totp_open(stored)`, so the store functions keep their
//! `&Transaction`/`&Connection` signatures. `totp_open` reads a value without the prefix as
//! plain text: secrets written before encryption, which [`seal_plain_secrets`] encrypts
//! when the store opens.

use std::{path::Path, sync::Arc};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ring::{
    aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey},
    rand::{SecureRandom, SystemRandom},
};
use rusqlite::{Connection, functions::FunctionFlags};

use crate::{Error, Result};

const PREFIX: &str = "v1:";
/// Ties a sealed value to its use: a value sealed for anything else does not open as one.
const AAD: &[u8] = b"outpost totp secret v1";

pub struct SecretKey {
    key: LessSafeKey,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    pub const FILE: &'static str = "login-secrets.key";

    /// Loads the key from `dir`, creating it on first start. Only for a database that holds
    /// no sealed secret (see [`unopenable`]); [`Store::open`](super::Store::open) decides.
    pub fn load_or_create(dir: &Path) -> Result<SecretKey> {
        match Self::load(dir)? {
            Some(key) => Ok(key),
            None => Self::create(dir),
        }
    }

    /// The key in `dir`, or `None` when there is no key file.
    pub fn load(dir: &Path) -> Result<Option<SecretKey>> {
        let path = dir.join(Self::FILE);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        Self::from_bytes(&bytes, &path).map(Some)
    }

    fn from_bytes(bytes: &[u8], path: &Path) -> Result<SecretKey> {
        let key = UnboundKey::new(&AES_256_GCM, bytes)
            .map_err(|_| Error::Invalid(format!("{} is not a 32-byte key", path.display())))?;
        Ok(SecretKey {
            key: LessSafeKey::new(key),
        })
    }

    /// Makes a new key file, atomically: written (mode 0600) and synced under a temporary
    /// name, then linked to its name (never replacing a key already there) and the directory
    /// synced, so a crash leaves either no key file or a whole one, never a short one.
    pub fn create(dir: &Path) -> Result<SecretKey> {
        let path = dir.join(Self::FILE);
        let tmp = dir.join(format!("{}.tmp", Self::FILE));
        let mut bytes = vec![0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| Error::Internal("no randomness for the secrets key".into()))?;
        // A temporary file left by a crash was never the key.
        match std::fs::remove_file(&tmp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        write_private(&tmp, &bytes)?;
        let linked = std::fs::hard_link(&tmp, &path);
        std::fs::remove_file(&tmp)?;
        linked?;
        std::fs::File::open(dir)?.sync_all()?;
        Self::from_bytes(&bytes, &path)
    }

    pub fn seal(&self, plain: &str) -> Result<String> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| Error::Internal("no randomness for a nonce".into()))?;
        let mut buf = plain.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(AAD),
                &mut buf,
            )
            .map_err(|_| Error::Internal("sealing a secret failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(out)))
    }

    pub fn open(&self, stored: &str) -> Result<String> {
        let Some(sealed) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_owned());
        };
        let undecryptable = || {
            Error::Internal(format!(
                "a stored TOTP secret does not open with {}: is it this database's key file?",
                Self::FILE
            ))
        };
        let mut bytes = URL_SAFE_NO_PAD
            .decode(sealed)
            .map_err(|_| undecryptable())?;
        if bytes.len() < NONCE_LEN {
            return Err(undecryptable());
        }
        let mut body = bytes.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&bytes).map_err(|_| undecryptable())?;
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(AAD), &mut body)
            .map_err(|_| undecryptable())?;
        String::from_utf8(plain.to_vec()).map_err(|_| undecryptable())
    }
}

/// Gives a connection `totp_seal` and `totp_open` (NULL in, NULL out).
pub fn register(conn: &Connection, key: &Arc<SecretKey>) -> Result<()> {
    let fail = |e: Error| rusqlite::Error::UserFunctionError(Box::new(e));
    let k = key.clone();
    conn.create_scalar_function("totp_seal", 1, FunctionFlags::SQLITE_UTF8, move |ctx| {
        let plain: Option<String> = ctx.get(0)?;
        plain.map(|p| k.seal(&p)).transpose().map_err(fail)
    })?;
    let k = key.clone();
    conn.create_scalar_function(
        "totp_open",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        move |ctx| {
            let stored: Option<String> = ctx.get(0)?;
            stored.map(|s| k.open(&s)).transpose().map_err(fail)
        },
    )?;
    Ok(())
}

/// How many secrets the database holds in plain text (written before encryption).
pub fn plain_secrets(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row(
        "SELECT (SELECT count(*) FROM users
                 WHERE totp_secret IS NOT NULL AND totp_secret NOT LIKE 'v1:%')
              + (SELECT count(*) FROM web_sessions
                 WHERE pending_totp IS NOT NULL AND pending_totp NOT LIKE 'v1:%')",
        [],
        |r| r.get(0),
    )?)
}

/// Encrypts the secrets a database holds in plain text (written before encryption); nothing
/// is lost, and a database already sealed is left as it is. Run it with `secure_delete` on
/// and checkpoint after (as [`Store::open`](super::Store::open) does), so the plain text is
/// not left behind in free space or in the log.
pub fn seal_plain_secrets(tx: &rusqlite::Transaction) -> Result<usize> {
    let users = tx.execute(
        "UPDATE users SET totp_secret = totp_seal(totp_secret)
         WHERE totp_secret IS NOT NULL AND totp_secret NOT LIKE 'v1:%'",
        [],
    )?;
    let sessions = tx.execute(
        "UPDATE web_sessions SET pending_totp = totp_seal(pending_totp)
         WHERE pending_totp IS NOT NULL AND pending_totp NOT LIKE 'v1:%'",
        [],
    )?;
    Ok(users + sessions)
}

/// The accounts whose sealed secret does not open with `key` (or, with no key file, every
/// account with a sealed secret), by username.
pub fn unopenable(conn: &Connection, key: Option<&SecretKey>) -> Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT username, totp_secret FROM users WHERE totp_secret LIKE 'v1:%' ORDER BY username",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    let mut out = Vec::new();
    for row in rows {
        let (username, sealed) = row?;
        if key.is_none_or(|k| k.open(&sealed).is_err()) {
            out.push(username);
        }
    }
    Ok(out)
}

/// The refusal to start when sealed secrets cannot be opened: without it every staff log-in
/// and approval would fail with a server error. Says what to do.
pub fn refusal(dir: &Path, key_missing: bool, users: &[String]) -> Error {
    let file = dir.join(SecretKey::FILE);
    let what = if key_missing {
        format!("the key file {} is missing", file.display())
    } else {
        format!(
            "the key file {} is not the one these secrets were sealed with",
            file.display()
        )
    };
    Error::Conflict(format!(
        "{what}, and the database holds {} authenticator secret(s) sealed with its key \
         (accounts: {}). Without it no one of them can log in. Restore {} from a backup of \
         this server, or run `outpost-server reset-login USERNAME --totp` for each of those \
         accounts (each then sets up their authenticator app again at their next log-in).",
        users.len(),
        users.join(", "),
        SecretKey::FILE,
    ))
}

/// Writes a new key file readable by its owner only; never overwrites one.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_with_its_key_only_and_plain_text_reads_as_itself() {
        let dir = tempfile::tempdir().unwrap();
        let key = SecretKey::load_or_create(dir.path()).unwrap();
        let sealed = key.seal("JBSWY3DPEHPK3PXP").unwrap();
        assert!(sealed.starts_with(PREFIX) && !sealed.contains("JBSWY3DPEHPK3PXP"));
        assert_ne!(
            sealed,
            key.seal("JBSWY3DPEHPK3PXP").unwrap(),
            "a nonce each"
        );
        assert_eq!(key.open(&sealed).unwrap(), "JBSWY3DPEHPK3PXP");
        assert_eq!(key.open("JBSWY3DPEHPK3PXP").unwrap(), "JBSWY3DPEHPK3PXP");
        let again = SecretKey::load_or_create(dir.path()).unwrap();
        assert_eq!(again.open(&sealed).unwrap(), "JBSWY3DPEHPK3PXP");
        let other = SecretKey::load_or_create(tempfile::tempdir().unwrap().path()).unwrap();
        assert!(other.open(&sealed).is_err());
    }
}
