"""The ids of ops, op versions and names: small tables, cached in each process.

A stored op, version or name keeps its id for good (they are never
deleted), so once a process has read an id it never asks again. A write
finds or inserts the ids its batch needs in its own transaction; they are
cached only once it committed.
"""

from __future__ import annotations

import time
from typing import Any, Iterable, NamedTuple

from sqlalchemy import bindparam, select, update

from memostore.backends import rows, schema
from memostore.backends.base import WriteBatch
from memostore.backends.database import Database
from memostore.backends.statements import versions_statement


class BatchIds(NamedTuple):
    """The ids a batch's rows point at, cached once its transaction committed."""

    ops: dict[str, int]
    versions: dict[tuple[str, str], int]
    names: dict[str, int]


class Vocabulary:
    """id <-> name of ops, (op, version)s and argument/output names, for one store."""

    def __init__(self, database: Database) -> None:
        self.db = database
        self._names: dict[int, str] = {}
        self._name_ids: dict[str, int] = {}
        self._versions: dict[int, tuple[str, str]] = {}
        self._version_ids: dict[tuple[str, str], int] = {}
        self._op_ids: dict[str, int] = {}

    # --- reading ----------------------------------------------------------------

    def name(self, name_id: int) -> str:
        """The argument or output name with this id."""
        found = self._names.get(name_id)
        if found is None:
            self.learn_names(self.db.fetch(self.db.statement("all_names", _names_statement)))
            found = self._names[name_id]
        return found

    def version(self, version_id: int) -> tuple[str, str]:
        """The (op, version) with this id."""
        found = self._versions.get(version_id)
        if found is None:
            self.learn_versions(self.db.fetch(self.db.statement("all_versions", versions_statement)))
            found = self._versions[version_id]
        return found

    def learn_names(self, found: Iterable[tuple[int, bytes]]) -> None:
        """Remember (id, name bytes) rows read from the names table."""
        for name_id, name in found:
            text = rows.text_of(name) or ""
            self._names[name_id], self._name_ids[text] = text, name_id

    def learn_versions(self, found: Iterable[tuple[int, bytes, bytes]]) -> None:
        """Remember (id, op bytes, version bytes) rows of the op versions."""
        for version_id, op, version in found:
            pair = (rows.text_of(op) or "", rows.text_of(version) or "")
            self._versions[version_id], self._version_ids[pair] = pair, version_id

    # --- writing ----------------------------------------------------------------

    def ids_for(self, cursor: Any, batch: WriteBatch) -> BatchIds:
        """Ids of the (op, version)s and names of ``batch``, inserting the new ones in ``cursor``'s transaction.

        Also records the batch's op versions (last use, source) and op identities.
        """
        op_ids = self._ops(cursor, rows.op_names(batch.calls, batch.op_versions), batch.op_versions)
        now = time.time()
        noted = [{"op_id": op_ids[row["op"]], "version": rows.text_bytes(row["version"]),
                  "source": row.get("source"), "dependencies": row.get("dependencies"),
                  "first_used": row.get("first_used", now), "last_used": row.get("last_used", now)}
                 for row in batch.op_versions]
        known = {(row["op"], row["version"]) for row in batch.op_versions}
        unnoted = [{"op_id": op_ids[op], "version": rows.text_bytes(version), "source": None, "dependencies": None,
                    "first_used": now, "last_used": now}
                   for op, version in rows.version_pairs(batch.calls, ()) - known - self._version_ids.keys()]
        columns = ["op_id", "version", "source", "dependencies", "first_used", "last_used"]
        versions = schema.op_versions
        # The text that ran is the version's source: a parameter grown with NewArgDefault keeps the
        # version, and a comment or the formatting may change, while the text does.
        # (A process that could not read them, or tracks no deps_path, leaves them as they are.)
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for row in sorted(noted, key=lambda row: (row["op_id"], row["version"])):
            texts = tuple(name for name in ("source", "dependencies") if row[name] is not None)
            groups.setdefault(texts, []).append(row)
        for texts, group in sorted(groups.items()):
            self.db.executemany(cursor, self.db.insert(versions, ["op_id", "version"], columns,
                                                       update=["last_used", *texts]), group)
        self.db.executemany(cursor, self.db.insert(versions, ["op_id", "version"], columns),
                            sorted(unnoted, key=lambda row: (row["op_id"], row["version"])))
        wanted = rows.version_pairs(batch.calls, batch.op_versions)
        version_ids = {pair: self._version_ids[pair] for pair in wanted if pair in self._version_ids}
        if len(version_ids) < len(wanted):
            found = self.db.fetch_in("versions_of_ops", _versions_of_op_ids,
                                     {op_ids[op] for op, _ in wanted}, cursor=cursor)
            op_names = {op_id: name for name, op_id in op_ids.items()}
            for version_id, op_id, version in found:
                version_ids.setdefault((op_names[op_id], rows.text_of(version) or ""), version_id)
        return BatchIds(op_ids, version_ids, self._names_for(cursor, rows.edge_names(batch.calls)))

    def remember(self, ids: BatchIds) -> None:
        """Cache the ids of a committed write."""
        self._op_ids.update(ids.ops)
        for pair, version_id in ids.versions.items():
            self._versions[version_id], self._version_ids[pair] = pair, version_id
        for name, name_id in ids.names.items():
            self._names[name_id], self._name_ids[name] = name, name_id

    def _ops(self, cursor: Any, names: set[str], op_versions: list[dict[str, Any]]) -> dict[str, int]:
        found = self._named_ids(cursor, schema.ops, "op_ids", names, self._op_ids)
        identities = [{"op_name": rows.text_bytes(row["op"]), "module": row["module"], "qualname": row.get("qualname")}
                      for row in op_versions if row.get("module") is not None]
        if identities:
            statement = self.db.statement("op_identity", _identity_statement)
            self.db.executemany(cursor, statement, identities)
        return found

    def _names_for(self, cursor: Any, names: set[str]) -> dict[str, int]:
        return self._named_ids(cursor, schema.names, "name_ids", names, self._name_ids)

    def _named_ids(self, cursor: Any, table: Any, key: str, names: set[str], known: dict[str, int]) -> dict[str, int]:
        """name -> id in ``table`` (ops or names): cached ones, then the missing ones inserted and read back."""
        found = {name: known[name] for name in names if name in known}
        missing = [rows.text_bytes(name) for name in names - known.keys()]
        if missing:
            self.db.executemany(cursor, self.db.insert(table, ["name"], ["name"]),
                                [{"name": name} for name in sorted(missing)])
            c = table.c
            for row_id, name in self.db.fetch_in(key, lambda ids: select(c.id, c.name).where(c.name.in_(ids)),
                                                 missing, cursor=cursor):
                found[rows.text_of(name) or ""] = row_id
        return found


def _names_statement() -> Any:
    n = schema.names.c
    return select(n.id, n.name)


def _versions_of_op_ids(ids: list[Any]) -> Any:
    v = schema.op_versions.c
    return select(v.id, v.op_id, v.version).where(v.op_id.in_(ids))


def _identity_statement() -> Any:
    o = schema.ops.c
    return (update(schema.ops).where(o.name == bindparam("op_name"))
            .values(module=bindparam("module"), qualname=bindparam("qualname")))
