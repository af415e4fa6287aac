"""Faults a store must survive: a full disk, a damaged database, processes killed mid-write.

Each test asserts that nothing committed is lost, and that what cannot be
served is reported as a MemostoreError, never as a raw driver error.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from memostore import (
    CorruptStoreError,
    MemostoreError,
    SchemaVersionError,
    Storage,
    StorageFullError,
    op,
)

from helpers import REPO_ROOT


@op(version="1")
def noise(seed, size):
    return np.random.default_rng(seed).integers(0, 2**62, size)  # incompressible, distinct per seed


def expected_noise(seed, size):
    return np.random.default_rng(seed).integers(0, 2**62, size)


# --- a full disk ------------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs (mounting needs root: CI runs as root; elsewhere the test is skipped)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.mark.parametrize("threshold", [2**40, 2**10], ids=["inline", "blobs"])
def test_a_full_disk_loses_nothing_committed_and_the_store_works_once_space_is_freed(small_disk, threshold):
    db_path = small_disk / "runs.db"
    storage = Storage(db_path=db_path, blob_threshold_bytes=threshold)
    with storage:
        for seed in range(5):
            noise(seed, 1000)
    filler = small_disk / "filler"
    with pytest.raises(StorageFullError, match="full.*nothing committed was lost.*storage.commit"):
        with open(filler, "wb") as handle:  # leave a little room, then run out of it
            handle.write(b"\0" * (os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize - 200_000))
        with storage:
            for seed in range(5, 200):
                noise(seed, 1000)
    stored_before = len(Storage(db_path=db_path).reader.calls_of_op("noise"))
    assert stored_before >= 5
    filler.unlink()
    storage.commit()  # the calls pending since the error are written now
    reopened = Storage(db_path=db_path, blob_threshold_bytes=threshold)
    calls = reopened.reader.calls_of_op("noise")
    assert len(calls) == 200
    for call in calls:
        np.testing.assert_array_equal(reopened.unwrap(call.outputs["output_0"]),
                                      expected_noise(reopened.unwrap(call.inputs["seed"]), 1000))
    with sqlite3.connect(db_path) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)


# --- a damaged database -----------------------------------------------------------------------------


def stored_store(tmp_path: Path) -> Path:
    db_path = tmp_path / "pristine.db"
    storage = Storage(db_path=db_path)
    with storage:
        for seed in range(300):
            noise(seed, 20)
    storage.close()
    with sqlite3.connect(db_path) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return db_path


def read_everything(db_path: Path) -> int:
    """Open the store and load every call's values; returns how many calls match what was stored."""
    storage = Storage(db_path=db_path)
    calls = storage.reader.calls_of_op("noise")
    seeds, outputs = storage.unwrap([[c.inputs["seed"] for c in calls], [c.outputs["output_0"] for c in calls]])
    return sum(bool(np.array_equal(output, expected_noise(seed, 20)))
               for seed, output in zip(seeds, outputs, strict=True))


def damaged_copy(pristine: Path, tmp_path: Path, offset: int, data: bytes) -> Path:
    copy = tmp_path / f"damaged-{offset}.db"
    shutil.copyfile(pristine, copy)
    with open(copy, "r+b") as handle:
        handle.seek(offset)
        handle.write(data)
    return copy


def test_a_damaged_header_is_a_corrupt_store_error_naming_the_check(tmp_path):
    damaged = damaged_copy(stored_store(tmp_path), tmp_path, 0, b"this is not sqlite at all" * 4)
    with pytest.raises(CorruptStoreError, match=r"damaged.*storage\.check\(\)"):
        read_everything(damaged)


def test_a_damaged_table_page_is_a_corrupt_store_error(tmp_path):
    pristine = stored_store(tmp_path)
    with sqlite3.connect(pristine) as connection:
        page_size = connection.execute("PRAGMA page_size").fetchone()[0]
        root = connection.execute("SELECT rootpage FROM sqlite_master WHERE name = 'memostore_calls'").fetchone()[0]
    damaged = damaged_copy(pristine, tmp_path, (root - 1) * page_size, b"\xff" * page_size)  # the calls' root page
    with pytest.raises(CorruptStoreError, match="damaged"):
        read_everything(damaged)


def test_random_byte_damage_to_the_database_is_never_a_raw_driver_error(tmp_path):
    """64 random bytes at random places, 30 trials: the database's own damage is a
    CorruptStoreError (or goes unnoticed by SQLite), never a raw sqlite3 error. Damage
    inside a value's own bytes is caught by the verified loads of values, tested there."""
    pristine = stored_store(tmp_path)
    size = pristine.stat().st_size
    rng = random.Random(12)
    outcomes = {"read": 0, "reported": 0, "value decoding": 0}
    for _ in range(30):
        damaged = damaged_copy(pristine, tmp_path, rng.randrange(100, size - 64), rng.randbytes(64))
        try:
            read_everything(damaged)
            outcomes["read"] += 1
        except MemostoreError:
            outcomes["reported"] += 1
        except sqlite3.Error as err:
            pytest.fail(f"a raw sqlite3 error escaped: {err!r}")
        except Exception:  # a damaged value payload: the values' own checks report it
            outcomes["value decoding"] += 1
        damaged.unlink()
    assert outcomes["reported"] > 0, outcomes


def test_a_garbage_schema_version_says_so(tmp_path):
    db_path = stored_store(tmp_path)
    with sqlite3.connect(db_path) as connection:
        connection.execute("UPDATE memostore_meta SET value = 'garbage' WHERE key = 'schema_version'")
    with pytest.raises(SchemaVersionError, match="'garbage'.*not numbers"):
        Storage(db_path=db_path)


# --- kill -9 ----------------------------------------------------------------------------------------

COMMITTER = textwrap.dedent("""
    import sys
    import numpy as np
    from memostore import Storage, op

    @op(version="1")
    def noise(seed, size):
        return np.random.default_rng(seed).integers(0, 2**62, size)

    where, start = sys.argv[1], int(sys.argv[2])
    storage = (Storage(db_url=where, blob_dir=sys.argv[3], blob_threshold_bytes=4000) if "://" in where
               else Storage(db_path=where, blob_threshold_bytes=4000))
    for block in range(start, start + 10_000):
        with storage:
            for seed in range(block * 20, block * 20 + 20):
                noise(seed, 1000 if seed % 3 == 0 else 10)  # every third value is a blob
        print(block, flush=True)  # committed: the parent may count on it
        open(sys.argv[4], "a").close()  # the parent kills this process from now on
""")

MAPPER = textwrap.dedent("""
    import sys, time
    import numpy as np
    from memostore import Storage, op

    @op(version="1")
    def noise(seed, size):
        time.sleep(0.02)  # results arrive over seconds, committed as they come: a kill lands mid-map
        return np.random.default_rng(seed).integers(0, 2**62, size)

    if __name__ == "__main__":  # worker processes import this file
        storage = Storage(db_path=sys.argv[1], blob_threshold_bytes=4000, claim_ttl_s=2.0)  # a dead map's claims
        items = [{"seed": seed, "size": 1000 if seed % 3 == 0 else 10} for seed in range(600)]
        refs = storage.map(noise, items, executor=sys.argv[2], n_jobs=2, progress=False)
        print("done", flush=True)
""")


def kill_when(command: list[str], started, delay_s: float) -> list[str]:
    """Run ``command`` in its own process group; once ``started()`` (it has committed
    something), wait ``delay_s`` and SIGKILL the whole group. Returns its stdout lines."""
    process = subprocess.Popen(command, env={"PYTHONPATH": str(REPO_ROOT)}, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 60
    while not started() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(delay_s)
    os.killpg(process.pid, signal.SIGKILL)
    out, err = process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL, err
    return out.split()


def assert_committed_blocks_whole(storage: Storage, blocks: list[int]) -> int:
    stored = storage.reader.calls_of_op("noise")
    calls = dict(zip(storage.unwrap([call.inputs["seed"] for call in stored]), stored, strict=True))
    for block in blocks:
        for seed in range(block * 20, block * 20 + 20):
            assert seed in calls, f"seed {seed} of committed block {block} is lost"
    outputs = storage.unwrap([call.outputs["output_0"] for call in calls.values()])
    for seed, value in zip(calls, outputs, strict=True):
        np.testing.assert_array_equal(value, expected_noise(seed, 1000 if seed % 3 == 0 else 10))
    return len(calls)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_kill_9_during_commits_loses_nothing_committed(tmp_path, backend, request):
    where = str(tmp_path / "killed.db") if backend == "sqlite" else request.getfixturevalue("postgres_url")
    blob_dir = tmp_path / "killed.db-blobs" if backend == "sqlite" else tmp_path / "blobs"
    (tmp_path / "committer.py").write_text(COMMITTER)
    rng = random.Random(9)
    committed: list[int] = []
    trials = 6 if backend == "sqlite" else 3
    for trial in range(trials):
        marker = tmp_path / f"committed-{trial}"
        lines = kill_when([sys.executable, str(tmp_path / "committer.py"), where, str(trial * 1000), str(blob_dir),
                           str(marker)], marker.exists, rng.uniform(0.0, 1.0))
        committed.extend(int(line) for line in lines)
    assert committed, "no block was committed before the kills: the trials tested nothing"
    storage = Storage(db_path=where) if backend == "sqlite" else Storage(db_url=where, blob_dir=blob_dir)
    assert assert_committed_blocks_whole(storage, committed) >= 20 * len(committed)
    freed = storage.cleanup_refs(grace_s=0)  # temporary files of killed writers go
    assert freed["values"] == 0, "a cleanup never deletes a value a call uses"
    assert not [p for p in blob_dir.rglob(".tmp-*")]
    assert_committed_blocks_whole(storage, committed)


def test_kill_9_during_a_process_map_loses_nothing_committed(tmp_path):
    db_path = tmp_path / "mapped.db"
    (tmp_path / "mapper.py").write_text(MAPPER)
    rng = random.Random(3)

    def stored_calls() -> int:
        try:
            with sqlite3.connect(db_path) as connection:
                return connection.execute("SELECT COUNT(*) FROM memostore_calls").fetchone()[0]
        except sqlite3.Error:
            return 0  # not created yet

    for _ in range(2):
        before = stored_calls()
        kill_when([sys.executable, str(tmp_path / "mapper.py"), str(db_path), "processes"],
                  lambda before=before: stored_calls() > before + 1, rng.uniform(0.0, 1.0))
        with sqlite3.connect(db_path) as connection:
            assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    storage = Storage(db_path=db_path)
    stored = assert_committed_blocks_whole(storage, [])
    assert stored > 0, "the map committed nothing before the kills: the trials tested nothing"
    # A last run finishes the map: what was committed is reused, the rest computed.
    process = subprocess.run([sys.executable, str(tmp_path / "mapper.py"), str(db_path), "processes"],
                             env={"PYTHONPATH": str(REPO_ROOT)}, capture_output=True, text=True, timeout=300)
    assert process.returncode == 0, process.stderr
    assert assert_committed_blocks_whole(storage, list(range(30))) == 600
