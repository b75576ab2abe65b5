-- Derived states (docs/doors.md): which receipts file under which state and key. Derived from
-- the journal by the projector (receipts.project) in the transaction that appends them, or on
-- the next write or answer for rows the ledger did not write; `receipts state --rebuild` makes
-- it again from the journal. A state's value is folded from the receipts found here.
CREATE TABLE ledger_state_index_v0 (
    state      TEXT    NOT NULL,
    state_key  TEXT    NOT NULL,   -- the RFC 8785 JSON array of the key's parts
    seq        INTEGER NOT NULL,
    logical_id TEXT    NOT NULL,
    PRIMARY KEY (state, state_key, seq)
) WITHOUT ROWID;
CREATE INDEX ledger_state_index_v0_seq ON ledger_state_index_v0 (seq);  -- an entity's states

-- How far the projector has read the journal: every receipt below `next_seq` is indexed, by
-- the state definitions whose digest is `definitions`.
CREATE TABLE ledger_projector_v0 (
    name        TEXT    PRIMARY KEY,
    next_seq    INTEGER NOT NULL CHECK (next_seq >= 0),
    definitions TEXT    NOT NULL
);
