-- Devices and the sync protocol: enrolment, request replay protection, beneficiary cards, the
-- replica change feed, record documents, their change log, quarantine and materialised records.
-- The programme's card-signing key is a file in the data directory, not a row: a copy of the
-- database (a backup, a support dump) must not be able to forge cards.

-- One-time codes a supervisor hands to an agent; only their SHA-256 is kept.
CREATE TABLE enrolment_codes (
    code_hash      BLOB PRIMARY KEY,
    agent_id       BLOB NOT NULL REFERENCES users (id),
    assignment_id  BLOB NOT NULL REFERENCES locations (id),
    created_by     TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    expires_at     TEXT NOT NULL,
    used_at        TEXT,
    device_id      BLOB
) WITHOUT ROWID;

CREATE TABLE devices (
    id             BLOB PRIMARY KEY,
    public_key     BLOB NOT NULL UNIQUE,
    agent_id       BLOB NOT NULL REFERENCES users (id),
    -- The location subtree whose registry rows the device holds.
    assignment_id  BLOB NOT NULL REFERENCES locations (id),
    label          TEXT NOT NULL,
    app_version    TEXT NOT NULL,
    enrolled_at    TEXT NOT NULL,
    enrolled_by    TEXT NOT NULL,
    revoked_at     TEXT,
    revoked_by     TEXT,
    revoke_reason  TEXT,
    last_seen_at   TEXT,
    -- The highest record number the device has sent; gaps below it were never received.
    max_device_seq INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- Nonces seen inside the timestamp window; older ones are purged (the window refuses them).
CREATE TABLE device_nonces (
    device_id  BLOB NOT NULL,
    nonce      TEXT NOT NULL,
    at_ms      INTEGER NOT NULL,
    PRIMARY KEY (device_id, nonce)
) WITHOUT ROWID;
CREATE INDEX device_nonces_at ON device_nonces (at_ms);

-- Beneficiary cards; the serial is printed and scanned. A reissue revokes the old serial.
CREATE TABLE cards (
    id              BLOB PRIMARY KEY,
    serial          INTEGER NOT NULL UNIQUE,
    beneficiary_id  BLOB NOT NULL REFERENCES beneficiaries (id),
    holder_id       BLOB NOT NULL REFERENCES individuals (id),
    issued_on       TEXT NOT NULL,
    issued_by       TEXT NOT NULL,
    revoked_at      TEXT,
    revoked_by      TEXT,
    revoke_reason   TEXT
) WITHOUT ROWID;
CREATE INDEX cards_beneficiary ON cards (beneficiary_id);

CREATE TABLE grievance_categories (
    id    BLOB PRIMARY KEY,
    code  TEXT NOT NULL UNIQUE,
    name  TEXT NOT NULL
);
INSERT INTO grievance_categories (id, code, name) VALUES
    (X'00000000000070008000000000000001', 'PAYMENT_NOT_RECEIVED', 'Payment not received'),
    (X'00000000000070008000000000000002', 'WRONG_AMOUNT', 'Wrong amount'),
    (X'00000000000070008000000000000003', 'EXCLUSION', 'Left out of the programme'),
    (X'00000000000070008000000000000004', 'AGENT_CONDUCT', 'Conduct of the agent'),
    (X'00000000000070008000000000000005', 'DATA_ERROR', 'Wrong personal data'),
    (X'00000000000070008000000000000006', 'OTHER', 'Other');

-- The replica change feed. Every change to a row devices hold appends (kind, id, path): the
-- row's location path at the time ('' for programme-wide rows). Moving a person, household or
-- project appends the old path too, so the devices that held the row learn it left (they get
-- a tombstone). Registry rows are never deleted (statuses record their end), and a location's
-- path never changes. Downloads walk this by seq, which is the cursor. Kinds are proto's
-- RowKind numbers. Entitlements are logged when their payroll is approved; generation never
-- adds to an approved payroll (it opens a supplementary one).
-- Rows are never deleted, so a plain INTEGER PRIMARY KEY only grows; AUTOINCREMENT would add
-- a write to sqlite_sequence for every logged row.
CREATE TABLE replica_log (
    seq     INTEGER PRIMARY KEY,
    kind    INTEGER NOT NULL,
    row_id  BLOB NOT NULL,
    path    TEXT NOT NULL
);

-- The location path of a beneficiary (via its individual or its household).
CREATE VIEW beneficiary_paths AS
SELECT b.id AS beneficiary_id, l.path AS path
FROM beneficiaries b
LEFT JOIN individuals i ON i.id = b.individual_id
LEFT JOIN groups g ON g.id = b.group_id
JOIN locations l ON l.id = COALESCE(i.location_id, g.location_id);

CREATE TRIGGER replica_locations_ins AFTER INSERT ON locations
BEGIN INSERT INTO replica_log (kind, row_id, path) VALUES (1, NEW.id, NEW.path); END;
CREATE TRIGGER replica_locations_upd AFTER UPDATE ON locations
BEGIN INSERT INTO replica_log (kind, row_id, path) VALUES (1, NEW.id, NEW.path); END;

CREATE TRIGGER replica_plans_ins AFTER INSERT ON benefit_plans
BEGIN INSERT INTO replica_log (kind, row_id, path) VALUES (2, NEW.id, ''); END;
CREATE TRIGGER replica_plans_upd AFTER UPDATE ON benefit_plans
BEGIN INSERT INTO replica_log (kind, row_id, path) VALUES (2, NEW.id, ''); END;

CREATE TRIGGER replica_goods_ins AFTER INSERT ON goods_items
BEGIN INSERT INTO replica_log (kind, row_id, path) VALUES (3, NEW.id, ''); END;
CREATE TRIGGER replica_goods_upd AFTER UPDATE ON goods_items
BEGIN INSERT INTO replica_log (kind, row_id, path) VALUES (3, NEW.id, ''); END;

CREATE TRIGGER replica_projects_ins AFTER INSERT ON work_projects
BEGIN
    INSERT INTO replica_log (kind, row_id, path)
    SELECT 4, NEW.id, path FROM locations WHERE id = NEW.location_id;
END;
CREATE TRIGGER replica_projects_upd AFTER UPDATE ON work_projects
BEGIN
    INSERT INTO replica_log (kind, row_id, path)
    SELECT 4, NEW.id, path FROM locations WHERE id IN (OLD.location_id, NEW.location_id);
END;

CREATE TRIGGER replica_individuals_ins AFTER INSERT ON individuals WHEN NEW.location_id IS NOT NULL
BEGIN
    INSERT INTO replica_log (kind, row_id, path)
    SELECT 5, NEW.id, path FROM locations WHERE id = NEW.location_id;
END;
CREATE TRIGGER replica_individuals_upd AFTER UPDATE ON individuals
BEGIN
    INSERT INTO replica_log (kind, row_id, path)
    SELECT 5, NEW.id, path FROM locations WHERE id IN (OLD.location_id, NEW.location_id);
    -- A move carries the person's plans and entitlements with it.
    INSERT INTO replica_log (kind, row_id, path)
    SELECT 7, b.id, l.path FROM beneficiaries b, locations l
    WHERE OLD.location_id IS NOT NEW.location_id AND b.individual_id = NEW.id
      AND l.id IN (OLD.location_id, NEW.location_id);
    INSERT INTO replica_log (kind, row_id, path)
    SELECT 8, e.id, l.path FROM beneficiaries b JOIN entitlements e ON e.beneficiary_id = b.id,
         locations l
    WHERE OLD.location_id IS NOT NEW.location_id AND b.individual_id = NEW.id
      AND l.id IN (OLD.location_id, NEW.location_id);
    -- Revoked cards too, or the new area's devices would accept them again.
    INSERT INTO replica_log (kind, row_id, path)
    SELECT 9, c.id, l.path FROM beneficiaries b JOIN cards c ON c.beneficiary_id = b.id,
         locations l
    WHERE OLD.location_id IS NOT NEW.location_id AND b.individual_id = NEW.id
      AND c.revoked_at IS NOT NULL AND l.id IN (OLD.location_id, NEW.location_id);
END;

CREATE TRIGGER replica_groups_ins AFTER INSERT ON groups WHEN NEW.location_id IS NOT NULL
BEGIN
    INSERT INTO replica_log (kind, row_id, path)
    SELECT 6, NEW.id, path FROM locations WHERE id = NEW.location_id;
END;
CREATE TRIGGER replica_groups_upd AFTER UPDATE ON groups
BEGIN
    INSERT INTO replica_log (kind, row_id, path)
    SELECT 6, NEW.id, path FROM locations WHERE id IN (OLD.location_id, NEW.location_id);
    INSERT INTO replica_log (kind, row_id, path)
    SELECT 7, b.id, l.path FROM beneficiaries b, locations l
    WHERE OLD.location_id IS NOT NEW.location_id AND b.group_id = NEW.id
      AND l.id IN (OLD.location_id, NEW.location_id);
    INSERT INTO replica_log (kind, row_id, path)
    SELECT 8, e.id, l.path FROM beneficiaries b JOIN entitlements e ON e.beneficiary_id = b.id,
         locations l
    WHERE OLD.location_id IS NOT NEW.location_id AND b.group_id = NEW.id
      AND l.id IN (OLD.location_id, NEW.location_id);
    INSERT INTO replica_log (kind, row_id, path)
    SELECT 9, c.id, l.path FROM beneficiaries b JOIN cards c ON c.beneficiary_id = b.id,
         locations l
    WHERE OLD.location_id IS NOT NEW.location_id AND b.group_id = NEW.id
      AND c.revoked_at IS NOT NULL AND l.id IN (OLD.location_id, NEW.location_id);
END;

-- A membership change changes the person row (household, relationship, recipient).
CREATE TRIGGER replica_members_ins AFTER INSERT ON group_members
BEGIN
    INSERT INTO replica_log (kind, row_id, path)
    SELECT 5, i.id, l.path FROM individuals i JOIN locations l ON l.id = i.location_id
    WHERE i.id = NEW.individual_id;
END;
CREATE TRIGGER replica_members_upd AFTER UPDATE ON group_members
BEGIN
    INSERT INTO replica_log (kind, row_id, path)
    SELECT 5, i.id, l.path FROM individuals i JOIN locations l ON l.id = i.location_id
    WHERE i.id = NEW.individual_id;
END;
CREATE TRIGGER replica_members_del AFTER DELETE ON group_members
BEGIN
    INSERT INTO replica_log (kind, row_id, path)
    SELECT 5, i.id, l.path FROM individuals i JOIN locations l ON l.id = i.location_id
    WHERE i.id = OLD.individual_id;
END;

CREATE TRIGGER replica_beneficiaries_ins AFTER INSERT ON beneficiaries
BEGIN
    INSERT INTO replica_log (kind, row_id, path)
    SELECT 7, NEW.id, path FROM beneficiary_paths WHERE beneficiary_id = NEW.id;
END;
CREATE TRIGGER replica_beneficiaries_upd AFTER UPDATE ON beneficiaries
BEGIN
    INSERT INTO replica_log (kind, row_id, path)
    SELECT 7, NEW.id, path FROM beneficiary_paths WHERE beneficiary_id = NEW.id;
END;

-- Entitlements reach the field only once their payroll is approved.
CREATE TRIGGER replica_payroll_approved AFTER UPDATE OF status ON payrolls
WHEN NEW.status = 'APPROVED' AND OLD.status <> 'APPROVED'
BEGIN
    INSERT INTO replica_log (kind, row_id, path)
    SELECT 8, e.id, p.path FROM entitlements e
    JOIN beneficiary_paths p ON p.beneficiary_id = e.beneficiary_id
    WHERE e.payroll_id = NEW.id;
END;
CREATE TRIGGER replica_entitlements_upd AFTER UPDATE ON entitlements
WHEN (SELECT status FROM payrolls WHERE id = NEW.payroll_id) IN ('APPROVED', 'RECONCILED', 'CLOSED')
BEGIN
    INSERT INTO replica_log (kind, row_id, path)
    SELECT 8, NEW.id, path FROM beneficiary_paths WHERE beneficiary_id = NEW.beneficiary_id;
END;

-- A card issued changes its beneficiary's row (card serials); a card revoked is a row too.
CREATE TRIGGER replica_cards_ins AFTER INSERT ON cards
BEGIN
    INSERT INTO replica_log (kind, row_id, path)
    SELECT 7, NEW.beneficiary_id, path FROM beneficiary_paths WHERE beneficiary_id = NEW.beneficiary_id;
END;
CREATE TRIGGER replica_cards_revoked AFTER UPDATE OF revoked_at ON cards
WHEN NEW.revoked_at IS NOT NULL
BEGIN
    INSERT INTO replica_log (kind, row_id, path)
    SELECT 9, NEW.id, path FROM beneficiary_paths WHERE beneficiary_id = NEW.beneficiary_id;
    INSERT INTO replica_log (kind, row_id, path)
    SELECT 7, NEW.beneficiary_id, path FROM beneficiary_paths WHERE beneficiary_id = NEW.beneficiary_id;
END;

CREATE TRIGGER replica_grievance_categories_ins AFTER INSERT ON grievance_categories
BEGIN INSERT INTO replica_log (kind, row_id, path) VALUES (10, NEW.id, ''); END;
CREATE TRIGGER replica_grievance_categories_upd AFTER UPDATE ON grievance_categories
BEGIN INSERT INTO replica_log (kind, row_id, path) VALUES (10, NEW.id, ''); END;
INSERT INTO replica_log (kind, row_id, path) SELECT 10, id, '' FROM grievance_categories;

-- Existing rows enter the feed once, as if just written.
INSERT INTO replica_log (kind, row_id, path) SELECT 1, id, path FROM locations;
INSERT INTO replica_log (kind, row_id, path) SELECT 2, id, '' FROM benefit_plans;
INSERT INTO replica_log (kind, row_id, path) SELECT 3, id, '' FROM goods_items;
INSERT INTO replica_log (kind, row_id, path)
SELECT 4, w.id, l.path FROM work_projects w JOIN locations l ON l.id = w.location_id;
INSERT INTO replica_log (kind, row_id, path)
SELECT 5, i.id, l.path FROM individuals i JOIN locations l ON l.id = i.location_id;
INSERT INTO replica_log (kind, row_id, path)
SELECT 6, g.id, l.path FROM groups g JOIN locations l ON l.id = g.location_id;
INSERT INTO replica_log (kind, row_id, path) SELECT 7, beneficiary_id, path FROM beneficiary_paths;
INSERT INTO replica_log (kind, row_id, path)
SELECT 8, e.id, p.path FROM entitlements e
JOIN payrolls pr ON pr.id = e.payroll_id AND pr.status IN ('APPROVED', 'RECONCILED', 'CLOSED')
JOIN beneficiary_paths p ON p.beneficiary_id = e.beneficiary_id;

-- Record documents: the saved automerge bytes and heads of every accepted record.
CREATE TABLE documents (
    id              BLOB PRIMARY KEY,
    kind            TEXT NOT NULL,
    -- The device that first sent it (NULL: written at the office) and its record number.
    device_id       BLOB REFERENCES devices (id),
    device_seq      INTEGER NOT NULL DEFAULT 0,
    beneficiary_id  BLOB,
    -- Location path of the beneficiary: who may see the record.
    path            TEXT NOT NULL,
    data            BLOB NOT NULL,
    heads           BLOB NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX documents_device ON documents (device_id, device_seq);
-- A beneficiary's records: its detail page, and moving them with it (see records_follow_*).
CREATE INDEX documents_beneficiary ON documents (beneficiary_id);

-- Every accepted change once; seq is the cursor devices use to receive changes made elsewhere.
-- A change is logged only when the document did not hold it, so the hash needs no index of
-- its own (a random 32-byte key costs a B-tree insert per change on the hot path).
CREATE TABLE doc_changes (
    seq          INTEGER PRIMARY KEY, -- never deleted, so it only grows (see replica_log)
    doc_id       BLOB NOT NULL,
    hash         BLOB NOT NULL,
    data         BLOB NOT NULL,
    -- Who sent it (NULL: the office).
    device_id    BLOB,
    path         TEXT NOT NULL,
    received_at  TEXT NOT NULL
);

-- Records refused by validation, kept with the reason; never silently dropped.
CREATE TABLE quarantine (
    id            INTEGER PRIMARY KEY,
    doc_id        BLOB NOT NULL,
    kind          TEXT NOT NULL,
    device_id     BLOB,
    device_seq    INTEGER NOT NULL,
    -- The refused changes, concatenated (automerge loads such a sequence as a document).
    changes       BLOB NOT NULL,
    changes_hash  BLOB NOT NULL,
    reason        TEXT NOT NULL,
    received_at   TEXT NOT NULL,
    resolved_at   TEXT,
    resolved_by   TEXT,
    UNIQUE (doc_id, changes_hash)
);

-- Materialised records, rebuilt from the documents; queries and reconciliation read these.
CREATE TABLE payouts (
    doc_id           BLOB PRIMARY KEY,
    device_id        BLOB,
    beneficiary_id   BLOB NOT NULL,
    entitlement_id   BLOB NOT NULL,
    collector_id     BLOB NOT NULL,
    -- The entitlement's payroll: reconciliation reads a payroll's payouts as one range.
    payroll_id       BLOB NOT NULL,
    amount_minor     INTEGER NOT NULL,
    currency         TEXT NOT NULL,
    proof            TEXT NOT NULL,
    card_serial      INTEGER,
    proof_ref        TEXT,
    -- Device time with its zone (device clocks lie; received_at is the server's).
    paid_at          TEXT NOT NULL,
    received_at      TEXT NOT NULL,
    override_reason  TEXT,
    voided_at        TEXT,
    void_reason      TEXT
) WITHOUT ROWID;
-- By payroll, not by entitlement: a random entitlement key would dirty one index page per
-- payout on upload; a payroll's payouts arrive together and append to one range.
CREATE INDEX payouts_payroll ON payouts (payroll_id);

CREATE TABLE distributions (
    doc_id          BLOB PRIMARY KEY,
    device_id       BLOB,
    beneficiary_id  BLOB NOT NULL,
    entitlement_id  BLOB NOT NULL,
    collector_id    BLOB NOT NULL,
    payroll_id      BLOB NOT NULL,
    -- JSON object: item code → quantity.
    items           TEXT NOT NULL,
    distributed_at  TEXT NOT NULL,
    received_at     TEXT NOT NULL,
    voided_at       TEXT,
    void_reason     TEXT
) WITHOUT ROWID;
CREATE INDEX distributions_payroll ON distributions (payroll_id);

-- Field timesheets land in `timesheets` (id = document id); a void is kept, not deleted, and
-- the day can then be recorded again, so one entry per worker and day holds among the entries
-- not voided. SQLite cannot drop a table constraint: the table is rebuilt.
CREATE TABLE timesheets_v2 (
    id              BLOB PRIMARY KEY,
    project_id      BLOB NOT NULL REFERENCES work_projects (id),
    beneficiary_id  BLOB NOT NULL REFERENCES beneficiaries (id),
    work_date       TEXT NOT NULL,
    -- Hundredths of a day: 100 is a full day, 50 half a day.
    day_hundredths  INTEGER NOT NULL CHECK (day_hundredths BETWEEN 1 AND 100),
    status          TEXT NOT NULL CHECK (status IN ('PENDING', 'APPROVED', 'REJECTED')),
    recorded_by     TEXT NOT NULL,
    recorded_at     TEXT NOT NULL,
    voided_at       TEXT,
    void_reason     TEXT
);
INSERT INTO timesheets_v2 (id, project_id, beneficiary_id, work_date, day_hundredths, status,
    recorded_by, recorded_at)
SELECT id, project_id, beneficiary_id, work_date, day_hundredths, status, recorded_by, recorded_at
FROM timesheets;
DROP TABLE timesheets;
ALTER TABLE timesheets_v2 RENAME TO timesheets;
CREATE UNIQUE INDEX timesheets_one_per_day ON timesheets (project_id, beneficiary_id, work_date)
    WHERE voided_at IS NULL;

CREATE TABLE grievances (
    doc_id          BLOB PRIMARY KEY,
    device_id       BLOB,
    beneficiary_id  BLOB,
    path            TEXT NOT NULL,
    category        TEXT NOT NULL,
    description     TEXT NOT NULL,
    status          TEXT NOT NULL,
    assignee        TEXT,
    -- JSON list of {by, at, text}.
    comments        TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX grievances_status ON grievances (status);

-- Proposals from the field; nothing is applied until approved (maker-checker).
CREATE TABLE verifications (
    doc_id           BLOB PRIMARY KEY,
    device_id        BLOB,
    beneficiary_id   BLOB NOT NULL,
    answers          TEXT NOT NULL,
    proposed_status  TEXT,
    note             TEXT NOT NULL,
    verified_at      TEXT NOT NULL,
    received_at      TEXT NOT NULL,
    decision         TEXT NOT NULL DEFAULT 'PENDING'
) WITHOUT ROWID;

CREATE TABLE contact_updates (
    doc_id          BLOB PRIMARY KEY,
    device_id       BLOB,
    beneficiary_id  BLOB NOT NULL,
    individual_id   BLOB NOT NULL,
    phone           TEXT,
    address         TEXT,
    updated_at      TEXT NOT NULL,
    received_at     TEXT NOT NULL,
    decision        TEXT NOT NULL DEFAULT 'PENDING'
) WITHOUT ROWID;

-- A beneficiary who moves takes its records along: their whole history is logged again under
-- the new place (once per change, in the original order), so devices there can apply it;
-- automerge needs every earlier change of a document, and the new area's devices saw none.
CREATE INDEX doc_changes_doc ON doc_changes (doc_id, seq);
CREATE TRIGGER records_follow_group AFTER UPDATE OF location_id ON groups
WHEN OLD.location_id IS NOT NEW.location_id AND NEW.location_id IS NOT NULL
BEGIN
    UPDATE documents SET path = (SELECT path FROM locations WHERE id = NEW.location_id)
    WHERE beneficiary_id IN (SELECT id FROM beneficiaries WHERE group_id = NEW.id);
    UPDATE grievances SET path = (SELECT path FROM locations WHERE id = NEW.location_id)
    WHERE beneficiary_id IN (SELECT id FROM beneficiaries WHERE group_id = NEW.id);
    INSERT INTO doc_changes (doc_id, hash, data, device_id, path, received_at)
    SELECT c.doc_id, c.hash, c.data, NULL, (SELECT path FROM locations WHERE id = NEW.location_id),
           strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    FROM doc_changes c
    WHERE c.doc_id IN (SELECT d.id FROM documents d JOIN beneficiaries b ON b.id = d.beneficiary_id
                       WHERE b.group_id = NEW.id)
    GROUP BY c.doc_id, c.hash
    ORDER BY min(c.seq);
END;
CREATE TRIGGER records_follow_individual AFTER UPDATE OF location_id ON individuals
WHEN OLD.location_id IS NOT NEW.location_id AND NEW.location_id IS NOT NULL
BEGIN
    UPDATE documents SET path = (SELECT path FROM locations WHERE id = NEW.location_id)
    WHERE beneficiary_id IN (SELECT id FROM beneficiaries WHERE individual_id = NEW.id);
    UPDATE grievances SET path = (SELECT path FROM locations WHERE id = NEW.location_id)
    WHERE beneficiary_id IN (SELECT id FROM beneficiaries WHERE individual_id = NEW.id);
    INSERT INTO doc_changes (doc_id, hash, data, device_id, path, received_at)
    SELECT c.doc_id, c.hash, c.data, NULL, (SELECT path FROM locations WHERE id = NEW.location_id),
           strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    FROM doc_changes c
    WHERE c.doc_id IN (SELECT d.id FROM documents d JOIN beneficiaries b ON b.id = d.beneficiary_id
                       WHERE b.individual_id = NEW.id)
    GROUP BY c.doc_id, c.hash
    ORDER BY min(c.seq);
END;
