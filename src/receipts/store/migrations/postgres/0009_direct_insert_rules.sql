-- Direct inserts: what the ledger cannot canonicalise is refused at insert, a client's revision
-- is checked against the head it supersedes under the sequencing lock, and no internal function
-- is executable by the API roles.
--
-- 1. The canonical-JSON rules (integers within ±(2^53-1), numbers exact as IEEE-754 doubles,
--    nesting, payload size, times in years 1..9999 UTC) live in receipts_private.ledger_row_problem,
--    which `receipts migrate` regenerates from the Python constants (receipts.limits) on every
--    run, as it regenerates the domain CHECK from the catalog. Until then the stub below refuses
--    every direct insert, as the empty catalog table does.
-- 2. The insert policy no longer calls a function to check who owns the superseded receipt: an
--    RLS policy runs its functions with the caller's privileges (so they must be executable by
--    `authenticated`, and PostgREST offers them as RPCs), and it checked outside the sequencing
--    lock. The trigger (SECURITY DEFINER) checks it under the lock instead, before any other check
--    that could tell a client something about a receipt it cannot read.
-- 3. EXECUTE on every function of the ledger is revoked from PUBLIC and the API roles (Supabase
--    grants EXECUTE on new functions in `public` to anon, authenticated and service_role by
--    default). Triggers fire whatever the inserting role's privileges on their functions; the
--    library calls ledger_events_v0_begin() as the tables' owner.
CREATE SCHEMA IF NOT EXISTS receipts_private;
REVOKE ALL ON SCHEMA receipts_private FROM PUBLIC;

CREATE FUNCTION receipts_private.ledger_row_problem(
    occurred_at timestamptz, recorded_at timestamptz, payload jsonb
) RETURNS text[]
LANGUAGE sql STABLE AS $$
    SELECT ARRAY['/payload', 'the ledger''s payload rules are not installed: run `receipts migrate`']
$$;

DROP POLICY ledger_events_v0_insert ON public.ledger_events_v0;
CREATE POLICY ledger_events_v0_insert ON public.ledger_events_v0 FOR INSERT TO authenticated
WITH CHECK (owner_user_id = (SELECT auth.uid())::text);
DROP FUNCTION public.ledger_events_v0_owned_by_caller(uuid);

CREATE OR REPLACE FUNCTION public.ledger_events_v0_before_insert() RETURNS trigger
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    invoker   text := current_setting('role');           -- SET ROLE survives SECURITY DEFINER
    claims    jsonb;
    caller    text;                                      -- the client's user id (auth.uid())
    cat       public.ledger_catalog_v0;
    head      public.ledger_events_v0;
    found_head boolean;
    known     boolean;
    missing   text;
    problem   text[];
BEGIN
    IF NEW.entry IS NOT NULL AND NEW.seq IS NOT NULL
       AND current_setting('receipts.sequencer', true) = 'on'
       AND invoker NOT IN ('anon', 'authenticated') THEN
        RETURN NEW;  -- the library validated, hashed and sequenced this row under the lock
    END IF;
    claims := coalesce(nullif(current_setting('request.jwt.claims', true), ''), '{}')::jsonb;
    caller := nullif(coalesce(current_setting('request.jwt.claim.sub', true), claims ->> 'sub'), '');

    NEW.entry := NULL;       -- never trust bytes or hashes from a direct writer:
    NEW.leaf_hash := NULL;   -- integration derives them from the row
    NEW.producer := CASE
        WHEN invoker = 'authenticated' OR claims ->> 'role' = 'authenticated' THEN 'client'
        WHEN claims ->> 'receipts_producer' = 'edge_function' THEN 'edge_function'
        ELSE 'service_role_pipeline'
    END;
    IF NEW.producer = 'client' THEN
        NEW.owner_user_id := coalesce(NEW.owner_user_id, caller);
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
    -- Everything integration will need to canonicalise the row (numbers, nesting, size, times).
    problem := receipts_private.ledger_row_problem(NEW.occurred_at, NULL, NEW.payload);
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION '%', problem[2] USING ERRCODE = 'RC422', DETAIL = problem[1];
    END IF;

    NEW.id := coalesce(NEW.id, gen_random_uuid());
    NEW.recorded_at := date_trunc('microseconds', clock_timestamp());
    -- The column the trace query reads: exactly the payload's correlation_id, a string.
    IF NEW.payload ? 'correlation_id' AND (jsonb_typeof(NEW.payload -> 'correlation_id') <> 'string'
                                           OR NEW.payload ->> 'correlation_id' = '') THEN
        RAISE EXCEPTION 'expected a non-empty string'
            USING ERRCODE = 'RC422', DETAIL = '/payload/correlation_id';
    END IF;
    NEW.correlation_id := NEW.payload ->> 'correlation_id';

    PERFORM pg_advisory_xact_lock(7236601);  -- the ledger's sequencing lock (see 0003)

    IF NEW.op = 'assert' THEN
        IF NEW.supersedes_id IS NOT NULL THEN
            RAISE EXCEPTION 'only a revision (amend, void, restate) supersedes a receipt'
                USING ERRCODE = 'RC422', DETAIL = '/supersedes_id';
        END IF;
        NEW.logical_id := NEW.id;
        NEW.revision := 0;
    ELSE
        -- Under the lock, and first: a client learns nothing about a receipt it cannot read.
        -- Another user's receipt, head or not, committed or about to be, gets the answer of an
        -- id that does not exist (the message names neither the id nor anything about it).
        SELECT * INTO head FROM public.ledger_events_v0 e WHERE e.id = NEW.supersedes_id;
        found_head := FOUND;
        known := found_head
            AND (NEW.producer <> 'client' OR coalesce(head.owner_user_id = caller, false));
        IF NOT known AND found_head AND EXISTS (
            SELECT 1 FROM public.ledger_audience_v0 a
            WHERE a.entity_type = head.entity_type AND a.entity_id = head.entity_id
              AND a.user_id = caller
        ) THEN
            RAISE EXCEPTION 'a client may revise only its own receipts'
                USING ERRCODE = 'RC403', DETAIL = '/supersedes_id';
        END IF;
        IF NOT known THEN
            RAISE EXCEPTION '% supersedes an unknown receipt', NEW.op
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

REVOKE ALL ON FUNCTION public.ledger_events_v0_before_insert(), public.ledger_events_v0_begin(),
    public.receipts_refuse_change(),
    receipts_private.ledger_row_problem(timestamptz, timestamptz, jsonb)
    FROM PUBLIC, anon, authenticated, service_role;
