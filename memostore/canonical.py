r"""The canonical form of code: what versions hash, the same under every Python.

An op's source and the source of each helper or class it reaches go through
one normalizer, then one writer, and versions hash the text it writes.

**Normalizing.** The source is parsed and its first definition (a ``def``,
``class`` or ``lambda``, outermost first) is kept. Its own decorators are
dropped; so are the docstrings, the parameter annotations and the return
annotations of every function and class inside it (decorators of nested
definitions stay: ``@staticmethod`` or ``@property`` change what code does).
A ``NewArgDefault(x)`` parameter of an op is removed and its uses read ``x``.

**Writing.** Each node is written as its type name followed by
``(field=value,...)`` over the fields ``FIELDS`` lists for that type, in that
order; a node with none is its bare type name (``Add``, ``Pass``):

==================  ==========================================================
a field's value     written as
==================  ==========================================================
absent, ``None``,   nothing: the field is left out, so a field that a newer
``[]``              Python adds with an empty default changes no version
a node              its canonical form
a list              ``[item,item,...]``, ``None`` items written ``None``
a str               ``ascii(value)`` (independent of the Unicode tables)
a number            ``repr(value)``
``Constant`` and    the value with its type, even ``None``:
``MatchSingleton``  ``Constant(value=int:1)``, ``Constant(value=NoneType:None)``
==================  ==========================================================

An f-string's parts (``JoinedStr``) are written with adjacent text joined and
empty text left out: Python 3.12.0-3.12.1 add an empty part to format specs
that end with a field, as in ``f"{x:>{width}}"``.

``FIELDS`` holds the fields of Python 3.10's ``ast`` nodes, plus
``type_params`` and ``default_value`` (Python 3.12 and 3.13 syntax), minus
three that never change what code computes: ``ctx`` (implied by where a name
stands), ``kind`` (the ``u`` of ``u"..."``) and ``type_comment``. A node
type missing from it (syntax newer than this module) writes its
``_fields`` in order, minus those three. Line and column numbers are never
written.

>>> canonical_code("def f(x):\n    '''Docs do not count.'''\n    return x + 1  # nor comments\n")
"FunctionDef(name='f',args=arguments(args=[arg(arg='x')]),body=[Return(value=BinOp(left=Name(id='x'),op=Add,right=Constant(value=int:1)))])"
"""

from __future__ import annotations

import ast
import re
import sys
import types
from typing import Any, Mapping

from memostore.code_names import register_code_reader
from memostore.hashing import content_id
from memostore.running_code import loaded_source

_FUNCTION_NODES = (ast.FunctionDef, ast.AsyncFunctionDef)
_SCOPE_NODES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_DEFINITION_NODES = (*_SCOPE_NODES, ast.Lambda)
_NEVER_WRITTEN = frozenset({"ctx", "kind", "type_comment"})
# The Python whose bytecode versions of code without source hash (major.minor).
PYTHON = f"{sys.version_info[0]}.{sys.version_info[1]}"
_BYTECODE_NOTE = re.compile(r"(?<=hashed from its bytecode under Python )(\d+\.\d+)")

_FUNCTION_FIELDS = ("name", "args", "body", "decorator_list", "returns", "type_params")
_LOOP_FIELDS = ("target", "iter", "body", "orelse")
_TRY_FIELDS = ("body", "handlers", "orelse", "finalbody")

FIELDS: dict[str, tuple[str, ...]] = {
    "AnnAssign": ("target", "annotation", "value", "simple"), "Assert": ("test", "msg"),
    "Assign": ("targets", "value"), "AsyncFor": _LOOP_FIELDS, "AsyncFunctionDef": _FUNCTION_FIELDS,
    "AsyncWith": ("items", "body"), "Attribute": ("value", "attr"), "AugAssign": ("target", "op", "value"),
    "Await": ("value",), "BinOp": ("left", "op", "right"), "BoolOp": ("op", "values"),
    "Call": ("func", "args", "keywords"),
    "ClassDef": ("name", "bases", "keywords", "body", "decorator_list", "type_params"),
    "Compare": ("left", "ops", "comparators"), "Constant": ("value",), "Delete": ("targets",),
    "Dict": ("keys", "values"), "DictComp": ("key", "value", "generators"),
    "ExceptHandler": ("type", "name", "body"), "Expr": ("value",), "Expression": ("body",),
    "For": _LOOP_FIELDS, "FormattedValue": ("value", "conversion", "format_spec"),
    "FunctionDef": _FUNCTION_FIELDS, "FunctionType": ("argtypes", "returns"),
    "GeneratorExp": ("elt", "generators"), "Global": ("names",), "If": ("test", "body", "orelse"),
    "IfExp": ("test", "body", "orelse"), "Import": ("names",), "ImportFrom": ("module", "names", "level"),
    "Interactive": ("body",), "JoinedStr": ("values",), "Lambda": ("args", "body"), "List": ("elts",),
    "ListComp": ("elt", "generators"), "Match": ("subject", "cases"), "MatchAs": ("pattern", "name"),
    "MatchClass": ("cls", "patterns", "kwd_attrs", "kwd_patterns"),
    "MatchMapping": ("keys", "patterns", "rest"), "MatchOr": ("patterns",), "MatchSequence": ("patterns",),
    "MatchSingleton": ("value",), "MatchStar": ("name",), "MatchValue": ("value",),
    "Module": ("body", "type_ignores"), "Name": ("id",), "NamedExpr": ("target", "value"),
    "Nonlocal": ("names",), "ParamSpec": ("name", "default_value"), "Raise": ("exc", "cause"),
    "Return": ("value",), "Set": ("elts",), "SetComp": ("elt", "generators"),
    "Slice": ("lower", "upper", "step"), "Starred": ("value",), "Subscript": ("value", "slice"),
    "Try": _TRY_FIELDS, "TryStar": _TRY_FIELDS, "Tuple": ("elts",),
    "TypeAlias": ("name", "type_params", "value"), "TypeIgnore": ("lineno", "tag"),
    "TypeVar": ("name", "bound", "default_value"), "TypeVarTuple": ("name", "default_value"),
    "UnaryOp": ("op", "operand"), "While": ("test", "body", "orelse"), "With": ("items", "body"),
    "Yield": ("value",), "YieldFrom": ("value",), "alias": ("name", "asname"),
    "arg": ("arg", "annotation"),
    "arguments": ("posonlyargs", "args", "vararg", "kwonlyargs", "kw_defaults", "kwarg", "defaults"),
    "comprehension": ("target", "iter", "ifs", "is_async"), "keyword": ("arg", "value"),
    "match_case": ("pattern", "guard", "body"), "withitem": ("context_expr", "optional_vars"),
}


def canonical_code(source: str, new_arg_defaults: Mapping[str, Any] | None = None) -> str | None:
    """The canonical form of the first definition in ``source``; None if it has none or does not parse.

    ``new_arg_defaults`` maps each ``NewArgDefault`` parameter to its value.
    """
    definition = normalized_definition(source, new_arg_defaults or {})
    return None if definition is None else write(definition)


def definition_text(obj: Any) -> str | None:
    """The canonical form of a function's or class's source as this process loaded it; None when it has none.

    Raises StaleCodeError when its file was edited after the import: the id would describe code that does not run.
    """
    try:
        source = loaded_source(obj)
    except IndexError:  # lines that moved under inspect: the function is then named alone, as installed code is
        return None
    return None if source is None else canonical_code(source)


register_code_reader(definition_text)


def normalized_definition(source: str, new_arg_defaults: Mapping[str, Any]) -> ast.AST | None:
    """The first def, class or lambda of ``source``, normalized (see the module docstring)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    definition: ast.AST | None = next((n for n in ast.walk(tree) if isinstance(n, _DEFINITION_NODES)), None)
    if definition is None:
        return None
    if isinstance(definition, (*_FUNCTION_NODES, ast.Lambda)):
        replacements = drop_new_args(definition.args, new_arg_defaults)
        if replacements:
            definition = InlineNames(replacements).visit(definition)
    if isinstance(definition, _SCOPE_NODES):
        definition.decorator_list = []
    for node in ast.walk(definition):
        if isinstance(node, _SCOPE_NODES):
            strip_docstring(node)
            if not isinstance(node, ast.ClassDef):
                node.returns = None
        elif isinstance(node, ast.arg):
            node.annotation = None
    return definition


def write(node: Any) -> str:
    """The canonical text of an AST node, a list of them, or a field value."""
    if isinstance(node, ast.AST):
        name = type(node).__name__
        if isinstance(node, (ast.Constant, ast.MatchSingleton)):
            return f"{name}(value={_constant(node.value)})"
        if isinstance(node, ast.JoinedStr):
            return f"{name}(values={write(_string_parts(node.values))})"
        fields = FIELDS.get(name)
        if fields is None:
            fields = tuple(f for f in node._fields if f not in _NEVER_WRITTEN)
        parts = []
        for field in fields:
            value = getattr(node, field, None)
            if value is not None and not (isinstance(value, list) and not value):
                parts.append(f"{field}={write(value)}")
        return f"{name}({','.join(parts)})" if parts else name
    if isinstance(node, list):
        return "[" + ",".join(write(item) for item in node) + "]"
    if isinstance(node, str):
        return ascii(node)
    return repr(node)


def _string_parts(values: list[ast.expr]) -> list[ast.expr]:
    """An f-string's parts with adjacent text joined and empty text left out."""
    parts: list[ast.expr] = []
    for value in values:
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            previous = parts[-1] if parts else None
            if isinstance(previous, ast.Constant) and isinstance(previous.value, str):
                parts.pop()
                value = ast.Constant(value=previous.value + value.value)
            if not value.value:
                continue
        parts.append(value)
    return parts


def _constant(value: Any) -> str:
    if isinstance(value, str):
        return "str:" + ascii(value)
    return f"{type(value).__name__}:{value!r}"


def strip_docstring(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
    """Remove the docstring of a def or class (a lone docstring becomes ``pass``)."""
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        node.body = body[1:] or [ast.Pass()]


def drop_new_args(arguments: ast.arguments, new_arg_defaults: Mapping[str, Any]) -> dict[str, ast.expr]:
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
    for arg, kw_default in zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True):
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


class InlineNames(ast.NodeTransformer):
    """Replace loads of the given names by expressions (a NewArgDefault's value)."""

    def __init__(self, replacements: dict[str, ast.expr]) -> None:
        self.replacements = replacements

    def visit_Name(self, node: ast.Name) -> ast.expr:
        if isinstance(node.ctx, ast.Load) and node.id in self.replacements:
            return self.replacements[node.id]
        return node


def code_fingerprint(code: types.CodeType | None) -> Any:
    """What a version hashes of code without source: its bytecode, names and constants.

    Bytecode changes from one Python release to the next, so such versions do too.
    """
    if code is None:
        return None
    consts = tuple(
        code_fingerprint(c) if isinstance(c, types.CodeType) else repr(c) for c in code.co_consts
    )
    return (code.co_code, consts, code.co_names, code.co_varnames, code.co_freevars)


def bytecode_note() -> str:
    """What the store shows as the source of code hashed by bytecode: which Python compiled it."""
    return f"# source not available: hashed from its bytecode under Python {PYTHON}\n"


def bytecode_pythons(text: str) -> list[str]:
    """The Pythons named by the bytecode notes in a stored source or dependency list."""
    return _BYTECODE_NOTE.findall(text)


def without_bytecode_pythons(text: str) -> str:
    """``text`` with the Python of each bytecode note blanked out."""
    return _BYTECODE_NOTE.sub("", text)
