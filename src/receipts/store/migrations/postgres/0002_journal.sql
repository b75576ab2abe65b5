-- The journal: one row per receipt, never updated, never deleted.
CREATE TABLE public.ledger_events_v0 (
    seq            bigint      PRIMARY KEY CHECK (seq >= 0),   -- dense, 0-based, commit order
    id             uuid        NOT NULL UNIQUE,
    logical_id     uuid        NOT NULL,
    revision       integer     NOT NULL CHECK (revision >= 0),
    op             text        NOT NULL DEFAULT 'assert'
                               CHECK (op IN ('assert', 'amend', 'void', 'restate')),
    supersedes_id  uuid        UNIQUE,                         -- chains never fork
    domain         text        NOT NULL,                       -- CHECK generated from the catalog
    event_type     text        NOT NULL,
    entity_type    text        NOT NULL CHECK (entity_type <> ''),
    entity_id      text        NOT NULL CHECK (entity_id <> ''),
    owner_user_id  text,
    producer       text        NOT NULL
                               CHECK (producer IN ('client', 'edge_function', 'service_role_pipeline')),
    occurred_at    timestamptz NOT NULL,
    recorded_at    timestamptz NOT NULL,
    correlation_id text,
    payload        jsonb       NOT NULL CHECK (jsonb_typeof(payload) = 'object'),
    entry          bytea,      -- canonical entry bytes (RFC 8785); NULL for direct SQL inserts,
    leaf_hash      bytea       CHECK (length(leaf_hash) = 32),  -- which integration hashes
    UNIQUE (logical_id, revision)
);

CREATE INDEX ledger_events_v0_owner_time ON public.ledger_events_v0 (owner_user_id, occurred_at);
CREATE INDEX ledger_events_v0_entity_time
    ON public.ledger_events_v0 (entity_type, entity_id, occurred_at);
CREATE INDEX ledger_events_v0_type_time ON public.ledger_events_v0 (event_type, occurred_at);
CREATE INDEX ledger_events_v0_correlation ON public.ledger_events_v0 (correlation_id)
    WHERE correlation_id IS NOT NULL;

-- Canonical bytes of rows that arrived by direct SQL insert (Supabase clients through RLS): the
-- journal is append-only, so integration records their bytes and leaf hashes here.
CREATE TABLE public.ledger_entries_v0 (
    seq       bigint PRIMARY KEY REFERENCES public.ledger_events_v0 (seq),
    entry     bytea  NOT NULL,
    leaf_hash bytea  NOT NULL CHECK (length(leaf_hash) = 32)
);

-- The catalog as data the database can check direct inserts against. `receipts migrate`
-- regenerates its rows (and the journal's domain CHECK) from the catalog files.
CREATE TABLE public.ledger_catalog_v0 (
    event_type   text    PRIMARY KEY,
    domain       text    NOT NULL,
    entity_types text[]  NOT NULL,
    writers      text[]  NOT NULL,
    required     text[]  NOT NULL,
    own_source   boolean NOT NULL
);

-- Read grants for multi-party receipts: user_id may read every receipt about the entity.
CREATE TABLE public.ledger_audience_v0 (
    entity_type text        NOT NULL,
    entity_id   text        NOT NULL,
    user_id     text        NOT NULL,
    granted_at  timestamptz NOT NULL DEFAULT now(),
    granted_by  text,
    PRIMARY KEY (entity_type, entity_id, user_id)
);
CREATE INDEX ledger_audience_v0_user ON public.ledger_audience_v0 (user_id);

-- The current view: the latest revision of every logical event. security_invoker makes the
-- caller's row-level security apply through the view.
CREATE VIEW public.ledger_current_v0 WITH (security_invoker = true) AS
    SELECT DISTINCT ON (logical_id) *
    FROM public.ledger_events_v0
    ORDER BY logical_id, revision DESC;
