-- Policies of the security review (issue 14).

-- A REJECTED payroll's entitlements no longer hold their beneficiaries' place in the cycle, so
-- a new generation can cover them; approved and pending ones still do (never paid twice). The
-- one-per-cycle key becomes a unique index over the entitlements not rejected. A UNIQUE
-- constraint cannot be dropped, so the table is rebuilt (legacy renaming keeps the triggers
-- on other tables, which name `entitlements`, as they are).
PRAGMA legacy_alter_table = ON;
CREATE TABLE entitlements_new (
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
    -- Set when the payroll is rejected: the entitlement stays as history but is not live.
    rejected_at        TEXT
) WITHOUT ROWID;
-- Every row is copied (a LEFT JOIN: an entitlement whose payroll were missing is kept, live);
-- `rejected_at` is written as the server writes times (milliseconds, UTC).
INSERT INTO entitlements_new (id, payroll_id, plan_id, cycle_id, beneficiary_id, recipient_id,
    amount_minor, currency, goods, status, rejected_at)
SELECT e.id, e.payroll_id, e.plan_id, e.cycle_id, e.beneficiary_id, e.recipient_id,
    e.amount_minor, e.currency, e.goods, e.status,
    CASE WHEN p.status = 'REJECTED' THEN strftime('%Y-%m-%dT%H:%M:%fZ', 'now') END
FROM entitlements e LEFT JOIN payrolls p ON p.id = e.payroll_id;
-- The old table is dropped only if the copy holds as many rows: otherwise the CHECK fails
-- and the whole migration rolls back.
CREATE TEMP TABLE migration_check (copied_all INTEGER NOT NULL CHECK (copied_all));
INSERT INTO migration_check
SELECT (SELECT count(*) FROM entitlements) = (SELECT count(*) FROM entitlements_new);
DROP TABLE migration_check;
DROP TABLE entitlements;
ALTER TABLE entitlements_new RENAME TO entitlements;
PRAGMA legacy_alter_table = OFF;
CREATE INDEX entitlements_payroll ON entitlements (payroll_id);
-- One live entitlement per beneficiary and cycle, however often generation runs (a
-- beneficiary belongs to one plan, so this is per plan too, with a shorter key).
CREATE UNIQUE INDEX entitlements_live ON entitlements (cycle_id, beneficiary_id)
    WHERE rejected_at IS NULL;
CREATE TRIGGER replica_entitlements_upd AFTER UPDATE ON entitlements
WHEN (SELECT status FROM payrolls WHERE id = NEW.payroll_id) IN ('APPROVED', 'RECONCILED', 'CLOSED')
BEGIN
    INSERT INTO replica_log (kind, row_id, path)
    SELECT 8, NEW.id, path FROM beneficiary_paths WHERE beneficiary_id = NEW.beneficiary_id;
END;
-- A rejected payroll's entitlements have nothing left to approve: their open approvals are
-- withdrawn, as rejecting a payroll now does, so a new generation's tasks are the only ones.
UPDATE tasks SET status = 'WITHDRAWN', decided_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
WHERE kind = 'ENTITLEMENT_APPROVAL' AND status = 'PENDING'
  AND subject_id IN (SELECT id FROM entitlements WHERE rejected_at IS NOT NULL);

-- Who created each account (NULL: unknown, the CLI or the demo), so a policy can refuse an
-- approver the maker created: an administrator must not approve their own payroll through
-- accounts of their own making.
ALTER TABLE users ADD COLUMN created_by BLOB REFERENCES users (id);
-- On by default for money: payroll approval and sign-off, entitlements above the limit and
-- timesheets (which pay), in the policies and in the tasks still open (a security fix,
-- unlike a policy change, reaches the tasks already waiting).
UPDATE task_policies SET policy = json_set(policy, '$.approvers_not_created_by_maker', json('true'))
WHERE kind IN ('PAYROLL_APPROVAL', 'PAYROLL_SIGN_OFF', 'ENTITLEMENT_APPROVAL', 'TIMESHEET');
UPDATE tasks SET policy = json_set(policy, '$.approvers_not_created_by_maker', json('true'))
WHERE status = 'PENDING'
  AND kind IN ('PAYROLL_APPROVAL', 'PAYROLL_SIGN_OFF', 'ENTITLEMENT_APPROVAL', 'TIMESHEET');

-- A status changed at the office waits for four eyes as a field proposal does: the request is
-- kept here, applied when its OFFICE_STATUS_CHANGE task is approved. A policy with no tiers
-- (allowed for this kind only) applies office changes at once.
CREATE TABLE status_requests (
    id              BLOB PRIMARY KEY,
    beneficiary_id  BLOB NOT NULL REFERENCES beneficiaries (id),
    from_status     TEXT NOT NULL,
    to_status       TEXT NOT NULL,
    reason          TEXT NOT NULL,
    requested_by    TEXT NOT NULL,
    requested_at    TEXT NOT NULL,
    decision        TEXT NOT NULL DEFAULT 'PENDING' CHECK (decision IN ('PENDING', 'APPROVED', 'REJECTED'))
) WITHOUT ROWID;
CREATE INDEX status_requests_beneficiary ON status_requests (beneficiary_id);
INSERT INTO task_policies (kind, policy, updated_by, updated_at) VALUES
    ('OFFICE_STATUS_CHANGE', '{"tiers":[{"level":null,"completion":"ANY"}],"second_factor":false}', 'migration', strftime('%Y-%m-%dT%H:%M:%SZ', 'now'));
