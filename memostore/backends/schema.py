"""The tables of a memostore database: the only place that names them.

===================  ========================================================
table                one row per
===================  ========================================================
memostore_meta       setting: schema version, hash format, creation time
memostore_values     stored content, by cid (inline bytes, or a blob file)
memostore_refs       ref: history id -> content id
memostore_calls      call: ids, op, version, status, timing
memostore_edges      call argument or output: (call, direction, name) -> ref
memostore_claims     call being computed right now: who computes it, until when
memostore_op_versions  version of an op seen by a storage, with its source
===================  ========================================================

Edges are indexed by call and by ref, so a ComputationFrame expands backward
(which call made this ref?) and forward (which calls read it?) with one
indexed query per step. On SQLite the small, hot tables are WITHOUT ROWID
(clustered by primary key), so a lookup is one B-tree probe, not two.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

SCHEMA_VERSION = 1
HASH_CHARS = 32  # hex digits of an xxh3-128 id
NAME_CHARS = 255

DIRECTION_IN = "in"
DIRECTION_OUT = "out"

metadata = MetaData()

meta = Table(
    "memostore_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

values = Table(
    "memostore_values",
    metadata,
    Column("cid", String(HASH_CHARS), primary_key=True),
    Column("format", String(NAME_CHARS), nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    # NULL when the bytes live in the blob store (values over the threshold).
    Column("inline_data", LargeBinary, nullable=True),
)

refs = Table(
    "memostore_refs",
    metadata,
    Column("hid", String(HASH_CHARS), primary_key=True),
    Column("cid", String(HASH_CHARS), nullable=False),
    Index("memostore_refs_by_cid", "cid"),
    sqlite_with_rowid=False,
)

calls = Table(
    "memostore_calls",
    metadata,
    Column("hid", String(HASH_CHARS), primary_key=True),
    Column("cid", String(HASH_CHARS), nullable=False),
    Column("op", String(NAME_CHARS), nullable=False),
    Column("version", String(NAME_CHARS), nullable=False),
    Column("status", String(16), nullable=False),
    Column("multi_output", Boolean, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("duration_s", Float, nullable=False),
    # The three error columns are NULL for calls whose status is "ok".
    Column("error_type", String(NAME_CHARS), nullable=True),
    Column("error_message", Text, nullable=True),
    Column("error_traceback", Text, nullable=True),
    Index("memostore_calls_by_cid", "cid"),
    Index("memostore_calls_by_op", "op", "version"),
    sqlite_with_rowid=False,
)

edges = Table(
    "memostore_edges",
    metadata,
    Column("call_hid", String(HASH_CHARS), primary_key=True),
    Column("direction", String(3), primary_key=True),
    Column("name", String(NAME_CHARS), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("ref_hid", String(HASH_CHARS), nullable=False),
    # The ref's cid again (refs has it too): frames and lookups read an edge
    # with its content id in one index probe instead of a join per row.
    Column("ref_cid", String(HASH_CHARS), nullable=False),
    Index("memostore_edges_by_ref", "ref_hid", "direction"),
    sqlite_with_rowid=False,
)

claims = Table(
    "memostore_claims",
    metadata,
    Column("call_hid", String(HASH_CHARS), primary_key=True),
    Column("owner", String(NAME_CHARS), nullable=False),
    Column("expires_at", Float, nullable=False),
    Index("memostore_claims_by_owner", "owner"),
    sqlite_with_rowid=False,
)

op_versions = Table(
    "memostore_op_versions",
    metadata,
    Column("op", String(NAME_CHARS), primary_key=True),
    Column("version", String(NAME_CHARS), primary_key=True),
    # NULL when Python could not read the op's source (the bytecode fallback).
    Column("source", Text, nullable=True),
    # JSON list of the helpers, classes and constants this version covered
    # ({"name", "kind", "source"}); NULL when the storage tracks no deps_path.
    Column("dependencies", Text, nullable=True),
    Column("first_used", Float, nullable=False),
    Column("last_used", Float, nullable=False),
)
