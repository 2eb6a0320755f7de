-- API clients: named integrations an administrator creates, so no program needs a person's
-- password. Each acts with one role, a set of permissions and an area, until it expires or is
-- revoked. Only the secret's SHA-256 is stored; the secret is shown once, at creation.
CREATE TABLE api_clients (
    id           BLOB PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    role         TEXT NOT NULL CHECK (role IN ('ADMIN', 'SUPERVISOR')),
    -- A JSON array of permissions: "read", "registry", "devices", "accounts".
    permissions  TEXT NOT NULL,
    -- NULL: national; otherwise the location subtree the client may see and change.
    area_id      BLOB REFERENCES locations (id),
    secret_hash  BLOB NOT NULL UNIQUE,
    -- The audit actor who created it ("user:admin", or "client:<name>").
    created_by   TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    revoked_at   TEXT,
    revoked_by   TEXT,
    revoke_reason TEXT
) WITHOUT ROWID;
