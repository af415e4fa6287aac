"""The version formula of memostore 0.1, kept so that stores written by it keep their hits.

It hashed ``ast.dump`` of the normalized code, whose text differs between
Python releases, and named dependencies by their absolute module
(``__main__.helper`` when run as a script, ``ops.helper`` when imported).
``former_version_ids`` rebuilds what that formula gave for the same code
under each ``ast.dump`` style (Python 3.10 and 3.11, 3.12, 3.13) and each
entry point; a storage carries the calls stored under any of them over to
the current version. Computed once per op and block, and only when the store
holds other versions of the op: never on the path of a call.
"""

from __future__ import annotations

import ast
import sys
from typing import Any, Callable, Literal, Mapping, Sequence

from memostore.canonical import (
    InlineNames,
    code_fingerprint,
    drop_new_args,
    strip_docstring,
)
from memostore.deps import Dependency
from memostore.hashing import content_id

# "3.12-spec": 3.12.0-3.12.1 (at least) end a format spec that ends with a field, as in
# f"{x:>{width}}", with an empty string part.
DumpStyle = Literal["3.10", "3.12", "3.12-spec", "3.13"]
DUMP_STYLES: tuple[DumpStyle, ...] = ("3.10", "3.12", "3.12-spec", "3.13")
_TYPE_PARAMS_NODES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_FUNCTION_NODES = (ast.FunctionDef, ast.AsyncFunctionDef)


def former_version_ids(
    func: Callable[..., Any],
    new_arg_defaults: Mapping[str, Any],
    salt: str,
    source: str | None,
    dependencies: Sequence[Dependency] | None,
) -> set[str]:
    """Every id the former formula could have given this op (``dependencies`` None: no deps_path)."""
    found = set()
    for style in DUMP_STYLES:
        normalized = None if source is None else _former_op_dump(source, new_arg_defaults, style)
        if normalized is None:
            normalized = "bytecode:" + content_id(code_fingerprint(getattr(func, "__code__", None)))
        if not dependencies:
            found.add(content_id(("version", normalized, salt)))
            continue
        fingerprints = {d.full_name: _former_fingerprint(d, style) for d in dependencies}
        for names in _entry_point_names(func, dependencies):
            reached = tuple(sorted((names[full], fingerprint) for full, fingerprint in fingerprints.items()))
            found.add(content_id(("version", normalized, salt, reached)))
    return found


def _entry_point_names(func: Callable[..., Any], dependencies: Sequence[Dependency]) -> list[dict[str, str]]:
    """Dependency names as stored from each entry point: the module run as a script, or imported."""
    module = getattr(func, "__module__", None) or ""
    other = _module_name_of_main() if module == "__main__" else "__main__"
    variants = [{d.full_name: d.full_name for d in dependencies}]
    if other:
        variants.append({d.full_name: _renamed(d.full_name, module, other) for d in dependencies})
    return variants


def _renamed(name: str, module: str, other: str) -> str:
    return other + name[len(module):] if name.startswith(module + ".") else name


def _module_name_of_main() -> str | None:
    """The name ``__main__`` would have if imported: from ``python -m``, or the script's file name."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name:
        return str(spec.name)
    path = getattr(main, "__file__", None)
    if not path or not str(path).endswith(".py"):
        return None
    stem = str(path).replace("\\", "/").rsplit("/", 1)[-1][:-3]
    return stem if stem.isidentifier() else None


def _former_fingerprint(dependency: Dependency, style: DumpStyle) -> str:
    if dependency.kind == "constant" or dependency.fingerprint.startswith("bytecode:"):
        return dependency.fingerprint
    try:
        tree = ast.parse(dependency.source)
    except SyntaxError:
        return dependency.fingerprint
    for node in ast.walk(tree):
        if isinstance(node, (*_FUNCTION_NODES, ast.ClassDef)):
            strip_docstring(node)
            node.decorator_list = []
            if not isinstance(node, ast.ClassDef):
                node.returns = None
        elif isinstance(node, ast.arg):
            node.annotation = None
    return dump(tree, style)


def _former_op_dump(source: str, new_arg_defaults: Mapping[str, Any], style: DumpStyle) -> str | None:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    function: Any = next((n for n in ast.walk(tree) if isinstance(n, (*_FUNCTION_NODES, ast.Lambda))), None)
    if function is None:
        return None
    replacements = drop_new_args(function.args, new_arg_defaults)
    if replacements:
        function = InlineNames(replacements).visit(function)
    if isinstance(function, _FUNCTION_NODES):
        function.decorator_list = []
        function.returns = None
    for node in ast.walk(function):
        if isinstance(node, (*_FUNCTION_NODES, ast.ClassDef)):
            strip_docstring(node)
        elif isinstance(node, ast.arg):
            node.annotation = None
    return dump(function, style)


def _format_spec(spec: ast.JoinedStr, style: DumpStyle) -> ast.JoinedStr:
    values = list(spec.values)
    if values and isinstance(values[-1], ast.Constant) and values[-1].value == "":
        values.pop()
    if style == "3.12-spec" and values and isinstance(values[-1], ast.FormattedValue):
        values.append(ast.Constant(value=""))
    return ast.JoinedStr(values=values)


def dump(node: Any, style: DumpStyle) -> str:
    """``ast.dump(node)`` as the Pythons of ``style`` write it, whichever Python runs this."""
    if isinstance(node, ast.AST):
        cls = type(node)
        fields = [f for f in cls._fields if f != "type_params"]
        if style != "3.10" and isinstance(node, _TYPE_PARAMS_NODES):
            fields.append("type_params")
        parts = []
        for name in fields:
            value: Any = getattr(node, name, [] if name == "type_params" else ...)
            if value is ... or (value is None and getattr(cls, name, ...) is None):
                continue
            if style == "3.13" and (value is None or value == []) \
                    and not isinstance(node, (ast.Constant, ast.MatchSingleton)):
                continue
            if name == "format_spec" and isinstance(value, ast.JoinedStr):
                value = _format_spec(value, style)
            parts.append(f"{name}={dump(value, style)}")
        return f"{cls.__name__}({', '.join(parts)})"
    if isinstance(node, list):
        return "[" + ", ".join(dump(item, style) for item in node) + "]"
    return repr(node)
