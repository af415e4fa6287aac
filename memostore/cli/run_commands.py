"""The ``memostore`` commands about runs: list them, and write HTML reports of them."""

from __future__ import annotations

import click

from memostore.cli.commands import _echo_frame, _opened, _trust_option, main


@main.command()
@click.argument("db")
@click.option("--label", default=None, help="Only runs with this label.")
@click.option("--format", "output_format", type=click.Choice(["table", "csv", "json"]), default="table")
def runs(db: str, label: str | None, output_format: str) -> None:
    """Every recorded run (outermost block or map), oldest first: when, where, what it computed and found."""
    with _opened(db) as storage:
        table = storage.runs()
        if label is not None:
            table = table[table["label"] == label]
        if output_format != "json":
            table["tags"] = [", ".join(f"{k}={v}" for k, v in sorted(tags.items())) for tags in table["tags"]]
            table["label"] = table["label"].fillna("")
        _echo_frame(table, output_format)


@main.command()
@click.argument("db")
@click.option("--run", "run_refs", multiple=True, help="A run id or label; repeat it to compare runs in one report.")
@click.option("--op", "op_name", default=None, help="Instead of runs: every stored call of this op and its inputs.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The HTML file to write.")
@click.option("--title", default=None, help="The report's title (default: the runs' labels).")
@_trust_option
def report(db: str, run_refs: tuple[str, ...], op_name: str | None, output: str, title: str | None,
           trust: bool) -> None:
    """Write one self-contained HTML report of runs (or of an op's calls), from the store alone."""
    if bool(run_refs) == (op_name is not None):
        raise click.UsageError("give --run R (one or more) or --op OP")
    with _opened(db, trust) as storage:
        if op_name is not None:
            source = storage.cf(op_name).expand_back(recursive=True)
            title = title or f"Calls of {op_name}"
        else:
            source = [storage.run_info(run)["id"] for run in run_refs]
        path = storage.report(source, output, title=title)
    click.echo(f"wrote {path}")
