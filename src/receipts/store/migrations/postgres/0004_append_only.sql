-- Append-only, for every role including the owner: UPDATE, DELETE and TRUNCATE are refused by
-- triggers. (A superuser can still disable triggers; that is outside any SQL-level guarantee,
-- which is why every receipt is also in the Merkle log: rewriting is detectable by `verify`.)
CREATE FUNCTION public.receipts_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'RC405';
END
$$;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['ledger_events_v0', 'ledger_entries_v0'] LOOP
        EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE OR DELETE ON public.%I FOR EACH ROW '
                       'EXECUTE FUNCTION public.receipts_refuse_change()', t || '_no_change', t);
        EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON public.%I FOR EACH STATEMENT '
                       'EXECUTE FUNCTION public.receipts_refuse_change()', t || '_no_truncate', t);
    END LOOP;
END
$$;
