-- Rows written by the receipts library skip the direct-insert trigger without calling it.
--
-- The trigger function (0003) returns at once for a library row: entry bytes and seq present,
-- the transaction marked as the sequencer by ledger_events_v0_begin(), and not an API role.
-- Calling a SECURITY DEFINER plpgsql function with its own search_path for every row of a COPY
-- just to return was a large part of the server's cost per imported row; as the trigger's WHEN
-- clause the same test is a plain expression. It is exactly the negation of the function's
-- early-return test (an unset receipts.sequencer is NULL: the trigger fires), and
-- current_setting('role') reads the same SET ROLE here as inside the function.
DROP TRIGGER ledger_events_v0_before_insert ON public.ledger_events_v0;

CREATE TRIGGER ledger_events_v0_before_insert BEFORE INSERT ON public.ledger_events_v0
    FOR EACH ROW
    WHEN (NEW.entry IS NULL OR NEW.seq IS NULL
          OR current_setting('receipts.sequencer', true) IS DISTINCT FROM 'on'
          OR current_setting('role') IN ('anon', 'authenticated'))
    EXECUTE FUNCTION public.ledger_events_v0_before_insert();
