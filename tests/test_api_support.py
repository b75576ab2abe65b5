"""Shared helpers for the HTTP API suites (tests/test_api_*.py): tokens, an in-process app,
request builders, problem+json checks and a server-sent-events reader. The few tests here
check the helpers themselves, so the other suites can lean on them."""

from __future__ import annotations

import contextlib
import copy
import json
import queue
import sqlite3
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt

with warnings.catch_warnings():  # Starlette 1.x: StarletteDeprecationWarning (a UserWarning)
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient` is deprecated")
    from starlette.testclient import TestClient

from receipts import Ledger
from receipts.api import Settings, authenticate, create_app
from receipts.catalog import Catalog
from receipts.store.sqlite import SQLiteStore
from receipts.tlog import Signer

SECRET = "test-secret-for-receipts-api-suites-0123456789"  # >= 32 bytes: PyJWT warns below
OTHER_SECRET = "another-secret-that-did-not-sign-anything-42"
EDGE = "edge-fn-key-7a1c0d5e9b3f4a2c8e6d1b0a9f8e7d6c"
ORIGIN = "example.com/log"
# Supabase user ids are UUIDs.
USER_A, USER_B = "7f3c2a10-5b6e-4c1d-9a8f-0e2d4b6c8a01", "2b9d4e60-1c3a-4f7e-8d5b-6a0c2e4f6b02"
PROBLEM = "application/problem+json"
OCN = Path(__file__).parent / "fixtures" / "ocn"
_CATALOG = Catalog.load()
# Seconds a helper waits for something before it fails the test: only a bound for failure,
# far above what anything takes on a loaded machine (tests never race the clock).
BOUND = 60.0


PROJECT_REF = "abcdefghijklmnopqrst"  # a Supabase project's ref: 20 lowercase letters
AUTH_ISSUER = f"https://{PROJECT_REF}.supabase.co/auth/v1"


def token(
    role: str | None,
    sub: str | None = None,
    *,
    secret: str = SECRET,
    ttl: float = 300,
    **claims: Any,
) -> str:
    """An HS256 JWT of exactly these claims, plus ``exp`` ``ttl`` seconds from now (``ttl``
    None: no ``exp``) and ``role``/``sub`` unless None. For tokens unlike Supabase's."""
    body: dict[str, Any] = {} if ttl is None else {"exp": int(time.time() + ttl)}
    body.update(claims)
    if role is not None:
        body["role"] = role
    if sub is not None:
        body["sub"] = sub
    return jwt.encode(body, secret, algorithm="HS256")


def user_token(sub: str, /, *, ttl: int = 3600, secret: str = SECRET, **overrides: Any) -> str:
    """A signed-in user's access token exactly as Supabase Auth issues it (claims ``None`` in
    ``overrides`` are left out)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": AUTH_ISSUER,
        "sub": sub,
        "aud": "authenticated",
        "exp": now + ttl,
        "iat": now,
        "email": f"{sub}@example.com",
        "phone": "",
        "app_metadata": {"provider": "email", "providers": ["email"]},
        "user_metadata": {"email_verified": True},
        "role": "authenticated",
        "aal": "aal1",
        "amr": [{"method": "password", "timestamp": now}],
        "session_id": str(uuid.uuid4()),
        "is_anonymous": False,
        **overrides,
    }
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, secret, "HS256")


def api_key(role: str, *, ttl: int = 10 * 365 * 86400, secret: str = SECRET) -> str:
    """A project API key exactly as Supabase issues it: ``anon`` or ``service_role``."""
    now = int(time.time())
    claims = {"iss": "supabase", "ref": PROJECT_REF, "role": role, "iat": now, "exp": now + ttl}
    return jwt.encode(claims, secret, algorithm="HS256")


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


class Bearer(Mapping[str, str]):
    """``Authorization: Bearer <token>`` headers whose token is minted each time they are read,
    so a test never carries a token that expired while the suite ran."""

    def __init__(self, mint: Callable[[], str], extra: Mapping[str, str] | None = None) -> None:
        self.mint = mint
        self.extra = dict(extra or {})

    def plus(self, **extra: str) -> Bearer:
        """These headers and more (``content_type=`` for Content-Type)."""
        return Bearer(
            self.mint, {**self.extra, **{k.replace("_", "-"): v for k, v in extra.items()}}
        )

    def __getitem__(self, name: str) -> str:
        if name != "Authorization":
            return self.extra[name]
        return f"Bearer {self.mint()}"

    def __iter__(self) -> Iterator[str]:
        return iter(("Authorization", *self.extra))

    def __len__(self) -> int:
        return 1 + len(self.extra)

    def __repr__(self) -> str:
        return f"Bearer({getattr(self.mint, '__name__', self.mint)!r})"


def _service_key() -> str:
    return api_key("service_role")


def _anon_key() -> str:
    return api_key("anon")


def _user_a() -> str:
    return user_token(USER_A)


def _user_b() -> str:
    return user_token(USER_B)


SERVICE = Bearer(_service_key)
EDGE_AUTH = bearer(EDGE)
ANON = Bearer(_anon_key)
AUTH_A = Bearer(_user_a)
AUTH_B = Bearer(_user_b)


def request(name: str, entity_id: str = "subject-1", /, **overrides: Any) -> dict[str, Any]:
    """A valid receipt request from the catalog example of ``name``."""
    spec = _CATALOG.get(name)
    assert spec.example is not None
    body: dict[str, Any] = {
        "domain": spec.domain,
        "event_type": name,
        "entity_type": spec.entity_types[0],
        "entity_id": entity_id,
        "payload": copy.deepcopy(spec.example),
    }
    body.update(overrides)
    return body


def refund(entity_id: str = "r-1", /, **overrides: Any) -> dict[str, Any]:
    """refund_requested: a type clients may write."""
    return request("refund_requested", entity_id, **overrides)


def captured(entity_id: str = "pi-1", /, **overrides: Any) -> dict[str, Any]:
    """payment_captured: a server-only type."""
    return request("payment_captured", entity_id, **overrides)


def ocn_example(name: str) -> dict[str, Any]:
    """One of the OCN reference examples: decision_approve, explanation_approve, audit_approve."""
    return json.loads((OCN / f"{name}.json").read_text())  # type: ignore[no-any-return]


@dataclass
class Api:
    client: TestClient
    ledger: Ledger
    signer: Signer

    @property
    def service(self) -> Any:
        return self.client.app.state.service  # type: ignore[attr-defined]

    def post(self, body: Any, headers: Mapping[str, str] = SERVICE) -> httpx.Response:
        return self.client.post("/v0/receipts", json=body, headers=headers)

    def append(self, body: Any, headers: Mapping[str, str] = SERVICE) -> Any:
        response = self.post(body, headers)
        assert response.status_code == 201, response.text
        return response.json()

    def wait_checkpoint(self, size: int, timeout: float = BOUND) -> str:
        """The signed note once a checkpoint of at least ``size`` exists."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.service.checkpoint_size >= size:
                response = self.client.get("/v0/checkpoint")
                assert response.status_code == 200, response.text
                return response.text
            time.sleep(0.01)
        raise AssertionError(f"no checkpoint of size {size} within {timeout}s")


@contextlib.contextmanager
def serve(
    url: str,
    *,
    catalog_files: tuple[str, ...] = (),
    checkpoint_interval: float = 0,
    **settings: Any,
) -> Iterator[Api]:
    """The app over a fresh ledger at ``url``, lifespan running (background tasks on)."""
    signer = Signer.generate(ORIGIN)
    ledger = Ledger.open(url, signer=signer, catalog_files=catalog_files)
    app = create_app(
        ledger,
        Settings(
            jwt_secret=SECRET,
            edge_function_keys=frozenset({EDGE}),
            checkpoint_interval=checkpoint_interval,
            **settings,
        ),
    )
    try:
        with TestClient(app) as client:
            yield Api(client, ledger, signer)
    finally:
        ledger.close()


@contextlib.contextmanager
def writes_held(api: Api) -> Iterator[None]:
    """Hold the ledger's write lock from a connection of our own, as a long transaction would:
    the server's writer (a thread or a process) waits for it. Real, so it works either way."""
    store = api.ledger.store
    if isinstance(store, SQLiteStore):
        conn = sqlite3.connect(store.path, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    import psycopg

    from receipts.store.postgres import SEQUENCE_LOCK

    with psycopg.connect(store.url) as pg:
        pg.execute("SELECT pg_advisory_xact_lock(%s)", (SEQUENCE_LOCK,))
        try:
            yield
        finally:
            pg.rollback()


def assert_problem(
    response: httpx.Response, status: int, code: str, pointers: list[str] | None = None
) -> dict[str, Any]:
    """An RFC 9457 problem of this status and code (and exactly these pointers, if given)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert {"type", "title", "status", "detail", "code", "errors"} <= body.keys(), body
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == f"urn:receipts:problem:{code}"
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    assert isinstance(body["errors"], list)
    for error in body["errors"]:
        assert set(error) == {"pointer", "message"}, error
        assert isinstance(error["pointer"], str) and isinstance(error["message"], str)
    if pointers is not None:
        assert sorted(e["pointer"] for e in body["errors"]) == sorted(pointers), body
    return body


def wait_until(predicate: Callable[[], bool], timeout: float = BOUND, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.005)


class EventStream:
    """Reads a ``text/event-stream`` response in a thread; ``next()`` has a timeout, so a
    stream that never ends cannot hang a test."""

    def __init__(self, opened: contextlib.AbstractContextManager[httpx.Response]) -> None:
        self._opened = opened
        self.response = opened.__enter__()
        self._lines: queue.Queue[str | BaseException | None] = queue.Queue()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for line in self.response.iter_lines():
                self._lines.put(line)
        except BaseException as exc:  # the stream is cut when we close it
            self._lines.put(exc)
        finally:
            self._lines.put(None)

    def next(self, timeout: float = BOUND) -> dict[str, str]:
        """The next event (comments skipped): its fields, e.g. {id, event, data}."""
        event: dict[str, str] = {}
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no event within {timeout}s") from None
            if line is None or isinstance(line, BaseException):
                raise AssertionError(f"the stream ended: {line!r}")
            if line == "":
                if event:
                    return event
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            event[name] = value.removeprefix(" ")

    def receipts_until(self, seq: int, timeout: float = BOUND) -> list[dict[str, Any]]:
        """Receipt events up to and including the one with ``seq`` (audit events skipped)."""
        out = []
        while True:
            event = self.next(timeout)
            if event["event"] == "audit":
                continue
            assert event["event"] == "receipt"
            receipt = json.loads(event["data"])
            assert int(event["id"]) == receipt["seq"]
            out.append(receipt)
            if receipt["seq"] >= seq:
                return out

    def close(self) -> None:
        self._opened.__exit__(None, None, None)
        # In-process the read ends at once; over a socket it may sit until the server's next
        # keep-alive. The reader is a daemon thread, so it need not be waited for.
        self._thread.join(timeout=1)


@contextlib.contextmanager
def event_stream(
    client: httpx.Client | TestClient, url: str, headers: Mapping[str, str]
) -> Iterator[EventStream]:
    stream = EventStream(client.stream("GET", url, headers=headers))
    try:
        yield stream
    finally:
        stream.close()


# --- the helpers themselves ----------------------------------------------------------------------


def test_tokens_map_to_the_principals_the_suites_expect() -> None:
    settings = Settings(jwt_secret=SECRET, edge_function_keys=frozenset({EDGE}))
    seen = {
        name: authenticate(headers["Authorization"], settings)
        for name, headers in {
            "service": SERVICE,
            "edge": EDGE_AUTH,
            "anon": ANON,
            "a": AUTH_A,
            "b": AUTH_B,
        }.items()
    }
    assert (seen["service"].role, seen["service"].producer) == (
        "service_role",
        "service_role_pipeline",
    )
    assert (seen["edge"].role, seen["edge"].producer) == ("edge_function", "edge_function")
    assert (seen["a"].role, seen["a"].sub, seen["a"].producer) == (
        "authenticated",
        USER_A,
        "client",
    )
    assert seen["b"].sub == USER_B
    assert seen["anon"].role == "anon"


def test_request_builders_follow_the_catalog() -> None:
    assert "client" in _CATALOG.get(refund()["event_type"]).writers
    assert "client" not in _CATALOG.get(captured()["event_type"]).writers
    assert ocn_example("decision_approve")["type"] == "ocn.orca.decision.v1"
