"""A Ref used as its value (numpy, arithmetic, truth) raises RefUsedAsValueError instead of a wrong answer."""

from __future__ import annotations

import copy
import json
import math
import pickle

import numpy as np
import pandas as pd
import pytest

from memostore import RefUsedAsValueError, op


@op
def scaled(x, factor):
    return np.asarray(x) * factor


@op
def mean_of(values):
    return float(np.mean(values))


NUMPY_MISUSES = {
    "np.array": lambda ref: np.array(ref),
    "np.asarray": lambda ref: np.asarray(ref),
    "np.array of a list": lambda ref: np.array([ref, ref]),
    "np.mean": lambda ref: np.mean(ref),
    "np.sum": lambda ref: np.sum(ref),  # was the Ref itself
    "np.max": lambda ref: np.max(ref),
    "np.argmax": lambda ref: np.argmax(ref),  # was 0
    "np.ndim": lambda ref: np.ndim(ref),  # was 0, even for a matrix
    "np.shape": lambda ref: np.shape(ref),  # was ()
    "np.nan_to_num": lambda ref: np.nan_to_num(ref),
    "np.sqrt": lambda ref: np.sqrt(ref),
    "np.stack": lambda ref: np.stack([ref, ref]),
    "np.concatenate": lambda ref: np.concatenate([ref]),
    "array + ref": lambda ref: np.arange(3) + ref,
    "array == ref": lambda ref: np.arange(3) == ref,
    "np.float64": lambda ref: np.float64(ref),
    "np.array as float": lambda ref: np.array(ref, dtype=float),
}
PYTHON_MISUSES = {
    "float": float, "complex": complex, "bool": bool, "+": lambda ref: +ref, "~": lambda ref: ~ref,
    "math.trunc": math.trunc, "math.floor": math.floor, "divmod": lambda ref: divmod(ref, 2),
    "<<": lambda ref: ref << 1, "sum": lambda ref: sum([ref]), "add": lambda ref: ref + 1,
}


def refs_of_every_kind(storage):
    with storage:
        fresh = scaled([1.0, 2.0], 2)
        number = mean_of(fresh)
    with storage:
        hit = scaled([1.0, 2.0], 2)
    return {"fresh": fresh, "number": number, "hit": hit, "lazy": storage.load_ref(fresh.hid)}


@pytest.mark.parametrize("misuse", NUMPY_MISUSES.values(), ids=NUMPY_MISUSES.keys())
def test_numpy_refuses_a_ref_and_says_to_unwrap_it(storage, misuse):
    for ref in refs_of_every_kind(storage).values():
        with pytest.raises(RefUsedAsValueError, match=r"storage\.unwrap\(ref\)"):
            misuse(ref)
    assert np.mean(storage.unwrap(refs_of_every_kind(storage)["fresh"])) == 3.0  # the value works


@pytest.mark.parametrize("misuse", PYTHON_MISUSES.values(), ids=PYTHON_MISUSES.keys())
def test_python_operators_refuse_a_ref(storage, misuse):
    for ref in refs_of_every_kind(storage).values():
        with pytest.raises(RefUsedAsValueError, match=r"storage\.unwrap\(ref\)"):
            misuse(ref)


def test_the_message_names_the_numpy_function_and_the_op_that_made_the_ref(storage):
    refs = refs_of_every_kind(storage)
    with pytest.raises(RefUsedAsValueError, match=r"np\.mean\(\) on Ref\(hid=\w+\.\.\.\), an output of op 'scaled'"):
        np.mean(refs["fresh"])
    with pytest.raises(RefUsedAsValueError, match=r"np\.array\(\) or np\.asarray\(\) on .* op 'scaled'"):
        np.array(refs["hit"])
    with pytest.raises(RefUsedAsValueError, match="numpy's sqrt on .* op 'mean_of'"):
        np.sqrt(refs["number"])
    with pytest.raises(RefUsedAsValueError, match=r"__add__ on Ref\(hid=\w+\.\.\.\): a Ref stands"):
        refs["lazy"] + 1  # a Ref loaded by its id alone: its op is not known here
    with pytest.raises(RefUsedAsValueError, match=r"pd\.isna\(ref\) asks numpy too.*cell is None"):
        pd.isna(refs["lazy"])


def test_numpy_given_a_list_of_refs_says_so_and_only_isna_gets_the_isna_hint(storage):
    refs = refs_of_every_kind(storage)
    listed = [refs["fresh"], refs["hit"]]
    for misuse, name in [(np.mean, "mean"), (np.sum, "sum"), (np.stack, "stack"), (np.concatenate, "concatenate")]:
        with pytest.raises(RefUsedAsValueError, match=rf"np\.{name}\(\) on a list holding Refs, such as "
                                                      r"Ref\(hid=\w+\.\.\.\), an output of op 'scaled'") as caught:
            misuse(listed)
        assert "pd.isna" not in str(caught.value)
    with pytest.raises(RefUsedAsValueError, match=r"np\.max\(\) on a tuple holding Refs") as caught:
        np.max(tuple(listed))
    with pytest.raises(RefUsedAsValueError, match=r"np\.array\(\) or np\.asarray\(\) on .*, or on a list holding "
                                                  r"it") as caught:
        np.array(listed)
    assert "pd.isna" not in str(caught.value)
    with pytest.raises(RefUsedAsValueError, match=r"^pd\.isna\(\) on .*pd\.isna\(ref\) asks numpy too"):
        pd.isna(refs["fresh"])


def test_refs_still_pickle_hash_compare_and_fill_object_arrays(storage):
    refs = refs_of_every_kind(storage)
    fresh, lazy = refs["fresh"], refs["lazy"]
    for ref in refs.values():
        again = pickle.loads(pickle.dumps(ref))
        assert again == ref and hash(again) == hash(ref) and copy.deepcopy(ref) == ref
    assert fresh == lazy and fresh != refs["number"] and len({fresh, lazy, refs["number"]}) == 2
    held = np.array([fresh, refs["number"]], dtype=object)  # an array of Refs, asked for by name
    assert held.shape == (2,) and held[0] is fresh
    cells = np.empty(3, dtype=object)
    cells[[0, 2]] = [fresh, lazy]
    assert cells[0] is fresh and cells[1] is None
    table = pd.DataFrame({"ref": [fresh, None, lazy]})
    assert table["ref"].isna().tolist() == [False, True, False] and table["ref"].iloc[2] is lazy
    assert pd.isna(None) and storage.unwrap(table["ref"].dropna().tolist())[0].tolist() == [2.0, 4.0]
    with pytest.raises(TypeError, match="not JSON serializable"):
        json.dumps(fresh)
