"""explain, lineage and mark_compatible: questions about stored history."""

from __future__ import annotations

import pytest

from memostore import NewArgDefault, NotStoredError, Storage, op


@op
def load(seed):
    return [seed, seed + 1, seed + 2]


@op
def total(values, scale=1):
    return sum(values) * scale


def test_explain_a_hit_and_a_content_hit(storage):
    with storage:
        total(load(1))
    assert storage.explain(total, [1, 2, 3]).hit  # same contents, typed in by hand
    with storage:
        values = load(1)
    explanation = storage.explain(total, values)
    assert explanation.hit and str(explanation) == "total: hit: this call is stored"


def test_explain_names_the_argument_that_differs(storage):
    with storage:
        total([1, 2, 3], scale=2)
    explanation = storage.explain(total, [1, 2, 4], scale=2)
    assert not explanation.hit
    assert explanation.differences == ["argument 'values' has other contents"]
    assert "nearest stored call: Call(total" in str(explanation)


def test_explain_spots_an_argument_added_without_new_arg_default(storage):
    @op
    def area(width):
        return width * 2

    with storage:
        area(3)

    @op
    def area(width, height=2):  # noqa: F811 - grown without NewArgDefault
        return width * height

    explanation = storage.explain(area, 3)
    assert not explanation.hit
    assert "argument 'height' is new: added without NewArgDefault" in "\n".join(explanation.differences)
    assert any(d.startswith("op version") for d in explanation.differences)
    assert "-def area(width):" in explanation.version_diff
    assert "+def area(width, height=2):  # noqa: F811 - grown without NewArgDefault" in explanation.version_diff

    @op
    def area(width, height=NewArgDefault(2)):  # noqa: F811 - the compatible way
        return width * height

    # With NewArgDefault(2), `width * height` reads `width * 2` again: the same version, a hit.
    assert storage.explain(area, 3).hit


def test_explain_on_an_empty_store(storage):
    assert str(storage.explain(total, [1])) == "total: miss: no call of this op is stored"


def test_lineage_walks_back_to_the_values_passed_in(storage):
    with storage:
        result = total(load(5), scale=3)
    table = storage.lineage(result)
    # Depth first: each input right under the ref it went into (seed under values, not under scale).
    assert list(table["op"]) == ["total", "load", None, None]
    assert list(table["via"]) == ["", "values", "seed", "scale"]
    assert list(table["depth"]) == [0, 1, 2, 1]
    assert list(table["parent"].astype(object).where(table["parent"].notna(), None)) == [None, 0, 1, 0]
    assert list(table["value"])[2:] == [5, 3] and list(table["passed_in"]) == [False, False, True, True]
    tree = str(table).splitlines()
    assert tree[0].startswith("ref ") and "= total@" in tree[0]
    assert tree[1].startswith("    values ") and "= load@" in tree[1]
    assert tree[2].startswith("        seed ") and tree[2].endswith("= 5 (a value passed in)")
    assert tree[3].startswith("    scale ") and tree[3].endswith("= 3 (a value passed in)")


@op
def pair(a, b):
    return [a, b]


def test_lineage_is_a_tree_whose_indentation_follows_the_parent_column(storage):
    with storage:
        shared = total(load(5), scale=3)
        result = pair(total(load(7), scale=2), shared)
        twice = pair(shared, shared)
    table = storage.lineage(result)
    for position, row in table.iterrows():
        if position:  # a row's parent is the closest row above it one level up
            above = table.iloc[:position]
            assert row["parent"] == above[above["depth"] == row["depth"] - 1].index[-1]
    assert list(table["value"][table["passed_in"]]) == [7, 2, 5, 3]
    lines = str(table).splitlines()
    assert [len(line) - len(line.lstrip()) for line in lines] == [4 * d for d in table["depth"]]
    again = storage.lineage(twice)
    assert list(again["repeated"]) == [False, False, False, False, False, True]
    assert str(again).splitlines()[-1].endswith("(shown above)")


def test_mark_compatible_carries_calls_over(db_path):
    storage = Storage(db_path=db_path)
    runs = []

    @op
    def shout(word):
        runs.append(word)
        return word.upper()

    with storage:
        for word in ("a", "b"):
            shout(word)

    @op
    def shout(word):  # noqa: F811 - a refactor that cannot change results
        runs.append(word)
        text = word
        return text.upper()

    assert storage.mark_compatible(shout) == 2
    with storage:
        again = [shout(w) for w in ("a", "b", "c")]
    assert runs == ["a", "b", "c"]
    assert [r.in_memory for r in again] == [False, False, True]
    assert storage.versions(shout)["calls"].tolist() == [0, 3]  # moved, not copied: one row per computation
    with pytest.raises(NotStoredError, match="no other stored version"):
        storage.mark_compatible(shout, from_version="ffff")
