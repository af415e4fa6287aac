"""The commands of ``memostore``: each opens the store, asks the public API, prints.

Stores are opened with ``allow_pickle=False`` unless ``--trust`` is given, so
reading a store someone handed you never unpickles (never runs) its values:
pickled values show as ``<pickled, not loaded>``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

import click

from memostore import (
    Call,
    MemostoreError,
    NotStoredError,
    Ref,
    Storage,
    StoreLocationError,
    UntrustedValueError,
    upgrade_store,
)

PREVIEW_CHARS = 60  # a value's repr in a table is cut to this width
NOT_LOADED = "<pickled, not loaded>"
EXIT_STORE_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_CONFIRMED = 3

DB_HELP = "DB is a SQLite file's path or a database URL (postgresql+psycopg://user@host/db)."


class _Group(click.Group):
    """Turns memostore's own errors into one line on stderr and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except NotStoredError as err:
            raise click.UsageError(str(err)) from None
        except MemostoreError as err:
            click.echo(f"Error: {err}", err=True)
            ctx.exit(EXIT_STORE_ERROR)


@click.group(cls=_Group, help=f"Read and tend memostore stores without their code. {DB_HELP}")
@click.version_option(package_name="memostore")
def main() -> None:
    """The ``memostore`` command group."""


def _trust_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--trust", is_flag=True,
                        help="Load pickled values (only for stores you trust: unpickling can run code).")(func)


def open_store(db: str, trust: bool = False) -> Storage:
    """The store at a path or URL; a missing file is a usage error, not a new store."""
    if db.startswith("sqlite:///"):
        db = db[len("sqlite:///"):]  # a SQLite URL is a path: the same checks apply
    if "://" in db:
        return Storage(db_url=db, allow_pickle=trust)
    if Path(db).is_dir():
        raise click.UsageError(f"no store at {db!r}: it is a folder; give the store's .db file")
    if not Path(db).is_file():
        raise click.UsageError(f"no store at {db!r}: the file does not exist")
    if Path(db).stat().st_size == 0:
        raise click.UsageError(f"no store at {db!r}: the file is empty")
    return Storage(db_path=db, allow_pickle=trust, create=False)


@main.command()
@click.argument("db")
def info(db: str) -> None:
    """Where the store is, its counts and its size on disk."""
    with _opened(db) as storage:
        click.echo(repr(storage))
        if "://" not in db:
            blobs = Path(str(Path(db).resolve()) + "-blobs")
            files = [Path(db)] + [Path(db + suffix) for suffix in ("-wal", "-shm")]
            size = sum(p.stat().st_size for p in files if p.exists())
            if blobs.is_dir():
                size += sum(p.stat().st_size for p in blobs.rglob("*") if p.is_file())
            click.echo(f"size on disk: {size:,} bytes")


@main.command()
@click.argument("db")
@click.option("--format", "output_format", type=click.Choice(["table", "csv", "json"]), default="table")
def ops(db: str, output_format: str) -> None:
    """Every stored op: versions, calls, first and last use."""
    with _opened(db) as storage:
        _echo_frame(storage.ops(), output_format)


@main.command()
@click.argument("db")
@click.argument("op_name")
@click.option("--format", "output_format", type=click.Choice(["table", "csv", "json"]), default="table")
def versions(db: str, op_name: str, output_format: str) -> None:
    """The stored versions of an op, oldest first."""
    with _opened(db) as storage:
        frame = storage.ops()
        if op_name not in set(frame["op"]):
            raise click.UsageError(_unknown_op(op_name, frame))
        rows = storage.versions(op_name)
        _echo_frame(rows.drop(columns=["is_current"], errors="ignore"), output_format)


@main.command()
@click.argument("db")
@click.argument("op_name")
@click.option("--version", "version", default=None, help="A version id or a unique prefix (default: the latest).")
def source(db: str, op_name: str, version: str | None) -> None:
    """The stored source of an op version."""
    with _opened(db) as storage:
        _check_op(storage, op_name)
        click.echo(storage.source(op_name, version=version), nl=False)


@main.command()
@click.argument("db")
@click.argument("op_name")
@click.argument("old_version")
@click.argument("new_version")
def diff(db: str, op_name: str, old_version: str, new_version: str) -> None:
    """A unified diff of an op's source (and dependencies) between two versions."""
    with _opened(db) as storage:
        _check_op(storage, op_name)
        click.echo(storage.diff(op_name, old_version, new_version), nl=False)


@main.command()
@click.argument("db")
@click.argument("op_name")
@click.option("--version", "version", default=None, help="Only calls of this version (a unique prefix).")
@click.option("--status", type=click.Choice(["ok", "failed"]), default=None)
@click.option("--limit", type=click.IntRange(min=0), default=50, show_default=True, help="0 for all.")
@click.option("--format", "output_format", type=click.Choice(["table", "csv", "json"]), default="table")
@_trust_option
def calls(db: str, op_name: str, version: str | None, status: str | None, limit: int, output_format: str,
          trust: bool) -> None:
    """The stored calls of an op, newest first, with their argument and output values."""
    with _opened(db, trust) as storage:
        _check_op(storage, op_name)
        selected = _select_calls(storage, op_name, version, status)
        if limit:
            selected = selected[:limit]
        rows = [_call_row(storage, call) for call in selected]
        _echo_frame(_calls_frame(rows), output_format)


@main.command()
@click.argument("db")
@click.argument("op_name")
@click.option("--stale", is_flag=True, help="Calls of every version but the most recently used one.")
@click.option("--version", "version", default=None, help="Calls of this version (a unique prefix).")
@click.option("--run", "run", default=None, help="Calls this run (an id or label) computed.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def drop(db: str, op_name: str, stale: bool, version: str | None, run: str | None, yes: bool) -> None:
    """Delete calls of an op and every call computed from their outputs."""
    if stale + (version is not None) + (run is not None) != 1:
        raise click.UsageError("give exactly one of --stale, --version V or --run R")
    with _opened(db) as storage:
        frame = _check_op(storage, op_name)
        if stale:
            latest = frame.loc[frame["op"] == op_name, "latest_version"].iloc[0]
            chosen = [c for c in _select_calls(storage, op_name, None, None) if c.version != latest]
        elif run is not None:
            chosen = [c for c in storage.run_calls(run, include_loaded=False) if c.op == op_name]
        else:
            chosen = _select_calls(storage, op_name, version, None)
        if not chosen:
            click.echo("nothing to drop")
            return
        doomed = _with_dependents(storage, chosen)
        click.echo(f"will delete {len(doomed)} call(s): " + ", ".join(
            f"{count} of {name}" for name, count in sorted(_count_by_op(doomed).items())))
        if not yes and not _confirmed("delete them?"):
            click.echo("nothing deleted")
            sys.exit(EXIT_NOT_CONFIRMED)
        dropped = storage.drop_calls(chosen, delete_dependents=True)
        click.echo(f"deleted {len(dropped)} call(s); `memostore gc` reclaims their values")


@main.command()
@click.argument("db")
def gc(db: str) -> None:
    """Delete values and blob files no call uses, then compact the database file."""
    with _opened(db) as storage:
        before = Path(db).stat().st_size if "://" not in db else None
        freed = storage.cleanup_refs()
        click.echo(f"deleted {freed['values']} value(s) and {freed['refs']} ref(s), "
                   f"{freed['bytes']:,} bytes of values")
        storage.vacuum()
        if before is not None:
            click.echo(f"database file: {before:,} -> {Path(db).stat().st_size:,} bytes")


@main.command()
@click.argument("db")
@click.option("--port", type=click.IntRange(1, 65535), default=8765, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="The address to listen on; the default is reachable from this machine only.")
@_trust_option
def serve(db: str, port: int, host: str, trust: bool) -> None:
    """A read-only view of the store in your browser: ops, versions, calls, values, the op graph."""
    try:
        import uvicorn

        from memostore.viewer import create_app
    except ImportError as err:
        raise click.ClickException(f"serve needs {err.name}: pip install \"memostore[viewer]\"") from None
    try:
        app = create_app(db, trust, host)
    except StoreLocationError as err:
        raise click.UsageError(str(err)) from None
    click.echo(f"serving {db} read-only at http://{host}:{port}/ (Ctrl-C to stop)")
    uvicorn.run(app, host=host, port=port, log_level="warning")


@main.command()
@click.argument("db")
@click.option("--repair", is_flag=True, help="Drop the calls whose values are damaged or missing, with dependents.")
@_trust_option
def check(db: str, repair: bool, trust: bool) -> None:
    """Verify every value and blob of the store; exit 1 if something cannot be served."""
    with _opened(db, trust) as storage:
        report = storage.check(repair=repair)
        click.echo(f"checked {report.values_checked:,} values ({report.bytes_checked:,} bytes)")
        for problem in report.database_problems:
            click.echo(f"database: {problem}")
        for cid, reason in sorted(report.damaged.items()):
            click.echo(f"damaged value {cid}: {reason}")
        if report.dangling_edges:
            click.echo(f"{report.dangling_edges} link(s) to values or calls that are gone")
        if report.unverified:
            click.echo(f"{len(report.unverified)} value(s) not verified (pickles: pass --trust to check them)")
        if report.orphan_files:
            click.echo(f"{len(report.orphan_files)} blob file(s) no value uses (`memostore gc` reclaims them)")
        if report.dropped_calls:
            click.echo(f"dropped {len(report.dropped_calls)} call(s): the next run computes them again")
        unresolved = report.database_problems or (not report.ok and not repair)
        if not unresolved:
            click.echo("ok")
            return
        click.echo("problems found: " + ("restore the file from a backup" if report.database_problems
                                         else "run with --repair to drop what cannot be served"))
        sys.exit(EXIT_STORE_ERROR)


@main.command()
@click.argument("db")
def upgrade(db: str) -> None:
    """Upgrade a store written by an older memostore to the schema this one reads.

    A SQLite file is copied beside itself first (``DB.schema-v1.bak``); back up a
    PostgreSQL store with pg_dump before, and stop older releases from using it.
    """
    if "://" in db:
        applied = upgrade_store(db_url=db)
    elif not Path(db).is_file():
        raise click.UsageError(f"no store at {db!r}: the file does not exist")
    else:
        applied = upgrade_store(db_path=db)
    click.echo(f"applied {', '.join(applied)}" if applied else "already current: nothing to do")


@main.command()
@click.argument("db")
@click.argument("path", type=click.Path(dir_okay=False))
def backup(db: str, path: str) -> None:
    """Copy a SQLite store, consistently even while others write, to a new file PATH (blobs to PATH-blobs)."""
    with _opened(db) as storage:
        target = storage.backup(path)
        click.echo(f"backed up to {target} ({target.stat().st_size:,} bytes); open it with Storage(db_path=...)")


# --- helpers ---------------------------------------------------------------


class _opened:
    """``with _opened(db) as storage``: open, yield, close; errors become exit codes."""

    def __init__(self, db: str, trust: bool = False) -> None:
        self._storage = open_store(db, trust)

    def __enter__(self) -> Storage:
        return self._storage

    def __exit__(self, *exc_info: Any) -> None:
        self._storage.close()


def _unknown_op(op_name: str, frame: Any) -> str:
    known = ", ".join(frame["op"]) or "none"
    return f"no op named {op_name!r} is stored; stored ops: {known}"


def _check_op(storage: Storage, op_name: str) -> Any:
    frame = storage.ops()
    if op_name not in set(frame["op"]):
        raise click.UsageError(_unknown_op(op_name, frame))
    return frame


def _select_calls(storage: Storage, op_name: str, version: str | None, status: str | None) -> list[Call]:
    if version is not None and not version.strip():
        raise click.UsageError("--version needs a version id or a prefix of one, not an empty string")
    found = _calls_of_frame(storage.cf(op_name), op_name)
    if version is not None:
        found = [c for c in found if c.version.startswith(version)]
        if not found:
            raise click.UsageError(f"op {op_name!r} has no stored calls of a version starting with {version!r}")
    if status is not None:
        found = [c for c in found if c.status == status]
    return sorted(found, key=lambda c: c.started_at, reverse=True)


def _calls_of_frame(frame: Any, op_name: str) -> list[Call]:
    column = frame.df(values="refs", include_calls=True)[op_name]
    return list({call.hid: call for call in column if isinstance(call, Call)}.values())


def _call_row(storage: Storage, call: Call) -> dict[str, Any]:
    import pandas as pd

    row: dict[str, Any] = {"call": call.hid, "version": call.version[:8], "status": call.status,
                           "started_at": pd.to_datetime(call.started_at, unit="s", utc=True),
                           "duration_s": round(call.duration_s, 6)}
    for name, ref in call.inputs.items():
        row[name] = _preview(storage, ref)
    for name, ref in call.outputs.items():
        row[f"-> {name}"] = _preview(storage, ref)
    if call.error is not None:
        row["error"] = f"{call.error.type}: {call.error.message}"
    return row


def _calls_frame(rows: list[dict[str, Any]]) -> Any:
    """The calls table; value cells keep their own types (an int next to a missing cell stays 2, not 2.0,
    as a float column would make it) and missing cells are None: empty in a table and csv, null in json."""
    import pandas as pd

    names = list(dict.fromkeys(name for row in rows for name in row))
    frame = pd.DataFrame({name: pd.Series([row.get(name) for row in rows], dtype=object) for name in names})
    if len(frame):
        frame["started_at"] = pd.to_datetime(frame["started_at"], utc=True)
        frame["duration_s"] = frame["duration_s"].astype(float)
    return frame


def _confirmed(question: str) -> bool:
    """The user's yes; no answer at all (input closed, Ctrl-C) is a no, not an error."""
    try:
        return click.confirm(question, default=False)
    except click.Abort:
        return False


def _preview(storage: Storage, ref: Ref) -> Any:
    try:
        value = storage.unwrap(ref)
    except UntrustedValueError:
        return NOT_LOADED
    except MemostoreError as err:  # one missing or damaged value must not hide the others
        return f"<not loaded: {type(err).__name__}>"
    if isinstance(value, (bool, int, float, str)) and len(repr(value)) <= PREVIEW_CHARS:
        return value
    try:
        text = repr(value)
    except Exception as err:  # a value's own repr may fail: say so, keep the table
        return f"<{type(value).__name__}: its repr failed ({type(err).__name__})>"
    text = text.replace("\n", " ")
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 3] + "..."


def _with_dependents(storage: Storage, chosen: list[Call]) -> list[Call]:
    """The calls and every call downstream of their outputs: what ``drop_calls`` deletes."""
    found = {call.hid: call for call in chosen}
    frontier = list(chosen)
    while frontier:
        consumers = [consumer for call in frontier for ref in call.outputs.values()
                     for consumer in storage.get_consumers(ref)]
        frontier = [found.setdefault(call.hid, call) for call in consumers if call.hid not in found]
    return list(found.values())


def _count_by_op(found: list[Call]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for call in found:
        counts[call.op] = counts.get(call.op, 0) + 1
    return counts


def _echo_frame(frame: Any, output_format: str) -> None:
    import pandas as pd

    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.DatetimeTZDtype) and output_format != "json":
            frame[column] = frame[column].dt.strftime("%Y-%m-%d %H:%M:%S")
    if output_format == "csv":
        click.echo(frame.to_csv(index=False), nl=False)
    elif output_format == "json":
        click.echo(json.dumps(json.loads(frame.to_json(orient="records", date_format="iso", default_handler=str)),
                              indent=2))
    elif frame.empty:
        click.echo("(none)")
    else:
        for column in frame.columns:  # a missing cell is blank; a stored None is previewed as "None"
            if frame[column].dtype == object:
                frame[column] = ["" if value is None else value for value in frame[column]]
        width = os.environ.get("COLUMNS")
        click.echo(frame.to_string(index=False, max_colwidth=PREVIEW_CHARS,
                                   line_width=int(width) if width else None))
