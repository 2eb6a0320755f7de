-- The protocol version the enrolment's cursors belong to (issue 16). Protocol 2 sends other
-- devices' payouts, hand-outs and work days as replica rows and leaves their documents out of
-- the changes feed, so a cursor kept under one version would skip them under the other: when
-- the server answers in another version, the sync moves the feed that changed back to 0.
ALTER TABLE enrolments ADD COLUMN feeds_protocol INTEGER NOT NULL DEFAULT 1;
