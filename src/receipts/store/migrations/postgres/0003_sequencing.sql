-- Sequencing: every row gets `seq` = (max seq) + 1 while holding a transaction-scoped advisory
-- lock, which is released only at COMMIT or ROLLBACK. The next writer cannot read max(seq)
-- before this transaction has committed, so seqs are dense (a rollback frees its seqs with the
-- lock) and in commit order. The SELECT after the lock takes a fresh snapshot because this is
-- a VOLATILE function under READ COMMITTED (the default; writers must not use REPEATABLE READ
-- or SERIALIZABLE, which would see a stale max and fail on the primary key instead).
--
-- Rows from the receipts library arrive validated, hashed and sequenced under the same lock
-- (the library sets receipts.sequencer = on); every other insert — a Supabase client through
-- RLS, psql — is checked here against the catalog, its producer set from the JWT role, its
-- revision placed on the current head, and its bytes left to `receipts integrate`.
CREATE FUNCTION public.ledger_events_v0_before_insert() RETURNS trigger
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    invoker   text := current_setting('role');           -- SET ROLE survives SECURITY DEFINER
    claims    jsonb;
    cat       public.ledger_catalog_v0;
    head      public.ledger_events_v0;
    missing   text;
BEGIN
    IF NEW.entry IS NOT NULL AND NEW.seq IS NOT NULL
       AND current_setting('receipts.sequencer', true) = 'on'
       AND invoker NOT IN ('anon', 'authenticated') THEN
        RETURN NEW;  -- the library validated, hashed and sequenced this row under the lock
    END IF;
    claims := coalesce(nullif(current_setting('request.jwt.claims', true), ''), '{}')::jsonb;

    NEW.entry := NULL;       -- never trust bytes or hashes from a direct writer:
    NEW.leaf_hash := NULL;   -- integration derives them from the row
    NEW.producer := CASE
        WHEN invoker = 'authenticated' OR claims ->> 'role' = 'authenticated' THEN 'client'
        WHEN claims ->> 'receipts_producer' = 'edge_function' THEN 'edge_function'
        ELSE 'service_role_pipeline'
    END;
    IF NEW.producer = 'client' THEN
        NEW.owner_user_id := coalesce(NEW.owner_user_id, (claims ->> 'sub'));
    END IF;

    SELECT * INTO cat FROM public.ledger_catalog_v0 c WHERE c.event_type = NEW.event_type;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown event type %', quote_literal(NEW.event_type)
            USING ERRCODE = 'RC422', DETAIL = '/event_type';
    END IF;
    IF cat.domain <> NEW.domain THEN
        RAISE EXCEPTION 'event type % belongs to domain %', quote_literal(NEW.event_type),
            quote_literal(cat.domain) USING ERRCODE = 'RC422', DETAIL = '/domain';
    END IF;
    IF NOT NEW.entity_type = ANY (cat.entity_types) THEN
        RAISE EXCEPTION 'expected one of % for %', cat.entity_types, quote_literal(NEW.event_type)
            USING ERRCODE = 'RC422', DETAIL = '/entity_type';
    END IF;
    IF NOT NEW.producer = ANY (cat.writers) THEN
        RAISE EXCEPTION 'producer % may not write %; allowed writers: %',
            quote_literal(NEW.producer), quote_literal(NEW.event_type), cat.writers
            USING ERRCODE = 'RC403', DETAIL = '/event_type';
    END IF;

    IF NOT NEW.payload ? 'schema_version' THEN
        NEW.payload := NEW.payload || jsonb_build_object('schema_version', 0);
    END IF;
    IF NOT cat.own_source THEN
        IF NOT NEW.payload ? 'source' THEN
            NEW.payload := NEW.payload || jsonb_build_object('source', NEW.producer);
        ELSIF NEW.payload ->> 'source' IS DISTINCT FROM NEW.producer THEN
            RAISE EXCEPTION 'source % contradicts the writer''s producer %',
                quote_literal(NEW.payload ->> 'source'), quote_literal(NEW.producer)
                USING ERRCODE = 'RC422', DETAIL = '/payload/source';
        END IF;
    END IF;
    IF NEW.op = 'void' THEN
        SELECT k INTO missing FROM unnest(ARRAY['void_reason', 'voided_by']) k
            WHERE NOT NEW.payload ? k LIMIT 1;
    ELSE
        SELECT k INTO missing FROM unnest(cat.required) k WHERE NOT NEW.payload ? k LIMIT 1;
    END IF;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'required property is missing'
            USING ERRCODE = 'RC422', DETAIL = '/payload/' || missing;
    END IF;

    NEW.id := coalesce(NEW.id, gen_random_uuid());
    NEW.recorded_at := date_trunc('microseconds', clock_timestamp());
    NEW.correlation_id := NEW.payload ->> 'correlation_id';

    PERFORM pg_advisory_xact_lock(7236601);  -- the ledger's sequencing lock (see above)

    IF NEW.op = 'assert' THEN
        IF NEW.supersedes_id IS NOT NULL THEN
            RAISE EXCEPTION 'only a revision (amend, void, restate) supersedes a receipt'
                USING ERRCODE = 'RC422', DETAIL = '/supersedes_id';
        END IF;
        NEW.logical_id := NEW.id;
        NEW.revision := 0;
    ELSE
        SELECT * INTO head FROM public.ledger_events_v0 e WHERE e.id = NEW.supersedes_id;
        IF NOT FOUND THEN
            RAISE EXCEPTION '% supersedes an unknown receipt %', NEW.op, NEW.supersedes_id
                USING ERRCODE = 'RC404', DETAIL = '/supersedes_id';
        END IF;
        IF EXISTS (SELECT 1 FROM public.ledger_events_v0 e WHERE e.supersedes_id = head.id) THEN
            RAISE EXCEPTION '% is not the current head of logical event %', head.id, head.logical_id
                USING ERRCODE = 'RC409', DETAIL = '/supersedes_id';
        END IF;
        IF (NEW.domain, NEW.event_type, NEW.entity_type, NEW.entity_id)
           IS DISTINCT FROM (head.domain, head.event_type, head.entity_type, head.entity_id) THEN
            RAISE EXCEPTION 'a revision cannot change what the event is about'
                USING ERRCODE = 'RC422', DETAIL = '/entity_id';
        END IF;
        IF (NEW.op = 'restate') <> (head.op = 'void') THEN
            RAISE EXCEPTION '% is not allowed on a head whose op is %', NEW.op, head.op
                USING ERRCODE = 'RC409', DETAIL = '/op';
        END IF;
        NEW.logical_id := head.logical_id;
        NEW.revision := head.revision + 1;
        NEW.owner_user_id := coalesce(NEW.owner_user_id, head.owner_user_id);
        NEW.occurred_at := coalesce(NEW.occurred_at, head.occurred_at);
    END IF;
    NEW.occurred_at := coalesce(NEW.occurred_at, NEW.recorded_at);
    NEW.seq := (SELECT coalesce(max(e.seq), -1) + 1 FROM public.ledger_events_v0 e);
    RETURN NEW;
END
$$;

CREATE TRIGGER ledger_events_v0_before_insert BEFORE INSERT ON public.ledger_events_v0
    FOR EACH ROW EXECUTE FUNCTION public.ledger_events_v0_before_insert();

-- The library's write transactions start here: one round trip marks the transaction as the
-- sequencer, takes the sequencing lock, then (a fresh snapshot, see above) reads the next seq.
CREATE FUNCTION public.ledger_events_v0_begin() RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM set_config('receipts.sequencer', 'on', true);
    PERFORM pg_advisory_xact_lock(7236601);
    RETURN (SELECT coalesce(max(seq), -1) + 1 FROM public.ledger_events_v0);
END
$$;
