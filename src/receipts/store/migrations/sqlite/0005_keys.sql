-- The ledger's checkpoint signing keys (public halves), first to current. The first key is
-- recorded when it is made (`receipts keys generate`) or at the first checkpoint; every later
-- one by a rotation statement signed by the key before it and by itself. Checkpoints are
-- signed only with the current key, and `verify` follows the rotations from the first.
CREATE TABLE tlog_keys (
    idx          INTEGER PRIMARY KEY CHECK (idx >= 0),     -- 0 is the first key
    verifier_key TEXT    NOT NULL UNIQUE,                   -- <name>+<hex key id>+<base64 key>
    from_size    INTEGER NOT NULL CHECK (from_size >= 0),   -- signs checkpoints of this size on
    rotation     TEXT,                                      -- the signed rotation statement
    recorded_at  TEXT    NOT NULL,
    CHECK ((idx = 0) = (rotation IS NULL))
);

CREATE TRIGGER tlog_keys_no_update BEFORE UPDATE ON tlog_keys
BEGIN SELECT RAISE(ABORT, 'tlog_keys is append-only: UPDATE refused'); END;
CREATE TRIGGER tlog_keys_no_delete BEFORE DELETE ON tlog_keys
BEGIN SELECT RAISE(ABORT, 'tlog_keys is append-only: DELETE refused'); END;
