-- The device's database: enrolments, the replica of the assignment (server-authored rows, no
-- foreign keys because rows arrive in the server's log order), the record documents, and
-- what is materialised from them for fast queries. Ids are 16-byte UUIDs.

-- One row per key/value the install keeps: the automerge actor (one per install).
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL
) STRICT;

-- Each enrolment is one device identity on the server. Only one is active; an earlier one
-- stays (inactive) until its records are all on the server, so another agent enrolling on
-- the same phone never loses the first agent's unsent work.
CREATE TABLE enrolments (
    id BLOB PRIMARY KEY,
    server_url TEXT NOT NULL,
    key_pkcs8 BLOB NOT NULL,
    agent_username TEXT NOT NULL,
    agent_name TEXT NOT NULL,
    assignment_code TEXT NOT NULL,
    assignment_name TEXT NOT NULL,
    assignment_path TEXT NOT NULL,
    programme_key BLOB NOT NULL,
    -- An extra CA (PEM) the programme's server certificate chains to, if not a public one.
    server_ca_pem TEXT,
    pin_hash TEXT NOT NULL,
    failed_pins INTEGER NOT NULL DEFAULT 0,
    lockouts INTEGER NOT NULL DEFAULT 0,
    locked_until_ms INTEGER NOT NULL DEFAULT 0,
    enrolled_at TEXT NOT NULL,
    active INTEGER NOT NULL,
    next_seq INTEGER NOT NULL DEFAULT 1,
    clock_offset_ms INTEGER NOT NULL DEFAULT 0,
    replica_cursor INTEGER NOT NULL DEFAULT 0,
    changes_cursor INTEGER NOT NULL DEFAULT 0,
    last_sync_at TEXT
) STRICT;
CREATE UNIQUE INDEX enrolments_one_active ON enrolments (active) WHERE active = 1;

-- The replica.
CREATE TABLE locations (
    id BLOB PRIMARY KEY,
    code TEXT NOT NULL,
    name TEXT NOT NULL,
    level TEXT NOT NULL,
    path TEXT NOT NULL
) STRICT;
CREATE INDEX locations_code ON locations (code);

CREATE TABLE plans (
    id BLOB PRIMARY KEY,
    code TEXT NOT NULL,
    name TEXT NOT NULL,
    currency TEXT NOT NULL,
    beneficiary_type TEXT NOT NULL,
    provisions TEXT NOT NULL,
    limit_per_transaction_minor INTEGER NOT NULL,
    extra_schema TEXT NOT NULL
) STRICT;

CREATE TABLE goods_items (
    id BLOB PRIMARY KEY,
    code TEXT NOT NULL,
    name TEXT NOT NULL,
    unit TEXT NOT NULL
) STRICT;
CREATE INDEX goods_items_code ON goods_items (code);

CREATE TABLE projects (
    id BLOB PRIMARY KEY,
    code TEXT NOT NULL,
    name TEXT NOT NULL,
    plan_id BLOB NOT NULL,
    location_code TEXT NOT NULL,
    daily_wage_minor INTEGER NOT NULL
) STRICT;

-- A rowid table so the search index can point at people by rowid.
CREATE TABLE people (
    id BLOB NOT NULL UNIQUE,
    external_id TEXT NOT NULL,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    dob_days INTEGER NOT NULL,
    sex TEXT NOT NULL,
    location_code TEXT NOT NULL,
    household_id BLOB,
    relationship TEXT NOT NULL,
    recipient TEXT NOT NULL
);
CREATE INDEX people_household ON people (household_id);
CREATE INDEX people_external_id ON people (external_id COLLATE NOCASE);

-- Names and external ids, folded for accent- and case-insensitive prefix search.
CREATE VIRTUAL TABLE people_search USING fts5 (
    terms,
    content = '',
    contentless_delete = 1,
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TABLE households (
    id BLOB PRIMARY KEY,
    code TEXT NOT NULL,
    location_code TEXT NOT NULL
) STRICT;

CREATE TABLE beneficiaries (
    id BLOB PRIMARY KEY,
    plan_id BLOB NOT NULL,
    individual_id BLOB,
    household_id BLOB,
    status TEXT NOT NULL
) STRICT;
CREATE INDEX beneficiaries_individual ON beneficiaries (individual_id);
CREATE INDEX beneficiaries_household ON beneficiaries (household_id);

-- Card serials in force, for search by card number.
CREATE TABLE cards (
    serial INTEGER PRIMARY KEY,
    beneficiary_id BLOB NOT NULL
) STRICT;
CREATE INDEX cards_beneficiary ON cards (beneficiary_id);

CREATE TABLE entitlements (
    id BLOB PRIMARY KEY,
    beneficiary_id BLOB NOT NULL,
    payroll_id BLOB NOT NULL,
    cycle_code TEXT NOT NULL,
    cycle_start_days INTEGER NOT NULL,
    cycle_end_days INTEGER NOT NULL,
    recipient_id BLOB,
    amount_minor INTEGER NOT NULL,
    currency TEXT NOT NULL,
    -- JSON object: goods item code -> quantity.
    goods TEXT NOT NULL,
    status TEXT NOT NULL
) STRICT;
CREATE INDEX entitlements_beneficiary ON entitlements (beneficiary_id);
CREATE INDEX entitlements_window ON entitlements (cycle_start_days, cycle_end_days);

CREATE TABLE revoked_cards (
    id BLOB PRIMARY KEY,
    serial INTEGER NOT NULL,
    beneficiary_id BLOB NOT NULL
) STRICT;
CREATE INDEX revoked_cards_serial ON revoked_cards (serial);

CREATE TABLE grievance_categories (
    id BLOB PRIMARY KEY,
    code TEXT NOT NULL,
    name TEXT NOT NULL
) STRICT;

-- Record documents: the saved automerge bytes are the truth; the tables below are derived.
-- `seq` numbers this device's own records per enrolment (NULL for records made elsewhere),
-- so the server can list numbers it never received. `acked_heads` is what the server has
-- confirmed; the record is pending while `heads` differ from it.
CREATE TABLE records (
    id BLOB PRIMARY KEY,
    enrolment_id BLOB NOT NULL,
    seq INTEGER,
    kind TEXT NOT NULL,
    doc BLOB NOT NULL,
    heads BLOB NOT NULL,
    acked_heads BLOB NOT NULL DEFAULT x'',
    -- Set when the server quarantined the record: its reason. It stays here, and on the server.
    refused TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (enrolment_id, seq)
) STRICT;
CREATE INDEX records_pending ON records (enrolment_id) WHERE heads <> acked_heads;

-- Changes received for a document before the changes they build on: applied once those come.
CREATE TABLE deferred_changes (
    doc_id BLOB NOT NULL,
    change BLOB NOT NULL
) STRICT;
CREATE INDEX deferred_changes_doc ON deferred_changes (doc_id);

CREATE TABLE payouts (
    record_id BLOB PRIMARY KEY,
    enrolment_id BLOB NOT NULL,
    own INTEGER NOT NULL,
    beneficiary_id BLOB NOT NULL,
    entitlement_id BLOB NOT NULL,
    collector_id BLOB NOT NULL,
    amount_minor INTEGER NOT NULL,
    currency TEXT NOT NULL,
    proof TEXT NOT NULL,
    paid_at TEXT NOT NULL,
    -- The device's local date of the payout, for the day summary.
    day TEXT NOT NULL,
    override_reason TEXT,
    voided_at TEXT,
    void_reason TEXT
) STRICT;
CREATE INDEX payouts_entitlement ON payouts (entitlement_id);
CREATE INDEX payouts_day ON payouts (enrolment_id, day);

CREATE TABLE distributions (
    record_id BLOB PRIMARY KEY,
    enrolment_id BLOB NOT NULL,
    own INTEGER NOT NULL,
    beneficiary_id BLOB NOT NULL,
    entitlement_id BLOB NOT NULL,
    collector_id BLOB NOT NULL,
    distributed_at TEXT NOT NULL,
    day TEXT NOT NULL,
    voided_at TEXT,
    void_reason TEXT
) STRICT;
CREATE INDEX distributions_entitlement ON distributions (entitlement_id);

CREATE TABLE distribution_lines (
    record_id BLOB NOT NULL,
    item_code TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    PRIMARY KEY (record_id, item_code)
) STRICT;

CREATE TABLE timesheets (
    record_id BLOB PRIMARY KEY,
    enrolment_id BLOB NOT NULL,
    own INTEGER NOT NULL,
    project_id BLOB NOT NULL,
    beneficiary_id BLOB NOT NULL,
    work_date TEXT NOT NULL,
    day_hundredths INTEGER NOT NULL,
    recorded_at TEXT NOT NULL,
    voided_at TEXT,
    void_reason TEXT
) STRICT;
CREATE INDEX timesheets_worker ON timesheets (beneficiary_id, work_date);

CREATE TABLE grievances (
    record_id BLOB PRIMARY KEY,
    enrolment_id BLOB NOT NULL,
    own INTEGER NOT NULL,
    beneficiary_id BLOB,
    category TEXT NOT NULL,
    description TEXT NOT NULL,
    status TEXT NOT NULL,
    assignee TEXT,
    comments INTEGER NOT NULL,
    created_at TEXT NOT NULL
) STRICT;

CREATE TABLE verifications (
    record_id BLOB PRIMARY KEY,
    enrolment_id BLOB NOT NULL,
    own INTEGER NOT NULL,
    beneficiary_id BLOB NOT NULL,
    proposed_status TEXT,
    verified_at TEXT NOT NULL
) STRICT;

CREATE TABLE contact_updates (
    record_id BLOB PRIMARY KEY,
    enrolment_id BLOB NOT NULL,
    own INTEGER NOT NULL,
    beneficiary_id BLOB NOT NULL,
    individual_id BLOB NOT NULL,
    phone TEXT,
    address TEXT,
    updated_at TEXT NOT NULL
) STRICT;

-- Cash and goods the agent received or handed back, per enrolment: with the payouts and
-- distributions it gives what the agent should hold.
CREATE TABLE ledger (
    id INTEGER PRIMARY KEY,
    enrolment_id BLOB NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('CASH_IN', 'CASH_OUT', 'STOCK_IN', 'STOCK_OUT')),
    currency TEXT,
    amount_minor INTEGER,
    item_code TEXT,
    quantity INTEGER,
    note TEXT NOT NULL,
    at TEXT NOT NULL,
    day TEXT NOT NULL
) STRICT;
CREATE INDEX ledger_enrolment ON ledger (enrolment_id, day);
