"""Random DAG-shaped pipelines, run on a real store: ``expand_all().df()`` rows are exactly what ran.

Each pipeline is a chain of stages from a source to a last op. A stage is one
op or two alternative ops (each run picks one); it reads the previous
stage's first output, and a binary op also reads an output of an earlier
stage (a diamond, or the second output of a two-output op). A gather op reads
the same two through one list or dict of Refs (a structural ``__list__`` or
``__dict__`` call builds it), and a split op returns an MList or MDict whose
items the next stages read (through ``__list_items__``/``__dict_items__``). A fan op
returns two outputs and the rest of the run goes on twice, once from each: the
next op reads both through one parameter, so a frame joins both outputs to one
variable. Constants come from a small set, so unrelated parameters share
contents. Every branch of a run ends at the last op, so each distinct branch
is one computation: one row holding each call of it with its inputs and
outputs, value for value (read from the stored Calls, so that a variable
joined to one op by several edges is checked too).
"""

from __future__ import annotations

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from memostore import MDict, MList, Ref, Storage, op
from memostore.model import Call


@op
def src_a(c, d):
    return f"src_a({c},{d})"


@op
def src_b(c, d):
    return f"src_b({c},{d})"


@op
def un_a(u, c):
    return f"un_a({u},{c})"


@op
def un_b(u, c):
    return f"un_b({u},{c})"


@op
def un_c(u, c):
    return f"un_c({u},{c})"


@op
def un_d(u, c):
    return f"un_d({u},{c})"


@op
def bi_a(u, v, c):
    return f"bi_a({u},{v},{c})"


@op
def bi_b(u, v, c):
    return f"bi_b({u},{v},{c})"


@op
def bi_c(u, v, c):
    return f"bi_c({u},{v},{c})"


@op
def two_a(u, c):
    return f"two_a.0({u},{c})", f"two_a.1({u},{c})"


@op
def two_b(u, c):
    return f"two_b.0({u},{c})", f"two_b.1({u},{c})"


@op
def ga_a(xs, c):  # a list of Refs: built by a structural call, the items keep their history
    return f"ga_a({xs[0]},{xs[1]},{c})"


@op
def ga_b(parts: MDict[str], c):
    return f"ga_b({parts['p']},{parts['q']},{c})"


@op
def sp_a(u, c) -> MList[str]:
    return [f"sp_a.0({u},{c})", f"sp_a.1({u},{c})"]


@op
def sp_b(u, c) -> MDict[str]:
    return {"p": f"sp_b.p({u},{c})", "q": f"sp_b.q({u},{c})"}


@op
def fa_a(u, c):
    return f"fa_a.0({u},{c})", f"fa_a.1({u},{c})"


@op
def fa_b(u, c):
    return f"fa_b.0({u},{c})", f"fa_b.1({u},{c})"


POOLS = {"source": [src_a, src_b], "unary": [un_a, un_b, un_c, un_d], "binary": [bi_a, bi_b, bi_c],
         "two": [two_a, two_b], "gather": [ga_a, ga_b], "split": [sp_a, sp_b], "fan": [fa_a, fa_b]}
READS_TWO = ("binary", "gather")
CONSTANTS = st.integers(0, 2)


@st.composite
def pipelines(draw):
    """(stages, runs): a stage is (kind, ops, earlier stage a binary op reads); a run is (choices, constants)."""
    available = {kind: list(ops) for kind, ops in POOLS.items()}
    stages = []
    for position in range(draw(st.integers(2, 5))):
        kinds = ["source"] if position == 0 else [k for k in ("unary", "binary", "two", "gather", "split", "fan")
                                                  if available[k] and (k not in READS_TWO or position >= 2)]
        kind = draw(st.sampled_from(kinds))
        count = min(len(available[kind]), draw(st.integers(1, 2)))
        ops = [available[kind].pop(draw(st.integers(0, len(available[kind]) - 1))) for _ in range(count)]
        extra = draw(st.integers(0, position - 2)) if kind in READS_TWO else None
        stages.append((kind, ops, extra))
    runs = draw(st.lists(st.tuples(st.lists(st.integers(0, 1), min_size=len(stages), max_size=len(stages)),
                                   st.lists(st.tuples(CONSTANTS, CONSTANTS), min_size=len(stages),
                                            max_size=len(stages))), min_size=1, max_size=4))
    kind, ops, extra = stages[-1]
    return [*stages[:-1], (kind, ops[:1], extra)], runs  # one last op: every run ends at it


def run_pipeline(storage, stages, choices, constants):
    """Run one pipeline; returns its computations (one per branch after each fan op), each as its calls
    (op name, inputs, outputs) with plain values."""
    with storage:
        branches = run_stages(stages, choices, constants, [], [])
    found = set()
    for executed in branches:
        calls = []
        for name, kwargs, outs in executed:
            inputs = tuple(sorted((k, frozen(storage.unwrap(v))) for k, v in kwargs.items()))
            calls.append((name, inputs, tuple((k, frozen(storage.unwrap(r))) for k, r in outs)))
            VALUES.update((r.hid, value) for (_, r), (_, value) in zip(outs, calls[-1][2], strict=True)
                          if isinstance(r, Ref))
        found.add(frozenset(calls))
    return found


def run_stages(stages, choices, constants, outputs, executed):
    """Run the stages from where ``outputs`` (per stage: the tuple of output refs) ends; returns the
    calls of each branch."""
    for step, ((kind, ops, extra), choice, (c, d)) in enumerate(zip(stages, choices, constants, strict=True)):
        chosen = ops[choice % len(ops)]
        if kind == "source":
            kwargs = {"c": c, "d": d}
        elif kind == "gather":
            items = [outputs[-1][0], outputs[extra][-1]]
            names = ["elt_0", "elt_1"] if chosen is ga_a else ["p", "q"]
            named = dict(zip(names, items, strict=True))
            built = items if chosen is ga_a else named
            kwargs = {"xs" if chosen is ga_a else "parts": built, "c": c}
            executed.append(("__list__" if chosen is ga_a else "__dict__", named,
                             [("lst" if chosen is ga_a else "dct", built)]))
        else:
            kwargs = {"u": outputs[-1][0], "c": c}
            if kind == "binary":
                earlier = outputs[extra]
                kwargs["v"] = earlier[-1]  # the second output of a two-output op, else its only one
        result = chosen(**kwargs)
        refs = result if isinstance(result, tuple) else (result,)
        executed.append((chosen.name, kwargs, [(f"output_{i}", r) for i, r in enumerate(refs)]))
        if kind == "split":  # the items, taken apart by a structural call, are what the next stages read
            items = list(result.items()) if chosen is sp_b else [(f"elt_{i}", r) for i, r in enumerate(result)]
            executed.append(("__dict_items__" if chosen is sp_b else "__list_items__",
                             {"dct" if chosen is sp_b else "lst": result}, items))
            refs = tuple(ref for _, ref in items)
        if kind == "fan":  # the rest runs once from each output
            rest = (stages[step + 1:], choices[step + 1:], constants[step + 1:])
            return [branch for ref in refs for branch in run_stages(*rest, [*outputs, (ref,)], list(executed))]
        outputs.append(refs)
    return [executed]


VALUES: dict[str, object] = {}  # hid -> value of every Ref the runs made (a hid is the same value everywhere)


def frozen(value):
    """A list or dict value as a hashable tuple, so calls on collections fit in a set."""
    if isinstance(value, list):
        return ("list", tuple(value))
    if isinstance(value, dict):
        return ("dict", tuple(sorted(value.items())))
    return value


def rows_of(frame):
    """Each row of ``frame.df()`` as the calls it holds, with the values on the edges the frame shows,
    read from the stored Call; each variable's cell must be the call's value on the edge to it (on one
    of them, for a variable joined to the op node by several edges; or any output of the call: a value
    is linked to its maker whichever variable shows it)."""
    graph = frame.graph
    table, refs = frame.df(), frame.df(values="refs")
    value_of = VALUES | {ref.hid: value for name in graph.vars
                         for ref, value in zip(refs[name], table[name], strict=True) if ref is not None}
    found = []
    for (_, row), (_, ref_row) in zip(table.iterrows(), refs.iterrows(), strict=True):
        calls = set()
        for node in graph.ops:
            call = row[node]
            if not isinstance(call, Call):
                continue
            sides = []
            for direction, stored in (("in", call.inputs), ("out", call.outputs)):
                edges = [e for e in graph.edges_of(node, direction) if e.name in stored]
                made = {ref.hid for ref in stored.values()} if direction == "out" else set()
                for var in {e.var for e in edges}:  # (an output of the call shown by another of its variables)
                    on_var = {stored[e.name].hid for e in edges if e.var == var} | made
                    assert ref_row[var] is None or ref_row[var].hid in on_var, f"{var} is not on {node}'s call"
                sides.append(tuple(sorted((e.name, frozen(value_of[stored[e.name].hid])) for e in edges)))
            calls.add((graph.op_names[node], *sides))
        found.append(frozenset(calls))
    return found


# two_a's calls were found from its second output's reader first; the edge of its first output,
# added later for one call, must show the other call's value too.
EARLIER_CALLS_FILL_LATER_EDGES = (
    [("source", [src_a], None), ("two", [two_a], None), ("unary", [un_b, un_a], None), ("unary", [un_c], None),
     ("binary", [bi_a], 1)],
    [([0, 0, 0, 0, 0], [(0, 0)] * 5), ([0, 0, 1, 0, 0], [(0, 0), (1, 0), (0, 0), (0, 0), (0, 0)])])


# fa_a's two outputs are read by un_a's one parameter: both are joined to one variable.
FAN_INTO_ONE_VARIABLE = (
    [("source", [src_a], None), ("fan", [fa_a], None), ("unary", [un_a], None), ("unary", [un_b], None)],
    [([0, 0, 0, 0], [(0, 0)] * 4), ([0, 0, 0, 0], [(1, 0)] * 4)])

# un_a's variable has an edge from fa_a's first output only, and shows its second output too.
FAN_OUTPUT_SHOWN_BY_ANOTHER_VARIABLE = (
    [("source", [src_a], None), ("fan", [fa_a], None), ("unary", [un_a], None), ("binary", [bi_a], 0)],
    [([0, 0, 0, 0], [(0, 0)] * 4)])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pipelines())
# bi_b is found first through v alone, so un_b's output reached its u edge in no variable.
@example(([("source", [src_a], None), ("unary", [un_a, un_b], None), ("binary", [bi_b], 0),
           ("unary", [un_c], None), ("binary", [bi_a], 0)],
          [([0, 0, 0, 0, 0], [(0, 0)] * 5), ([0, 1, 0, 0, 0], [(0, 0)] * 5)]))
@example(EARLIER_CALLS_FILL_LATER_EDGES)
@example(FAN_INTO_ONE_VARIABLE)
@example(FAN_OUTPUT_SHOWN_BY_ANOTHER_VARIABLE)
def test_expand_all_rows_are_exactly_the_runs(pipeline):
    stages, runs = pipeline
    storage = Storage()
    expected = set().union(*(run_pipeline(storage, stages, choices, constants) for choices, constants in runs))
    last_op = stages[-1][1][0]
    frame = storage.cf(last_op).expand_all()
    frame.graph.check_invariants()
    found = rows_of(frame)
    assert len(found) == len(set(found)), "a computation is shown on two rows"
    assert set(found) == expected
    storage.close()


def restricted_runs(graph, runs):
    """Each run's calls as a frame with this graph shows them: per op node, the edges it has."""
    shown = []
    for run in runs:
        calls = set()
        for node in graph.ops:
            ins = {e.name for e in graph.edges_of(node, "in")}
            outs = {e.name for e in graph.edges_of(node, "out")}
            calls |= {(name, tuple(i for i in inputs if i[0] in ins), tuple(o for o in outputs if o[0] in outs))
                      for name, inputs, outputs in run if name == graph.op_names[node]}
        shown.append(calls)
    return shown


def check_rows(frame, runs):
    """Every row is (part of) one executed run, no row is shown twice, and every ref and call is on a row."""
    graph = frame.graph
    graph.check_invariants()
    shown = restricted_runs(graph, runs)
    for row in rows_of(frame):
        assert any(row <= run for run in shown), f"a row that no run holds: {sorted(row)}"
    table = frame.df(values="refs")
    keys = [frozenset((name, getattr(cell, "hid", None)) for name, cell in row.items() if cell is not None)
            for _, row in table[list(graph.vars) + list(graph.ops)].iterrows()]
    assert len(keys) == len(set(keys)), "a computation is shown on two rows"
    for name, hids in list(frame.vars.items()) + list(frame.ops.items()):
        assert {cell.hid for cell in table[name] if cell is not None} == hids, f"{name} lost a value"


EDITS = ["select_nodes", "upstream", "downstream", "midstream", "drop_var", "drop_op", "merge_vars", "isin",
         "difference", "union", "intersection"]


def calls_on_rows(frame):
    """Each row of ``frame.df()`` as the (op node, call hid) pairs it holds."""
    table = frame.df()
    return [frozenset((node, row[node].hid) for node in frame.ops if isinstance(row[node], Call))
            for _, row in table.iterrows()]


def node_calls(frame):
    return {(node, hid) for node, hids in frame.ops.items() for hid in hids}


def set_edit(frame, data, kind):
    """``frame - part``, ``part | other`` or ``part & other`` of parts of the frame picked by some of their refs."""
    hids = sorted(set().union(*frame.vars.values()))
    if not hids:
        return frame
    part, other = (frame.isin(data.draw(st.sets(st.sampled_from(hids), max_size=3)), by="hid") for _ in "ab")
    if kind == "union":
        joined = part | other
        assert node_calls(joined) == node_calls(part) | node_calls(other)
        return joined
    if kind == "intersection":
        both = part & other
        assert node_calls(both) == node_calls(part) & node_calls(other)
        return both
    left = frame - part
    assert node_calls(left) == node_calls(frame) - node_calls(part)
    whole = {row for row in calls_on_rows(frame) if row and not row & node_calls(part)}
    assert whole <= set(calls_on_rows(left)), "a computation with no call in the part subtracted is not whole"
    return left


def edit(frame, data):
    """One random edit of the frame (a node choice drawn from its current nodes)."""
    kind = data.draw(st.sampled_from(EDITS))
    names = sorted(set(frame.vars) | set(frame.ops))
    if kind == "merge_vars":
        merged = frame.merge_vars()
        # A value alone on its row may join a variable shown on others: compare the computations.
        assert {r for r in rows_of(merged) if r} == {r for r in rows_of(frame) if r}, "merging changed them"
        return merged
    if kind in ("difference", "union", "intersection"):
        return set_edit(frame, data, kind)
    if kind == "isin":  # in every variable
        hids = sorted(set().union(*frame.vars.values()))
        return frame.isin(data.draw(st.sets(st.sampled_from(hids), max_size=3)), by="hid") if hids else frame
    if kind in ("drop_var", "drop_op"):
        pool = sorted(frame.vars if kind == "drop_var" else frame.ops)
        return getattr(frame, kind)(data.draw(st.sampled_from(pool))) if pool else frame
    if kind == "select_nodes":
        return frame.select_nodes(data.draw(st.sets(st.sampled_from(names), min_size=1)))
    picked = data.draw(st.lists(st.sampled_from(names), min_size=1, max_size=3, unique=True))
    return getattr(frame, kind)(*picked, how=data.draw(st.sampled_from(["strong", "weak"])))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pipelines(), st.data())
def test_edited_frames_show_only_executed_computations_and_lose_nothing(pipeline, data):
    stages, runs = pipeline
    storage = Storage()
    executed = [branch for choices, constants in runs for branch in run_pipeline(storage, stages, choices, constants)]
    full = storage.cf(stages[-1][1][0]).expand_all()
    everything = set(rows_of(full))
    # Edits that keep every computation whole.
    assert set(rows_of(full.upstream(*full.sinks))) == everything
    assert set(rows_of(full.downstream(*full.sources))) == everything
    assert set(rows_of(full.select_nodes(set(full.vars) | set(full.ops)))) == everything
    frame = full
    for _ in range(data.draw(st.integers(1, 4))):
        before = repr(frame)
        edited = edit(frame, data)
        assert repr(frame) == before, "an edit changed the frame it was made from"
        frame = edited
        if not frame.vars and not frame.ops:
            break
        check_rows(frame, executed)
    storage.close()


def test_following_links_values_to_their_makers_whichever_variable_shows_them():
    # un_b reads values of two_a and two_b, but its input variable has an edge from two_a only.
    stages = [("source", [src_a, src_b], None), ("two", [two_a, two_b], None), ("unary", [un_a, un_b], None),
              ("unary", [un_c], None), ("binary", [bi_b], 1)]
    runs = [([1, 1, 0, 0, 1], [(1, 2), (1, 2), (1, 1), (2, 2), (2, 1)]),
            ([1, 0, 1, 0, 0], [(0, 2), (2, 2), (0, 2), (1, 2), (2, 1)]),
            ([0, 1, 1, 1, 0], [(0, 0), (0, 0), (2, 0), (2, 1), (1, 1)]),
            ([1, 1, 1, 1, 0], [(2, 1), (0, 1), (1, 1), (1, 0), (2, 0)])]
    storage = Storage()
    executed = set().union(*(run_pipeline(storage, stages, choices, constants) for choices, constants in runs))
    full = storage.cf(bi_b).expand_all()
    assert set(rows_of(full)) == executed
    assert set(rows_of(full.downstream(*full.sources))) == executed
    assert set(rows_of(full.upstream(*full.sinks, how="strong"))) == executed
    storage.close()
