"""File arguments and outputs: identified by content and name, kept by the store, restored anywhere."""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memostore import CorruptValueError, File, FileInputError, Storage, UnhashableInputError, op
from memostore.serialization import dumps, loads, split_checksum, with_checksum

runs = []


@op
def count_lines(data):
    runs.append(data.name)
    return len(Path(data).read_text().splitlines())


@op
def export(text, folder):
    target = Path(folder) / "report.txt"
    target.write_text(text)
    return File(target)


@pytest.fixture(autouse=True)
def files_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMOSTORE_FILES_DIR", str(tmp_path / "restored"))
    runs.clear()
    return tmp_path / "restored"


def test_an_edited_file_recomputes_and_a_moved_one_does_not(storage, tmp_path):
    data = tmp_path / "data.csv"
    data.write_text("a\n1\n")
    with storage:
        assert storage.unwrap(count_lines(File(data))) == 2
        count_lines(File(data))
        data.write_text("a\n1\n2\n")
        assert storage.unwrap(count_lines(File(data))) == 3
        moved = tmp_path / "elsewhere" / "data.csv"
        moved.parent.mkdir()
        data.rename(moved)
        assert storage.unwrap(count_lines(File(moved))) == 3
        renamed = moved.rename(moved.with_name("other.csv"))
        count_lines(File(renamed))
    assert runs == ["data.csv", "data.csv", "other.csv"]  # same content, new name: the op can see the name


def test_a_returned_file_is_kept_and_restored_after_the_original_is_gone(db_path, tmp_path, files_dir):
    work = tmp_path / "work"
    work.mkdir()
    with Storage(db_path=db_path) as storage:
        made = storage.unwrap(export("hello " * 300_000, str(work)))  # 1.8 MB: a blob file
    assert made.path.is_relative_to(files_dir) and made.name == "report.txt"  # a kept copy, not the path
    (work / "report.txt").unlink()
    reopened = Storage(db_path=db_path, allow_pickle=False)  # Files load without pickle
    with reopened:
        restored = reopened.unwrap(export("hello " * 300_000, str(work)))
    assert restored.name == "report.txt" and restored.path.is_relative_to(files_dir)
    assert restored.read_bytes() == b"hello " * 300_000
    assert reopened.unwrap(export("hello " * 300_000, str(work))) == restored  # loaded again, same file


def test_a_missing_file_names_the_op_and_argument(storage, tmp_path):
    with storage, pytest.raises(UnhashableInputError, match="op 'count_lines', argument 'data'.*cannot be read"):
        count_lines(File(tmp_path / "absent.csv"))


def test_an_open_file_argument_says_to_pass_a_file(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("a\nb\n")
    storage = Storage()
    with storage, open(path) as handle, pytest.raises(
            UnhashableInputError, match=rf"op 'count_lines', argument 'data': .*an open file .*"
                                        rf"use memostore\.File\('{re.escape(str(path))}'\) instead"):
        count_lines(handle)
    with storage:
        assert storage.unwrap(count_lines(File(path))) == 2  # the advised fix works


def test_a_tampered_name_never_writes_outside_the_files_folder(tmp_path, files_dir):
    source = tmp_path / "x.txt"
    source.write_text("payload")
    format_name, data = dumps(File(source))
    for evil in ("../../escape.txt", "/etc/evil", "..", ""):
        header = json.dumps({"name": evil}).encode()
        # A hostile store can write a valid checksum: the name itself must be refused.
        tampered = with_checksum(struct.pack("<I", len(header)) + header + b"payload")
        with pytest.raises(CorruptValueError, match="not a plain file name"):
            loads(format_name, tampered, allow_pickle=False)
    with pytest.raises(CorruptValueError, match="damaged"):
        loads(format_name, with_checksum(b"\xff\xff\xff\xff" + split_checksum(data)[0][4:]), allow_pickle=False)
    assert not list(tmp_path.glob("escape*")) and not (tmp_path.parent / "escape.txt").exists()


@settings(max_examples=40, deadline=None)
@given(content=st.binary(max_size=2000), name=st.from_regex(r"[A-Za-z0-9_.-]{1,30}", fullmatch=True)
       .filter(lambda n: n not in (".", "..")))
def test_files_round_trip_by_content_and_name(tmp_path_factory, content, name):
    folder = tmp_path_factory.mktemp("f")
    original = folder / name
    original.write_bytes(content)
    restored = loads(*dumps(File(original)), allow_pickle=False)
    assert restored.name == name and restored.read_bytes() == content
    assert restored == File(original)
    assert os.fspath(restored) == str(restored.path)


@op
def read_back(data):
    return Path(data).read_text()


def test_a_returned_file_does_not_change_when_its_path_is_written_again(storage, tmp_path):
    with storage:
        first = export("one", str(tmp_path))
        export("two", str(tmp_path))  # writes the same path again
        assert storage.unwrap(read_back(first)) == "one"
        assert storage.unwrap(first).read_bytes() == b"one"


def test_a_rewrite_that_keeps_size_and_mtime_is_still_seen(storage, tmp_path):
    data = tmp_path / "data.csv"
    data.write_text("a\n1\n")
    kept = File(data)
    stat = data.stat()
    with storage:
        assert storage.unwrap(count_lines(kept)) == 2
        data.write_text("a\n\n\n")  # same size
        os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same mtime
        assert storage.unwrap(count_lines(kept)) == 3


def test_a_folder_is_not_a_file(storage, tmp_path):
    with storage, pytest.raises(UnhashableInputError, match="not a regular file"):
        count_lines(File(tmp_path))


def test_restores_refuse_a_linked_files_folder_and_run_side_by_side(tmp_path, monkeypatch):
    source = tmp_path / "x.txt"
    source.write_text("payload")
    stored = dumps(File(source))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "linked").symlink_to(elsewhere)
    monkeypatch.setenv("MEMOSTORE_FILES_DIR", str(tmp_path / "linked"))
    with pytest.raises(FileInputError, match="is a link"):
        loads(*stored, allow_pickle=False)
    assert not list(elsewhere.iterdir())
    monkeypatch.setenv("MEMOSTORE_FILES_DIR", str(tmp_path / "own"))
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        restored = list(pool.map(lambda _: loads(*stored, allow_pickle=False), range(16)))
    assert {f.read_bytes() for f in restored} == {b"payload"}
