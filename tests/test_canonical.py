"""canonical_bytes is RFC 8785 (JCS): checked against the reference encoder on generated
values, against the RFC's published number samples, and for what it must refuse."""

from __future__ import annotations

import json
import math
import string
import struct
from typing import Any

import orjson
import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from receipts import ValidationError, canonical_bytes
from receipts.model import entry_bytes

MAX_SAFE = 2**53 - 1
SPECIAL_FLOATS = [0.0, -0.0, 1e21, 1e-7, 5e-324, -5e-324, 1.7976931348623157e308, 1e20, 0.1]

HYPOTHESIS = settings(max_examples=300, deadline=None, database=None)

safe_ints = st.integers(min_value=-MAX_SAFE, max_value=MAX_SAFE)
finite_floats = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(SPECIAL_FLOATS)
# Keys and strings over all of Unicode (non-BMP included, lone surrogates excluded) and over
# ASCII only, which takes the fast path.
any_text = st.text(st.characters(codec="utf-8"), max_size=12)
ascii_text = st.text(string.printable, max_size=12)
keys = any_text | ascii_text | st.sampled_from(["\U0001f600", "\ufb33", "\u20ac", "\r", "1"])


def json_values(leaves: st.SearchStrategy[Any], key_strategy: st.SearchStrategy[str]) -> Any:
    return st.recursive(
        leaves,
        lambda children: (
            st.lists(children, max_size=5) | st.dictionaries(key_strategy, children, max_size=5)
        ),
        max_leaves=25,
    )


scalars = st.none() | st.booleans() | safe_ints | finite_floats | any_text | ascii_text
any_json = json_values(scalars, keys)
# Values orjson may encode directly: no floats, no big ints, ASCII keys.
fast_json = json_values(st.none() | st.booleans() | safe_ints | any_text, ascii_text)


def same_json(a: Any, b: Any) -> bool:
    """Equality of JSON values where numbers compare by value (JCS writes 1.0 as 1)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(same_json, a, b))
    return type(a) is type(b) and a == b


@HYPOTHESIS
@given(any_json)
def test_canonical_bytes_equal_the_reference_encoder(value: Any) -> None:
    assert canonical_bytes(value) == rfc8785.dumps(value)


@HYPOTHESIS
@given(fast_json)
def test_fast_path_equals_the_reference_encoder(value: Any) -> None:
    assert canonical_bytes(value) == rfc8785.dumps(value)


@HYPOTHESIS
@given(st.dictionaries(any_text, safe_ints | any_text, min_size=2, max_size=8))
def test_keys_sort_by_utf16_code_units(value: dict[str, Any]) -> None:
    decoded = json.loads(canonical_bytes(value), object_pairs_hook=list)
    order = [k for k, _ in decoded]
    assert order == sorted(value, key=lambda k: k.encode("utf-16-be"))


@HYPOTHESIS
@given(any_json)
def test_round_trip(value: Any) -> None:
    assert same_json(orjson.loads(canonical_bytes(value)), value)


@HYPOTHESIS
@given(any_json)
def test_output_is_compact_utf8(value: Any) -> None:
    data = canonical_bytes(value)
    data.decode("utf-8")
    # canonical form is a fixed point (integers parsed as floats: 1e20 is written as digits)
    assert canonical_bytes(json.loads(data, parse_int=float)) == data


@pytest.mark.parametrize(
    "value",
    [
        2**53,
        -(2**53),
        2**53 + 1,
        2**64,
        -(2**70),
        {"amount": 2**60},
        [1, 2, [3, 2**63]],
        {"é": {"nested": 10**20}},
    ],
)
def test_integers_outside_ijson_range_are_refused(value: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        canonical_bytes(value)
    assert caught.value.code == "validation_failed"


@pytest.mark.parametrize("value", [MAX_SAFE, -MAX_SAFE, {"n": MAX_SAFE}])
def test_largest_safe_integers_are_accepted(value: Any) -> None:
    assert canonical_bytes(value) == rfc8785.dumps(value)


@pytest.mark.parametrize(
    "value",
    [
        math.nan,
        math.inf,
        -math.inf,
        {"x": [math.nan]},
        {"a": "\ud800"},  # lone surrogate, ASCII key (fast path)
        {"é": "\udfff"},  # lone surrogate, non-ASCII key (reference encoder)
        {"a": object()},
        {1: "non-string key"},
    ],
)
def test_values_that_are_not_json_are_refused(value: Any) -> None:
    with pytest.raises(ValidationError):
        canonical_bytes(value)


# RFC 8785 Appendix B: IEEE 754 binary64 values (hex) and their JCS serialization.
APPENDIX_B = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),  # minus zero
    ("0000000000000001", "5e-324"),  # min positive
    ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),  # max
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),  # max pos int
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),  # ~2**68
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),  # round to even
]
APPENDIX_B_NOT_NUMBERS = ["7fffffffffffffff", "7ff0000000000000"]  # NaN, Infinity


def from_hex(bits: str) -> float:
    value: float = struct.unpack(">d", bytes.fromhex(bits))[0]
    return value


@pytest.mark.parametrize(("bits", "expected"), APPENDIX_B, ids=[b for b, _ in APPENDIX_B])
def test_rfc8785_appendix_b_numbers(bits: str, expected: str) -> None:
    assert canonical_bytes(from_hex(bits)) == expected.encode()
    assert canonical_bytes({"n": [from_hex(bits)]}) == b'{"n":[' + expected.encode() + b"]}"


@pytest.mark.parametrize("bits", APPENDIX_B_NOT_NUMBERS)
def test_rfc8785_appendix_b_nan_and_infinity_are_errors(bits: str) -> None:
    with pytest.raises(ValidationError):
        canonical_bytes(from_hex(bits))


def test_rfc8785_sorting_example() -> None:
    # RFC 8785 section 3.2.3: property names sort by their UTF-16 code units, so the emoji
    # (U+1F600, surrogates D83D DE00) sorts before U+FB33.
    value = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    decoded = json.loads(canonical_bytes(value), object_pairs_hook=list)
    assert [v for _, v in decoded] == [
        "Carriage Return",
        "One",
        "Control",
        "Latin Small Letter O With Diaeresis",
        "Euro Sign",
        "Emoji: Grinning Face",
        "Hebrew Letter Dalet With Dagesh",
    ]


def test_rfc8785_whole_transformation_example() -> None:
    source = r"""{
      "numbers": [1E30, 4.50, 6, 2e-3, 0.000000000000000000000000001],
      "escaping": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
      "other": [null, true, false]
    }"""
    expected = (
        '{"escaping":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/",'
        '"numbers":[1e+30,4.5,6,0.002,1e-27],"other":[null,true,false]}'
    )
    assert canonical_bytes(json.loads(source)) == expected.encode("utf-8")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("\x00\x08\t\n\x0c\r\x1f", b'"\\u0000\\b\\t\\n\\f\\r\\u001f"'),
        ('"\\/', b'"\\"\\\\/"'),
        ("\x7f\u2028\u2029\U0001f600", '"\x7f\u2028\u2029\U0001f600"'.encode()),
        ({"b": 1, "a": [True, None, "x"]}, b'{"a":[true,null,"x"],"b":1}'),
        ([], b"[]"),
        ({}, b"{}"),
    ],
)
def test_string_escaping_and_structure(value: Any, expected: bytes) -> None:
    assert canonical_bytes(value) == expected


@settings(max_examples=3000, database=None, deadline=None)
@given(
    st.one_of(
        st.floats(allow_nan=False, allow_infinity=False),
        st.integers(-(2**53) + 1, 2**53 - 1).map(float),  # integral floats: printed as integers
        st.decimals(places=4, allow_nan=False, allow_infinity=False).map(float),
    )
)
def test_every_float_path_matches_the_reference(x: float) -> None:
    assert canonical_bytes(x) == rfc8785.dumps(x)
    assert canonical_bytes({"k": [x, {"n": x}]}) == rfc8785.dumps({"k": [x, {"n": x}]})


@HYPOTHESIS
@given(
    payload=st.dictionaries(keys, any_json, max_size=6),
    text=any_text,
    revision=st.integers(0, 10_000),
    owner=st.none() | any_text,
)
def test_entry_bytes_equal_the_canonical_bytes_of_the_whole_entry(
    payload: dict[str, Any], text: str, revision: int, owner: str | None
) -> None:
    entry = {
        "id": "0190b2a4-5c6d-7e8f-9a0b-1c2d3e4f5a6b", "domain": "payments",
        "event_type": "payment_captured", "entity_type": "payment_intent", "entity_id": text,
        "owner_user_id": owner, "occurred_at": "2026-01-02T10:00:00.000000Z",
        "recorded_at": "2026-01-02T10:00:00.000000Z", "op": "assert",
        "logical_id": "0190b2a4-5c6d-7e8f-9a0b-1c2d3e4f5a6b", "supersedes_id": None,
        "revision": revision, "producer": "client", "payload": payload,
    }  # fmt: skip
    assert entry_bytes(entry) == canonical_bytes(entry) == rfc8785.dumps(entry)


def test_receipt_fields_after_seq_are_the_entry_keys_in_order() -> None:
    from receipts import Receipt
    from receipts.model import ENTRY_KEYS

    # Receipt.entry() slices the tuple: the two lists must never drift apart.
    assert Receipt._fields == ("seq", *ENTRY_KEYS, "entry_bytes", "leaf_hash")
