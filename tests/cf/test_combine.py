"""``a | b``, ``a & b`` and ``a - b`` on random frames of one small store: no row shows a call with a value
it did not read or make, and the union holds every call and every computation of both frames."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memostore import ComputationFrame, Storage, op
from memostore.model import Call, Ref


@op
def first(x):
    return x + 1


@op
def second(y):
    return y * 10


@op
def both(a, b):
    return a - b


OPS = [first, second, both]


def run(storage: Storage, inputs: list[tuple[int, bool]]) -> None:
    """second(first(x)) for each x, and both(first(x), x) when the flag says so."""
    with storage:
        for x, joined in inputs:
            made = first(x)
            second(made)
            if joined:
                both(made, x)


@st.composite
def frames(draw, storage: Storage) -> ComputationFrame:
    frame = storage.cf(draw(st.sampled_from(OPS)))
    step = draw(st.sampled_from(["none", "back", "forward", "all"]))
    frame = {"none": frame, "back": frame.expand_back(), "forward": frame.expand_forward(),
             "all": frame.expand_all()}[step]
    if frame.vars and draw(st.booleans()):  # an op with no stored calls (both, never joined) has no variables
        var = draw(st.sampled_from(sorted(frame.vars)))
        limit = draw(st.integers(0, 40))
        frame = frame.where(var, lambda value: value <= limit)
    return frame


def call_sets(frame: ComputationFrame) -> dict[str, set[str]]:
    """Op name -> the hids of the frame's calls of it."""
    found: dict[str, set[str]] = {}
    for node, hids in frame.ops.items():
        found.setdefault(frame.graph.op_names[node], set()).update(hids)
    return found


def rows(frame: ComputationFrame) -> list[frozenset[str]]:
    """Each row's calls, checking that every value the row shows on a call's edge is that call's."""
    graph = frame.graph
    found = []
    for row in frame.df(values="refs").to_dict("records"):
        calls = {node: row[node] for node in graph.ops if isinstance(row.get(node), Call)}
        for node, call in calls.items():
            for edge in graph.edges_of(node):
                shown = row.get(edge.var)
                own = (call.inputs if edge.direction == "in" else call.outputs).get(edge.name)
                if isinstance(shown, Ref):
                    assert own is not None and own.hid == shown.hid, (node, edge, row)
        found.append(frozenset(call.hid for call in calls.values()))
    return found


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 4), st.booleans()), min_size=1, max_size=4, unique_by=lambda t: t[0]),
       st.data())
def test_union_holds_both_frames_and_rows_show_each_call_with_its_own_values(inputs, data):
    storage = Storage()
    run(storage, inputs)
    a, b = data.draw(frames(storage)), data.draw(frames(storage))
    union = a | b
    expected = call_sets(a)
    for name, hids in call_sets(b).items():
        expected[name] = expected.get(name, set()) | hids
    assert {n: h for n, h in call_sets(union).items() if h} == {n: h for n, h in expected.items() if h}
    joined = rows(union)
    for part in (a, b):
        for calls in rows(part):
            assert any(calls <= row for row in joined), "a computation of a frame is missing from the union"
    rows(a & b)
    rows(a - b)
    storage.close()
