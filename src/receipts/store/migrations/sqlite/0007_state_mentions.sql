-- Which derived states name an entity in their value rather than in their key (a community's
-- members, the user who requested a refund: the state's "about" in the catalog), so that
-- `receipts why user:…` finds them. Derived from the journal with ledger_state_index_v0 and
-- made again with it.
CREATE TABLE ledger_state_mentions_v0 (
    entity    TEXT NOT NULL,   -- TYPE:ID
    state     TEXT NOT NULL,
    state_key TEXT NOT NULL,   -- the RFC 8785 JSON array of the key's parts
    PRIMARY KEY (entity, state, state_key)
) WITHOUT ROWID;
