-- Who last reset an account's log-in. Whoever resets a password or an authenticator app holds
-- that account's credentials for a while, so for the approval rules a reset links the two
-- accounts as creating one does (`tasks::lineage_cte`).
ALTER TABLE users ADD COLUMN login_reset_by BLOB REFERENCES users(id);
