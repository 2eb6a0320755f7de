-- Partitioned feeds (issue 16). A location path is a partition: every replica_log and
-- doc_changes entry already names the one it belongs to ('' for programme-wide rows), so a
-- download reads each of the device's partitions from its own (path, seq) index range, and
-- its cost follows what changed there, not what the rest of the country did.

-- The log keeps one entry per row and partition, its latest: a page sends a row's current
-- state whichever entry it meets, so the older ones only made first downloads walk history.
DELETE FROM replica_log
WHERE seq NOT IN (SELECT MAX(seq) FROM replica_log GROUP BY path, kind, row_id);

-- Covering: a page reads kind and row_id from the index alone.
CREATE INDEX replica_log_partition ON replica_log (path, seq, kind, row_id);
CREATE INDEX replica_log_row ON replica_log (path, kind, row_id);

-- Compaction as rows are written. After the insert, so the newest entry (the highest seq)
-- is never the one deleted and a seq is never handed out twice.
CREATE TRIGGER replica_log_compact AFTER INSERT ON replica_log
BEGIN
    DELETE FROM replica_log
    WHERE path = NEW.path AND kind = NEW.kind AND row_id = NEW.row_id AND seq < NEW.seq;
END;

CREATE INDEX doc_changes_partition ON doc_changes (path, seq);
