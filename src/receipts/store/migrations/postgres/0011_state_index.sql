-- Derived states (docs/doors.md): which receipts file under which state and key. Derived from
-- the journal by the projector (receipts.project) in the transaction that appends them, or on
-- the next write or answer for rows the ledger did not write (direct inserts); `receipts state
-- --rebuild` makes it again from the journal. Keys hold payload values (a target's id): only
-- the service reads and writes them; end users get answers through the service's read rules.
CREATE TABLE public.ledger_state_index_v0 (
    state      text   NOT NULL,
    state_key  text   NOT NULL,   -- the RFC 8785 JSON array of the key's parts
    seq        bigint NOT NULL,
    logical_id uuid   NOT NULL,
    PRIMARY KEY (state, state_key, seq)
);
CREATE INDEX ledger_state_index_v0_seq ON public.ledger_state_index_v0 (seq);  -- an entity's states

-- How far the projector has read the journal: every receipt below next_seq is indexed, by the
-- state definitions whose digest is `definitions`.
CREATE TABLE public.ledger_projector_v0 (
    name        text   PRIMARY KEY,
    next_seq    bigint NOT NULL CHECK (next_seq >= 0),
    definitions text   NOT NULL
);

ALTER TABLE public.ledger_state_index_v0 ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.ledger_projector_v0 ENABLE ROW LEVEL SECURITY;
CREATE POLICY ledger_state_index_service ON public.ledger_state_index_v0 FOR ALL TO service_role
    USING (true) WITH CHECK (true);
CREATE POLICY ledger_projector_service ON public.ledger_projector_v0 FOR ALL TO service_role
    USING (true) WITH CHECK (true);
REVOKE ALL ON public.ledger_state_index_v0, public.ledger_projector_v0 FROM anon, authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON public.ledger_state_index_v0, public.ledger_projector_v0
    TO service_role;
