"""The ``@op`` decorator and the call path: bind, hash, look up, run, record.

Outside ``with storage:`` an op is its plain function. Inside, a call binds
its arguments, takes the content id of each (a Ref brings its own ids),
derives the call's hid and cid (see ``model``), and asks the storage for a
stored call with that hid, then that cid. A hit returns lazy Refs to the
stored outputs; a miss runs the function on plain values and queues the call,
its inputs and outputs for the next flush.
"""

from __future__ import annotations

import functools
import inspect
import time
import types
from typing import Any, Callable, Iterable, Sequence, TypeVar, overload

from memostore.argument_check import watched_call
from memostore.callpath import FAILED, open_block_storage
from memostore.callpath import inside_op as _inside_op
from memostore.carry import (
    Carried,
    carried_storage,
    function_bytes,
    importable,
    op_by_name,
    op_from_function,
    to_carry,
)
from memostore.collections import collection_kinds, pack_arguments, unpack_result
from memostore.decoration import check_function, check_options, check_outputs
from memostore.deps import Dependency, captured_by
from memostore.errors import (
    MissingBlobError,
    NotStoredError,
    OpDefinitionError,
    OutputMismatchError,
    RefUsedAsValueError,
    UnhashableInputError,
    UnhashableValueError,
)
from memostore.hashing import content_id
from memostore.model import Call, CallIdentity, Ref, call_identity, input_ref_hid
from memostore.modes import noop_open, noop_storage, refuse_new_call
from memostore.not_a_value import ref_outside_block
from memostore.pointers import Ignore, ValuePointer, has_wrapper, pointed_objects, pointer_digest, without_ignore
from memostore.repair import call_arguments
from memostore.storage import Storage, current_storage
from memostore.versioning import former_ids, function_source, note_current_op, version_id

F = TypeVar("F", bound=Callable[..., Any])

_POSITIONAL_OR_KEYWORD = inspect.Parameter.POSITIONAL_OR_KEYWORD
_KEYWORD_ONLY = inspect.Parameter.KEYWORD_ONLY
_VAR_POSITIONAL = inspect.Parameter.VAR_POSITIONAL
_VAR_KEYWORD = inspect.Parameter.VAR_KEYWORD
# Marks a **kwargs key that could read like an *args item (see Op._keyword_name).
_ESCAPE = "**"


class NewArgDefault:
    """The default of a parameter added to an op after calls were stored.

    When a call passes a value equal to ``value`` (or nothing), the argument
    is left out of the call's identity, so calls stored before the parameter
    existed are found again. Use it only as a parameter default.

    >>> NewArgDefault(1)
    NewArgDefault(1)
    """

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"NewArgDefault({self.value!r})"


class Op:
    """A memoized function; made by ``@op``.

    >>> from memostore import Storage, op
    >>> @op
    ... def double(x): return 2 * x
    >>> with Storage():  # outside a block, double(3) is the plain function's 6
    ...     double(3)
    Ref(6, hid=...)
    """

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        name: str | None = None,
        output_names: Sequence[str] | None = None,
        nout: int | None = None,
        version: str | None = None,
        ignore: Sequence[str] = (),
    ) -> None:
        check_function(func, name, version)
        self.func = func
        self.name = name or func.__name__
        # Where the function is defined: an op name belongs to one function.
        self.module: str = getattr(func, "__module__", None) or "__main__"
        self.qualname: str = getattr(func, "__qualname__", None) or self.name
        self.explicit_name = name is not None
        self.signature = inspect.signature(func)
        self.output_names = check_outputs(self.name, output_names, nout)
        # MList/MDict/... annotations: collections stored item by item (see memostore.collections).
        self.output_kind, self.collection_params = collection_kinds(self.name, func, len(self.output_names or ()))
        self.ignore = frozenset(ignore)
        self._check_ignore()
        self.new_arg_defaults = {
            p.name: p.default.value for p in self.signature.parameters.values()
            if isinstance(p.default, NewArgDefault)
        }
        self._new_arg_default_cids = {n: content_id(v) for n, v in self.new_arg_defaults.items()}
        self.plain = _with_plain_defaults(func)
        self.source = function_source(func)
        self.version_pinned = version is not None
        self.version = version if version is not None else self.version_with(captured_by(self))
        self._prepare_binding()
        self._carried: Carried | None = None
        functools.update_wrapper(self, func)
        note_current_op(self.name, self)

    def version_with(self, dependencies: Sequence[Dependency]) -> str:
        """The version when these dependencies are tracked (a pinned version ignores them).

        >>> from memostore import op
        >>> @op(version="1")
        ... def double(x): return 2 * x
        >>> double.version_with([])  # a pinned version ignores dependencies
        '1'
        """
        if self.version_pinned:
            return self.version
        return version_id(self.func, self.new_arg_defaults, salt=repr(self.output_names),
                          source=self.source, dependencies=dependencies)

    def former_versions_with(self, dependencies: Sequence[Dependency]) -> set[str]:
        """The versions memostore 0.1 gave this code (its stored calls carry over); none if pinned."""
        if self.version_pinned:
            return set()
        return former_ids(self.func, self.new_arg_defaults, salt=repr(self.output_names),
                          source=self.source, dependencies=dependencies)

    def _check_ignore(self) -> None:
        unknown = sorted(self.ignore - set(self.signature.parameters))
        if unknown:
            raise OpDefinitionError(
                f"op {self.name!r}: ignore={unknown} names no parameter of the function; "
                f"its parameters are {list(self.signature.parameters)}"
            )

    def _prepare_binding(self) -> None:
        parameters = list(self.signature.parameters.values())
        self._simple = all(p.kind in (_POSITIONAL_OR_KEYWORD, _KEYWORD_ONLY) for p in parameters)
        self._positional = tuple(p.name for p in parameters if p.kind == _POSITIONAL_OR_KEYWORD)
        self._names = frozenset(p.name for p in parameters)
        # *args items are named "<name>_<i>" ("*<name>_<i>" if a named parameter reads like one);
        # a **kwargs key that reads like one, or starts with "*", is escaped (see _keyword_name).
        self._var_positional = next((p.name + "_" for p in parameters if p.kind == _VAR_POSITIONAL), None)
        if self._var_positional is not None and any(
                n.startswith(self._var_positional) and n[len(self._var_positional):].isdigit() for n in self._names):
            self._var_positional = "*" + self._var_positional
        self._defaults = {
            p.name: p.default.value if isinstance(p.default, NewArgDefault) else p.default
            for p in parameters if p.default is not inspect.Parameter.empty
        }

    def __repr__(self) -> str:
        return f"Op({self.name}, version={self.version[:8]})"

    def __get__(self, instance: Any, owner: Any = None) -> Any:
        # Ops defined in a class body bind like methods.
        return self if instance is None else types.MethodType(self, instance)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        noop = noop_storage()
        if noop is None:
            storage = current_storage()
            if storage is not None:
                return _call(self, storage, args, kwargs)
            if self._carried is not None:  # unpickled in a worker process from inside a block
                with carried_storage(self._carried) as carried:
                    return _call(self, carried, args, kwargs)
            storage = open_block_storage()  # a worker thread of a block's pool
            if storage is not None and not noop_open(storage):
                return _call(self, storage, args, kwargs)
            noop = storage  # the pool runs inside the block's storage.noop(): plain too
        if noop is not None:  # with storage.noop(): the plain function on plain values
            plain_args, plain_kwargs = pointed_objects(*noop.unwrap(without_ignore(args, kwargs)))
            return self.plain(*plain_args, **plain_kwargs)
        if any(isinstance(value, Ref) for value in (*args, *kwargs.values())):
            raise RefUsedAsValueError(ref_outside_block(self.name, self.signature, args, kwargs))
        if has_wrapper(args) or has_wrapper(kwargs.values()):
            args, kwargs = pointed_objects(*without_ignore(args, kwargs))
        return self.plain(*args, **kwargs)

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled inside a block (joblib, a process pool), an op carries the
        # storage's configuration, so the worker memoizes into the same store.
        config, version = to_carry(self)
        if self.module != "__main__" and importable(self.module, self.qualname) is self:
            return (op_by_name, (self.module, self.qualname, config, version))
        options = {"name": self.name if self.explicit_name else None, "output_names": self.output_names,
                   "version": self.version if self.version_pinned else None, "ignore": tuple(self.ignore)}
        return (op_from_function, (Op, function_bytes(self.func), options, self.source, config, version))

    # --- arguments ----------------------------------------------------------

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """Argument name -> value, defaults filled in, as Python would bind them.

        Raises the TypeError the plain function would raise for a wrong call.

        >>> from memostore import op
        >>> @op
        ... def add(x, y=10): return x + y
        >>> add.bind((1,), {}), add.bind((1,), {"y": 2})
        ({'x': 1, 'y': 10}, {'x': 1, 'y': 2})
        """
        if self._simple and len(args) <= len(self._positional) and (not kwargs or self._names.issuperset(kwargs)):
            bound = dict(zip(self._positional, args, strict=False))  # fewer args than parameters: defaults
            if not kwargs or not bound.keys() & kwargs.keys():
                bound.update(kwargs)
                for name, default in self._defaults.items():
                    bound.setdefault(name, default)
                if len(bound) == len(self._names):
                    return bound
        return self._bind_slow(args, kwargs)

    def _bind_slow(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        try:
            bound_arguments = self.signature.bind(*args, **kwargs)
        except TypeError as err:
            raise self._plain_type_error(args, kwargs, err) from None
        bound_arguments.apply_defaults()
        bound: dict[str, Any] = {}
        for name, value in bound_arguments.arguments.items():
            kind = self.signature.parameters[name].kind
            if kind == _VAR_POSITIONAL:
                bound.update((f"{self._var_positional}{i}", item) for i, item in enumerate(value))
            elif kind == _VAR_KEYWORD:
                bound.update((self._keyword_name(key), item) for key, item in value.items())
            elif isinstance(value, NewArgDefault):
                bound[name] = value.value
            else:
                bound[name] = value
        return bound

    def _plain_type_error(self, args: tuple[Any, ...], kwargs: dict[str, Any], err: TypeError) -> TypeError:
        """The TypeError the plain function raises for arguments that do not bind."""
        if isinstance(self.plain, types.FunctionType):
            try:
                self.plain(*args, **kwargs)  # a Python function checks its arguments before its body runs
            except TypeError as plain_error:
                return plain_error
        return TypeError(f"{self.name}() {err}")

    def _keyword_name(self, key: str) -> str:
        """The identity name of a ``**kwargs`` entry: itself, unless it could be
        mistaken for an item of ``*args`` (``args_0``) or is itself escaped."""
        prefix = self._var_positional
        if key.startswith("*") or (prefix is not None and key.startswith(prefix) and key[len(prefix):].isdigit()):
            return _ESCAPE + key
        return key

    def arguments_of(self, inputs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        """The (args, kwargs) that call the function again on a stored call's identity inputs
        (``bind``'s inverse; see ``repair.call_arguments``).

        >>> from memostore import op
        >>> def scale(x, k=2): return x * k
        >>> op(scale).arguments_of({"x": 3, "k": 5})
        ([], {'x': 3, 'k': 5})
        """
        return call_arguments(self.signature, inputs, self._var_positional, _ESCAPE, self._defaults)

    def identify_inputs(self, bound: dict[str, Any]) -> dict[str, Ref]:
        """The Refs that make up a call's identity (ignored arguments and NewArgDefault ones at their default left out).

        >>> from memostore import NewArgDefault, op
        >>> @op(ignore=["verbose"])
        ... def add(x, y=NewArgDefault(0), verbose=False): return x + y
        >>> list(add.identify_inputs({"x": 1, "y": 0, "verbose": True})), list(add.identify_inputs({"x": 1, "y": 2}))
        (['x'], ['x', 'y'])
        """
        inputs: dict[str, Ref] = {}
        for name, value in bound.items():
            if name in self.ignore or type(value) is Ignore:
                continue
            if isinstance(value, Ref):
                ref = value
            elif type(value) is ValuePointer:  # identified by its name; the store keeps only the name
                cid = pointer_digest(value).hex()
                ref = Ref(cid, input_ref_hid(cid), ValuePointer.stored(value.id))
            else:
                if isinstance(value, NewArgDefault):
                    raise OpDefinitionError(
                        f"op {self.name!r}, argument {name!r}: got {value!r} as a value; "
                        "NewArgDefault marks a parameter default in the op's signature, "
                        "pass the plain value instead"
                    )
                try:
                    cid = content_id(value)
                except UnhashableValueError as err:
                    raise UnhashableInputError(f"op {self.name!r}, argument {name!r}: {err}") from err
                ref = Ref(cid, input_ref_hid(cid), value)
            if self._new_arg_default_cids.get(name) == ref.cid:
                continue
            inputs[name] = ref
        return inputs

    # --- outputs ------------------------------------------------------------

    def split_outputs(self, result: Any) -> tuple[list[tuple[str, Any]], bool]:
        """The named outputs of a returned value, and whether it was a tuple.

        >>> from memostore import op
        >>> @op(output_names=["tens", "units"])
        ... def split(x): return x // 10, x % 10
        >>> split.split_outputs((4, 2)), op(split.func).split_outputs(42)
        (([('tens', 4), ('units', 2)], True), ([('output_0', 42)], False))
        """
        names = self.output_names
        if names is None:
            if type(result) is tuple and self.output_kind is None:  # an MTuple is one output
                return [(f"output_{i}", item) for i, item in enumerate(result)], True
            return [("output_0", result)], False
        if len(names) == 1:
            return [(names[0], result)], False
        if not isinstance(result, (tuple, list)) or len(result) != len(names):
            got = f"a {type(result).__name__} of length {len(result)}" \
                if isinstance(result, (tuple, list)) else f"a {type(result).__name__}"
            raise OutputMismatchError(
                f"op {self.name!r} declares {len(names)} outputs {list(names)}, but returned {got}; "
                "return a tuple with one item per output, or fix nout/output_names"
            )
        return list(zip(names, result, strict=True)), True


@overload
def op(func: F, /) -> F: ...


@overload
def op(*, name: str | None = None, output_names: Sequence[str] | None = None, nout: int | None = None,
       version: str | None = None, ignore: Sequence[str] = (),
       ignore_args: Sequence[str] | None = None) -> Callable[[F], F]: ...


def op(func: Callable[..., Any] | None = None, /, *, name: str | None = None,
       output_names: Sequence[str] | None = None, nout: int | None = None, version: str | None = None,
       ignore: Sequence[str] = (), ignore_args: Sequence[str] | None = None, **unknown: Any) -> Any:
    """Make a function memoized inside ``with storage:`` blocks.

    Options: ``name`` (the op's stored name, instead of the function's
    ``__name__``; needed for a lambda, and how a moved or renamed function
    keeps its calls), ``output_names`` (names of the outputs of a returned
    tuple), ``nout`` (their number), ``version`` (a string pinning the
    version by hand instead of hashing the source), ``ignore`` (arguments
    that do not change the result, like ``n_jobs``; ``ignore_args`` is
    mandala's name for it). A return annotation
    ``-> MList[int]`` (``MTuple``, ``MDict``, ``MSet``) stores the result item
    by item, and returns a Ref whose items are Refs (see ``memostore.collections``).

    >>> @op
    ... def add(x, y=1):
    ...     return x + y
    >>> add(2)  # outside a storage block: the plain function
    3
    >>> storage = Storage()
    >>> with storage:
    ...     total = add(2)
    >>> total
    Ref(3, hid=...)
    """
    if ignore_args is not None:
        if ignore:
            raise OpDefinitionError(f"@op got ignore={list(ignore)} and ignore_args={list(ignore_args)}, two names "
                                    "of one option; give only ignore=")
        ignore = ignore_args
    options: dict[str, Any] = {"name": name, "output_names": output_names, "nout": nout, "version": version,
                               "ignore": ignore}
    if func is not None:
        if not callable(func):
            raise OpDefinitionError(f"@op decorates a function, got {func!r}; use @op(...) for options")
        check_options(func, unknown)
        return Op(func, **options)

    def decorate(f: Callable[..., Any]) -> Op:
        check_options(f, unknown)
        return Op(f, **options)

    return decorate


# help(op) shows the options, not the catch-all that turns a misspelt one into a clear error, nor mandala's alias.
op.__signature__ = inspect.signature(op).replace(  # type: ignore[attr-defined]
    parameters=[p for p in inspect.signature(op).parameters.values()
                if p.kind != _VAR_KEYWORD and p.name != "ignore_args"])


def _call(op_: Op, storage: Storage, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    bound = pack_arguments(storage, op_.name, op_.bind(args, kwargs), op_.collection_params, op_.ignore)
    key = call_identity(op_.name, storage.version_of(op_), op_.identify_inputs(bound))
    call_path = storage.call_path
    found, owner = call_path.find(key), None
    if found is None:  # compute once across processes: claim it, or wait for whoever holds it
        refuse_new_call(storage, op_.name, bound)
        found, owner = call_path.await_or_claim(key)
    if found is None:
        try:
            outputs: Any = _run(op_, storage, key, args, kwargs).result()
        except Exception:
            call_path.count(FAILED)  # last_run counts calls that raised
            raise
        finally:
            if owner is not None:
                call_path.release(owner)
    else:
        outputs = call_path.hit(key, found)
    if op_.output_kind is not None and not _inside_op.get():
        outputs = unpack_result(storage, op_.name, op_.output_kind, outputs)
    if _inside_op.get():
        try:
            return storage.unwrap(outputs)
        except (NotStoredError, MissingBlobError):
            if found is None:
                raise
            # A hit on a call that another process dropped, its values deleted since: compute it again.
            call_path.forget([found.call_hid])
            refuse_new_call(storage, op_.name, bound)
            return storage.unwrap(_run(op_, storage, key, args, kwargs).result())
    return outputs


# Argument types that are never Refs nor hold any: passed to the function as they are.
_SCALARS = frozenset((int, float, str, bytes, bool, type(None)))


def _scalars(values: Iterable[Any]) -> list[Any] | None:
    """Scalar arguments, in-memory Refs of scalars as their values (what a chain passes); else None."""
    plain = []
    for value in values:
        if type(value) is Ref:
            if not value.in_memory:
                return None
            value = value.value
        if type(value) not in _SCALARS:
            return None
        plain.append(value)
    return plain


def _run(op_: Op, storage: Storage, key: CallIdentity, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Call:
    scalar_args, scalar_kwargs = _scalars(args), (_scalars(kwargs.values()) if kwargs else [])
    if scalar_args is not None and scalar_kwargs is not None:  # plain scalars are never Ignore or ValuePointer
        run, plain_args = op_.plain, tuple(scalar_args)
        plain_kwargs = dict(zip(kwargs, scalar_kwargs, strict=True)) if kwargs else {}
    else:  # plain values; run refuses arguments changed in place, before and after the call
        run, plain_args, plain_kwargs = watched_call(op_, storage, key, args, kwargs, op_.plain)
    token = _inside_op.set(True)
    started_at, clock = time.time(), time.perf_counter()
    try:
        result = run(*plain_args, **plain_kwargs)
    finally:
        _inside_op.reset(token)
    return record_result(op_, storage, key, result, started_at, time.perf_counter() - clock)


def record_result(op_: Op, storage: Storage, key: CallIdentity, result: Any, started_at: float,
                  duration_s: float) -> Call:
    """Split the op's result into its named outputs and queue the call; returns it with in-memory outputs."""
    named, multi_output = op_.split_outputs(result)
    plain = [(name, storage.unwrap(value) if isinstance(value, Ref) else value) for name, value in named]
    return storage.call_path.record_result(key, plain, multi_output, started_at, duration_s)


def _with_plain_defaults(func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` with each ``NewArgDefault(x)`` default replaced by ``x``."""
    defaults = getattr(func, "__defaults__", None) or ()
    kwdefaults = getattr(func, "__kwdefaults__", None) or {}
    if not any(isinstance(d, NewArgDefault) for d in (*defaults, *kwdefaults.values())):
        return func
    if not isinstance(func, types.FunctionType):
        raise OpDefinitionError(f"op {func!r}: NewArgDefault needs a plain Python function")
    plain = types.FunctionType(func.__code__, func.__globals__, func.__name__,
                               tuple(d.value if isinstance(d, NewArgDefault) else d for d in defaults),
                               func.__closure__)
    plain.__kwdefaults__ = {k: v.value if isinstance(v, NewArgDefault) else v for k, v in kwdefaults.items()}
    functools.update_wrapper(plain, func)  # also sets __wrapped__ = func
    return plain
