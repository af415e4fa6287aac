"""File arguments and outputs: identified by content and name, kept by the store, restored anywhere."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memostore import CorruptValueError, File, Storage, UnhashableInputError, op
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
    assert made.path == work / "report.txt"
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
