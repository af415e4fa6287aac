"""Ids of refs and calls, and how they print."""

from memostore import Call, Ref, content_id
from memostore.model import call_id, input_ref_hid, output_ref_hid


def test_call_ids_depend_on_op_version_and_inputs_not_their_order():
    base = call_id("train", "v1", [("x", "a"), ("y", "b")])
    assert base == call_id("train", "v1", [("y", "b"), ("x", "a")])
    assert base != call_id("train", "v2", [("x", "a"), ("y", "b")])
    assert base != call_id("eval", "v1", [("x", "a"), ("y", "b")])
    assert base != call_id("train", "v1", [("x", "b"), ("y", "a")])
    assert base != call_id("train", "v1", [("x", "a")])


def test_ref_hids_separate_values_from_outputs():
    cid = content_id(3)
    assert input_ref_hid(cid) == input_ref_hid(cid)
    assert output_ref_hid("c1", "output_0") != output_ref_hid("c1", "output_1")
    assert output_ref_hid("c1", "output_0") != output_ref_hid("c2", "output_0")


def test_ref_repr_shows_value_only_when_loaded():
    ref = Ref(content_id(0.91), "8f5" + "0" * 29, 0.91)
    assert repr(ref) == "Ref(0.91, hid=8f5...)"
    assert repr(ref.detached()) == "Ref(hid=8f5..., in_memory=False)"
    assert not ref.detached().in_memory and ref.in_memory


def test_refs_in_containers_hash_as_their_content():
    ref = Ref(content_id(5), "h" * 32)
    assert content_id([ref, 1]) == content_id([5, 1])


def test_call_repr_and_result_shape():
    out = Ref("c" * 32, "o" * 32, 1)
    single = Call("f", "v", "ac0" + "0" * 29, "c" * 32, {}, {"output_0": out})
    assert repr(single) == "Call(f, hid=ac0...)"
    assert single.result() is out
    multi = Call("f", "v", "a" * 32, "c" * 32, {}, {"output_0": out}, multi_output=True)
    assert multi.result() == (out,)
