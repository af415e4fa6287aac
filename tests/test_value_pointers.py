"""ValuePointer passes an object into ops under a name, never stored; Ignore leaves one
argument of one call out of its identity."""

import pickle
import threading

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from memostore import (
    Ignore,
    PointerNotStoredError,
    Storage,
    UnhashableInputError,
    ValuePointer,
    content_id,
    op,
)

SEEN: list = []


@op
def pointer_total(data, scale=1):
    SEEN.append(data)
    return float(np.sum(data)) * scale


@op
def pointer_size(data):
    return len(data)


@op
def count_locks(resources):
    return sum(isinstance(item, type(threading.Lock())) for item in resources)


@pytest.fixture(autouse=True)
def _clear_seen():
    SEEN.clear()


def reopened(storage):
    """The same store read by a fresh Storage (in memory: the same one)."""
    storage.commit()
    if storage.config.db_path is None and storage.config.db_url is None:
        return storage
    return Storage.from_config(storage.config)


# --- ValuePointer ----------------------------------------------------------------


def test_a_pointer_passes_its_object_and_is_identified_by_its_name(storage):
    big = np.arange(1_000_000, dtype=np.float64)
    with storage:
        first = pointer_total(ValuePointer("big", big))
        again = pointer_total(ValuePointer("big", big.copy()))  # same name: the same call, not run again
        other = pointer_total(ValuePointer("small", big[:10]))
    assert SEEN[0] is big and len(SEEN) == 2
    assert storage.unwrap(first) == storage.unwrap(again) == float(big.sum())
    assert storage.unwrap(other) == 45.0
    # The array was never serialized: the store holds two names and two floats.
    assert storage._store.counts()["bytes"] < 1000


def test_an_unhashable_object_goes_through_a_pointer(storage):
    resources = [threading.Lock(), threading.Lock()]
    with storage:
        with pytest.raises(UnhashableInputError, match="count_locks"):
            count_locks(resources)
        ref = count_locks(ValuePointer("locks", resources))
    assert storage.unwrap(ref) == 2


def test_a_stored_pointer_loads_as_its_name_only(storage):
    with storage:
        result = pointer_total(ValuePointer("train", np.ones(3)))
    store = reopened(storage)
    call = store.get_creators(result.hid)[0]
    pointer = store.unwrap(call.inputs["data"])
    assert pointer == ValuePointer("train", None) and repr(pointer) == "ValuePointer('train')"
    assert not pointer.has_obj
    with pytest.raises(PointerNotStoredError, match=r"ValuePointer\('train', obj\)"):
        _ = pointer.obj


def test_frames_show_the_pointer(storage):
    with storage:
        pointer_total(ValuePointer("train", np.ones(3)))
    table = reopened(storage).cf(pointer_total).df()
    assert [repr(value) for value in table["data"]] == ["ValuePointer('train')"]


def test_a_stored_pointer_loads_without_pickle(tmp_path):
    storage = Storage(tmp_path / "runs.db")
    with storage:
        ref = pointer_total(ValuePointer("train", np.ones(3)))
    strict = Storage(tmp_path / "runs.db", allow_pickle=False)
    call = strict.get_creators([ref])[0]
    assert strict.unwrap(call.inputs["data"]) == ValuePointer("train", None)


def test_running_an_op_on_a_loaded_pointer_says_the_object_is_not_stored(storage):
    with storage:
        result = pointer_total(ValuePointer("train", np.ones(3)))
    stored_pointer = storage.get_creators([result])[0].inputs["data"]
    with storage:
        assert storage.unwrap(pointer_total(stored_pointer)) == 3.0  # the same call: a hit
        with pytest.raises(PointerNotStoredError, match="train"):
            pointer_total(stored_pointer, scale=2)  # a new call needs the object


def test_a_pointer_is_not_its_name_nor_inside_a_list(storage):
    with storage:
        by_pointer = pointer_size(ValuePointer("xy", [1, 2]))
        by_name = pointer_size("xy")
    assert storage.unwrap([by_pointer, by_name]) == [2, 2]
    assert storage.get_creators(by_pointer)[0].cid != storage.get_creators(by_name)[0].cid
    with storage, pytest.raises(UnhashableInputError, match="whole argument"):
        pointer_total([ValuePointer("x", [1.0])])


def test_a_pointer_outside_a_block_and_in_noop_gives_its_object(storage):
    assert pointer_total(ValuePointer("x", [1.0, 2.0])) == 3.0
    with storage.noop():
        assert pointer_total(ValuePointer("x", [1.0, 2.0]), scale=Ignore(2)) == 6.0
    assert storage._store.counts()["calls"] == 0


def test_map_gives_the_function_the_pointed_object(storage):
    data = np.arange(4.0)
    items = [{"data": ValuePointer("d", data)}, {"data": ValuePointer("d", data), "scale": 2}]
    refs = storage.map(pointer_total, items, executor="threads", n_jobs=2, progress=False)
    assert storage.unwrap(refs) == [6.0, 12.0]
    assert all(seen is data for seen in SEEN)


def test_a_pointer_pickles_with_its_object_and_a_stored_one_without():
    live = pickle.loads(pickle.dumps(ValuePointer("x", [1, 2])))
    assert live.obj == [1, 2]
    stored = pickle.loads(pickle.dumps(ValuePointer.stored("x")))
    assert not stored.has_obj


def test_a_pointer_needs_a_name_and_wraps_a_plain_object():
    with pytest.raises(UnhashableInputError, match="non-empty string"):
        ValuePointer("", 1)
    with pytest.raises(UnhashableInputError, match="not one in the other"):
        ValuePointer("a", Ignore([1, 2]))  # the function would get the Ignore wrapper itself


# --- Ignore ----------------------------------------------------------------------


def test_ignore_leaves_the_argument_out_of_this_calls_identity(storage):
    with storage:
        first = pointer_total([1.0, 2.0], scale=Ignore(2))
        again = pointer_total([1.0, 2.0], scale=Ignore(3))  # found: scale is not part of the call
        counted = pointer_total([1.0, 2.0], scale=3)  # scale counts here: another call
    assert storage.unwrap([first, again, counted]) == [6.0, 6.0, 9.0]
    assert len(SEEN) == 2
    mapped = storage.map(pointer_total, [{"data": [1.0, 2.0], "scale": Ignore(5)}], progress=False)
    assert mapped.hits == 1 and storage.unwrap(mapped) == [6.0]
    assert sorted(storage.get_creators(first)[0].inputs) == ["data"]
    assert sorted(storage.get_creators(counted)[0].inputs) == ["data", "scale"]


def test_ignore_passes_refs_as_their_values(storage):
    with storage:
        two = pointer_total([2.0])
        ref = pointer_total([1.0], scale=Ignore(two))
    assert storage.unwrap(ref) == 2.0


def test_ignore_outside_a_block_and_inside_a_list():
    assert pointer_total([1.0], scale=Ignore(5)) == 5.0
    with Storage(), pytest.raises(UnhashableInputError, match="Ignore"):
        pointer_total([Ignore(1.0)])


def test_pointer_ids_do_not_depend_on_the_object():
    assert content_id(1) != content_id("x")
    with Storage() as storage:
        a = pointer_total(ValuePointer("x", [1.0]))
        b = pointer_total(ValuePointer("x", [5.0]))
    assert a.hid == b.hid and storage.unwrap(b) == 1.0


@given(st.text(min_size=1), st.text(min_size=1), st.binary(), st.integers())
def test_a_pointers_content_id_is_its_name_only(name, other_name, one, another):
    from memostore.pointers import pointer_digest

    assert pointer_digest(ValuePointer(name, one)) == pointer_digest(ValuePointer(name, another))
    assert (pointer_digest(ValuePointer(name, one)) == pointer_digest(ValuePointer(other_name, one))) == (
        name == other_name)
    assert pointer_digest(ValuePointer(name, one)).hex() != content_id(name)
