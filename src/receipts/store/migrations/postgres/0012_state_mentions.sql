-- Which derived states name an entity in their value rather than in their key (a community's
-- members, the user who requested a refund: the state's "about" in the catalog), so that
-- `receipts why user:…` finds them. Derived from the journal with ledger_state_index_v0 and
-- made again with it; like it, only the service reads and writes it.
CREATE TABLE public.ledger_state_mentions_v0 (
    entity    text NOT NULL,   -- TYPE:ID
    state     text NOT NULL,
    state_key text NOT NULL,   -- the RFC 8785 JSON array of the key's parts
    PRIMARY KEY (entity, state, state_key)
);

ALTER TABLE public.ledger_state_mentions_v0 ENABLE ROW LEVEL SECURITY;
CREATE POLICY ledger_state_mentions_service ON public.ledger_state_mentions_v0 FOR ALL
    TO service_role USING (true) WITH CHECK (true);
REVOKE ALL ON public.ledger_state_mentions_v0 FROM anon, authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON public.ledger_state_mentions_v0 TO service_role;
