"""A call no database can store is refused alone: the calls queued with it commit."""

from __future__ import annotations

import os

import pytest

from memostore import OpDefinitionError, op
from memostore.model import original_text, storable_text

SURROGATE_NAME = os.fsdecode(b"data-\xff.csv")  # a file name that is not UTF-8


@op
def square(x):
    return x * x


@op
def read_file(name):
    raise FileNotFoundError(f"no such file: {name}")


@op
def nul_message(x):
    raise ValueError(f"bad byte \x00 in record {x}")


@pytest.mark.parametrize("text", ["plain", "data-\udcff.csv", "nul \x00 inside", "\ud800", "é",
                                  "memostore-escaped-text:looks escaped"])
def test_storable_text_round_trips_and_encodes(text):
    stored = storable_text(text)
    stored.encode("utf-8")
    assert "\x00" not in stored
    assert original_text(stored) == text


def test_failures_with_unstorable_messages_are_recorded_with_the_other_calls(storage):
    with storage:
        square(2)
        storage.map(read_file, [{"name": SURROGATE_NAME}], on_error="record", progress=False)
        storage.map(nul_message, [{"x": 1}], on_error="record", progress=False)
        square(3)
    storage.commit()
    assert sorted(storage.unwrap(c.outputs["output_0"]) for c in storage.reader.calls_of_op("square")) == [4, 9]
    [missing] = storage.failures(read_file).itertuples()
    assert missing.error_message == f"no such file: {SURROGATE_NAME}"
    assert missing.name == SURROGATE_NAME
    [nul] = storage.failures(nul_message).itertuples()
    assert nul.error_message == "bad byte \x00 in record 1"
    with storage:
        square(4)  # the store keeps working
    assert len(storage.reader.calls_of_op("square")) == 3


def test_an_op_name_no_store_takes_is_refused_at_its_call(storage):
    long_named = op(name="f" * 300)(lambda x: x)
    with storage:
        square(5)
        with pytest.raises(OpDefinitionError, match="op name cannot be stored.*at most 255.*300"):
            long_named(1)
        square(6)
    assert len(storage.reader.calls_of_op("square")) == 2


def test_an_argument_name_with_a_nul_is_refused_at_its_call(storage):
    @op
    def takes_anything(**kwargs):
        return len(kwargs)

    with storage:
        with pytest.raises(OpDefinitionError, match="argument name"):
            takes_anything(**{"a\x00b": 1})
        square(7)
    assert len(storage.reader.calls_of_op("square")) == 1


def test_a_failure_with_an_overlong_exception_name_is_recorded(storage):
    error_class = type("E" * 300, (Exception,), {})

    @op
    def raises_long(x):
        raise error_class("long")

    with storage:
        storage.map(raises_long, [{"x": 1}], on_error="record", progress=False)
        square(8)
    [failure] = storage.failures(raises_long).itertuples()
    assert failure.error_message == "long" and failure.error_type.endswith("E" * 100)
    assert len(storage.reader.calls_of_op("square")) == 1
