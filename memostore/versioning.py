"""An op's version id: what its code computes, not how it is written.

================================  ============================================
goes into the version             stays out
================================  ============================================
the function's AST: its name,     comments, blank lines, formatting,
parameters and body               docstrings (the function's and nested ones),
                                  decorators, type annotations
a ``NewArgDefault(x)`` parameter  the parameter itself: it is dropped and its
as the code it replaces           uses in the body read ``x``, so adding it
                                  reproduces the old version exactly
``salt`` (the op's output names)
================================  ============================================

Where the source cannot be read (code built by ``exec`` without a file, say)
the version hashes the bytecode, names and constants instead; that fallback
depends on the Python version, so such ops recompute after a Python upgrade.
"""

from __future__ import annotations

import ast
import gc
import inspect
import textwrap
import types
import weakref
from typing import Any, Callable, Mapping, Sequence

from memostore.deps import Dependency
from memostore.errors import OpNameConflictError
from memostore.hashing import content_id

_FUNCTION_NODES = (ast.FunctionDef, ast.AsyncFunctionDef)
_SCOPE_NODES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def function_source(func: Callable[..., Any]) -> str | None:
    """The function's source text, or None where Python cannot find it."""
    try:
        return textwrap.dedent(inspect.getsource(func))
    except (OSError, TypeError):
        return None


def version_id(
    func: Callable[..., Any],
    new_arg_defaults: Mapping[str, Any] | None = None,
    salt: str = "",
    source: str | None = None,
    dependencies: Sequence[Dependency] = (),
) -> str:
    """The version id of ``func``: 32 hex digits.

    ``new_arg_defaults`` maps each ``NewArgDefault`` parameter to its default
    value. ``source`` overrides the text read with ``inspect.getsource``.
    ``dependencies`` (from ``deps.discover``) fold in the helpers, classes and
    constants the function reaches.

    >>> def add_one(x):
    ...     return x + 1
    >>> len(version_id(add_one))
    32
    """
    text = source if source is not None else function_source(func)
    normalized = None if text is None else normalized_ast(text, new_arg_defaults or {})
    if normalized is None:
        normalized = "bytecode:" + content_id(_code_fingerprint(getattr(func, "__code__", None)))
    if not dependencies:
        return content_id(("version", normalized, salt))
    reached = tuple((d.name, d.fingerprint) for d in dependencies)
    return content_id(("version", normalized, salt, reached))


# The latest definition of each op in this process, by name: what
# ``storage.stale_calls()`` compares stored versions against.
_current_ops: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()
# Every live op by name, to tell a redefinition (same function) from a second function.
_live_ops: dict[str, weakref.WeakSet[Any]] = {}


def note_current_op(name: str, op: Any) -> None:
    """Remember ``op`` (with ``module`` and ``qualname`` attributes) as the current definition of ``name``."""
    _current_ops[name] = op
    _live_ops.setdefault(name, weakref.WeakSet()).add(op)


def live_functions(name: str) -> set[tuple[str, str]]:
    """The (module, qualname) of every op still alive in this process under ``name``."""
    ops = _live_ops.get(name)
    if ops is None:
        return set()
    functions = {(op.module, op.qualname) for op in ops}
    if len(functions) > 1:
        gc.collect()  # an op kept only by a reference cycle is gone, not live
        functions = {(op.module, op.qualname) for op in ops}
    return functions


def current_ops() -> dict[str, Any]:
    """Name -> the latest op definition still alive in this process (see ``current_op`` for one name)."""
    return dict(_current_ops)


def current_op(name: str) -> Any:
    """The live op named ``name`` in this process, or None; raises OpNameConflictError if two functions share it."""
    op = _current_ops.get(name)
    if op is not None:
        functions = live_functions(name)
        if len(functions) > 1:
            raise OpNameConflictError(
                f"op name {name!r} is used by {len(functions)} different functions in this process: "
                f"{', '.join(sorted(f'{m}.{q}' for m, q in functions))}; give each its own name with "
                "@op(name='...')")
    return op


def normalized_ast(source: str, new_arg_defaults: Mapping[str, Any]) -> str | None:
    r"""The AST dump that the version hashes, or None if no function is found.

    >>> written = "def f(x):\n    '''Docs do not count.'''\n    return x + 1  # nor comments\n"
    >>> normalized_ast(written, {}) == normalized_ast("def f(x): return x+1", {})
    True
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    function = next((n for n in ast.walk(tree) if isinstance(n, (*_FUNCTION_NODES, ast.Lambda))), None)
    if function is None:
        return None
    replacements = _drop_new_args(function.args, new_arg_defaults)
    if replacements:
        function = _InlineNames(replacements).visit(function)
    if isinstance(function, _FUNCTION_NODES):
        function.decorator_list = []
        function.returns = None
    for node in ast.walk(function):
        if isinstance(node, _SCOPE_NODES):
            _strip_docstring(node)
        elif isinstance(node, ast.arg):
            node.annotation = None
    return ast.dump(function)


def _strip_docstring(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        node.body = body[1:] or [ast.Pass()]


def _drop_new_args(arguments: ast.arguments, new_arg_defaults: Mapping[str, Any]) -> dict[str, ast.expr]:
    """Remove NewArgDefault parameters; returns name -> the expression to inline."""
    replacements: dict[str, ast.expr] = {}
    positional = [*arguments.posonlyargs, *arguments.args]
    first_default = len(positional) - len(arguments.defaults)
    kept_defaults = []
    for index, default in enumerate(arguments.defaults):
        name = positional[first_default + index].arg
        if name in new_arg_defaults:
            replacements[name] = _default_expression(default, new_arg_defaults[name])
        else:
            kept_defaults.append(default)
    arguments.defaults = kept_defaults
    arguments.posonlyargs = [a for a in arguments.posonlyargs if a.arg not in replacements]
    arguments.args = [a for a in arguments.args if a.arg not in replacements]
    kept_kwonly: list[ast.arg] = []
    kept_kw_defaults: list[ast.expr | None] = []
    for arg, kw_default in zip(arguments.kwonlyargs, arguments.kw_defaults):
        if arg.arg in new_arg_defaults and kw_default is not None:
            replacements[arg.arg] = _default_expression(kw_default, new_arg_defaults[arg.arg])
        else:
            kept_kwonly.append(arg)
            kept_kw_defaults.append(kw_default)
    arguments.kwonlyargs, arguments.kw_defaults = kept_kwonly, kept_kw_defaults
    return replacements


def _default_expression(default: ast.expr, value: Any) -> ast.expr:
    # `x=NewArgDefault(<expr>)`: inline <expr> as written.
    if isinstance(default, ast.Call) and len(default.args) == 1 and not default.keywords:
        return default.args[0]
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return ast.Constant(value=value)
    return ast.Constant(value=f"<value {content_id(value)}>")


class _InlineNames(ast.NodeTransformer):
    def __init__(self, replacements: dict[str, ast.expr]) -> None:
        self.replacements = replacements

    def visit_Name(self, node: ast.Name) -> ast.expr:
        if isinstance(node.ctx, ast.Load) and node.id in self.replacements:
            return self.replacements[node.id]
        return node


def _code_fingerprint(code: types.CodeType | None) -> Any:
    if code is None:
        return None
    consts = tuple(
        _code_fingerprint(c) if isinstance(c, types.CodeType) else repr(c) for c in code.co_consts
    )
    return (code.co_code, consts, code.co_names, code.co_varnames, code.co_freevars)
