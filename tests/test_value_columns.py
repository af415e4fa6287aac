"""A frame's values read in one scan of the values table: the same values as row by row, each checked."""

from __future__ import annotations

import numpy as np
import pytest
import sqlalchemy

from memostore import CorruptValueError, Storage, op, value_columns
from memostore.cf import columns


@op
def vc_mixed(i):
    """Values of every kind a table shows: plain ints (the scanned fast path), big ints, floats,
    text, None, arrays and complex numbers."""
    kind = i % 7
    if kind == 0:
        return i
    if kind == 1:
        return -(2**40) - i
    if kind == 2:
        return i / 3
    if kind == 3:
        return f"text {i}"
    if kind == 4:
        return None
    if kind == 5:
        return np.arange(i % 5 + 300, dtype=np.int64)  # over 1 KiB: in the blob store where that is the threshold
    return complex(i, 1)


@op
def vc_next(x):
    return x + 1


@pytest.fixture
def scan_always(monkeypatch):
    """Read the values table whole for any column, however small."""
    monkeypatch.setattr(value_columns, "SCAN_MIN_VALUES", 1)
    monkeypatch.setattr(value_columns, "SCAN_MIN_FRACTION", 0.0)


def fill(storage, n=70):
    with storage:
        outputs = [vc_mixed(i) for i in range(n)]
        for i in range(0, n, 7):
            vc_next(outputs[i])
    return outputs


def assert_same(column, wanted):
    assert len(column) == len(wanted)
    for got, want in zip(column, wanted, strict=True):
        if isinstance(want, np.ndarray):
            assert isinstance(got, np.ndarray) and (got == want).all()
        else:
            assert type(got) is type(want) and got == want


def by_input(frame, output):
    table = frame.df(include_calls=False)
    return table.sort_values("i")[output].tolist(), table.sort_values("i")["i"].tolist()


def test_a_scanned_column_holds_the_values_stored_row_by_row(storage, scan_always):
    fill(storage)
    scanned, inputs = by_input(storage.cf(vc_mixed), "var_0")
    with storage:
        assert_same(scanned, [storage.unwrap(vc_mixed(i)) for i in inputs])
    assert scanned[0] == 0 and scanned[7] == 7  # plain ints


def test_values_in_the_blob_store_are_read_beside_the_scan(tmp_path, scan_always):
    with Storage(db_path=tmp_path / "runs.db", blob_threshold_bytes=1024) as storage:
        outputs = [vc_mixed(i) for i in range(70)]
        stored = [storage.unwrap(ref) for ref in outputs]
    assert any(isinstance(v, np.ndarray) for v in stored)
    scanned, inputs = by_input(storage.cf(vc_mixed), "var_0")
    assert inputs == list(range(70))
    assert_same(scanned, stored)


def test_a_column_reads_the_same_whether_scanned_or_not(storage, monkeypatch):
    fill(storage)
    probed, _ = by_input(storage.cf(vc_mixed), "var_0")
    monkeypatch.setattr(value_columns, "SCAN_MIN_VALUES", 1)
    monkeypatch.setattr(value_columns, "SCAN_MIN_FRACTION", 0.0)
    scanned, _ = by_input(storage.cf(vc_mixed), "var_0")
    monkeypatch.setattr(value_columns, "SCAN_MAX_INLINE_BYTES", 0)  # too big to scan: row by row again
    refused, _ = by_input(storage.cf(vc_mixed), "var_0")
    assert_same(scanned, probed)
    assert_same(refused, probed)


def test_an_expanded_frame_scans_its_inputs_and_outputs(storage, scan_always):
    fill(storage)
    table = storage.cf(vc_next).expand_all().df(include_calls=False)
    assert sorted(table["i"].tolist()) == list(range(0, 70, 7))
    assert (table["x"] == table["i"]).all() and (table["var_0"] == table["i"] + 1).all()


def damage(url, cid, new_bytes):
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text("UPDATE memostore_values SET inline_data = :d WHERE cid = :c"),
                           {"d": new_bytes, "c": bytes.fromhex(cid)})
    engine.dispose()


@pytest.mark.parametrize("kind", ["file", "postgres"])
def test_a_damaged_plain_int_is_refused_not_shown(kind, tmp_path, request, scan_always):
    """Bytes that still decode as an int, but another one, fail the content id check."""
    url = request.getfixturevalue("postgres_url") if kind == "postgres" else f"sqlite:///{tmp_path / 'runs.db'}"
    storage = Storage(db_url=url) if kind == "postgres" else Storage(db_path=tmp_path / "runs.db")
    with storage:
        refs = [vc_mixed(i) for i in range(0, 70, 7)]
    storage.close()
    damage(url, refs[3].cid, b"i" + (999).to_bytes(4, "little", signed=True))
    reopened = Storage(db_url=url) if kind == "postgres" else Storage(db_path=tmp_path / "runs.db")
    with pytest.raises(CorruptValueError) as raised:
        reopened.cf(vc_mixed).df()
    assert refs[3].cid in str(raised.value)
    reopened.close()


def test_a_column_of_plain_ints_is_an_int64_column_and_predicates_see_python_ints(storage, scan_always):
    with storage:
        for i in range(30):
            vc_next(i)
    table = storage.cf(vc_next).df(include_calls=False)
    assert str(table["x"].dtype) == "int64" and str(table["var_0"].dtype) == "int64"
    seen = []
    storage.cf(vc_next).where("x", lambda x: seen.append(type(x)) or True)
    assert set(seen) == {int}


@pytest.fixture
def read_ahead(monkeypatch, scan_always):
    """Frames read the store whole, so that ``df`` reads the values table on a second thread; yields
    how many tables were read that way."""
    monkeypatch.setattr(columns, "SNAPSHOT_MIN_IDS", 0)
    monkeypatch.setattr(columns, "SNAPSHOT_MIN_FRACTION", 0.0)
    started = []
    original = value_columns.TableAhead.__init__

    def counting(self, store):
        started.append(store)
        original(self, store)

    monkeypatch.setattr(value_columns.TableAhead, "__init__", counting)
    return started


def test_values_read_ahead_are_the_values_read_row_by_row(storage, monkeypatch, read_ahead):
    fill(storage)
    ahead, inputs = by_input(storage.cf(vc_mixed).expand_all(), "var_0")
    assert len(read_ahead) == 1
    monkeypatch.setattr(value_columns, "SCAN_MIN_VALUES", 10**9)
    probed, _ = by_input(storage.cf(vc_mixed).expand_all(), "var_0")
    assert len(read_ahead) == 1
    assert_same(ahead, probed)
    with storage:
        assert_same(ahead, [storage.unwrap(vc_mixed(i)) for i in inputs])


def test_values_read_ahead_are_checked(tmp_path, read_ahead):
    storage = Storage(db_path=tmp_path / "runs.db")
    with storage:
        refs = [vc_mixed(i) for i in range(0, 70, 7)]
    damage(f"sqlite:///{tmp_path / 'runs.db'}", refs[3].cid, b"i" + (999).to_bytes(4, "little", signed=True))
    with pytest.raises(CorruptValueError) as raised:
        storage.cf(vc_mixed).df()
    assert refs[3].cid in str(raised.value) and len(read_ahead) == 1
    assert storage.cf(vc_mixed).df(values="refs")["var_0"].notna().all()  # the store stays usable
    storage.close()


def test_values_read_ahead_are_read_after_calls_made_in_the_block(storage, read_ahead):
    with storage:
        first = [vc_next(i) for i in range(10)]
        table = storage.cf(vc_next).df(include_calls=False)
        later = vc_next(100)
    assert sorted(table["var_0"].tolist()) == [storage.unwrap(r) for r in first] and len(read_ahead) == 1
    assert storage.unwrap(later) == 101
