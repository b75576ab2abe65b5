-- Smaller secondary indexes on the journal: cheaper appends, a smaller file
-- (docs/benchmarks.md §5). Every entry of an index on a rowid table already ends with the rowid,
-- here seq: the explicit seq column stored it twice (a sixth of the entity index), and queries
-- still get `seq > ?` and ORDER BY seq from the index, through the rowid. Receipts without an
-- owner (pipelines' own) get no owner entry: `owner_user_id = ?` implies IS NOT NULL, so the
-- partial index still serves it.
DROP INDEX ledger_events_v0_entity;
CREATE INDEX ledger_events_v0_entity ON ledger_events_v0 (entity_type, entity_id);
DROP INDEX ledger_events_v0_correlation;
CREATE INDEX ledger_events_v0_correlation ON ledger_events_v0 (correlation_id)
    WHERE correlation_id IS NOT NULL;
DROP INDEX ledger_events_v0_type;
CREATE INDEX ledger_events_v0_type ON ledger_events_v0 (event_type);
DROP INDEX ledger_events_v0_owner;
CREATE INDEX ledger_events_v0_owner ON ledger_events_v0 (owner_user_id)
    WHERE owner_user_id IS NOT NULL;
