"""Property tests of the whole store: round trips and a stateful model."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from memostore import Storage, content_id, op

COMPUTED: list[int] = []


@op
def identity(value):
    return value


@op
def add(x, y):
    COMPUTED.append(1)
    return x + y


values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | st.binary(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3),
    max_leaves=8,
) | hnp.arrays(dtype=hnp.scalar_dtypes(), shape=hnp.array_shapes(max_dims=2, max_side=3))


# No deadline: each example opens a store on disk, whose time a busy machine can stretch past any limit.
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values)
def test_any_value_round_trips_through_a_file_store(value):
    with tempfile.TemporaryDirectory() as tmp:
        db_path = Path(tmp) / "rt.db"
        with Storage(db_path=db_path):
            identity(value)
        reopened = Storage(db_path=db_path)
        with reopened:
            ref = identity(value)
        assert not ref.in_memory
        loaded = reopened.unwrap(ref)
        assert content_id(loaded) == content_id(value)
        if isinstance(value, np.ndarray):
            assert loaded.dtype == value.dtype


class StoreMachine(RuleBasedStateMachine):
    """Random calls, commits and reopenings: each distinct call runs once."""

    def __init__(self):
        super().__init__()
        self.directory = tempfile.TemporaryDirectory()
        self.db_path = Path(self.directory.name) / "state.db"
        self.storage = Storage(db_path=self.db_path)
        self.distinct: set[tuple[int, int]] = set()
        COMPUTED.clear()

    @rule(x=st.integers(0, 5), y=st.integers(0, 5))
    def call(self, x, y):
        with self.storage:
            ref = add(x, y)
        self.distinct.add((x, y))
        assert self.storage.unwrap(ref) == x + y

    @rule(x=st.integers(0, 5), y=st.integers(0, 5))
    def call_without_leaving_block(self, x, y):
        self.storage.__enter__()
        try:
            ref = add(x, y)
            self.distinct.add((x, y))
            assert self.storage.unwrap(ref) == x + y
        finally:
            self.storage.__exit__(None, None, None)

    @precondition(lambda self: self.distinct)
    @rule()
    def reopen(self):
        self.storage.close()
        self.storage = Storage(db_path=self.db_path)

    @invariant()
    def each_distinct_call_ran_once(self):
        assert len(COMPUTED) == len(self.distinct)

    def teardown(self):
        self.storage.close()
        self.directory.cleanup()


TestStoreMachine = StoreMachine.TestCase
TestStoreMachine.settings = settings(max_examples=25, stateful_step_count=15, deadline=None)
