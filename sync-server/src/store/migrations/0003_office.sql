-- The office: web sessions with a second factor, four-eyes tasks, and what reconciliation needs
-- beyond the field's records (cash and goods handed to agents, payments reported by providers
-- or by an openIMIS sheet, and supervisors' resolutions of exceptions).

-- TOTP (RFC 6238) for web log-in and for approving money. The secret is needed to check a
-- code, so it is stored; the last accepted time step stops a code being used twice.
ALTER TABLE users ADD COLUMN totp_secret TEXT;
ALTER TABLE users ADD COLUMN totp_last_step INTEGER NOT NULL DEFAULT 0;
-- Failed log-ins in a row, and the time until which the account refuses log-ins.
ALTER TABLE users ADD COLUMN failed_logins INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN locked_until TEXT;
ALTER TABLE users ADD COLUMN language TEXT NOT NULL DEFAULT 'en';

-- Cached reconciliation reports are kept until an office write they read is audited; this
-- finds the newest such entry without walking the log.
CREATE INDEX audit_log_action ON audit_log (action, seq);

-- Contact details from the field land here once a supervisor approves them.
ALTER TABLE individuals ADD COLUMN phone TEXT;
ALTER TABLE individuals ADD COLUMN address TEXT;

-- Web sessions; only the token's SHA-256 is kept. `stage` is how far the log-in got: a
-- password alone opens nothing but the second-factor page.
CREATE TABLE web_sessions (
    token_hash  BLOB PRIMARY KEY,
    user_id     BLOB NOT NULL REFERENCES users (id),
    stage       TEXT NOT NULL CHECK (stage IN ('SECOND_FACTOR', 'ENROL_SECOND_FACTOR', 'FULL')),
    -- Sent back with every form and htmx request (double submit, bound to the session).
    csrf        TEXT NOT NULL,
    -- A secret offered during enrolment, kept here until the user proves their app has it.
    pending_totp TEXT,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX web_sessions_user ON web_sessions (user_id);

-- When a payroll moved: reconciliation judges late syncs against the sign-off.
ALTER TABLE payrolls ADD COLUMN approved_at TEXT;
ALTER TABLE payrolls ADD COLUMN closed_at TEXT;
-- A payroll's totals, kept by generation (the only writer of entitlements): summing a
-- million-line payroll on every page view took a second.
ALTER TABLE payrolls ADD COLUMN entitlement_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE payrolls ADD COLUMN total_minor INTEGER NOT NULL DEFAULT 0;
ALTER TABLE payrolls ADD COLUMN awaiting_count INTEGER NOT NULL DEFAULT 0;
UPDATE payrolls SET
    entitlement_count = (SELECT count(*) FROM entitlements e WHERE e.payroll_id = payrolls.id),
    total_minor = (SELECT COALESCE(SUM(amount_minor), 0) FROM entitlements e WHERE e.payroll_id = payrolls.id),
    awaiting_count = (SELECT count(*) FROM entitlements e WHERE e.payroll_id = payrolls.id AND e.status = 'AWAITING_APPROVAL');

-- Four eyes. How a kind of task completes: ordered tiers, each with ANY, ALL or a threshold
-- of N distinct approvers, and whether each approval needs the second factor.
CREATE TABLE task_policies (
    kind     TEXT PRIMARY KEY,
    -- JSON: {"tiers": [{"level": null|"DISTRICT"|"REGION"|"NATIONAL", "completion": "ANY"|"ALL"|{"THRESHOLD": n}}], "second_factor": bool}
    policy   TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
INSERT INTO task_policies (kind, policy, updated_by, updated_at) VALUES
    ('PAYROLL_APPROVAL', '{"tiers":[{"level":null,"completion":{"THRESHOLD":2}}],"second_factor":true}', 'migration', strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    ('PAYROLL_SIGN_OFF', '{"tiers":[{"level":null,"completion":"ANY"}],"second_factor":true}', 'migration', strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    ('STATUS_CHANGE', '{"tiers":[{"level":null,"completion":"ANY"}],"second_factor":false}', 'migration', strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    ('CONTACT_UPDATE', '{"tiers":[{"level":null,"completion":"ANY"}],"second_factor":false}', 'migration', strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    ('TIMESHEET', '{"tiers":[{"level":null,"completion":"ANY"}],"second_factor":false}', 'migration', strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    ('ENTITLEMENT_APPROVAL', '{"tiers":[{"level":null,"completion":"ANY"}],"second_factor":true}', 'migration', strftime('%Y-%m-%dT%H:%M:%SZ', 'now'));

CREATE TABLE tasks (
    id          BLOB PRIMARY KEY,
    kind        TEXT NOT NULL,
    -- What the task is about: a payroll, a verification, a contact update, a timesheet.
    subject_id  BLOB NOT NULL,
    -- Location path of the subject: who may see and decide the task.
    path        TEXT NOT NULL,
    summary     TEXT NOT NULL,
    -- The user who made the change (never its approver); NULL for the system.
    maker_id    BLOB,
    maker       TEXT NOT NULL,
    -- WITHDRAWN: its subject went away (a timesheet voided in the field).
    status      TEXT NOT NULL CHECK (status IN ('PENDING', 'APPROVED', 'REJECTED', 'WITHDRAWN')),
    -- The policy as it was when the task opened: changing a policy does not move old tasks.
    policy      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    decided_at  TEXT
) WITHOUT ROWID;
CREATE INDEX tasks_status ON tasks (status, created_at);
-- One open task per subject and kind.
CREATE UNIQUE INDEX tasks_one_open ON tasks (kind, subject_id) WHERE status = 'PENDING';

CREATE TABLE task_decisions (
    task_id        BLOB NOT NULL REFERENCES tasks (id),
    user_id        BLOB NOT NULL REFERENCES users (id),
    username       TEXT NOT NULL,
    tier           INTEGER NOT NULL,
    decision       TEXT NOT NULL CHECK (decision IN ('APPROVE', 'REJECT')),
    reason         TEXT NOT NULL,
    second_factor  INTEGER NOT NULL,
    at             TEXT NOT NULL,
    PRIMARY KEY (task_id, user_id)
);

-- Cash and goods handed to an agent for a payroll (positive) or handed back (negative).
CREATE TABLE float_movements (
    id           INTEGER PRIMARY KEY,
    payroll_id   BLOB NOT NULL REFERENCES payrolls (id),
    agent_id     BLOB NOT NULL REFERENCES users (id),
    -- A currency code for cash, or a goods item code.
    holding      TEXT NOT NULL,
    is_cash      INTEGER NOT NULL,
    quantity     INTEGER NOT NULL CHECK (quantity <> 0),
    note         TEXT NOT NULL,
    recorded_by  TEXT NOT NULL,
    recorded_at  TEXT NOT NULL
);
CREATE INDEX float_movements_payroll ON float_movements (payroll_id);

-- Column mappings of payment providers' statements, saved per provider.
CREATE TABLE provider_mappings (
    provider    TEXT PRIMARY KEY,
    mapping     TEXT NOT NULL,
    updated_by  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

-- Payments reported from outside the devices: a provider's statement line, or a paid row of
-- an imported openIMIS sheet. A reference is imported once per source.
CREATE TABLE external_payments (
    id              INTEGER PRIMARY KEY,
    payroll_id      BLOB NOT NULL REFERENCES payrolls (id),
    source          TEXT NOT NULL,
    reference       TEXT NOT NULL,
    entitlement_id  BLOB,
    beneficiary_id  BLOB,
    amount_minor    INTEGER NOT NULL,
    currency        TEXT NOT NULL,
    imported_by     TEXT NOT NULL,
    imported_at     TEXT NOT NULL,
    -- A statement covering several payment points is imported into each of its payrolls.
    UNIQUE (payroll_id, source, reference)
);
CREATE INDEX external_payments_payroll ON external_payments (payroll_id);

-- A supervisor's resolution of a reconciliation exception, by the exception's stable key.
CREATE TABLE exception_resolutions (
    payroll_id   BLOB NOT NULL REFERENCES payrolls (id),
    key          TEXT NOT NULL,
    -- The exception's detail when resolved: a changed exception is open again.
    detail       TEXT NOT NULL,
    reason       TEXT NOT NULL,
    resolved_by  TEXT NOT NULL,
    resolved_at  TEXT NOT NULL,
    PRIMARY KEY (payroll_id, key)
);

-- What already waited for a decision before this version gets its task, so it can be decided.
INSERT INTO tasks (id, kind, subject_id, path, summary, maker_id, maker, status, policy, created_at)
SELECT randomblob(16), 'PAYROLL_APPROVAL', p.id, l.path, p.name,
       (SELECT u.id FROM users u WHERE 'user:' || u.username = p.created_by), p.created_by, 'PENDING',
       (SELECT policy FROM task_policies WHERE kind = 'PAYROLL_APPROVAL'), strftime('%Y-%m-%dT%H:%M:%SZ', 'now')
FROM payrolls p JOIN locations l ON l.id = p.location_id WHERE p.status = 'PENDING_APPROVAL';
INSERT INTO tasks (id, kind, subject_id, path, summary, maker_id, maker, status, policy, created_at)
SELECT randomblob(16), 'TIMESHEET', t.id, l.path, t.work_date,
       (SELECT u.id FROM users u WHERE 'user:' || u.username = t.recorded_by), t.recorded_by, 'PENDING',
       (SELECT policy FROM task_policies WHERE kind = 'TIMESHEET'), strftime('%Y-%m-%dT%H:%M:%SZ', 'now')
FROM timesheets t JOIN work_projects w ON w.id = t.project_id JOIN locations l ON l.id = w.location_id
WHERE t.status = 'PENDING' AND t.voided_at IS NULL;
INSERT INTO tasks (id, kind, subject_id, path, summary, maker_id, maker, status, policy, created_at)
SELECT randomblob(16), 'STATUS_CHANGE', v.doc_id, b.path, 'become ' || v.proposed_status || ': ' || v.note,
       (SELECT d.agent_id FROM devices d WHERE d.id = v.device_id), 'field', 'PENDING',
       (SELECT policy FROM task_policies WHERE kind = 'STATUS_CHANGE'), strftime('%Y-%m-%dT%H:%M:%SZ', 'now')
FROM verifications v JOIN beneficiary_paths b ON b.beneficiary_id = v.beneficiary_id
WHERE v.decision = 'PENDING' AND v.proposed_status IS NOT NULL;
INSERT INTO tasks (id, kind, subject_id, path, summary, maker_id, maker, status, policy, created_at)
SELECT randomblob(16), 'CONTACT_UPDATE', c.doc_id, b.path, 'new contact',
       (SELECT d.agent_id FROM devices d WHERE d.id = c.device_id), 'field', 'PENDING',
       (SELECT policy FROM task_policies WHERE kind = 'CONTACT_UPDATE'), strftime('%Y-%m-%dT%H:%M:%SZ', 'now')
FROM contact_updates c JOIN beneficiary_paths b ON b.beneficiary_id = c.beneficiary_id
WHERE c.decision = 'PENDING';
INSERT INTO tasks (id, kind, subject_id, path, summary, maker_id, maker, status, policy, created_at)
SELECT randomblob(16), 'ENTITLEMENT_APPROVAL', e.id, b.path, 'above the single-payment limit', NULL, 'system', 'PENDING',
       (SELECT policy FROM task_policies WHERE kind = 'ENTITLEMENT_APPROVAL'), strftime('%Y-%m-%dT%H:%M:%SZ', 'now')
FROM entitlements e JOIN beneficiary_paths b ON b.beneficiary_id = e.beneficiary_id
WHERE e.status = 'AWAITING_APPROVAL';
