-- Log-in hardening (issue 14).

-- Wrong second-factor codes in a row, counted apart from wrong passwords: a right password
-- does not reset them, so codes cannot be guessed without end. At the limit the account
-- pauses (`locked_until`), which also refuses its tokens and sessions until it ends.
-- (`failed_logins` is no longer written: wrong passwords are counted in `login_throttle`.)
ALTER TABLE users ADD COLUMN failed_codes INTEGER NOT NULL DEFAULT 0;

-- Wrong passwords by the name typed (known or not, so the answer never tells which names
-- exist) and by client address. A pause here only stops new log-ins from being opened: it
-- never ends anyone's sessions or tokens, since anyone can cause it.
CREATE TABLE login_throttle (
    -- 'name:<username>' or 'address:<ip>'
    key           TEXT PRIMARY KEY,
    failures      INTEGER NOT NULL,
    -- The first failure of the current window; the count starts again after the window.
    window_start  TEXT NOT NULL,
    paused_until  TEXT
) WITHOUT ROWID;
CREATE INDEX login_throttle_window ON login_throttle (window_start);
