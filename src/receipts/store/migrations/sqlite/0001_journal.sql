-- The journal: one row per receipt, never updated, never deleted.
CREATE TABLE ledger_events_v0 (
    seq            INTEGER PRIMARY KEY,          -- rowid alias: 0-based, dense, commit order
    id             TEXT    NOT NULL UNIQUE,
    logical_id     TEXT    NOT NULL,
    revision       INTEGER NOT NULL CHECK (revision >= 0),
    op             TEXT    NOT NULL CHECK (op IN ('assert', 'amend', 'void', 'restate')),
    supersedes_id  TEXT    UNIQUE,               -- a receipt is superseded at most once: chains never fork
    domain         TEXT    NOT NULL,
    event_type     TEXT    NOT NULL,
    entity_type    TEXT    NOT NULL,
    entity_id      TEXT    NOT NULL,
    owner_user_id  TEXT,
    producer       TEXT    NOT NULL CHECK (producer IN ('client', 'edge_function', 'service_role_pipeline')),
    occurred_at    TEXT    NOT NULL,             -- RFC 3339 UTC, microseconds: sorts as text
    recorded_at    TEXT    NOT NULL,
    correlation_id TEXT,
    payload        TEXT    NOT NULL,             -- JSON
    entry          BLOB    NOT NULL,             -- canonical entry bytes (RFC 8785), verbatim
    leaf_hash      BLOB    NOT NULL CHECK (length(leaf_hash) = 32),
    UNIQUE (logical_id, revision)
);

CREATE INDEX ledger_events_v0_entity ON ledger_events_v0 (entity_type, entity_id, seq);
CREATE INDEX ledger_events_v0_correlation ON ledger_events_v0 (correlation_id, seq)
    WHERE correlation_id IS NOT NULL;
CREATE INDEX ledger_events_v0_type ON ledger_events_v0 (event_type, seq);
CREATE INDEX ledger_events_v0_occurred ON ledger_events_v0 (occurred_at);

-- Append-only, enforced by the database itself, whoever connects.
CREATE TRIGGER ledger_events_v0_no_update BEFORE UPDATE ON ledger_events_v0
BEGIN
    SELECT RAISE(ABORT, 'ledger_events_v0 is append-only: UPDATE refused');
END;

CREATE TRIGGER ledger_events_v0_no_delete BEFORE DELETE ON ledger_events_v0
BEGIN
    SELECT RAISE(ABORT, 'ledger_events_v0 is append-only: DELETE refused');
END;
