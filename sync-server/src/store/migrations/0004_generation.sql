-- Payroll generation reads a plan's ACTIVE beneficiaries in id order and needs each one's
-- person or household: with both in the index, the read is one walk of it, not two seeks per
-- beneficiary (a million-beneficiary plan spent a third of generation there). Same columns
-- first, so every query that used the old index uses this one.
CREATE INDEX beneficiaries_plan_status_members
    ON beneficiaries (plan_id, status, id, individual_id, group_id);
DROP INDEX beneficiaries_plan_status;
