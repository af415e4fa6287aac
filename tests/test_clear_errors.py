"""Mistakes a user makes get an error that says what to do, never a silent non-answer."""

import os
import shutil
import subprocess
import sys

import pytest

from memostore import (
    MissingBlobError,
    NotStoredError,
    OpDefinitionError,
    RefNotLoadedError,
    RefUsedAsValueError,
    Storage,
    StorageOptionError,
    UnknownOpError,
    op,
    upgrade_store,
)

from helpers import REPO_ROOT


@op
def halve(x):
    return x / 2


@op(output_names=["metric"])
def metric(x):
    return x * 10


def test_op_methods_accept_the_stored_name(storage):
    with storage:
        halve(4)
    assert list(storage.versions("halve")["calls"]) == [1]
    assert len(storage.cf("halve").df()) == 1
    assert storage.failures("halve").empty
    assert storage.stale_calls("halve") == [] and storage.drop_stale("halve") == []
    assert storage.explain("halve", 4).hit
    with pytest.raises(NotStoredError, match="no other stored version"):
        storage.mark_compatible("halve")


def test_an_unknown_op_name_lists_the_stored_ops(storage):
    with storage:
        halve(4)
        metric(1)
    for method in (storage.cf, storage.versions, storage.failures, storage.drop_stale, storage.stale_calls,
                   storage.mark_compatible, storage.explain):
        with pytest.raises(UnknownOpError, match=r"'halv'.*no op of that name.*\['halve', 'metric'\]"):
            method("halv")


def test_a_stored_op_not_defined_here_is_named_as_such(storage):
    with storage:
        halve(4)
    storage.commit()
    from memostore.versioning import _current_ops

    saved = _current_ops.pop("halve")
    try:
        versions = storage.versions("halve")  # no code here, still readable; which version is current is unknown
        assert list(versions["calls"]) == [1] and versions["is_current"].isna().all()
        with pytest.raises(UnknownOpError, match="stored but not defined in this process"):
            storage.drop_stale("halve")
    finally:
        _current_ops["halve"] = saved


def test_dropping_unknown_calls_raises_and_drops_nothing(storage):
    with storage:
        kept = storage.get_ref_creator(halve(4))
    with pytest.raises(NotStoredError, match="1 of 2 calls are not stored"):
        storage.drop_calls([kept.hid, "0" * 32])
    assert len(storage.cf(halve).df()) == 1


def test_dropping_what_is_not_a_call_names_it_and_drops_nothing(storage):
    with storage:
        kept = storage.get_ref_creator(halve(4))
    with pytest.raises(StorageOptionError, match=r"drop_calls takes Calls or call hids.*got 4 \(int\)") as raised:
        storage.drop_calls([kept, 4])
    assert isinstance(raised.value, TypeError)  # what it raised before
    assert len(storage.cf(halve).df()) == 1


def test_upgrade_store_needs_exactly_one_location(tmp_path):
    with pytest.raises(StorageOptionError, match="db_url or db_path.*got neither"):
        upgrade_store()
    with pytest.raises(StorageOptionError, match="got both"):
        upgrade_store(db_url="sqlite://", db_path=tmp_path / "runs.db")
    assert not (tmp_path / "runs.db").exists()


@pytest.mark.parametrize("decorate, message", [
    (lambda f: op(output_name=["a"])(f), r"'test_clear_errors.target': unknown option output_name.*output_names"),
    (lambda f: op(version=2)(f), "version must be a string.*version='2'"),
])
def test_decorator_mistakes_name_the_function_and_the_fix(decorate, message):
    def target(x):
        return x

    target.__qualname__ = "target"
    with pytest.raises(OpDefinitionError, match=message):
        decorate(target)


def test_what_cannot_be_an_op_is_refused_at_decoration():
    async def fetch(x):
        return x

    def numbers(n):
        yield from range(n)

    class Model:
        pass

    for target, message in ((fetch, "fetch.*async"), (numbers, "numbers.*generator.*list"), (Model, "Model.*class")):
        with pytest.raises(OpDefinitionError, match=message):
            op(target)


def test_map_of_a_plain_function_says_to_decorate_it(storage):
    def plain(x):
        return x

    with pytest.raises(OpDefinitionError, match="plain.*not.*@op"):
        storage.map(plain, [{"x": 1}], progress=False)


def test_a_misspelt_keyword_is_named(storage):
    with storage, pytest.raises(TypeError, match="unexpected keyword argument 'xx'"):
        halve(xx=1)


def test_a_ref_is_not_its_value(storage):
    with storage:
        ref = halve(4)
        for misuse in (lambda: ref > 0.5, lambda: ref + 1, lambda: 1 + ref, lambda: bool(ref), lambda: float(ref),
                       lambda: ref == 2.0, lambda: 2 != ref, lambda: f"{ref:.2f}", lambda: round(ref, 1),
                       lambda: ref == "text", lambda: "text" == ref, lambda: ref != "text", lambda: ref == None,  # noqa: E711
                       lambda: ref == [2], lambda: ref in ["text"]):
            with pytest.raises(RefUsedAsValueError, match="storage.unwrap"):
                misuse()
        assert ref == ref and storage.unwrap(ref) == 2  # identity and unwrapping still work
        assert ref in {ref} and ref in [ref] and f"{ref}" == repr(ref)
        assert ref not in {ref.hid: 1} and ref != halve(6)  # not mistaken for its id; Refs compare by history
    with pytest.raises(RefUsedAsValueError, match="'halve'.*outside a `with storage:`.*storage.unwrap"):
        halve(ref)
    assert halve(storage.unwrap(ref)) == 1


def test_a_ref_given_to_an_op_outside_a_block_names_the_argument():
    storage = Storage()
    with storage:
        ref = halve(4)

    @op
    def scale(value, factor=1, *more):
        return value * factor

    with pytest.raises(RefUsedAsValueError, match="op 'halve', argument 'x': got a Ref outside"):
        halve(x=ref)
    with pytest.raises(RefUsedAsValueError, match="op 'scale', argument 'factor': got a Ref outside"):
        scale(2, ref)
    with pytest.raises(RefUsedAsValueError, match="op 'scale', arguments 'value', 'more': .*storage.unwrap"):
        scale(ref, 1, 2, ref)


def test_the_value_of_a_lazy_ref_says_how_to_load_it(storage):
    with storage:
        halve(4)
    [lazy] = storage.cf(halve).refs_by_var()["var_0"]
    with pytest.raises(RefNotLoadedError, match=r"storage\.unwrap\(ref\).*storage\.attach.*with storage:") as raised:
        _ = lazy.value
    assert isinstance(raised.value, ValueError)  # code that caught the ValueError it used to be still does
    with pytest.raises(RefNotLoadedError):
        _ = storage.load_ref(lazy.hid).obj
    assert storage.unwrap(lazy) == 2.0 and lazy.value == 2.0  # unwrap loads it into the Ref


FAILING_SCRIPT = '''
import sys
from memostore import Storage, op


@op
def explode(x):
    raise ValueError(f"no {x}")


if __name__ == "__main__":
    storage = Storage(db_path=sys.argv[1])
    storage.map(explode, [{"x": 1}], executor="processes", n_jobs=1, on_error="record", progress=False)
    print(storage.failures(explode)["traceback"].iloc[0])
'''


def test_a_traceback_recorded_in_a_worker_names_the_ops_file_and_line(tmp_path):
    # A script's op travels to the worker by value (cloudpickle), which would name its file <dynamic-code>.
    script = tmp_path / "pipeline.py"
    script.write_text(FAILING_SCRIPT)
    result = subprocess.run([sys.executable, str(script), str(tmp_path / "runs.db")], capture_output=True,
                            text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert result.returncode == 0, result.stderr
    assert f'File "{script}", line 8, in explode' in result.stdout
    assert "<dynamic-code>" not in result.stdout


def test_a_missing_blob_of_a_server_store_names_where_it_was_expected(postgres_url, tmp_path):
    blobs = tmp_path / "shared-blobs"
    with Storage(db_url=postgres_url, blob_dir=blobs, blob_threshold_bytes=1) as writer:
        ref = halve(float(10**6))  # its input and output go to blob files
    shutil.rmtree(blobs)
    with pytest.raises(MissingBlobError, match=f"blob directory '{blobs}'.*blob_dir"):
        Storage(db_url=postgres_url, blob_dir=blobs).unwrap(writer.load_ref(ref.hid))
    with pytest.raises(NotStoredError, match="blob_dir= the directory"):
        Storage(db_url=postgres_url).unwrap(writer.load_ref(ref.hid))


def test_create_takes_true_false_or_alongside(tmp_path):
    with pytest.raises(StorageOptionError, match="create=.*'yes'"):
        Storage(db_path=tmp_path / "runs.db", create="yes")
    assert not (tmp_path / "runs.db").exists()
