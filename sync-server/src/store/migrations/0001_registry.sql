-- The central registry: who is known, which plans they are in, what they are due.
-- Portable SQL on purpose (a PostgreSQL backend follows): ids are UUIDs (16-byte BLOBs here),
-- times are RFC 3339 text in UTC, dates are ISO text, money is integer minor units + currency.
-- Tables keyed by a UUID are WITHOUT ROWID: the key is the table, so a lookup by id is one
-- B-tree seek, not two; ids are UUIDv7 (time-ordered), so inserts append.

CREATE TABLE locations (
    id          BLOB PRIMARY KEY,
    code        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    level       TEXT NOT NULL CHECK (level IN ('REGION', 'DISTRICT', 'VILLAGE')),
    parent_id   BLOB REFERENCES locations (id),
    -- Codes from the root, '/'-joined: scoping a query to an area is a prefix match.
    path        TEXT NOT NULL UNIQUE
);
CREATE INDEX locations_name ON locations (name);

CREATE TABLE individuals (
    id           BLOB PRIMARY KEY,
    external_id  TEXT NOT NULL UNIQUE,
    first_name   TEXT NOT NULL,
    last_name    TEXT NOT NULL,
    dob          TEXT NOT NULL,
    sex          TEXT CHECK (sex IN ('M', 'F', 'O')),
    location_id  BLOB REFERENCES locations (id),
    -- Per-plan extra fields (openIMIS json_ext), validated against each plan's schema.
    extra        TEXT NOT NULL DEFAULT '{}',
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX individuals_location ON individuals (location_id);
CREATE INDEX individuals_name ON individuals (last_name, first_name, dob);

CREATE TABLE groups (
    id           BLOB PRIMARY KEY,
    code         TEXT NOT NULL UNIQUE,
    location_id  BLOB REFERENCES locations (id),
    created_at   TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX groups_location ON groups (location_id);

CREATE TABLE group_members (
    group_id       BLOB NOT NULL REFERENCES groups (id),
    individual_id  BLOB NOT NULL REFERENCES individuals (id),
    relationship   TEXT,
    recipient      TEXT NOT NULL DEFAULT 'NONE' CHECK (recipient IN ('NONE', 'PRIMARY', 'SECONDARY')),
    PRIMARY KEY (group_id, individual_id)
);
-- A person belongs to one household at a time.
CREATE UNIQUE INDEX group_members_individual ON group_members (individual_id);
CREATE UNIQUE INDEX group_members_one_head ON group_members (group_id) WHERE relationship = 'HEAD';
CREATE UNIQUE INDEX group_members_one_primary ON group_members (group_id) WHERE recipient = 'PRIMARY';

CREATE TABLE benefit_plans (
    id                BLOB PRIMARY KEY,
    code              TEXT NOT NULL UNIQUE,
    name              TEXT NOT NULL,
    beneficiary_type  TEXT NOT NULL CHECK (beneficiary_type IN ('INDIVIDUAL', 'GROUP')),
    start_date        TEXT NOT NULL,
    end_date          TEXT,
    currency          TEXT NOT NULL,
    -- JSON: provisions offered, the extra-field schema, the calculation rule, the payment point.
    provisions        TEXT NOT NULL,
    extra_schema      TEXT NOT NULL,
    rule              TEXT NOT NULL,
    payment_point     TEXT NOT NULL,
    created_at        TEXT NOT NULL
);

CREATE TABLE goods_items (
    id    BLOB PRIMARY KEY,
    code  TEXT NOT NULL UNIQUE,
    name  TEXT NOT NULL,
    unit  TEXT NOT NULL
);

CREATE TABLE beneficiaries (
    id             BLOB PRIMARY KEY,
    plan_id        BLOB NOT NULL REFERENCES benefit_plans (id),
    individual_id  BLOB REFERENCES individuals (id),
    group_id       BLOB REFERENCES groups (id),
    status         TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    CHECK ((individual_id IS NULL) <> (group_id IS NULL)),
    UNIQUE (plan_id, individual_id),
    UNIQUE (plan_id, group_id)
) WITHOUT ROWID;
-- Payroll generation walks a plan's ACTIVE beneficiaries in id order from this index alone.
CREATE INDEX beneficiaries_plan_status ON beneficiaries (plan_id, status, id);

-- Every status change, with who, when and why; never updated.
CREATE TABLE beneficiary_status_history (
    id              INTEGER PRIMARY KEY,
    beneficiary_id  BLOB NOT NULL REFERENCES beneficiaries (id),
    from_status     TEXT,
    to_status       TEXT NOT NULL,
    changed_by      TEXT NOT NULL,
    changed_at      TEXT NOT NULL,
    reason          TEXT NOT NULL
);
CREATE INDEX beneficiary_status_history_beneficiary ON beneficiary_status_history (beneficiary_id);

CREATE TABLE payment_cycles (
    id          BLOB PRIMARY KEY,
    code        TEXT NOT NULL UNIQUE,
    start_date  TEXT NOT NULL,
    end_date    TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    CHECK (start_date <= end_date)
);

-- Cash-for-work: projects, and the days worked on them (approved before they feed a payroll).
CREATE TABLE work_projects (
    id                 BLOB PRIMARY KEY,
    code               TEXT NOT NULL UNIQUE,
    name               TEXT NOT NULL,
    plan_id            BLOB NOT NULL REFERENCES benefit_plans (id),
    location_id        BLOB NOT NULL REFERENCES locations (id),
    daily_wage_minor   INTEGER NOT NULL CHECK (daily_wage_minor > 0),
    created_at         TEXT NOT NULL
);

CREATE TABLE timesheets (
    id              BLOB PRIMARY KEY,
    project_id      BLOB NOT NULL REFERENCES work_projects (id),
    beneficiary_id  BLOB NOT NULL REFERENCES beneficiaries (id),
    work_date       TEXT NOT NULL,
    -- Hundredths of a day: 100 is a full day, 50 half a day.
    day_hundredths  INTEGER NOT NULL CHECK (day_hundredths BETWEEN 1 AND 100),
    status          TEXT NOT NULL CHECK (status IN ('PENDING', 'APPROVED', 'REJECTED')),
    recorded_by     TEXT NOT NULL,
    recorded_at     TEXT NOT NULL,
    UNIQUE (project_id, beneficiary_id, work_date)
);

CREATE TABLE users (
    id             BLOB PRIMARY KEY,
    username       TEXT NOT NULL UNIQUE,
    display_name   TEXT NOT NULL,
    role           TEXT NOT NULL CHECK (role IN ('ADMIN', 'SUPERVISOR', 'FIELD_AGENT')),
    -- NULL: national scope; otherwise the location subtree the user may see.
    area_id        BLOB REFERENCES locations (id),
    password_hash  TEXT NOT NULL,
    disabled       INTEGER NOT NULL DEFAULT 0,
    created_at     TEXT NOT NULL
);

-- API bearer tokens; only their SHA-256 is stored.
CREATE TABLE api_tokens (
    token_hash  BLOB PRIMARY KEY,
    user_id     BLOB NOT NULL REFERENCES users (id),
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL
);

CREATE TABLE payrolls (
    id                 BLOB PRIMARY KEY,
    plan_id            BLOB NOT NULL REFERENCES benefit_plans (id),
    cycle_id           BLOB NOT NULL REFERENCES payment_cycles (id),
    -- The payment point: a location, or a field agent (then location_id is the agent's area).
    location_id        BLOB NOT NULL REFERENCES locations (id),
    agent_id           BLOB REFERENCES users (id),
    -- 1 for the first payroll of a point; later runs that find new beneficiaries after the
    -- first was approved add a supplementary payroll instead of changing an approved one.
    seq                INTEGER NOT NULL,
    name               TEXT NOT NULL,
    status             TEXT NOT NULL,
    currency           TEXT NOT NULL,
    created_by         TEXT NOT NULL,
    created_at         TEXT NOT NULL,
    UNIQUE (plan_id, cycle_id, location_id, seq)
);
CREATE INDEX payrolls_cycle ON payrolls (cycle_id);

CREATE TABLE entitlements (
    id                 BLOB PRIMARY KEY,
    payroll_id         BLOB NOT NULL REFERENCES payrolls (id),
    plan_id            BLOB NOT NULL,
    cycle_id           BLOB NOT NULL,
    -- No foreign keys on these two: beneficiaries and individuals are never deleted (statuses
    -- record their end), and generation reads them in the same transaction; the checks cost
    -- two index seeks per row on a million-row payroll.
    beneficiary_id     BLOB NOT NULL,
    -- Who collects: the individual, or the household's primary recipient.
    recipient_id       BLOB,
    amount_minor       INTEGER NOT NULL CHECK (amount_minor >= 0),
    currency           TEXT NOT NULL,
    -- JSON list of {item, quantity} for goods provisions.
    goods              TEXT NOT NULL DEFAULT '[]',
    status             TEXT NOT NULL,
    -- One entitlement per beneficiary and cycle, however often generation runs (a beneficiary
    -- belongs to one plan, so this is per plan too, with a shorter key).
    UNIQUE (cycle_id, beneficiary_id)
) WITHOUT ROWID;
CREATE INDEX entitlements_payroll ON entitlements (payroll_id);

-- Append-only and hash-chained: each entry's hash covers the previous hash, so a rewritten
-- history shows. The triggers refuse updates and deletes.
CREATE TABLE audit_log (
    seq        INTEGER PRIMARY KEY,
    at         TEXT NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    entity     TEXT NOT NULL,
    entity_id  TEXT,
    detail     TEXT NOT NULL,
    prev_hash  BLOB NOT NULL,
    hash       BLOB NOT NULL
);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
