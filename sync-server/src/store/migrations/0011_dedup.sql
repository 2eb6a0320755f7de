-- Likely duplicates found by de-duplication runs (`outpost-server dedup`), kept for review.
-- A pair is kept once, lower id first. A later run refreshes an OPEN pair's score and
-- evidence, WITHDRAWS an open pair among its people that it no longer finds (and reopens it
-- if found again); a pair decided DISTINCT is never proposed again, whatever later runs find.
CREATE TABLE dedup_candidates (
    first_id     BLOB NOT NULL REFERENCES individuals (id),
    second_id    BLOB NOT NULL REFERENCES individuals (id),
    probability  REAL NOT NULL CHECK (probability >= 0 AND probability <= 1),
    weight       REAL NOT NULL,
    -- The per-field evidence, as the run wrote it (JSON array).
    evidence     TEXT NOT NULL,
    status       TEXT NOT NULL DEFAULT 'OPEN' CHECK (status IN ('OPEN', 'WITHDRAWN', 'DISTINCT', 'MERGED')),
    found_at     TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (first_id, second_id),
    CHECK (first_id < second_id)
) WITHOUT ROWID;
CREATE INDEX dedup_candidates_second ON dedup_candidates (second_id);
CREATE INDEX dedup_candidates_open ON dedup_candidates (status, probability);
