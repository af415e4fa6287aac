"""HidSet: a frame's sets of hids behave as sets of strings, held as arrays."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from memostore import KeyCollisionError
from memostore.cf.hidset import HidSet, member, search

hids = st.frozensets(st.binary(min_size=16, max_size=16).map(bytes.hex), max_size=40)


@given(hids, hids)
def test_set_algebra_matches_frozensets(left, right):
    a, b = HidSet.of(left), HidSet.of(right)
    assert (a | b) == left | right and (a & b) == left & right and (a - b) == left - right
    assert a.issubset(a | b) and (a <= b) == (left <= right)
    assert len(a) == len(left) and bool(a) == bool(left) and set(a) == left
    assert all(h in a for h in left) and all((h in a) == (h in left) for h in right)
    assert HidSet.of(list(left) * 2) == a  # repeats collapse


@given(hids)
def test_keys_are_sorted_and_hids_stay_beside_them(values):
    hidset = HidSet.of(values)
    assert hidset.keys.tolist() == sorted(int(h[:16], 16) for h in values)
    assert [int(h[:16], 16) for h in hidset] == hidset.keys.tolist()
    assert pickle.loads(pickle.dumps(hidset)) == hidset
    assert hidset.restricted_to(hidset.keys[::2]) == set(list(hidset)[::2])


def test_hidset_refuses_what_is_not_a_hid_and_ids_sharing_a_key():
    with pytest.raises(ValueError, match="not a hid.*'r1'"):
        HidSet.of(["r1"])
    with pytest.raises(ValueError, match="not a hid.*'z+'"):
        HidSet.of(["z" * 32])
    with pytest.raises(KeyCollisionError, match=f"{'ab' * 8}{'00' * 8} and {'ab' * 8}{'11' * 8}"):
        HidSet.of(["ab" * 8 + "00" * 8, "ab" * 8 + "11" * 8])
    assert "r1" not in HidSet.of(["ab" * 16]) and 5 not in HidSet.of(["ab" * 16])


@given(st.lists(st.integers(0, 2**64 - 1), max_size=60), st.lists(st.integers(0, 2**64 - 1), max_size=60))
def test_search_and_member_agree_with_numpy(haystack, needles):
    keys = np.unique(np.array(haystack, dtype=np.uint64))
    values = np.array(needles, dtype=np.uint64)
    assert search(keys, values).tolist() == np.searchsorted(keys, values).tolist()
    assert member(values, keys).tolist() == np.isin(values, keys).tolist()


def test_search_sorts_many_values_and_still_answers_in_their_order():
    rng = np.random.default_rng(7)
    keys = np.unique(rng.integers(0, 2**63, 50_000).astype(np.uint64))
    values = np.concatenate([keys[rng.integers(0, keys.size, 20_000)],
                             rng.integers(0, 2**63, 20_000).astype(np.uint64)])
    rng.shuffle(values)
    assert values.size >= 4 * 4_096
    assert (search(keys, values) == np.searchsorted(keys, values)).all()
    assert (member(values, keys) == np.isin(values, keys)).all()
