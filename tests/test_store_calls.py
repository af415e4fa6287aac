"""storage.get_call and storage.calls_of: a call by its hid, an op's calls by name."""

from __future__ import annotations

import pytest

from memostore import NotStoredError, Storage, UnknownOpError, op


@op
def square(x):
    return x * x


@op
def fragile(x):
    if x < 0:
        raise ValueError("negative")
    return x


def test_get_call_finds_a_stored_call_by_hid(storage):
    with storage:
        ref = square(3)
    call = storage.get_ref_creator(ref)
    assert call is not None
    found = storage.get_call(call.hid)
    assert found == call and found.op == "square" and storage.unwrap(found.outputs["output_0"]) == 9
    with pytest.raises(NotStoredError, match="no call with hid 'f+' is stored"):
        storage.get_call("f" * 32)


def test_calls_of_lists_every_call_of_an_op_newest_first_by_op_or_name(storage):
    with storage:
        for i in range(3):
            square(i)
    storage.map(fragile, [{"x": 1}, {"x": -1}], on_error="record", progress=False)
    calls = storage.calls_of("square")
    assert sorted(storage.unwrap(c.inputs["x"]) for c in calls) == [0, 1, 2]
    assert [c.started_at for c in calls] == sorted((c.started_at for c in calls), reverse=True)
    assert storage.calls_of(square) == calls
    assert sorted(c.status for c in storage.calls_of("fragile")) == ["failed", "ok"]
    with pytest.raises(UnknownOpError, match=r"calls_of\('cube_never_defined'\): no op of that name is stored; "
                                             r"the stored ops are \['fragile', 'square'\]"):
        storage.calls_of("cube_never_defined")  # a typo is no op without calls


def test_pending_calls_are_found_before_the_block_ends(tmp_path):
    storage = Storage(db_path=tmp_path / "runs.db")
    with storage:
        square(5)
        (call,) = storage.calls_of("square")
        assert storage.get_call(call.hid).op == "square"


def test_the_set_of_known_values_starts_over_past_its_bound(storage, monkeypatch):
    """A process making millions of calls does not keep every content id it stored; values
    stored again after the set starts over are neither duplicated nor lost."""
    from memostore import buffer

    monkeypatch.setattr(buffer, "KNOWN_VALUES_MAX", 5)
    for start in range(0, 40, 4):
        with storage:
            refs = [square(x % 12) for x in range(start, start + 4)]  # values repeat across blocks
        assert storage.cache_info()["known_values"] <= 5 + 4
    assert storage.unwrap(refs) == [(x % 12) ** 2 for x in range(36, 40)]
    distinct = len({x % 12 for x in range(40)} | {(x % 12) ** 2 for x in range(40)})
    assert f"values={distinct}," in repr(storage)
