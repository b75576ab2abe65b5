-- The Merkle log over the journal (RFC 9162). Level-0 nodes are the leaf hashes (journal or
-- ledger_entries_v0); this table holds every complete subtree of level >= 1: node (level, idx)
-- covers leaves [idx * 2^level, (idx + 1) * 2^level). Any root or proof reads O(log n) of them.
CREATE TABLE public.tlog_nodes (
    level smallint NOT NULL CHECK (level >= 1),
    idx   bigint   NOT NULL CHECK (idx >= 0),
    hash  bytea    NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (level, idx)
);

-- One row per integration step: the tree now covers the first `size` receipts.
CREATE TABLE public.tlog_tree_heads (
    size          bigint      PRIMARY KEY CHECK (size >= 0),
    root_hash     bytea       NOT NULL CHECK (length(root_hash) = 32),
    integrated_at timestamptz NOT NULL
);

-- Signed checkpoints (C2SP signed notes), all kept.
CREATE TABLE public.tlog_checkpoints (
    size      bigint      PRIMARY KEY CHECK (size >= 0),
    root_hash bytea       NOT NULL CHECK (length(root_hash) = 32),
    origin    text        NOT NULL,
    note      text        NOT NULL,
    signed_at timestamptz NOT NULL
);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['tlog_nodes', 'tlog_tree_heads', 'tlog_checkpoints'] LOOP
        EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE OR DELETE ON public.%I FOR EACH ROW '
                       'EXECUTE FUNCTION public.receipts_refuse_change()', t || '_no_change', t);
        EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON public.%I FOR EACH STATEMENT '
                       'EXECUTE FUNCTION public.receipts_refuse_change()', t || '_no_truncate', t);
        EXECUTE format('ALTER TABLE public.%I ENABLE ROW LEVEL SECURITY', t);
        -- Tree nodes and checkpoints are public: anyone may check proofs against them.
        EXECUTE format('CREATE POLICY %I ON public.%I FOR SELECT TO anon, authenticated USING (true)',
                       t || '_read', t);
        EXECUTE format('CREATE POLICY %I ON public.%I FOR ALL TO service_role USING (true) '
                       'WITH CHECK (true)', t || '_service', t);
        EXECUTE format('GRANT SELECT ON public.%I TO anon, authenticated', t);
        EXECUTE format('GRANT SELECT, INSERT ON public.%I TO service_role', t);
    END LOOP;
END
$$;
