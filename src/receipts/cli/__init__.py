"""``receipts`` command line: a thin layer over the library.

Output is JSON (JSON Lines for receipts). Errors go to stderr as one JSON object
``{"code", "message", "errors": [{"pointer", "message"}]}``; exit codes: 0 ok, 1 rejected
(validation, conflict, not found), 2 usage. Errors are mapped to exit codes here only.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NoReturn

import click
import orjson
from rich.console import Console
from rich.progress import MofNCompleteColumn, Progress

from ..bundle import Bundle
from ..catalog import Catalog
from ..errors import ReceiptsError, UsageError
from ..keys import default_origin, generate_key, key_path, load_signer
from ..ledger import DEFAULT_DB, Ledger
from ..model import PRODUCERS, Receipt
from ..tlog import Verifier
from .jsonin import read_batches


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


class _Context:
    def __init__(self, db: str, catalogs: tuple[str, ...]) -> None:
        self.db = db
        self.catalogs = catalogs
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
            self._ledger = Ledger.open(self.db, catalog_files=self.catalogs)
        return self._ledger

    def close(self) -> None:
        if self._ledger is not None:
            self._ledger.close()


pass_ctx = click.make_pass_decorator(_Context)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--db",
    envvar="RECEIPTS_DB",
    default=DEFAULT_DB,
    show_default=True,
    help="Ledger database: a path or sqlite:///PATH (env RECEIPTS_DB).",
)
@click.option(
    "--catalog",
    "catalogs",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Extra catalog file (your own domains and types); repeatable.",
)
@click.version_option(package_name="receipts")
@click.pass_context
def cli(ctx: click.Context, db: str, catalogs: tuple[str, ...]) -> None:
    """A verifiable receipts ledger."""
    extra = tuple(p for p in os.environ.get("RECEIPTS_CATALOG", "").split(os.pathsep) if p)
    ctx.obj = _Context(db, extra + catalogs)
    ctx.call_on_close(ctx.obj.close)


@cli.command()
@pass_ctx
def init(c: _Context) -> None:
    """Create the ledger (or migrate it to this version)."""
    _out({"db": c.ledger.store.url, "receipts": c.ledger.size()})


@cli.command()
@pass_ctx
def migrate(c: _Context) -> None:
    """Apply pending schema migrations (idempotent) and sync the catalog into the database."""
    store = c.ledger.store
    _out({"db": store.url, "applied": store.applied, "receipts": c.ledger.size()})


@cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--producer", type=click.Choice(PRODUCERS), default="service_role_pipeline")
@click.option("--batch-size", default=5000, show_default=True, help="Lines per transaction.")
@pass_ctx
def import_(c: _Context, file: str, producer: str, batch_size: int) -> None:
    """Bulk-import a JSON Lines file: each batch is one all-or-nothing transaction (COPY on
    PostgreSQL). Prints a summary with every rejected line; exits 1 if any batch was rejected."""
    from .bulk import import_file

    report = import_file(c.ledger, Path(file), producer, max(1, batch_size))
    _out(report)
    if report["rejected_batches"]:
        sys.exit(1)


@cli.command()
@pass_ctx
def demo(c: _Context) -> None:
    """Record a multi-domain story and print a short summary."""
    from .demo import run_demo

    ledger = c.ledger
    if ledger.signer is None:  # the demo shows signed checkpoints: make a key the first time
        ledger.signer = generate_key(key_path(c.db), default_origin(c.db))
    run_demo(ledger)


@cli.command()
@click.argument("file", default="-")
@click.option(
    "--producer",
    type=click.Choice(PRODUCERS),
    default="service_role_pipeline",
    show_default=True,
    help="Write as this producer.",
)
@click.option("--batch-size", default=1000, show_default=True, help="JSON Lines per commit.")
@pass_ctx
def append(c: _Context, file: str, producer: str, batch_size: int) -> None:
    """Append receipts from FILE or stdin: a JSON object, an array (one atomic batch), or JSON
    Lines (committed in batches as they stream in; each receipt is printed once committed)."""
    if file == "-":
        fd, handle = sys.stdin.fileno(), None
    else:
        try:
            handle = open(file, "rb")  # noqa: SIM115 - closed below, after streaming
        except OSError as exc:
            raise UsageError(f"cannot read {file}: {exc.strerror}") from None
        fd = handle.fileno()
    try:
        for batch in read_batches(fd, max(1, batch_size)):
            _out_receipts(
                c.ledger.append_batch(batch.items, producer=producer, pointers=batch.pointers)
            )
    finally:
        if handle is not None:
            handle.close()


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


@cli.group()
def catalog() -> None:
    """The event catalog."""


@catalog.command("list")
@click.option("--domain")
@pass_ctx
def catalog_list(c: _Context, domain: str | None) -> None:
    """JSON array of {domain, event_type, entity_types, writers, required}."""
    _out_pretty([t.summary() for t in c.catalog.event_types(domain)])


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
@pass_ctx
def serve(c: _Context, host: str, port: int, insecure_dev: bool, access_log: bool | None) -> None:
    """Serve the HTTP API (OpenAPI at /openapi.json, docs at /docs); prints
    `listening on http://HOST:PORT` on stderr once the socket is bound."""
    from ..api import Settings, create_app
    from ..api.process import settle_gc
    from ..api.serve import run

    overrides = {} if access_log is None else {"access_log": access_log}
    settings = Settings.from_env(insecure_dev=insecure_dev, **overrides)  # refuses without a secret
    if settings.store_unknown_cloudevents:
        from ..cloudevents import UNKNOWN_CATALOG

        c.catalogs += (UNKNOWN_CATALOG,)
    ledger = c.ledger
    if ledger.signer is None:  # checkpoints need a key: make one the first time, like sshd
        path = key_path(c.db)
        ledger.signer = generate_key(path, default_origin(c.db))
        click.echo(f"generated signing key {path}; verifier key: "
                   f"{ledger.signer.verifier().to_key_string()}", err=True)  # fmt: skip
    app = create_app(ledger, settings)
    settle_gc()
    run(app, settings, host, port)


@cli.group()
def keys() -> None:
    """The checkpoint signing key (Ed25519, C2SP signed-note)."""


@keys.command("generate")
@click.option("--name", help="Log origin / key name (default: receipts/<database name>).")
@pass_ctx
def keys_generate(c: _Context, name: str | None) -> None:
    """Create the signing key (mode 0600, never overwritten); print the verifier key."""
    path = key_path(c.db)
    signer = generate_key(path, name or default_origin(c.db))
    click.echo(f"wrote signing key {path}", err=True)
    click.echo(signer.verifier().to_key_string())


@keys.command("show")
@pass_ctx
def keys_show(c: _Context) -> None:
    """Print the verifier key string alone."""
    click.echo(load_signer(key_path(c.db)).verifier().to_key_string())


@cli.command()
@pass_ctx
def integrate(c: _Context) -> None:
    """Extend the Merkle tree over every sequenced receipt."""
    _out(c.ledger.integrate().to_dict())


@cli.command()
@pass_ctx
def checkpoint(c: _Context) -> None:
    """Integrate, check consistency with the last checkpoint, sign; print the signed note."""
    if c.ledger.signer is None:
        c.ledger.signer = load_signer(key_path(c.db))
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
    if Path(vkey).is_file():
        vkey = Path(vkey).read_text("utf-8").strip()
    _out(Bundle.from_json(file.read()).verify(Verifier.from_key_string(vkey)).to_dict())


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
        _out(c.ledger.audit(verifier).to_dict())
        return
    with Progress(*Progress.get_default_columns(), MofNCompleteColumn(), transient=True,
                  console=Console(stderr=True)) as bar:  # fmt: skip
        task = bar.add_task("verifying", total=c.ledger.size())
        report = c.ledger.audit(verifier, lambda n: bar.advance(task, n))
    _out(report.to_dict())


def main(argv: list[str] | None = None) -> None:
    """Console entry point: maps every error to its JSON report and exit code."""
    try:
        cli.main(args=argv, prog_name="receipts", standalone_mode=False)
    except ReceiptsError as error:
        _fail(error)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.Abort:
        sys.exit(130)
    except click.ClickException as error:  # usage errors: bad option, missing argument
        _fail(UsageError(error.format_message()))
    except BrokenPipeError:  # e.g. `receipts query | head`
        sys.stderr.close()
        sys.exit(0)
