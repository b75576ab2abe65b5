-- What Supabase provides, created only if missing, so the same files apply to a Supabase project
-- and to plain PostgreSQL 15: the API roles and auth.uid()/auth.role()/auth.jwt() reading the
-- `request.jwt.claims` setting (PostgREST sets it per request; tests set it by hand).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN
        CREATE ROLE anon NOLOGIN NOINHERIT;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN
        CREATE ROLE authenticated NOLOGIN NOINHERIT;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
        CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;
    END IF;
END
$$;

CREATE SCHEMA IF NOT EXISTS auth;
GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role;
GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;

DO $$
BEGIN
    IF to_regprocedure('auth.jwt()') IS NULL THEN
        CREATE FUNCTION auth.jwt() RETURNS jsonb LANGUAGE sql STABLE AS $f$
            SELECT coalesce(nullif(current_setting('request.jwt.claims', true), ''), '{}')::jsonb
        $f$;
    END IF;
    IF to_regprocedure('auth.uid()') IS NULL THEN
        CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $f$
            SELECT nullif(coalesce(current_setting('request.jwt.claim.sub', true),
                                   auth.jwt() ->> 'sub'), '')::uuid
        $f$;
    END IF;
    IF to_regprocedure('auth.role()') IS NULL THEN
        CREATE FUNCTION auth.role() RETURNS text LANGUAGE sql STABLE AS $f$
            SELECT nullif(coalesce(current_setting('request.jwt.claim.role', true),
                                   auth.jwt() ->> 'role'), '')
        $f$;
    END IF;
END
$$;
