-- Read grants for multi-party receipts: user_id may read every receipt about the entity
-- (the same table as on PostgreSQL, where row-level security uses it).
CREATE TABLE ledger_audience_v0 (
    entity_type TEXT NOT NULL,
    entity_id   TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    granted_at  TEXT NOT NULL,
    granted_by  TEXT,
    PRIMARY KEY (entity_type, entity_id, user_id)
) WITHOUT ROWID;
CREATE INDEX ledger_audience_v0_user ON ledger_audience_v0 (user_id);
CREATE INDEX ledger_events_v0_owner ON ledger_events_v0 (owner_user_id, seq);
