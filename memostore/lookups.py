"""Reading a store by op or op name: calls, versions, sources, failures, lineage.

Every method takes a live op or the name it is stored under, so a store can
be read without its code; an unknown name raises ``UnknownOpError`` listing
the stored ops.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, overload

import numpy as np

from memostore.callpath import VersionedOp, named_op, stored_op_name
from memostore.collections import is_structural
from memostore.errors import NotStoredError, StorageOptionError
from memostore.history import Explanation, explain, lineage
from memostore.model import Call, Ref
from memostore.opened import OpenedStore
from memostore.reports import diff_versions, exact_column, ops_table, version_source, versions_table


class Lookups(OpenedStore):
    """Storage's methods that read calls, versions and sources, by op or stored name."""

    @overload
    def get_ref_creator(self, ref: Ref | str) -> Call | None: ...  # type: ignore[overload-overlap]

    @overload
    def get_ref_creator(self, ref: Iterable[Ref | str]) -> list[Call | None]: ...

    def get_ref_creator(self, ref: Ref | str | Iterable[Ref | str]) -> Call | None | list[Call | None]:
        """The call that produced ``ref`` (a Ref or a ref's hid), or None for a value passed in by hand
        or a hid not stored; for a list of them, a list of those answers in the same order, read in one query.

        >>> from memostore import Storage, op
        >>> @op
        ... def double(x):
        ...     return 2 * x
        >>> storage = Storage()
        >>> with storage:
        ...     y = double(1)
        >>> call = storage.get_ref_creator(y)
        >>> call.op, storage.unwrap(call.inputs["x"])
        ('double', 1)
        >>> storage.get_ref_creator(call.inputs["x"]) is None  # 1 was passed in by hand
        True
        >>> storage.get_ref_creator([y.hid, call.inputs["x"]]) == [call, None]
        True
        """
        if isinstance(ref, (Ref, str)):
            hid = ref.hid if isinstance(ref, Ref) else ref_hid(ref, "get_ref_creator")
            self.commit()
            calls = self._store.calls_of_ref(hid, "out")
            return calls[0] if calls else None
        hids = ref_hids(ref, "get_ref_creator")
        self.commit()
        made = {out.hid: call for call in self._store.calls_of_refs(dict.fromkeys(hids), "out")
                for out in call.outputs.values()} if hids else {}
        return [made.get(hid) for hid in hids]

    def get_consumers(self, refs: Ref | str | Iterable[Ref | str]) -> list[Call]:
        """Every stored call that took any of ``refs`` as an input, oldest first.

        ``refs``: a Ref, a ref's hid, or a list (any iterable) of them, read in one query.

        >>> from memostore import Storage, op
        >>> @op
        ... def double(x):
        ...     return 2 * x
        >>> storage = Storage()
        >>> with storage:
        ...     y = double(1)
        ...     z = double(y)
        >>> [storage.unwrap(call.result()) for call in storage.get_consumers(y)]
        [4]
        """
        if isinstance(refs, Ref):  # the common single lookup, without gathering a list
            self.commit()
            calls = self._store.calls_of_ref(refs.hid, "in")
            if len(calls) > 1:
                calls.sort(key=_call_order)
            return calls
        return self._calls_of_refs(refs, "in", "get_consumers")

    def get_creators(self, refs: Ref | str | Iterable[Ref | str]) -> list[Call]:
        """The stored calls that produced any of ``refs``, oldest first (none for values passed in by hand).

        ``refs``: a Ref, a ref's hid, or a list (any iterable) of them, read in one query.

        >>> from memostore import Storage, op
        >>> @op
        ... def double(x):
        ...     return 2 * x
        >>> storage = Storage()
        >>> with storage:
        ...     y = double(1)
        ...     z = double(y)
        >>> [storage.unwrap(call.result()) for call in storage.get_creators([y, z.hid])]
        [2, 4]
        """
        return self._calls_of_refs(refs, "out", "get_creators")

    def _calls_of_refs(self, refs: Any, direction: str, method: str) -> list[Call]:
        if isinstance(refs, (Ref, str)):  # the common single lookup: one query, nothing to gather
            hid = refs.hid if isinstance(refs, Ref) else ref_hid(refs, method)
            self.commit()
            calls = self._store.calls_of_ref(hid, direction)
        else:
            hids = ref_hids(refs, method)
            self.commit()
            calls = self._store.calls_of_refs(dict.fromkeys(hids), direction) if hids else []
        if len(calls) > 1:
            calls.sort(key=_call_order)
        return calls

    def failures(self, op: VersionedOp | str) -> Any:
        """A DataFrame of the stored failed calls of ``op`` (or its stored name):
        the call, its argument values (loaded in one batch), and the error's
        type, message and traceback.

        >>> from memostore import Storage, op
        >>> @op
        ... def inverse(x):
        ...     return 1 / x
        >>> storage = Storage()
        >>> _ = storage.map(inverse, [{"x": 1}, {"x": 0}], on_error="record", progress=False)
        >>> storage.failures(inverse)[["x", "error_type", "error_message"]]
           x                  error_type     error_message
        0  0  builtins.ZeroDivisionError  division by zero
        """
        import pandas as pd

        name = stored_op_name(op, self.reader, "failures")
        calls = [c for c in self.reader.calls_of_op(name) if c.status == "failed"]
        arguments = self.unwrap([dict(c.inputs) for c in calls])
        rows = [{"call": c, **values, "error_type": c.error.type if c.error else None,
                 "error_message": c.error.message if c.error else None,
                 "traceback": c.error.traceback if c.error else None,
                 "started_at": pd.to_datetime(c.started_at, unit="s", utc=True)}
                for c, values in zip(calls, arguments, strict=True)]
        table = pd.DataFrame(rows)
        for name in dict.fromkeys(name for values in arguments for name in values):  # an int left out stays an int
            table[name] = exact_column(np.fromiter((values.get(name) for values in arguments), object, len(rows)))
        return table

    def explain(self, op: VersionedOp | str, *args: Any, **kwargs: Any) -> Explanation:
        """Whether ``op(*args, **kwargs)`` would be a hit, without running anything.

        On a miss, names the nearest stored call and what differs: an
        argument's contents, the op's version (with the source diff), or an
        argument added without ``NewArgDefault``. ``print()`` it to read it.

        >>> from memostore import Storage, op
        >>> @op
        ... def double(x):
        ...     return 2 * x
        >>> storage = Storage()
        >>> with storage:
        ...     _ = double(1)
        >>> print(storage.explain(double, 1))
        double: hit: this call is stored
        >>> print(storage.explain(double, 2))
        double: miss
        nearest stored call: Call(double, hid=...)
          - argument 'x' has other contents
        """
        return explain(self, named_op(op, self.reader, "explain", need_live=True), args, kwargs)

    def lineage(self, ref: Ref | str | Iterable[Ref | str]) -> Any:
        """The calls and code versions behind ``ref``, as a tree: one row per ref, its inputs under it.

        A DataFrame (depth, parent: the row of the ref this one went into,
        ref, cid, via: the argument, op, version, output, call, value and
        passed_in: a value passed by hand, repeated: a call shown above) that
        prints as an indented tree, depth first. ``ref`` is a Ref, a stored
        ref's hid (an unknown one raises NotStoredError) or a list of them: one
        tree after another, a call shown once.

        >>> from memostore import Storage, op
        >>> @op
        ... def double(x):
        ...     return 2 * x
        >>> storage = Storage()
        >>> with storage:
        ...     z = double(double(1))
        >>> print(storage.lineage(z))
        ref ... = double@....output_0
            x ... = double@....output_0
                x ... = 1 (a value passed in)
        >>> storage.lineage(z)["depth"].tolist()
        [0, 1, 2]
        """
        items = [ref] if isinstance(ref, (Ref, str)) else list(ref) if isinstance(ref, Iterable) else ref
        hids = [hid for hid, item in zip(ref_hids(items, "lineage"), items, strict=True) if not isinstance(item, Ref)]
        self.commit()
        cids = self._store.ref_cids(hids)
        missing = [hid for hid in hids if hid not in cids]
        if missing:
            raise NotStoredError(f"storage.lineage: no ref with hid {missing[0]!r} is stored; pass a Ref, or the "
                                 "hid of a stored one (ref.hid; storage.cf(op) lists an op's values)")
        return lineage(self, [item if isinstance(item, Ref) else Ref(cids[item], item) for item in items])

    def versions(self, op: VersionedOp | str) -> Any:
        """A DataFrame with one row per stored version of ``op`` (an op or its stored name).

        Columns: ``version``, ``calls``, ``first_used``, ``last_used``
        (timestamps, UTC), ``is_current`` (whether it is the version this
        process runs: ``<NA>`` throughout for a name whose op is not defined
        here, as then no version is known to be current) and ``dependencies``
        (the helpers, classes and constants it covered).

        >>> from memostore import Storage, op
        >>> @op
        ... def double(x):
        ...     return 2 * x
        >>> storage = Storage()
        >>> with storage:
        ...     _ = double(1)
        >>> @op
        ... def double(x):
        ...     return x + x
        >>> with storage:
        ...     _ = double(1)
        >>> storage.versions(double)[["calls", "is_current"]]
           calls  is_current
        0      1       False
        1      1        True
        """
        self.commit()
        found = named_op(op, self.reader, "versions", need_live=False)
        if isinstance(found, str):  # stored, not defined here: which version is current is unknown
            return versions_table(self._store.op_version_rows(found), None)
        return versions_table(self._store.op_version_rows(found.name), self.version_of(found, refresh=True))

    def diff(self, op: VersionedOp | str, old_version: str, new_version: str) -> str:
        """A unified diff of the op's source and its dependencies between two stored versions.

        ``op`` is an op or its stored name; versions may be given by a unique
        prefix. Shows *why* calls recomputed.

        >>> from memostore import Storage, op
        >>> @op
        ... def double(x):
        ...     return 2 * x
        >>> storage = Storage()
        >>> with storage:
        ...     _ = double(1)
        >>> @op
        ... def double(x):
        ...     return x + x
        >>> with storage:
        ...     _ = double(1)
        >>> old, new = storage.versions(double)["version"]
        >>> print(storage.diff(double, old[:8], new))
        --- double@...
        +++ double@...
        @@ -1,4 +1,4 @@
         # op source
         @op
         def double(x):
        -    return 2 * x
        +    return x + x
        """
        self.commit()
        name = stored_op_name(op, self.reader, "diff")
        return diff_versions(self._store.op_version_rows(name), name, old_version, new_version)

    def ops(self) -> Any:
        """A DataFrame with one row per stored op, also of ops whose code is not loaded here.

        Columns: ``op``, ``versions``, ``calls`` (all versions), ``first_used``,
        ``last_used`` (UTC) and ``latest_version`` (the most recently used).

        >>> from memostore import op
        >>> from memostore import Storage
        >>> storage = Storage()
        >>> @op
        ... def double(x):
        ...     return 2 * x
        >>> with storage:
        ...     _ = double(1)
        >>> storage.ops()[["op", "versions", "calls"]]
               op  versions  calls
        0  double         1      1
        """
        self.commit()
        return ops_table({name: self._store.op_version_rows(name) for name in self._store.op_names()
                          if not is_structural(name)})  # built-in __list__ & co: not the user's ops

    def source(self, op: VersionedOp | str, version: str | None = None) -> str:
        """The stored source of a version of ``op`` (an op or its stored name).

        ``version`` is a version id or a unique prefix of one; by default the
        op's current version, or for a name the most recently used version.

        >>> from memostore import Storage, op
        >>> @op
        ... def double(x):
        ...     return 2 * x
        >>> storage = Storage()
        >>> with storage:
        ...     _ = double(1)
        >>> print(storage.source(double))
        @op
        def double(x):
            return 2 * x
        """
        self.commit()
        name = stored_op_name(op, self.reader, "source")
        if version is None and not isinstance(op, str):
            version = self.version_of(op, refresh=True)
        return version_source(self._store.op_version_rows(name), name, version)

    def source_history(self, op: VersionedOp | str) -> Any:
        """Every stored version of ``op`` (an op or its stored name) with its source, oldest first.

        A DataFrame with ``version``, ``first_used``, ``last_used``, ``calls`` and ``source``.

        >>> from memostore import Storage, op
        >>> @op
        ... def double(x):
        ...     return 2 * x
        >>> storage = Storage()
        >>> with storage:
        ...     _ = double(1)
        >>> @op
        ... def double(x):
        ...     return x + x
        >>> with storage:
        ...     _ = double(1), double(2)
        >>> history = storage.source_history("double")
        >>> history["calls"].tolist(), history.columns.tolist()
        ([1, 2], ['version', 'first_used', 'last_used', 'calls', 'source'])
        """
        self.commit()
        name = stored_op_name(op, self.reader, "source_history")
        rows = self._store.op_version_rows(name)
        if not rows:
            raise NotStoredError(f"op {name!r} has no stored version")
        table = versions_table(rows, None)[["version", "first_used", "last_used", "calls"]]
        table["source"] = [row["source"] for row in rows]
        return table

    def get_call(self, hid: str) -> Call:
        """The stored call with history id ``hid``; raises NotStoredError if none.

        >>> from memostore import Storage, op
        >>> @op
        ... def double(x):
        ...     return 2 * x
        >>> storage = Storage()
        >>> with storage:
        ...     y = double(1)
        >>> call = storage.get_ref_creator(y)
        >>> storage.get_call(call.hid) == call
        True
        """
        calls = self.reader.calls_by_hids([hid])
        if not calls:
            raise NotStoredError(f"no call with hid {hid!r} is stored; storage.cf(op) lists an op's calls")
        return calls[0]

    def calls_of(self, op: VersionedOp | str) -> list[Call]:
        """Every stored call of ``op`` (an op or its stored name), all versions, newest first.

        >>> from memostore import Storage, op
        >>> @op
        ... def double(x):
        ...     return 2 * x
        >>> storage = Storage()
        >>> with storage:
        ...     _ = double(1), double(2)
        >>> sorted(storage.unwrap(call.inputs["x"]) for call in storage.calls_of("double"))
        [1, 2]
        """
        calls = self.reader.calls_of_op(stored_op_name(op, self.reader, "calls_of"))
        return sorted(calls, key=lambda call: call.started_at, reverse=True)


_REF_HID = re.compile(r"[0-9a-f]{32}")
_REF_ARGUMENT = "Refs or ref hids: a Ref, its ref.hid (32 hex digits), or a list of them"


def ref_hid(item: object, method: str) -> str:
    """The hid ``item`` names (a Ref or a hid), checked: a string that cannot be a hid would only find nothing."""
    if isinstance(item, Ref):
        return item.hid
    if isinstance(item, str) and _REF_HID.fullmatch(item):
        return item
    got = (f"the string {item!r}, which is not a hid" if isinstance(item, str)
           else f"{type(item).__name__} {item!r}")
    raise StorageOptionError(f"storage.{method} takes {_REF_ARGUMENT}, got {got}; pass the Ref itself, or its "
                             "ref.hid")


def ref_hids(refs: object, method: str) -> list[str]:
    """The hids of a list (any iterable) of Refs and hids, each checked as ``ref_hid`` does."""
    if not isinstance(refs, Iterable):
        raise StorageOptionError(f"storage.{method} takes {_REF_ARGUMENT}, got {type(refs).__name__} {refs!r}")
    return [ref_hid(item, method) for item in refs]


def _call_order(call: Call) -> tuple[float, str]:
    """Oldest first; calls started at the same time by hid, so the order is the same in every process."""
    return call.started_at, call.hid
