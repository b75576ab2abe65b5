-- Row-level security, Supabase-shaped. `authenticated` reads rows it owns or is granted through
-- the audience table, inserts only rows it owns (and revisions only of its own events), never
-- updates or deletes; `service_role` does everything the append-only triggers allow.
ALTER TABLE public.ledger_events_v0 ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.ledger_entries_v0 ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.ledger_audience_v0 ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.ledger_catalog_v0 ENABLE ROW LEVEL SECURITY;

-- A policy on the journal cannot query the journal (infinite recursion): ownership of the
-- receipt a revision supersedes is checked by this definer function instead.
CREATE FUNCTION public.ledger_events_v0_owned_by_caller(receipt_id uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT EXISTS (
        SELECT 1 FROM public.ledger_events_v0
        WHERE id = receipt_id AND owner_user_id = (SELECT auth.uid())::text
    )
$$;

CREATE POLICY ledger_events_v0_read ON public.ledger_events_v0 FOR SELECT TO authenticated
USING (
    owner_user_id = (SELECT auth.uid())::text
    OR EXISTS (
        SELECT 1 FROM public.ledger_audience_v0 a
        WHERE a.entity_type = ledger_events_v0.entity_type
          AND a.entity_id = ledger_events_v0.entity_id
          AND a.user_id = (SELECT auth.uid())::text
    )
);

CREATE POLICY ledger_events_v0_insert ON public.ledger_events_v0 FOR INSERT TO authenticated
WITH CHECK (
    owner_user_id = (SELECT auth.uid())::text
    AND (supersedes_id IS NULL OR public.ledger_events_v0_owned_by_caller(supersedes_id))
);

CREATE POLICY ledger_events_v0_service ON public.ledger_events_v0 FOR ALL TO service_role
USING (true) WITH CHECK (true);
CREATE POLICY ledger_entries_v0_service ON public.ledger_entries_v0 FOR ALL TO service_role
USING (true) WITH CHECK (true);
CREATE POLICY ledger_audience_v0_read ON public.ledger_audience_v0 FOR SELECT TO authenticated
USING (user_id = (SELECT auth.uid())::text);
CREATE POLICY ledger_audience_v0_service ON public.ledger_audience_v0 FOR ALL TO service_role
USING (true) WITH CHECK (true);
CREATE POLICY ledger_catalog_v0_read ON public.ledger_catalog_v0 FOR SELECT
TO anon, authenticated, service_role USING (true);

GRANT SELECT, INSERT ON public.ledger_events_v0 TO authenticated, service_role;
GRANT SELECT ON public.ledger_current_v0 TO authenticated, service_role;
GRANT SELECT, INSERT ON public.ledger_entries_v0 TO service_role;
GRANT SELECT ON public.ledger_audience_v0 TO authenticated;
GRANT SELECT, INSERT, DELETE ON public.ledger_audience_v0 TO service_role;
GRANT SELECT ON public.ledger_catalog_v0 TO anon, authenticated, service_role;
