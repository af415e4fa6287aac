"""Looking into frames: sources and sinks, info, Refs and Calls, histories, isin over every variable."""

from __future__ import annotations

import numpy as np
import pytest

from memostore import FrameArgumentError, Ref, op
from memostore.cf.inspecting import INFO_LOAD_MAX_BYTES

from cf_pipeline import run_seed_like, train

NAMES = {"var_0": "model", "var_1": "train_acc", "var_2": "eval_acc", "var_3": "extra"}


@pytest.fixture
def full(storage):
    run_seed_like(storage)
    return storage.cf(train).expand_all().rename(vars=NAMES)


def test_sources_and_sinks(full):
    assert full.sources == {"seed"}
    assert full.sinks == {"train_acc", "eval_acc", "extra"}
    assert full.select_nodes(["model", "evaluate", "eval_acc"]).sources == {"model"}


def test_info_of_an_op_node_counts_calls_per_version(full):
    info = full.info("train")
    assert (info.kind, info.op, info.count, info.failed) == ("op", "train", 3, 0)
    assert list(info.versions.values()) == [3]
    assert info.inputs == ("x_train", "y_train") and info.outputs == ("model", "train_acc")
    assert str(info).startswith("op node train (op train): 3 call(s), 1 version(s)")


def test_info_of_a_variable_names_types(full):
    info = full.info("model")
    assert (info.kind, info.count, info.distinct, info.types) == ("var", 3, 3, {"dict": 3})
    assert info.inputs == ("train",) and info.outputs == ("evaluate",) and info.stored_bytes > 0
    assert "variable model: 3 ref(s), 3 distinct value(s)" in repr(info)
    with pytest.raises(KeyError, match="no node named"):
        full.info("nothing")


def test_info_with_no_node_prints_the_frame_summary_as_in_mandala(full, capsys):
    assert full.info() is None
    printed = capsys.readouterr().out
    assert printed == repr(full) + "\n"
    assert "ComputationFrame with:" in printed and "Computational graph:" in printed and "train(" in printed


def scale_version(factor_source):
    namespace = {}
    exec(f"def rescale_info(x):\n    return x * {factor_source}\n", namespace)  # two bodies of one op
    scale = namespace["rescale_info"]
    scale.__module__, scale.__qualname__ = __name__, "rescale_info"
    return op(scale)


def test_info_of_an_op_with_two_versions(storage):
    with storage:
        scale_version(2)(1)
        for x in (1, 2):
            scale_version(3)(x)
    info = storage.cf("rescale_info").info("rescale_info")
    assert info.count == 3 and sorted(info.versions.values()) == [1, 2]


@op
def big_array(n):
    return np.zeros(n)


def test_info_does_not_load_large_values(storage, monkeypatch):
    with storage:
        big_array(INFO_LOAD_MAX_BYTES)  # 8 bytes a number: larger than the limit
        big_array(4)
    cf = storage.cf(big_array)
    loaded = []
    reader = cf._reader
    original = reader.load_values
    monkeypatch.setattr(reader, "load_values", lambda cids: loaded.extend(cids) or original(cids))
    info = cf.info("var_0")
    assert len(loaded) == 1  # only the small array
    [(large, one)] = [(t, n) for t, n in info.types.items() if t != "ndarray"]
    assert large.endswith("(not loaded)") and one == 1 and info.types["ndarray"] == 1


def test_refs_by_var_and_calls_by_op(storage, full):
    refs = full.refs_by_var()
    assert {var: {r.hid for r in found} for var, found in refs.items()} == full.vars
    assert all(isinstance(r, Ref) and not r.in_memory for r in refs["model"])
    assert sorted(storage.unwrap(r) for r in refs["eval_acc"]) == [1.333, 1.5]
    calls = full.calls_by_op()
    assert {node: {c.hid for c in found} for node, found in calls.items()} == full.ops
    assert {c.op for c in calls["evaluate"]} == {"evaluate"}
    models = {storage.unwrap(c.inputs["model"])["weights"] for c in calls["evaluate"]}
    assert models == {4, 6}


def test_get_history_df_has_a_row_per_value_with_its_whole_past(full):
    history = full.get_history_df("eval_acc")
    assert len(history) == 2 and sorted(history["eval_acc"]) == [1.333, 1.5]
    assert {"seed", "generate", "x_train", "train", "model", "x_test", "evaluate"} <= set(history.columns)
    assert sorted(history["seed"]) == [1, 2] and "train_acc" not in history.columns
    models = full.get_history_df("model", include_calls=False)
    assert len(models) == 3 and "train" not in models.columns and sorted(models["seed"]) == [1, 2, 3]
    with pytest.raises(KeyError):
        full.get_history_df("evaluate")


def test_isin_without_var_looks_in_every_variable(storage, full):
    two = full.isin([2])  # seed 2, and the x_test of seed 1
    assert sorted(two.df()["seed"]) == [1, 2]
    ref = next(iter(full.refs_by_var()["train_acc"]))
    by_hid = full.isin([ref], by="hid")
    by_cid = full.isin([ref.cid], by="cid")
    assert by_hid.ops == by_cid.ops and len(by_hid.ops["train"]) == 1
    assert full.isin([ref], by="cid").ops == by_cid.ops
    assert full.isin([storage.unwrap(ref)]).ops["train"] == by_hid.ops["train"]
    assert not full.isin([12345]).ops["train"]
    with pytest.raises(FrameArgumentError, match="by='cid'"):
        full.isin([2], by="content")


def test_isin_by_id_refuses_what_is_not_an_id_instead_of_matching_nothing(full):
    ref = next(iter(full.refs_by_var()["train_acc"]))
    with pytest.raises(FrameArgumentError, match=r"isin\(by='cid'\) takes Refs or content ids.*'0\.1'.*by='val'"):
        full.isin([ref.cid, "0.1"], by="cid")  # a value where a content id belongs
    with pytest.raises(FrameArgumentError, match=r"by='hid'.*history ids.*2, 3, 4 and 1 more"):
        full.isin([ref, 2, 3, 4, 5], by="hid")
    with pytest.raises(ValueError, match="content ids"):  # also the ValueError it would be elsewhere
        full.isin([ref.cid + "00"], by="cid")  # too long: not cut down to a near match
    assert full.isin([ref.cid.upper()], by="cid").ops == full.isin([ref], by="cid").ops  # case does not matter
    assert not full.isin(["0" * 32], by="cid").ops["train"]  # a well-formed id that is not stored matches nothing
