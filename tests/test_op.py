"""The @op decorator and the call path, on every storage kind."""

from __future__ import annotations

import numpy as np
import pytest

from memostore import (
    NewArgDefault,
    OpDefinitionError,
    OutputMismatchError,
    Ref,
    SerializationError,
    Storage,
    UnhashableInputError,
    UnhashableOutputError,
    op,
)

from helpers import run_python


class Counter:
    """Counts executions of op bodies, to tell computed from loaded."""

    def __init__(self):
        self.runs = []

    def __call__(self, name):
        self.runs.append(name)


@pytest.fixture
def ran():
    return Counter()


def test_outside_a_storage_an_op_is_the_plain_function(ran):
    @op
    def add(x, y=NewArgDefault(1)):
        ran("add")
        return x + y

    assert add(2) == 3
    assert add(2, y=5) == 7
    assert ran.runs == ["add", "add"]


def test_second_call_loads_instead_of_computing(storage, ran):
    @op
    def square(x):
        ran("square")
        return x * x

    with storage:
        first = square(4)
        again = square(4)
    assert ran.runs == ["square"]
    assert isinstance(first, Ref) and first.in_memory
    assert not again.in_memory
    assert storage.unwrap(again) == 16
    assert first.hid == again.hid and first.cid == again.cid


def test_tuples_split_into_outputs_and_refs_chain(storage, ran):
    @op
    def split(n):
        ran("split")
        return n, n * 2

    @op
    def total(a, b):
        ran("total")
        return a + b

    with storage:
        a, b = split(3)
        result = total(a, b)
    with storage:
        a2, b2 = split(3)
        result2 = total(a2, b2)
    assert ran.runs == ["split", "total"]
    assert storage.unwrap(result2) == 9
    assert result2.hid == result.hid
    creator = storage.get_ref_creator(result2)
    assert creator.op == "total" and creator.inputs["a"].hid == a.hid


def test_nout_and_output_names(storage):
    @op(output_names=["model", "score"])
    def fit(x):
        return {"w": x}, 0.5

    @op(nout=1)
    def pair(x):
        return (x, x)

    with storage:
        model, score = fit(2)
        both = pair(1)
    call = storage.get_ref_creator(model)
    assert list(call.outputs) == ["model", "score"]
    assert storage.unwrap(both) == (1, 1)


def test_declared_outputs_must_match(storage):
    @op(nout=2)
    def one(x):
        return x

    with storage, pytest.raises(OutputMismatchError, match="'one' declares 2 outputs"):
        one(1)


def test_ignored_arguments_stay_out_of_the_identity(storage, ran):
    @op(ignore=["verbose"])
    def fit(x, verbose=False):
        ran(verbose)
        return x + 1

    with storage:
        fit(1, verbose=True)
        fit(1, verbose=False)
    assert ran.runs == [True]


def test_new_arg_default_reuses_calls_stored_before_the_parameter(tmp_path, ran):
    storage = Storage(db_path=tmp_path / "grow.db")

    @op
    def train(x):
        ran(x)
        return x * 10

    with storage:
        old = train(1)

    @op
    def train(x, scale=NewArgDefault(10)):  # noqa: F811 - the same op, grown
        ran(x)
        return x * scale

    with storage:
        same = train(1)
        explicit_default = train(1, scale=10)
        other = train(2, scale=3)
    assert ran.runs == [1, 2]
    assert same.hid == old.hid == explicit_default.hid
    assert storage.unwrap(other) == 6
    assert len(storage.versions(train)) == 1


def test_pinned_version_is_used_as_given(storage):
    @op(version="2")
    def f(x):
        return x

    assert f.version == "2"
    with storage:
        ref = f(1)
    assert storage.get_ref_creator(ref).version == "2"


def test_same_content_by_another_path_is_not_recomputed(storage, ran):
    @op
    def make():
        return 5

    @op
    def double(x):
        ran("double")
        return 2 * x

    with storage:
        from_call = double(make())
        from_value = double(5)
    assert ran.runs == ["double"]
    assert from_call.cid == from_value.cid and from_call.hid != from_value.hid
    assert storage.get_ref_creator(from_value).inputs["x"].hid != storage.get_ref_creator(from_call).inputs["x"].hid


def test_exceptions_propagate_and_nothing_is_stored(storage, ran):
    @op
    def fragile(x):
        ran("fragile")
        raise ValueError(f"bad {x}")

    with storage:
        with pytest.raises(ValueError, match="bad 1"):
            fragile(1)
        with pytest.raises(ValueError):
            fragile(1)
    assert ran.runs == ["fragile", "fragile"]
    assert "calls=0" in repr(storage)


def test_ops_inside_ops_are_memoized_and_see_values(storage, ran):
    @op
    def inner(x):
        ran("inner")
        return x + 1

    @op
    def outer(x):
        value = inner(x)
        assert not isinstance(value, Ref)
        return value * 2

    with storage:
        assert storage.unwrap(outer(1)) == 4
        assert storage.unwrap(inner(1)) == 2
    assert ran.runs == ["inner"]


def test_wrong_signature_raises_the_plain_type_error(storage):
    @op
    def f(a, b):
        return a + b

    with pytest.raises(TypeError) as plain:
        f.func(1)
    with storage:
        with pytest.raises(TypeError) as memoized:
            f(1)
        assert str(memoized.value) == str(plain.value)  # exactly the function's own error
        with pytest.raises(TypeError, match="unexpected keyword argument 'c'"):
            f(1, 2, c=3)
        with pytest.raises(TypeError, match="multiple values for argument 'a'"):
            f(1, a=2)


def test_var_args_and_kwargs_are_inputs(storage, ran):
    @op
    def gather(*items, **options):
        ran("gather")
        return sum(items) + len(options)

    with storage:
        first = gather(1, 2, flag=True)
        again = gather(1, 2, flag=True)
        other = gather(1, 3, flag=True)
    assert ran.runs == ["gather", "gather"]
    assert first.hid == again.hid != other.hid
    assert set(storage.get_ref_creator(first).inputs) == {"items_0", "items_1", "flag"}


def test_unhashable_input_names_op_and_argument(storage):
    @op
    def consume(data):
        return list(data)

    with storage, pytest.raises(UnhashableInputError, match="op 'consume', argument 'data'.*list\\(generator\\)"):
        consume(i for i in range(3))


def test_unhashable_output_names_op_and_output(storage):
    import threading

    @op
    def make_lock():
        return threading.Lock()

    with storage, pytest.raises(UnhashableOutputError, match="op 'make_lock', output 'output_0'"):
        make_lock()


def test_unpicklable_output_names_op_and_output(storage):
    import threading

    from memostore import register_hasher

    class Handle:
        def __init__(self):
            self.lock = threading.Lock()

    register_hasher(Handle, lambda h: "handle")

    @op
    def make_handle():
        return Handle()

    with storage, pytest.raises(SerializationError, match="op 'make_handle', output 'output_0'"):
        make_handle()


def test_new_arg_default_as_a_value_is_rejected(storage):
    @op
    def f(x, y=NewArgDefault(1)):
        return x + y

    with storage, pytest.raises(OpDefinitionError, match="argument 'x'.*NewArgDefault"):
        f(NewArgDefault(2))


def test_bad_decorator_options_are_rejected():
    with pytest.raises(OpDefinitionError, match="ignore=\\['nope'\\]"):
        op(ignore=["nope"], name="f")(lambda x: x)
    with pytest.raises(OpDefinitionError, match="nout=3 disagrees"):
        op(nout=3, output_names=["a", "b"], name="f")(lambda x: x)
    with pytest.raises(OpDefinitionError, match="list of names"):
        op(output_names="model", name="f")(lambda x: x)
    with pytest.raises(OpDefinitionError, match=r"op 'f': output_names must be a list of names .*got int 5"):
        op(output_names=5, name="f")(lambda x: x)


def test_numpy_inputs_and_outputs(storage, ran):
    @op
    def normalize(array):
        ran("normalize")
        return array / array.sum()

    data = np.arange(1.0, 5.0)
    with storage:
        first = normalize(data)
        second = normalize(data.copy())
    assert ran.runs == ["normalize"]
    assert first.hid == second.hid
    np.testing.assert_allclose(storage.unwrap(second), data / data.sum())


def test_a_second_process_reuses_every_stored_call(tmp_path):
    module = tmp_path / "pipeline.py"
    module.write_text(
        "from memostore import op\n"
        "RUNS = []\n"
        "@op\n"
        "def inc(x):\n"
        "    RUNS.append(x)\n"
        "    return x + 1\n"
    )
    code = f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        from memostore import Storage
        import pipeline
        storage = Storage(db_path={str(tmp_path / 'runs.db')!r})
        with storage:
            refs = [pipeline.inc(i) for i in range(50)]
        print(len(pipeline.RUNS), sum(storage.unwrap(refs)))
    """
    assert run_python(code, tmp_path).split() == ["50", "1275"]
    assert run_python(code, tmp_path).split() == ["0", "1275"]


@op
def spread(*args, **kwargs):
    return [list(args), sorted(kwargs.items())]


def test_star_args_and_keywords_never_share_an_identity(storage):
    with storage:
        positional = spread(1, 2)
        named = spread(args_0=1, args_1=2)
        starred = spread(**{"*args_0": 1, "**args_0": 2})
    assert storage.unwrap(positional) == [[1, 2], []]
    assert storage.unwrap(named) == [[], [("args_0", 1), ("args_1", 2)]]
    assert storage.unwrap(starred) == [[], [("**args_0", 2), ("*args_0", 1)]]
    assert len({positional.hid, named.hid, starred.hid}) == 3


def test_a_named_parameter_that_reads_like_a_star_arg_does_not_collide(storage):
    @op
    def odd(args_0, *args):
        return [args_0, list(args)]

    with storage:
        assert storage.unwrap(odd(1, 2)) == [1, [2]]
        assert storage.unwrap(odd(2, 1)) == [2, [1]]


def test_identity_names_of_plain_and_star_positional_calls_are_unchanged(storage):
    @op
    def pair(x, y=1, *rest):
        return x

    with storage:
        call = storage.get_ref_creator(pair(5, 2, 7))
    assert sorted(call.inputs) == ["rest_0", "x", "y"]  # as stored before *args/**kwargs were told apart


def test_help_shows_the_decorator_options():
    import inspect

    assert list(inspect.signature(op).parameters) == ["func", "name", "output_names", "nout", "version", "ignore"]
