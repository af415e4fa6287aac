"""The tables of a memostore database (schema version 3): the only place that names them.

=======================  ====================================================
table                    one row per
=======================  ====================================================
memostore_meta           setting: schema version, hash format, creation time
memostore_ops            op name, with the module and qualified name of its function
memostore_op_versions    version of an op seen by a storage, with its source
memostore_names          argument or output name
memostore_values         stored content, by cid (inline bytes, or a blob file)
memostore_refs           ref: history id -> content id
memostore_calls          call: ids, op version, status, timing, error
memostore_edges          call argument or output: (call, direction, name) -> ref
memostore_claims         call being computed right now: who computes it, until when
memostore_runs           run: an outermost ``with storage:`` block or a ``map``
=======================  ====================================================

Every row has an integer id (a rowid on SQLite), and rows point at each
other by id: a new call appends to each table instead of dirtying a random
page of every index, and an edge is a few bytes. The 128-bit ids of the
model (``Ref.hid``, ``Call.cid``...) are 16-byte binary columns with unique
indexes; the model's 32-character hex strings are converted in ``rows.py``.

Names (of ops, versions, arguments and outputs) and error texts may hold any
character, NUL included, which PostgreSQL's text cannot: they are stored as
UTF-8 bytes (``rows.text_bytes``), each op, version and name once.
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
    UniqueConstraint,
)

SCHEMA_VERSION = 3
HASH_BYTES = 16  # an xxh3-128 id
# A rowid on SQLite (INTEGER PRIMARY KEY), a 64-bit serial on PostgreSQL.
RowId = BigInteger().with_variant(Integer(), "sqlite")

STATUS_OK = "ok"
STATUS_FAILED = "failed"

metadata = MetaData()

meta = Table(
    "memostore_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

ops = Table(
    "memostore_ops",
    metadata,
    Column("id", RowId, primary_key=True),
    Column("name", LargeBinary, nullable=False, unique=True),
    # The op's function, where the caller said (NULL for ops stored before it did).
    Column("module", Text, nullable=True),
    Column("qualname", Text, nullable=True),
)

op_versions = Table(
    "memostore_op_versions",
    metadata,
    Column("id", RowId, primary_key=True),
    Column("op_id", RowId, nullable=False),
    Column("version", LargeBinary, nullable=False),
    # NULL when Python could not read the op's source (the bytecode fallback).
    Column("source", Text, nullable=True),
    # JSON list of the helpers, classes and constants this version covered
    # ({"name", "kind", "source"}); NULL when the storage tracks no deps_path.
    Column("dependencies", Text, nullable=True),
    Column("first_used", Float, nullable=False),
    Column("last_used", Float, nullable=False),
    UniqueConstraint("op_id", "version", name="memostore_op_versions_key"),
)

names = Table(
    "memostore_names",
    metadata,
    Column("id", RowId, primary_key=True),
    Column("name", LargeBinary, nullable=False, unique=True),
)

values = Table(
    "memostore_values",
    metadata,
    Column("id", RowId, primary_key=True),
    Column("cid", LargeBinary(HASH_BYTES), nullable=False, unique=True),
    Column("format", Text, nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    # NULL when the bytes live in the blob store (values over the threshold).
    Column("inline_data", LargeBinary, nullable=True),
)

refs = Table(
    "memostore_refs",
    metadata,
    Column("id", RowId, primary_key=True),
    Column("hid", LargeBinary(HASH_BYTES), nullable=False, unique=True),
    Column("cid", LargeBinary(HASH_BYTES), nullable=False),
)

calls = Table(
    "memostore_calls",
    metadata,
    Column("id", RowId, primary_key=True),
    Column("hid", LargeBinary(HASH_BYTES), nullable=False, unique=True),
    Column("cid", LargeBinary(HASH_BYTES), nullable=False),
    Column("op_version_id", RowId, nullable=False),
    Column("status", String(16), nullable=False),
    Column("multi_output", Boolean, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("duration_s", Float, nullable=False),
    # The three error columns are NULL for calls whose status is "ok".
    Column("error_type", LargeBinary, nullable=True),
    Column("error_message", LargeBinary, nullable=True),
    Column("error_traceback", LargeBinary, nullable=True),
    # The run that computed (or recorded) the call; NULL for calls stored before runs were (schema 2).
    Column("run_id", RowId, nullable=True),
    Index("memostore_calls_cid", "cid"),
    Index("memostore_calls_op_version", "op_version_id"),
    Index("memostore_calls_run", "run_id"),
)

edges = Table(
    "memostore_edges",
    metadata,
    Column("call_id", RowId, primary_key=True),
    Column("output", Boolean, primary_key=True),
    Column("name_id", RowId, primary_key=True),
    Column("position", Integer, nullable=False),
    Column("ref_id", RowId, nullable=False),
    Index("memostore_edges_ref", "ref_id", "output"),
    sqlite_with_rowid=False,
)

claims = Table(
    "memostore_claims",
    metadata,
    Column("call_hid", LargeBinary(HASH_BYTES), primary_key=True),
    Column("owner", Text, nullable=False),
    Column("expires_at", Float, nullable=False),
    Index("memostore_claims_owner", "owner"),
    sqlite_with_rowid=False,
)

runs = Table(
    "memostore_runs",
    metadata,
    Column("id", RowId, primary_key=True),
    Column("kind", String(16), nullable=False),  # "block" or "map"
    Column("label", Text, nullable=True),  # NULL: a run nobody named
    Column("tags", Text, nullable=False),  # a JSON object of strings
    Column("host", Text, nullable=False),
    Column("user", Text, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", Float, nullable=False),
    # NULL while the run goes on, and for a run whose process died.
    Column("finished_at", Float, nullable=True),
    Column("computed", Integer, nullable=False),
    Column("hits", Integer, nullable=False),
    Column("failed", Integer, nullable=False),
    # The history ids of the calls the run found stored, 16 bytes each, in one value: a run
    # that loads a million calls writes one row, not a million (NULL: none).
    Column("loaded", LargeBinary, nullable=True),
)

# Alembic's record of the last migration applied (its own layout, under our prefix).
alembic_version = Table(
    "memostore_alembic_version",
    metadata,
    Column("version_num", String(32), primary_key=True),
)

# Scratch tables: TEMPORARY (one per connection, gone with it), created by the operation that
# needs one and emptied before and after each use; never part of a store's schema or migrations.
scratch = MetaData()

# The ids of the calls one ``drop_calls`` deletes (see ``dropping.py``).
dropping = Table(
    "memostore_dropping",
    scratch,
    Column("id", RowId, primary_key=True, autoincrement=False),
    prefixes=["TEMPORARY"],
)
