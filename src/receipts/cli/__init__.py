"""``receipts`` command line: a thin layer over the library.

Output is JSON (JSON Lines for receipts). Errors go to stderr as one JSON object
``{"code", "message", "errors": [{"pointer", "message"}]}``; exit codes: 0 ok, 1 rejected
(validation, conflict, not found), 2 usage. Errors are mapped to exit codes here only.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any, NoReturn, TypeVar

import click
import orjson
from click.exceptions import NoArgsIsHelpError
from rich.console import Console
from rich.progress import MofNCompleteColumn, Progress

from ..answer import AnswerBundle
from ..bundle import Bundle
from ..catalog import Catalog
from ..dburl import DEFAULT_DB, DatabaseUrl, default_url
from ..errors import (
    ConflictError,
    ErrorDetail,
    ReceiptsError,
    SigningKeyError,
    TamperedError,
    UsageError,
)
from ..keys import HOW_TO_POINT, find_signer, rotated_path
from ..ledger import Ledger
from ..model import PRODUCERS, Receipt
from ..tlog import Signer, Verifier
from .jsonin import read_batches, read_document


def _out(value: Any) -> None:
    sys.stdout.buffer.write(orjson.dumps(value) + b"\n")


def _out_pretty(value: Any) -> None:
    sys.stdout.buffer.write(orjson.dumps(value, option=orjson.OPT_INDENT_2) + b"\n")


def _out_receipts(receipts: Iterable[Receipt]) -> None:
    write = sys.stdout.buffer.write
    for receipt in receipts:
        write(receipt.to_json() + b"\n")
    sys.stdout.flush()


def _fail(error: ReceiptsError) -> NoReturn:
    sys.stdout.flush()
    sys.stderr.buffer.write(orjson.dumps(error.to_dict()) + b"\n")
    sys.stderr.flush()
    sys.exit(error.exit_code)


def _input(file: str, expects: str) -> tuple[int, IO[bytes] | None]:
    """The file descriptor of FILE (``-``: stdin) and the handle to close."""
    if file != "-":
        try:
            handle = open(file, "rb")  # noqa: SIM115 - the caller closes it
        except OSError as exc:
            raise UsageError(f"cannot read {file}: {exc.strerror}") from None
        return handle.fileno(), handle
    if sys.stdin.isatty():
        _hint(expects)
    return sys.stdin.fileno(), None


def _hint(expects: str) -> None:
    """Say what a command reading a terminal waits for: otherwise it would seem to hang."""
    click.echo(f"Reading {expects} from the terminal; end the input with Ctrl-D "
               "(Ctrl-Z then Enter on Windows), or pass a FILE.", err=True)  # fmt: skip


class _Context:
    def __init__(
        self, db: str, catalogs: tuple[str, ...], rules: bool = True, command: str = ""
    ) -> None:
        self.db = DatabaseUrl.parse(db)
        self.catalogs = catalogs
        self.rules = rules
        self.command = command  # the subcommand run
        self._ledger: Ledger | None = None

    @property
    def catalog(self) -> Catalog:
        """The catalog alone (catalog commands never open or create a database)."""
        if self._ledger is not None:
            return self._ledger.catalog
        return Catalog.load(self.catalogs)

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            self._ledger = Ledger.open(
                self.db,
                catalog_files=self.catalogs,
                rules=self.rules,
                rules_off_reason=f"receipts --no-rules {self.command}",
            )
        return self._ledger

    @property
    def shown_db(self) -> str:
        """The opened ledger's database URL as printed (without a password)."""
        return self.ledger.location

    def close(self) -> None:
        if self._ledger is not None:
            self._ledger.close()


pass_ctx = click.make_pass_decorator(_Context)

_key_file_option = click.option(
    "--key-file",
    type=click.Path(dir_okay=False),
    help="The private signing key file (default: $RECEIPTS_KEY, else beside a SQLite ledger "
    "as DB.key, else ./receipts.key).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--db",
    default=default_url,  # the one place $RECEIPTS_DB is read
    help=f"Ledger database: a path or sqlite:///PATH (env RECEIPTS_DB).  [default: {DEFAULT_DB}]",
)
@click.option(
    "--catalog",
    "catalogs",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Extra catalog file (your own domains and types); repeatable.",
)
@click.option(
    "--no-rules",
    is_flag=True,
    help="Write without checking the lifecycle rules (a back-fill; docs/doors.md).",
)
@click.version_option(package_name="receipts")
@click.pass_context
def cli(ctx: click.Context, db: str, catalogs: tuple[str, ...], no_rules: bool) -> None:
    """A verifiable receipts ledger."""
    extra = tuple(p for p in os.environ.get("RECEIPTS_CATALOG", "").split(os.pathsep) if p)
    ctx.obj = _Context(
        db, extra + catalogs, rules=not no_rules, command=ctx.invoked_subcommand or ""
    )
    ctx.call_on_close(ctx.obj.close)


@cli.command()
@pass_ctx
def init(c: _Context) -> None:
    """Create the ledger (or migrate it to this version)."""
    _out({"db": c.shown_db, "receipts": c.ledger.size()})


@cli.command()
@pass_ctx
def migrate(c: _Context) -> None:
    """Apply pending schema migrations (idempotent) and sync the catalog into the database."""
    applied = c.ledger.migrations_applied
    _out({"db": c.shown_db, "applied": applied, "receipts": c.ledger.size()})


F = TypeVar("F", bound=Callable[..., Any])


def _producer_option(help: str) -> Callable[[F], F]:
    return click.option("--producer", type=click.Choice(PRODUCERS),
                        default="service_role_pipeline", show_default=True, help=help)  # fmt: skip


_PRODUCER = _producer_option("Write as this producer.")


@cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@_producer_option("Write receipt requests as this producer (stored receipts keep their own).")
@click.option("--batch-size", default=5000, show_default=True, help="Lines per transaction.")
@pass_ctx
def import_(c: _Context, file: str, producer: str, batch_size: int) -> None:
    """Import a JSON Lines file (or - for stdin): receipt requests, or stored receipts as
    `receipts query` prints them (copied with their ids and producers). A bad line is rejected
    and the rest goes on; lines without an id get one derived from their content, so a rerun
    stores nothing twice (docs/import.md). Prints which lines were committed and every
    rejected line with its reasons; exits 1 if any line was rejected."""
    from .bulk import import_file

    if file == "-" and sys.stdin.isatty():
        _hint("JSON Lines (receipt requests, or stored receipts)")
    report = import_file(c.ledger, file, producer, max(1, batch_size))
    _out(report.to_dict())
    if report.stopped is not None:
        raise report.stopped
    if report.rejected:
        sys.exit(1)


@cli.command()
@pass_ctx
def demo(c: _Context) -> None:
    """Record a multi-domain story and print a short summary. Refuses a ledger that holds
    anything but the demo's own receipts; running it again writes nothing new."""
    from .demo import only_the_demo, run_demo

    ledger = c.ledger
    if not only_the_demo(ledger):  # before the key below: another ledger gets nothing from it
        raise ConflictError(
            f"{c.shown_db} holds {ledger.size()} receipt(s), not only the "
            "demo's: the demo writes only into an empty ledger or its own. Run it in an empty "
            "folder, or give it a file of its own: receipts --db demo.db demo",
            [ErrorDetail("/db", "a ledger with receipts that are not the demo's")],
        )
    if ledger.signer is None:  # the demo shows signed checkpoints: make a key the first time
        ledger.generate_key(c.db.key_path(), c.db.default_origin())
    run_demo(ledger)


@cli.command()
@click.argument("file", default="-")
@_PRODUCER
@click.option("--batch-size", default=1000, show_default=True, help="JSON Lines per commit.")
@pass_ctx
def append(c: _Context, file: str, producer: str, batch_size: int) -> None:
    """Append receipts from FILE or stdin: a JSON object, an array (one atomic batch), or JSON
    Lines (committed in batches as they stream in; each receipt is printed once committed)."""
    fd, handle = _input(file, "receipt requests (a JSON object, an array, or JSON Lines)")
    try:
        for batch in read_batches(fd, max(1, batch_size)):
            _out_receipts(
                c.ledger.append_batch(batch.items, producer=producer, pointers=batch.pointers)
            )
    finally:
        if handle is not None:
            handle.close()


def _payload(file: str) -> Any:
    fd, handle = _input(file, "the new payload (a JSON object)")
    try:
        return read_document(fd, "/payload")
    finally:
        if handle is not None:
            handle.close()


@cli.command()
@click.argument("receipt_id")
@click.argument("file", default="-")
@_PRODUCER
@pass_ctx
def amend(c: _Context, receipt_id: str, file: str, producer: str) -> None:
    """Correct the event whose current head is RECEIPT_ID: its new payload (a JSON object,
    validated like an assert) from FILE or stdin. Prints the new receipt."""
    _out_receipts([c.ledger.amend(receipt_id, _payload(file), producer=producer)])


@cli.command()
@click.argument("receipt_id")
@click.option("--reason", required=True, help="Why it is voided (payload void_reason).")
@click.option("--by", "voided_by", required=True, help="Who voids it (payload voided_by).")
@_PRODUCER
@pass_ctx
def void(c: _Context, receipt_id: str, reason: str, voided_by: str, producer: str) -> None:
    """Void the event whose current head is RECEIPT_ID: hidden from the current view, kept in
    the history. Prints the new receipt."""
    _out_receipts([c.ledger.void(receipt_id, reason, voided_by, producer=producer)])


@cli.command()
@click.argument("receipt_id")
@click.argument("file", default="-")
@_PRODUCER
@pass_ctx
def restate(c: _Context, receipt_id: str, file: str, producer: str) -> None:
    """Re-enable a voided event (RECEIPT_ID is its void) with a full payload from FILE or
    stdin. Prints the new receipt."""
    _out_receipts([c.ledger.restate(receipt_id, _payload(file), producer=producer)])


@cli.command()
@click.argument("receipt_id")
@click.option("--cloudevent", is_flag=True, help="Print it as a CloudEvent (JSON format).")
@click.option(
    "--source",
    envvar="RECEIPTS_SOURCE_URI",
    default="urn:receipts:ledger",
    show_default=True,
    help="The CloudEvents `source` of this ledger (env RECEIPTS_SOURCE_URI).",
)
@pass_ctx
def get(c: _Context, receipt_id: str, cloudevent: bool, source: str) -> None:
    """Print the receipt with this id."""
    receipt = c.ledger.get(receipt_id)
    if not cloudevent:
        _out_receipts([receipt])
        return
    from ..cloudevents import receipt_to_cloudevent

    _out(receipt_to_cloudevent(receipt, source=source, catalog=c.ledger.catalog))


@cli.command()
@click.argument("entity")
@pass_ctx
def history(c: _Context, entity: str) -> None:
    """Every receipt about ENTITY (TYPE:ID), all revisions, in seq order."""
    _out_receipts(c.ledger.history(entity))


@cli.command()
@click.argument("correlation_id")
@pass_ctx
def trace(c: _Context, correlation_id: str) -> None:
    """Every receipt with this payload correlation_id, in seq order."""
    _out_receipts(c.ledger.trace(correlation_id))


@cli.command()
@click.option("--domain")
@click.option("--event-type")
@click.option("--entity", help="TYPE:ID")
@click.option("--correlation-id")
@click.option("--since", help="occurred_at >= this RFC 3339 time")
@click.option("--until", help="occurred_at < this RFC 3339 time")
@click.option("--after", type=click.IntRange(min=-1), help="only seq > AFTER (cursor)")
@click.option("--limit", type=click.IntRange(min=0), help="at most N receipts")
@pass_ctx
def query(
    c: _Context,
    domain: str | None,
    event_type: str | None,
    entity: str | None,
    correlation_id: str | None,
    since: str | None,
    until: str | None,
    after: int | None,
    limit: int | None,
) -> None:
    """Receipts matching every filter, in seq order."""
    _out_receipts(c.ledger.query(domain=domain, event_type=event_type, entity=entity,
                                 correlation_id=correlation_id, since=since, until=until,
                                 after=after, limit=limit))  # fmt: skip


@cli.command()
@click.argument("entity")
@click.option(
    "--include-voided", is_flag=True, help="Also show logical events whose head is a void."
)
@pass_ctx
def current(c: _Context, entity: str, include_voided: bool) -> None:
    """The current view of ENTITY: the latest revision of each logical event."""
    _out_receipts(c.ledger.current(entity, include_voided=include_voided))


def _as_of(f: F) -> F:
    """The as-of options of `state` and `why`."""
    for option in reversed([
        click.option("--at-seq", type=click.IntRange(min=0),
                     help="As the ledger knew it before receipt seq N."),
        click.option("--known-at", help="As the ledger knew it at this RFC 3339 time (recorded)."),
        click.option("--as-of", help="As it was at this RFC 3339 time (occurred, valid time)."),
    ]):  # fmt: skip
        f = option(f)
    return f


@cli.command()
@click.argument("name")
@click.argument("key", nargs=-1, required=True)
@_as_of
@click.option(
    "--prove",
    is_flag=True,
    help="As of the latest checkpoint, as an offline bundle "
    "with every receipt's inclusion proof (check it with `receipts verify-answer`).",
)
@pass_ctx
def state(
    c: _Context,
    name: str,
    key: tuple[str, ...],
    at_seq: int | None,
    known_at: str | None,
    as_of: str | None,
    prove: bool,
) -> None:
    """The derived state NAME of KEY (its parts, e.g. `refund refund:rf_1`, `sanctions user
    u_1`), with the receipts that determined it (docs/doors.md; `receipts catalog states`)."""
    if prove:
        if known_at is not None:
            raise UsageError("--prove answers as of a checkpoint: use --at-seq, not --known-at")
        bundle = c.ledger.prove_state(name, key, at_seq=at_seq, as_of=as_of)
        sys.stdout.buffer.write(bundle.to_json() + b"\n")
        return
    answer = c.ledger.state(name, key, at_seq=at_seq, known_at=known_at, as_of=as_of)
    _out_pretty(answer.to_dict())


@cli.command("verify-answer")
@click.argument("file", type=click.File("rb"))
@click.option("--key", "vkey", required=True, help="Verifier key string (or a file holding it).")
def verify_answer(file: Any, vkey: str) -> None:
    """Verify an answer bundle (`receipts state … --prove`) offline: every receipt's proof,
    the definition, and the answer folded again from the proven receipts."""
    if file.isatty():
        _hint("an answer bundle (JSON)")
    if Path(vkey).is_file():
        vkey = Path(vkey).read_text("utf-8").strip()
    _out_pretty(AnswerBundle.from_json(file.read()).verify(Verifier.from_key_string(vkey)))


@cli.command()
@click.argument("entity")
@_as_of
@pass_ctx
def why(
    c: _Context, entity: str, at_seq: int | None, known_at: str | None, as_of: str | None
) -> None:
    """Every derived state about ENTITY (TYPE:ID), each with its evidence, as JSON Lines."""
    for answer in c.ledger.why(entity, at_seq=at_seq, known_at=known_at, as_of=as_of):
        _out(answer.to_dict())


@cli.command("rebuild-states")
@pass_ctx
def rebuild_states(c: _Context) -> None:
    """Make the derived states' index again from the journal (after changing definitions it
    is made again by itself)."""
    _out({"db": c.shown_db, "receipts_read": c.ledger.rebuild_states()})


@cli.group()
def catalog() -> None:
    """The event catalog."""


@catalog.command("list")
@click.option("--domain")
@pass_ctx
def catalog_list(c: _Context, domain: str | None) -> None:
    """JSON array of {domain, event_type, entity_types, writers, required}."""
    _out_pretty([t.summary() for t in c.catalog.event_types(domain)])


@catalog.command("states")
@pass_ctx
def catalog_states(c: _Context) -> None:
    """JSON array of the derived states: {name, domain, title, kind, key, events, values,
    rules, sha256}."""
    _out_pretty([s.summary() for s in c.catalog.states.values()])


@catalog.command("show")
@click.argument("event_type")
@pass_ctx
def catalog_show(c: _Context, event_type: str) -> None:
    """The payload JSON Schema of EVENT_TYPE."""
    _out_pretty(c.catalog.get(event_type).schema())


@catalog.command("export")
@click.argument("directory", type=click.Path(file_okay=False))
@pass_ctx
def catalog_export(c: _Context, directory: str) -> None:
    """Write DIRECTORY/<event_type>.schema.json for every type, plus index.json."""
    written = c.catalog.export(directory)
    _out({"directory": str(Path(directory)), "files": len(written)})


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int, help="0: any free port.")
@click.option(
    "--insecure-dev", is_flag=True, help="Serve without RECEIPTS_JWT_SECRET (local only)."
)
@click.option(
    "--access-log/--no-access-log",
    default=None,
    help="One line per request on stderr (env RECEIPTS_ACCESS_LOG; default on).",
)
@_key_file_option
@pass_ctx
def serve(
    c: _Context,
    host: str,
    port: int,
    insecure_dev: bool,
    access_log: bool | None,
    key_file: str | None,
) -> None:
    """Serve the HTTP API (OpenAPI at /openapi.json, docs at /docs); prints
    `listening on http://HOST:PORT` on stderr once the socket is bound."""
    from ..api import Settings, create_app
    from ..api.serve import run
    from ..commit import settle_gc

    overrides = {} if access_log is None else {"access_log": access_log}
    settings = Settings.from_env(insecure_dev=insecure_dev, **overrides)  # refuses without a secret
    if settings.store_unknown_cloudevents:
        from ..cloudevents import UNKNOWN_CATALOG

        c.catalogs += (UNKNOWN_CATALOG,)
    ledger = c.ledger
    if settings.checkpoint_interval > 0:  # the ledger's key signs; the first time, make it
        _signing(c, key_file, make=True)
    app = create_app(ledger, settings)
    settle_gc()
    run(app, settings, host, port)


@cli.group()
def keys() -> None:
    """The checkpoint signing keys (Ed25519, C2SP signed-note): private in a file, public in
    the ledger."""


@keys.command("generate")
@click.option("--name", help="Log origin / key name (default: receipts/<database name>).")
@_key_file_option
@pass_ctx
def keys_generate(c: _Context, name: str | None, key_file: str | None) -> None:
    """Create the ledger's signing key (mode 0600, never overwritten) and record its public
    half in the ledger; print the verifier key. Refused if the ledger already has a key."""
    path = Path(key_file) if key_file else c.db.key_path()
    signer = c.ledger.generate_key(path, name or c.db.default_origin())
    click.echo(f"wrote signing key {path}", err=True)
    click.echo(signer.verifier().to_key_string())


@keys.command("show")
@pass_ctx
def keys_show(c: _Context) -> None:
    """Print the ledger's current verifier key (read from the ledger: no private key needed)."""
    current = c.ledger.current_key()
    if current is None:  # a key made before keys were recorded: recorded at its first checkpoint
        signer = c.ledger.signer
        if signer is None:
            raise SigningKeyError(
                "the ledger has no signing key yet; create one with `receipts keys generate`"
            )
        c.ledger.check_signer(signer)
        current = signer.verifier()
    click.echo(current.to_key_string())


@keys.command("list")
@pass_ctx
def keys_list(c: _Context) -> None:
    """JSON array of the ledger's signing keys, first to current: {index, verifier_key,
    from_size, recorded_at, rotation}."""
    _out_pretty([dataclasses.asdict(k) for k in c.ledger.key_history()])


@keys.command("rotate")
@_key_file_option
@click.option(
    "--new-key-file",
    type=click.Path(dir_okay=False),
    help="Where to write the new key (default: the key file's path + '.<new key id>').",
)
@pass_ctx
def keys_rotate(c: _Context, key_file: str | None, new_key_file: str | None) -> None:
    """Make a new signing key and hand checkpoints over to it: a rotation statement signed by
    the current key and the new one is recorded in the ledger. The old key file is kept.
    Prints the new verifier key."""
    old = _signing(c, key_file, make=False)
    new = Signer.generate(old.name)
    base = Path(key_file) if key_file else c.db.key_path()
    path = Path(new_key_file) if new_key_file else rotated_path(base, new.verifier())
    record = c.ledger.rotate_key(path, new)
    found = "set RECEIPTS_KEY or --key-file to it" if new_key_file else "the ledger finds it there"
    click.echo(
        f"wrote signing key {path}; checkpoints from tree size {record.from_size} on are signed "
        f"by it ({found}; restart `receipts serve`)",
        err=True,
    )
    click.echo(record.verifier_key)


def _signing(c: _Context, key_file: str | None, *, make: bool) -> Signer:
    """The ledger's current signing key, loaded and checked (``make``: create the first one if
    the ledger has none)."""
    ledger = c.ledger
    path = Path(key_file) if key_file else c.db.key_path()
    if key_file:  # found as Ledger.open finds $RECEIPTS_KEY: the file, or its rotated successor
        ledger.signer = find_signer(path, ledger.current_key())
    if ledger.signer is None:
        current = ledger.current_key()
        if current is not None:
            raise SigningKeyError(
                f"no private key for the ledger's signing key {current.to_key_string()} at "
                f"{path}: {HOW_TO_POINT}"
            )
        if not make:
            raise SigningKeyError(
                f"no signing key at {path}; create one with `receipts keys generate`"
            )
        made = ledger.generate_key(path, c.db.default_origin())
        click.echo(f"generated signing key {path}; verifier key: "
                   f"{made.verifier().to_key_string()}", err=True)  # fmt: skip
        return made
    ledger.check_signer(ledger.signer)
    return ledger.signer


@cli.command()
@pass_ctx
def integrate(c: _Context) -> None:
    """Extend the Merkle tree over every sequenced receipt."""
    _out(c.ledger.integrate().to_dict())


@cli.command()
@_key_file_option
@pass_ctx
def checkpoint(c: _Context, key_file: str | None) -> None:
    """Integrate, check consistency with the last checkpoint, sign with the ledger's key; print
    the signed note."""
    _signing(c, key_file, make=False)
    sys.stdout.write(c.ledger.checkpoint().note)


@cli.command()
@click.argument("receipt_id")
@click.option("--size", type=click.IntRange(min=1), help="Checkpoint size (default: latest).")
@pass_ctx
def prove(c: _Context, receipt_id: str, size: int | None) -> None:
    """Print an offline bundle {"entry", "proof"} for the receipt."""
    sys.stdout.buffer.write(c.ledger.prove(receipt_id, size).to_json() + b"\n")


@cli.command("verify-bundle")
@click.argument("file", type=click.File("rb"))
@click.option("--key", "vkey", required=True, help="Verifier key string (or a file holding it).")
def verify_bundle(file: Any, vkey: str) -> None:
    """Verify a receipt bundle offline: no ledger, no network."""
    if file.isatty():
        _hint("a receipt bundle (JSON)")
    if Path(vkey).is_file():
        vkey = Path(vkey).read_text("utf-8").strip()
    _out(Bundle.from_json(file.read()).verify(Verifier.from_key_string(vkey)).to_dict())


@cli.command("verify-audit")
@click.argument("file", type=click.File("rb"))
@click.option("--key", "vkey", required=True, help="Verifier key string (or a file holding it).")
@click.option("--event", "original", type=click.File("rb"), help="The audited event as sent.")
def verify_audit_command(file: Any, vkey: str, original: Any) -> None:
    """Verify an ocn.weave.audit.v1 event offline (docs/ocn-audit.md): its bytes, its inclusion
    proof and signed checkpoint, and (with --event) that it audits that event."""
    from ..cloudevents import verify_audit
    from ..jsontext import loads

    if file.isatty():
        _hint("an ocn.weave.audit.v1 event (JSON)")
    if Path(vkey).is_file():
        vkey = Path(vkey).read_text("utf-8").strip()
    sent = None if original is None else loads(original.read(), "/event")
    _out(verify_audit(loads(file.read()), Verifier.from_key_string(vkey), sent))


@cli.command()
@click.argument("old", type=click.IntRange(min=0))
@click.argument("new", type=click.IntRange(min=0))
@pass_ctx
def consistency(c: _Context, old: int, new: int) -> None:
    """RFC 9162 consistency proof between two tree sizes (hex hashes)."""
    hashes = c.ledger.consistency(old, new)
    _out({"old_size": old, "new_size": new, "hashes": [h.hex() for h in hashes]})


@cli.command()
@click.option("--key", "vkey", help="Verifier key string to check checkpoint signatures with.")
@pass_ctx
def verify(c: _Context, vkey: str | None) -> None:
    """Audit: re-derive every receipt's bytes and leaf hash, rebuild the tree, check every
    stored node and checkpoint. Exits 1 naming the first bad seq."""
    verifier = Verifier.from_key_string(vkey) if vkey else None
    if not sys.stderr.isatty():
        report = c.ledger.audit(verifier)
    else:
        with Progress(*Progress.get_default_columns(), MofNCompleteColumn(), transient=True,
                      console=Console(stderr=True)) as bar:  # fmt: skip
            task = bar.add_task("verifying", total=c.ledger.size())
            report = c.ledger.audit(verifier, lambda n: bar.advance(task, n))
    if report.unintegrated and c.ledger.integrate_on_append:
        first, last = report.tree_size, report.receipts - 1
        raise TamperedError(
            f"audit failed at seq {first}: seqs {first}..{last} are not in the Merkle tree, yet "
            "this ledger integrates every receipt in the transaction that writes it: they were "
            "inserted outside the ledger (run `receipts integrate` only if you trust them)",
            [ErrorDetail(f"/seq/{first}", "not in the Merkle tree")],
        )
    _out(report.to_dict())


def main(argv: list[str] | None = None) -> None:
    """Console entry point: maps every error to its JSON report and exit code."""
    try:
        cli.main(args=argv, prog_name="receipts", standalone_mode=False)
    except ReceiptsError as error:
        _fail(error)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except NoArgsIsHelpError as error:  # `receipts` (or a group) alone: the help, as text
        error.show()
        sys.exit(error.exit_code)
    except click.Abort:
        sys.exit(130)
    except click.ClickException as error:  # usage errors: bad option, missing argument
        _fail(UsageError(error.format_message()))
    except BrokenPipeError:  # e.g. `receipts query | head`
        sys.stderr.close()
        sys.exit(0)
