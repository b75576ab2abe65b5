-- Two journal indexes leave out the rows no query can find through them.
--
-- supersedes_id is NULL for every assert (most receipts): the unique index only has to keep
-- revision chains from forking, and NULLs never conflict, so it is the same constraint without
-- them. owner_user_id is NULL for receipts nobody owns: the owner index serves
-- `owner_user_id = <user>` (row-level security, `--visible-to`), which never matches NULL.
-- PostgreSQL still uses both partial indexes for those equality lookups (an equality implies
-- IS NOT NULL), and each imported receipt skips up to two index insertions (~10 % of the
-- server's work per row in bench/postgres.py). Same names as before, so errors read the same.
ALTER TABLE public.ledger_events_v0 DROP CONSTRAINT ledger_events_v0_supersedes_id_key;
CREATE UNIQUE INDEX ledger_events_v0_supersedes_id_key ON public.ledger_events_v0 (supersedes_id)
    WHERE supersedes_id IS NOT NULL;

DROP INDEX public.ledger_events_v0_owner_time;
CREATE INDEX ledger_events_v0_owner_time ON public.ledger_events_v0 (owner_user_id, occurred_at)
    WHERE owner_user_id IS NOT NULL;
