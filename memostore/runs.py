"""Runs: every outermost ``with storage:`` block and every ``storage.map``, as the store remembers them.

A run records when and where it ran (start, end, host, user, process), an
optional label and tags, what it computed, found stored and saw fail, and
which calls those were. ``with storage.run("wide-net", tags={"dataset":
"v2"}):`` names one; ``storage.runs()`` lists them; ``storage.cf(run=...)``,
``storage.run_calls(...)`` and ``storage.report(...)`` read one back.

A run is written when it first commits a call, so a run whose process dies
keeps its row (with no end), or when it ends. A block that neither computed
nor found any call, and was given no label or tags, is not recorded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import getpass
import json
import logging
import numbers
import os
import socket
import threading
import time
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from memostore.callpath import RunReport
from memostore.errors import RunError, UnknownRunError
from memostore.model import Call
from memostore.opened import OpenedStore

if TYPE_CHECKING:
    from memostore.backends.sql import SqlMetadataStore

logger = logging.getLogger(__name__)
_HID_BYTES = 16


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """What the caller said about a run before it started."""

    kind: str = "block"  # "block" or "map"
    label: str | None = None
    tags: Mapping[str, str] = dataclasses.field(default_factory=dict)


def run_spec(label: Any, tags: Any, kind: str = "block") -> RunSpec:
    """A checked RunSpec: a label is non-empty text, tags a mapping of text to text."""
    if label is not None and (not isinstance(label, str) or not label.strip()):
        raise RunError(f"storage.run(label=...): a label is non-empty text, got {label!r}; "
                       "leave it out for an unlabelled run")
    if label is not None and label.isdigit():
        raise RunError(f"storage.run(label={label!r}): a label of digits only would read as a run id; "
                       "add a letter to it")
    tags = {} if tags is None else tags
    if not isinstance(tags, Mapping) or not all(isinstance(k, str) and isinstance(v, str)
                                                for k, v in tags.items()):
        raise RunError(f"storage.run(tags=...): tags are a dict of text to text, got {tags!r}; "
                       "write numbers as text, e.g. tags={'lr': '0.01'}")
    return RunSpec(kind, label, dict(tags))


class RunRecorder:
    """The run of one storage: its row is written when a call is first committed, finished at its end.

    Outermost blocks of other threads that start while a run goes on join it
    (one storage, one buffer of pending calls): the run ends with the last.
    """

    def __init__(self, store: SqlMetadataStore) -> None:
        self._store = store
        self._lock = threading.RLock()
        self._spec: RunSpec | None = None
        self._started_at = 0.0
        self._id: int | None = None
        self._blocks = 0  # outermost blocks (of any thread) in the current run

    def start(self, spec: RunSpec) -> None:
        """A run begins (nothing is written yet), or another thread's block joins the current one."""
        with self._lock:
            self._blocks += 1
            if self._blocks == 1:
                self._spec, self._started_at, self._id = spec, time.time(), None

    def run_id(self) -> int | None:
        """The stored id of the current run, writing its row first if needed (None outside runs)."""
        with self._lock:
            spec = self._spec
            if spec is None:
                return None
            if self._id is None:
                self._id = self._store.insert_run({
                    "kind": spec.kind, "label": spec.label, "tags": json.dumps(dict(spec.tags), sort_keys=True),
                    "host": socket.gethostname(), "user": _user(), "pid": os.getpid(),
                    "started_at": self._started_at, "finished_at": None, "computed": 0, "hits": 0, "failed": 0})
            return self._id

    def finish(self, report: RunReport, loaded: bytes) -> int | None:
        """Record the end of the run; returns its id (None: nothing was recorded)."""
        with self._lock:
            self._blocks = max(self._blocks - 1, 0)
            if self._blocks:  # another thread's block goes on in this run
                return self._id
            return self._finish(report, loaded)

    def _finish(self, report: RunReport, loaded: bytes) -> int | None:
        spec = self._spec
        if spec is None:
            return None
        counts = (report.computed, report.hits, report.failed)
        run_id = self._id
        if run_id is None and (spec.label or spec.tags or any(counts)):
            run_id = self.run_id()
        if run_id is not None:
            # Each call once, in the order first found.
            unique = dict.fromkeys(loaded[i:i + _HID_BYTES] for i in range(0, len(loaded), _HID_BYTES))
            self._store.finish_run(run_id, report.started_at + report.duration_s, counts,
                                   b"".join(unique) or None)
        self._spec, self._id = None, None
        return run_id


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name (a container without one): the uid says who
        return f"uid {os.getuid()}" if hasattr(os, "getuid") else "unknown"


class Runs(OpenedStore):
    """Storage's methods about runs: label one, list them, read one's calls, report on one."""

    _blocks: threading.local
    _runs: RunRecorder

    def run(self, label: str | None = None,
            tags: Mapping[str, str] | None = None) -> contextlib.AbstractContextManager[Any]:
        """``with storage.run("wide-net", tags={"dataset": "v2"}):``: a block recorded as a labelled run.

        The same as ``with storage:``, with a label and tags stored on its run.
        Runs do not nest: inside a block, this raises RunError.

        >>> from memostore import Storage, op
        >>> @op
        ... def double(x):
        ...     return 2 * x
        >>> storage = Storage()
        >>> with storage.run("first", tags={"data": "v1"}):
        ...     _ = double(1)
        >>> with storage:
        ...     _ = double(1)
        >>> storage.runs()[["run", "label", "tags", "computed", "hits"]]
           run  label            tags  computed  hits
        0    1  first  {'data': 'v1'}         1     0
        1    2   None              {}         0     1
        >>> [call.op for call in storage.run_calls(storage.last_run)]
        ['double']
        """
        spec = run_spec(label, tags)  # a label or tags that are not text raise here, at the call
        return self._run_block(spec, label)

    @contextlib.contextmanager
    def _run_block(self, spec: RunSpec, label: str | None) -> Iterator[Any]:
        if getattr(self._blocks, "tokens", None):
            raise RunError(f"storage.run({label!r}) inside a `with storage:` block: runs do not nest; "
                           "give the label to the outermost block instead")
        with self._next_run(spec), self as storage:  # type: ignore[attr-defined]
            yield storage

    @contextlib.contextmanager
    def _next_run(self, spec: RunSpec) -> Iterator[None]:
        """The outermost block entered next in this thread starts a run of ``spec``."""
        self._blocks.next_run = spec
        try:
            yield
        finally:
            self._blocks.next_run = None

    def _start_run(self) -> None:
        """The outermost block was entered: count calls, and start a run of what ``_next_run`` said."""
        spec = getattr(self._blocks, "next_run", None)
        self._blocks.next_run = None
        self.call_path.start_run()
        self._runs.start(spec or RunSpec())

    def _finish_run(self) -> RunReport:
        """The outermost block was left: what it did, as recorded in the store."""
        report = self.call_path.finish_run()
        try:
            run_id = self._runs.finish(report, bytes(self.call_path.loaded))
        except Exception:  # the block's work is committed; only its run's record failed
            logger.warning("could not record the run that started at %s", report.started_at, exc_info=True)
            run_id = None
        return dataclasses.replace(report, run_id=run_id)

    def runs(self) -> Any:
        """A DataFrame of the stored runs, oldest first.

        Columns: ``run`` (its id), ``label``, ``kind`` ("block" or "map"),
        ``tags`` (a dict), ``started_at``, ``finished_at`` (UTC; NaT for a run
        still going on or whose process died), ``duration_s``, ``computed``,
        ``hits``, ``failed``, ``host``, ``user`` and ``pid``.

        >>> from memostore import Storage, op
        >>> @op
        ... def double(x): return 2 * x
        >>> storage = Storage()
        >>> with storage.run("first", tags={"data": "v1"}):
        ...     _ = double(1)
        >>> with storage:
        ...     _ = double(1), double(2)
        >>> storage.runs()[["run", "label", "kind", "computed", "hits"]]
           run  label   kind  computed  hits
        0    1  first  block         1     0
        1    2   None  block         1     1
        """
        import pandas as pd

        self.commit()
        rows = self._store.run_rows()
        columns = ["run", "label", "kind", "tags", "started_at", "finished_at", "duration_s", "computed",
                   "hits", "failed", "host", "user", "pid"]
        table = pd.DataFrame([{**row, "run": row["id"], "tags": json.loads(row["tags"])} for row in rows],
                             columns=[*columns, "id"])[columns]
        table["label"] = table["label"].astype(object).where(table["label"].notna(), None)
        table["duration_s"] = table["finished_at"].astype(float) - table["started_at"].astype(float)
        for column in ("started_at", "finished_at"):
            table[column] = pd.to_datetime(table[column].astype(float), unit="s", utc=True)
        return table

    def run_info(self, run: Any) -> dict[str, Any]:
        """The stored row of one run (see ``runs()``), by id, label (the latest run so labelled) or RunReport.

        >>> from memostore import Storage, op
        >>> @op
        ... def double(x): return 2 * x
        >>> storage = Storage()
        >>> with storage.run("first", tags={"data": "v1"}):
        ...     _ = double(1)
        >>> with storage:
        ...     _ = double(1), double(2)
        >>> info = storage.run_info("first")
        >>> info["id"], info["tags"], info["computed"], info["hits"]
        (1, {'data': 'v1'}, 1, 0)
        """
        self.commit()
        rows = self._store.run_rows()
        if isinstance(run, RunReport):
            if run.run_id is None:
                raise UnknownRunError("this block computed and found no call and had no label, so it was not "
                                      "recorded as a run; label it with storage.run('...') to record it anyway")
            run = run.run_id
        _check_run_argument(run)
        if isinstance(run, str) and run.isdigit():
            run = int(run)
        elif isinstance(run, numbers.Integral) and not isinstance(run, bool):
            run = int(run)  # a numpy integer, as read from storage.runs()
        matches = [row for row in rows if (row["id"] == run if isinstance(run, int) else row["label"] == run)]
        if not matches:
            known = ", ".join(f"{row['id']}" + (f" ({row['label']})" if row["label"] else "") for row in rows[-10:])
            raise UnknownRunError(f"no run {run!r} is stored; the latest runs are: {known or 'none'}; "
                                  "give a run id or label (storage.runs() or `memostore runs DB` lists them)")
        return {**matches[-1], "tags": json.loads(matches[-1]["tags"])}

    def run_calls(self, run: Any, include_loaded: bool = True) -> list[Call]:
        """The stored calls of a run, oldest first: those it computed (or recorded as failed),
        and with ``include_loaded`` those it found stored. ``run`` is an id, a label or a RunReport.

        >>> from memostore import Storage, op
        >>> @op
        ... def double(x): return 2 * x
        >>> storage = Storage()
        >>> with storage.run("first", tags={"data": "v1"}):
        ...     _ = double(1)
        >>> with storage:
        ...     _ = double(1), double(2)
        >>> [storage.unwrap(call.inputs["x"]) for call in storage.run_calls(2)]
        [1, 2]
        >>> [storage.unwrap(call.inputs["x"]) for call in storage.run_calls(2, include_loaded=False)]
        [2]
        """
        computed, loaded = self._store.run_call_hids(self.run_info(run)["id"])
        hids = list(dict.fromkeys([*computed, *loaded])) if include_loaded else \
            sorted(set(computed) - set(loaded))
        return sorted(self.reader.calls_by_hids(hids), key=lambda call: call.started_at)

    def run_loaded_hids(self, run: Any) -> set[str]:
        """The history ids of the calls a run found stored (not computed).

        >>> from memostore import Storage, op
        >>> @op
        ... def double(x): return 2 * x
        >>> storage = Storage()
        >>> with storage.run("first", tags={"data": "v1"}):
        ...     _ = double(1)
        >>> with storage:
        ...     _ = double(1), double(2)
        >>> first_call = storage.run_calls("first")[0]
        >>> storage.run_loaded_hids(2) == {first_call.hid}, storage.run_loaded_hids("first")
        (True, set())
        """
        return set(self._store.run_call_hids(self.run_info(run)["id"])[1])

    def call_runs(self, calls: list[Call]) -> dict[str, dict[str, Any]]:
        """call hid -> the stored row of the run that computed it (see ``runs()``), where one was recorded.

        >>> from memostore import Storage, op
        >>> @op
        ... def double(x): return 2 * x
        >>> storage = Storage()
        >>> with storage.run("first", tags={"data": "v1"}):
        ...     _ = double(1)
        >>> with storage:
        ...     _ = double(1), double(2)
        >>> calls = storage.run_calls(2)
        >>> rows = storage.call_runs(calls)
        >>> [(storage.unwrap(call.inputs["x"]), rows[call.hid]["label"]) for call in calls]
        [(1, 'first'), (2, None)]
        """
        self.commit()
        by_id = {row["id"]: {**row, "tags": json.loads(row["tags"])} for row in self._store.run_rows()}
        found = self._store.call_run_ids(call.hid for call in calls)
        return {hid: by_id[run_id] for hid, run_id in found.items() if run_id in by_id}

    def report(self, source: Any, path: str | os.PathLike[str], title: str | None = None) -> str:
        """Write one self-contained HTML report of a run (id, label or RunReport) or a frame to ``path``.

        It shows the op graph, a table of the results with their provenance
        (call, op version, start, duration, host) and previews of the values
        (tables, numbers, figures as embedded images). Nothing runs again:
        everything comes from the store. Returns the path written.

        >>> from memostore import Storage, op
        >>> @op
        ... def double(x): return 2 * x
        >>> storage = Storage()
        >>> with storage.run("first", tags={"data": "v1"}):
        ...     _ = double(1)
        >>> with storage:
        ...     _ = double(1), double(2)
        >>> import pathlib, tempfile
        >>> path = storage.report("first", pathlib.Path(tempfile.mkdtemp()) / "first.html")
        >>> text = pathlib.Path(path).read_text()
        >>> pathlib.Path(path).exists(), "double" in text, text.lstrip().lower().startswith("<!doctype html")
        (True, True, True)
        """
        from memostore.run_report import write_report

        return write_report(self, source, path, title)


def _check_run_argument(run: Any) -> None:
    """Refuse what names no run before it is compared with labels (a Ref refuses ``==``, True equals run 1)."""
    if isinstance(run, str) or (isinstance(run, numbers.Integral) and not isinstance(run, bool)):
        return
    hint = ""
    if hasattr(run, "hid") and hasattr(run, "cid"):
        hint = ("; a Ref is a value, not a run: storage.cf(ref) makes a frame of it, and "
                "storage.call_runs([storage.get_ref_creator(ref)]) names the run that computed it")
    raise RunError(f"run= takes a run id (an int), a run label (a str) or storage.last_run, got "
                   f"{type(run).__name__} {run!r}{hint}; storage.runs() lists the stored runs")
