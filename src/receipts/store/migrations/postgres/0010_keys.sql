-- The ledger's checkpoint signing keys (public halves), first to current. The first key is
-- recorded when it is made (`receipts keys generate`) or at the first checkpoint; every later
-- one by a rotation statement signed by the key before it and by itself. Checkpoints are
-- signed only with the current key, and `verify` follows the rotations from the first.
-- Append-only like the log; readable by anyone (proofs are public), written by the service.
CREATE TABLE public.tlog_keys (
    idx          integer     PRIMARY KEY CHECK (idx >= 0),     -- 0 is the first key
    verifier_key text        NOT NULL UNIQUE,                   -- <name>+<hex key id>+<base64 key>
    from_size    bigint      NOT NULL CHECK (from_size >= 0),   -- signs checkpoints of this size on
    rotation     text,                                          -- the signed rotation statement
    recorded_at  timestamptz NOT NULL,
    CHECK ((idx = 0) = (rotation IS NULL))
);

CREATE TRIGGER tlog_keys_no_change BEFORE UPDATE OR DELETE ON public.tlog_keys
    FOR EACH ROW EXECUTE FUNCTION public.receipts_refuse_change();
CREATE TRIGGER tlog_keys_no_truncate BEFORE TRUNCATE ON public.tlog_keys
    FOR EACH STATEMENT EXECUTE FUNCTION public.receipts_refuse_change();

ALTER TABLE public.tlog_keys ENABLE ROW LEVEL SECURITY;
CREATE POLICY tlog_keys_read ON public.tlog_keys FOR SELECT TO anon, authenticated USING (true);
CREATE POLICY tlog_keys_service ON public.tlog_keys FOR ALL TO service_role
    USING (true) WITH CHECK (true);
GRANT SELECT ON public.tlog_keys TO anon, authenticated;
GRANT SELECT, INSERT ON public.tlog_keys TO service_role;
