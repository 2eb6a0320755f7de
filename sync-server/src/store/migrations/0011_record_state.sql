-- Protocol 2 (issue 16): other devices' payouts, hand-outs and work days reach a device as
-- compact state rows in their beneficiary's partition (replica row kinds 11, 12 and 13), not
-- as documents with their history in the changes feed. Records merge logs them as they are
-- stored or voided (`sync::store::records`); those already on the server enter the feed once.
INSERT INTO replica_log (kind, row_id, path)
SELECT CASE d.kind WHEN 'payout' THEN 11 WHEN 'distribution' THEN 12 ELSE 13 END, d.id, bp.path
FROM documents d JOIN beneficiary_paths bp ON bp.beneficiary_id = d.beneficiary_id
WHERE d.kind IN ('payout', 'distribution', 'timesheet');

-- A move takes them along, as it takes the beneficiary's rows (`replica_individuals_upd`):
-- logged under the old place (a tombstone there) and the new.
CREATE TRIGGER replica_record_state_follow_individual AFTER UPDATE OF location_id ON individuals
WHEN OLD.location_id IS NOT NEW.location_id
BEGIN
    INSERT INTO replica_log (kind, row_id, path)
    SELECT CASE d.kind WHEN 'payout' THEN 11 WHEN 'distribution' THEN 12 ELSE 13 END, d.id, l.path
    FROM beneficiaries b JOIN documents d ON d.beneficiary_id = b.id, locations l
    WHERE b.individual_id = NEW.id AND d.kind IN ('payout', 'distribution', 'timesheet')
      AND l.id IN (OLD.location_id, NEW.location_id);
END;
CREATE TRIGGER replica_record_state_follow_group AFTER UPDATE OF location_id ON groups
WHEN OLD.location_id IS NOT NEW.location_id
BEGIN
    INSERT INTO replica_log (kind, row_id, path)
    SELECT CASE d.kind WHEN 'payout' THEN 11 WHEN 'distribution' THEN 12 ELSE 13 END, d.id, l.path
    FROM beneficiaries b JOIN documents d ON d.beneficiary_id = b.id, locations l
    WHERE b.group_id = NEW.id AND d.kind IN ('payout', 'distribution', 'timesheet')
      AND l.id IN (OLD.location_id, NEW.location_id);
END;
