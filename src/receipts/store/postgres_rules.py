"""What PostgreSQL refuses in a direct SQL insert, generated from ``receipts.limits``.

A row that a Supabase client or ``psql`` inserts is canonicalised later, by integration. So the
journal's trigger (migration 0009) refuses, at insert, everything integration could not
canonicalise: numbers that are not exact IEEE-754 doubles within ±(2^53-1), nesting beyond
``MAX_DEPTH``, payloads over ``max_receipt_bytes()`` as compact JSON, times outside the years
1..9999 UTC. (PostgreSQL itself refuses U+0000 in text and jsonb, and non-finite JSON numbers.)
Integration checks each direct row with the same function before it hashes it.

``receipts migrate`` (every ``Ledger.open``) installs the function from the constants of the
process that runs it, as it regenerates the domain CHECK from the catalog: the two cannot drift.
"""

from __future__ import annotations

from typing import Final

from ..limits import MAX_DEPTH, MAX_SAFE_INTEGER, max_receipt_bytes

NAME: Final = "receipts_private.ledger_row_problem"
FUNCTION: Final = NAME + "(timestamptz, timestamptz, jsonb)"
API_ROLES: Final = "PUBLIC, anon, authenticated, service_role"

# Returns NULL, or {JSON pointer, what was expected}. The cheap tests (jsonpath, length) run on
# every insert; only a payload they flag is walked to find the pointer of the offending value.
_BODY: Final = """
DECLARE
    printed bigint;
    compact bigint;
    flagged boolean;
    suspects jsonb;
    num numeric;
BEGIN
    IF NOT (occurred_at BETWEEN '0001-01-01 00:00:00+00' AND '9999-12-31 23:59:59.999999+00') THEN
        RETURN ARRAY['/occurred_at', 'expected a time in the years 1 to 9999 UTC'];
    END IF;
    IF NOT (recorded_at BETWEEN '0001-01-01 00:00:00+00' AND '9999-12-31 23:59:59.999999+00') THEN
        RETURN ARRAY['/recorded_at', 'expected a time in the years 1 to 9999 UTC'];
    END IF;
    printed := octet_length(payload::text);
    IF printed > {max_bytes} THEN
        -- jsonb prints ", " and ": " between items; compact JSON has no spaces outside strings.
        -- Each such space follows a kept character, so beyond twice the limit it is too large.
        compact := CASE WHEN printed > 2 * {max_bytes} THEN printed ELSE printed - (
            SELECT length(s) - length(replace(replace(s, ', ', ','), ': ', ':'))
            FROM regexp_replace(payload::text, '"(?:[^"\\\\]|\\\\.)*"', '""', 'g') s
        ) END;
        IF compact > {max_bytes} THEN
            RETURN ARRAY['/payload',
                         'expected at most {max_bytes} bytes of payload as compact JSON'];
        END IF;
    END IF;
    flagged := jsonb_path_exists(payload, 'strict $.**{{{max_depth}}} ? ({container})');
    IF NOT flagged THEN
        suspects := jsonb_path_query_array(
            payload, 'strict $.** ? (@.type() == "number" && ({suspicious}))');
        FOR i IN 0 .. jsonb_array_length(suspects) - 1 LOOP
            num := (suspects -> i)::numeric;
            flagged := ({number_problem}) IS NOT NULL;
            EXIT WHEN flagged;
        END LOOP;
    END IF;
    IF flagged THEN
        RETURN (
            WITH RECURSIVE node (pointer, value, level) AS (
                SELECT '/payload', payload, 1
                UNION ALL
                SELECT n.pointer || '/' || replace(replace(c.key, '~', '~0'), '/', '~1'),
                       c.value, n.level + 1
                FROM node n CROSS JOIN LATERAL (
                    SELECT o.key, o.value FROM jsonb_each(
                        CASE WHEN jsonb_typeof(n.value) = 'object' THEN n.value END) o
                    UNION ALL
                    SELECT (a.i - 1)::text, a.value FROM jsonb_array_elements(
                        CASE WHEN jsonb_typeof(n.value) = 'array' THEN n.value END)
                        WITH ORDINALITY a(value, i)
                ) c
                WHERE n.level <= {max_depth}
            )
            SELECT ARRAY[pointer, problem] FROM (
                SELECT level, pointer, CASE jsonb_typeof(value)
                    WHEN 'number' THEN {walked_number_problem}
                    WHEN 'object' THEN {depth_problem}
                    WHEN 'array' THEN {depth_problem}
                END AS problem
                FROM node
            ) p
            WHERE problem IS NOT NULL ORDER BY level, pointer LIMIT 1
        );
    END IF;
    RETURN NULL;
END
"""

# Integers within ±MAX_SAFE_INTEGER are exact doubles: only other numbers need the float test.
# (jsonpath's .double() cannot stand in for it: on a jsonb number it only checks the cast.)
_SUSPICIOUS: Final = "@ > {max_int} || @ < -{max_int} || @.floor() != @"

# A number is kept iff its magnitude is at most MAX_SAFE_INTEGER and its decimal value equals
# the shortest representation of its nearest double. numeric -> float8 rounds to the nearest;
# float8 -> text prints the shortest exact form (extra_float_digits >= 1, set on the function;
# a float8 -> numeric cast would keep 15 digits). Below the smallest double the cast fails.
_NUMBER_PROBLEM: Final = """CASE
WHEN abs({n}) > {max_int} THEN 'expected a number of magnitude at most {max_int} (2^53-1)'
WHEN {n} <> 0 AND abs({n}) < 5e-324 THEN '{inexact} (nearest: 0)'
WHEN {n} <> ({n}::float8::text)::numeric THEN '{inexact} (nearest: ' || {n}::float8::text || ')'
END"""

_INEXACT: Final = "expected a number exactly representable as an IEEE-754 double"
_DEPTH_PROBLEM: Final = (
    "CASE WHEN level > {max_depth} THEN "
    "'expected at most {max_depth} levels of nested objects and arrays' END"
)


def rules_body() -> str:
    """The body of :data:`FUNCTION` for the limits in force in this process."""
    max_int, max_depth = MAX_SAFE_INTEGER, MAX_DEPTH
    number = _NUMBER_PROBLEM.format(n="{n}", max_int=max_int, inexact=_INEXACT)
    return _BODY.format(
        max_bytes=max_receipt_bytes(),
        max_depth=max_depth,
        suspicious=_SUSPICIOUS.format(max_int=max_int),
        number_problem=_indent(number.format(n="num"), 16),
        walked_number_problem=_indent(number.format(n="value::numeric"), 24),
        container='@.type() == "object" || @.type() == "array"',
        depth_problem=_DEPTH_PROBLEM.format(max_depth=max_depth),
    )


def _indent(sql: str, columns: int) -> str:
    return sql.replace("\n", "\n" + " " * columns)


def rules_sql(body: str) -> str:
    """CREATE OR REPLACE :data:`FUNCTION` with ``body``, executable by none of the API roles."""
    return (
        f"CREATE OR REPLACE FUNCTION {NAME}(occurred_at timestamptz, recorded_at timestamptz, "
        "payload jsonb) RETURNS text[] LANGUAGE plpgsql STABLE SET extra_float_digits = 1 "
        f"AS $rules${body}$rules$;\n"
        f"REVOKE ALL ON FUNCTION {FUNCTION} FROM {API_ROLES};"
    )
