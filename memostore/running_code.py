"""The source text of the code this process runs, not just of the file on disk.

Versions hash source text, and Python reads it from the file when asked, not
when the module was imported. After a helper file is edited, a process that
imported the old code (a notebook, a long script, a kept worker) would
otherwise version the old code by the new text, and file old results under
the new code's version, where a fresh process would take them as hits.

Two guards keep the text read true to the code loaded:

* **First reading wins.** The text read for a function or class is kept, in
  this process, for as long as its code objects (and the class's plain
  constant attributes) are the same objects; ``importlib.reload`` and
  IPython's ``%autoreload`` make new ones, which are read again. So editing a
  file after a block ran leaves this process's versions describing the code
  it still runs.
* **The first reading is checked.** The text is compiled (same interpreter,
  same ``__future__`` flags) and its code compared with the loaded code,
  without line numbers or the docstring's text. If the file changed between
  the import and that first reading, they differ, and ``StaleCodeError``
  says which helper, which file, and to reload the module.

Unchanged code reads the same text as before, so its version is unchanged.
Text that does not compile is left unchecked: versions then hash bytecode.
"""

from __future__ import annotations
import __future__

import ast
import dis
import importlib.machinery
import inspect
import linecache
import sys
import textwrap
import types
import weakref
from typing import Any

from memostore.errors import StaleCodeError

_FUTURE_FLAGS = 0
for _feature in __future__.all_feature_names:
    _FUTURE_FLAGS |= getattr(__future__, _feature).compiler_flag
_SCOPE = "__memostore_scope__"
_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_UNKNOWN = object()  # a class attribute assigned something other than a constant
_LAYOUT = frozenset({"CACHE", "EXTENDED_ARG", "NOP"})  # instructions that compute nothing
_JUMPS = frozenset(dis.hasjrel) | frozenset(dis.hasjabs)
# Loading a method or an attribute to call: which one depends on the imports the compiler saw.
_SAME_OPERATION = {"LOAD_METHOD": "LOAD_ATTR", "CALL_METHOD": "CALL_FUNCTION"}
# id(object) -> (weak reference to it, what it was loaded as, the text read for it)
_read: dict[int, tuple[weakref.ref[Any], tuple[Any, ...], str]] = {}


def loaded_source(obj: Any) -> str | None:
    """The dedented source of a function or class as this process loaded it; None where Python has none.

    Raises StaleCodeError if the file on disk no longer holds the loaded code.
    """
    loaded = _loaded_state(obj)
    entry = _read.get(id(obj))
    if entry is not None and entry[0]() is obj and _same(entry[1], loaded):
        return entry[2]
    try:
        text = textwrap.dedent(inspect.getsource(obj))
    except (OSError, TypeError):
        return None
    if _compiled_from_file(obj) and not matches_loaded(obj, text):
        # Lines added above a function move it: Python reads a function's source from its old first line.
        text = _source_by_name(obj) or text
        if not matches_loaded(obj, text):
            raise StaleCodeError(
                f"{_described(obj)} in {_file_of(obj)} changed on disk after this process imported it, so "
                "its source no longer describes the code that runs here. Reload that module "
                "(importlib.reload, or %autoreload in IPython) or restart the process or kernel")
    key = id(obj)
    _read[key] = (weakref.ref(obj, lambda _ref: _read.pop(key, None)), loaded, text)
    return text


def matches_loaded(obj: Any, text: str) -> bool:
    """Whether ``text`` compiles to the code ``obj`` runs (True where it does not compile)."""
    if isinstance(obj, type):
        methods = _methods(obj)
        flags = methods[0].__code__.co_flags & _FUTURE_FLAGS if methods else 0
        bodies = _compiled(text, obj.__name__, (), flags)
        return bodies is None or any(_class_matches(obj, methods, body) for body in bodies)
    code = getattr(inspect.unwrap(obj), "__code__", None)
    if code is None:
        return True
    compiled = _compiled(text, code.co_name, code.co_freevars, code.co_flags & _FUTURE_FLAGS)
    if compiled is None:
        return True
    same = any(_same_code(code, c) for c in compiled)
    return same and _defaults_match(inspect.unwrap(obj), text)


def _same_code(loaded: types.CodeType, compiled: types.CodeType) -> bool:
    """Whether two code objects compute the same: alike byte for byte (the usual case), or in shape."""
    return _exact(loaded) == _exact(compiled) or code_shape(loaded) == code_shape(compiled)


def _exact(code: types.CodeType) -> tuple[Any, ...]:
    consts = tuple(_exact(c) if isinstance(c, types.CodeType) else (type(c).__name__, repr(c))
                   for c in code.co_consts)
    return (code.co_code, code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars,
            code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount, code.co_flags & ~inspect.CO_NESTED,
            consts)


def _defaults_match(function: Any, text: str) -> bool:
    """Whether the literal default values in ``text`` are the function's (they are not in its code)."""
    node = next((n for n in ast.walk(ast.parse(text)) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                 and n.name == function.__name__ or isinstance(n, ast.Lambda) and function.__name__ == "<lambda>"),
                None)
    if node is None:
        return True
    arguments = node.args
    loaded = function.__defaults__ or ()
    if len(arguments.defaults) != len(loaded):
        return False
    keywords = function.__kwdefaults__ or {}
    pairs = [*zip(arguments.defaults, loaded, strict=True),
             *((d, keywords.get(a.arg)) for a, d in zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True)
               if d is not None)]
    for default, value in pairs:
        try:
            literal = ast.literal_eval(default)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            continue  # an expression: only running it would tell
        if not isinstance(literal, (list, dict, set)) and not _same_value(literal, value):  # those may be mutated
            return False
    return True


def code_shape(code: types.CodeType) -> tuple[Any, ...]:
    """What a code object computes, as its instructions and their arguments' values.

    Not its lines, file, docstring, or how the compiler laid it out: whether a call on a
    module attribute loads a method depends on the imports the compiler saw around it,
    and jump offsets on the caches those instructions carry, so jumps count by instruction.
    """
    index: dict[int, int] = {}
    instructions: list[dis.Instruction] = []
    for instruction in dis.get_instructions(code):
        index[instruction.offset] = len(instructions)
        if instruction.opname not in _LAYOUT:
            instructions.append(instruction)
    shaped: list[Any] = []
    for instruction in instructions:
        value = instruction.argval
        if isinstance(value, types.CodeType):
            value = code_shape(value)
        elif instruction.opcode in _JUMPS:
            value = index.get(value, value)
        elif not isinstance(value, (str, int, tuple, frozenset)) or isinstance(value, bool):
            value = (type(value).__name__, repr(value))
        shaped.append((_SAME_OPERATION.get(instruction.opname, instruction.opname), value))
    return (code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount, code.co_varnames,
            code.co_flags & ~inspect.CO_NESTED, tuple(shaped))


def _compiled(text: str, name: str, freevars: tuple[str, ...], flags: int) -> list[types.CodeType] | None:
    """Every code object named ``name`` that ``text`` compiles to; None if the text does not compile.
    Free variables get an enclosing scope, as they had where the loaded code was compiled."""
    if freevars:
        text = f"def {_SCOPE}():\n    {' = '.join(freevars)} = None\n" + textwrap.indent(text, "    ")
    try:
        module = compile(text, "<memostore check>", "exec", flags=flags & ~inspect.CO_NESTED, dont_inherit=True)
    except (SyntaxError, ValueError):
        return None
    found: list[types.CodeType] = []
    stack = [module]
    while stack:
        children = [c for c in stack.pop().co_consts if isinstance(c, types.CodeType)]
        found.extend(c for c in children if c.co_name == name)
        stack.extend(children)
    return found


def _class_matches(cls: type, methods: list[Any], body: types.CodeType) -> bool:
    compiled = [code_shape(c) for c in body.co_consts if isinstance(c, types.CodeType)]
    if any(code_shape(m.__code__) not in compiled for m in methods):
        return False
    assigned = _constant_assignments(body)
    return all(_same_value(vars(cls)[name], value) for name, value in assigned.items()
               if name in vars(cls) and value is not _UNKNOWN)


def _constant_assignments(body: types.CodeType) -> dict[str, Any]:
    """``NAME = constant`` statements of a class body, from its bytecode."""
    found: dict[str, Any] = {}
    instructions = _instructions(body)
    for previous, instruction in zip([None, *instructions], instructions, strict=False):
        if instruction.opname == "STORE_NAME":
            constant = previous is not None and previous.opname == "LOAD_CONST"
            found[instruction.argval] = previous.argval if previous is not None and constant else _UNKNOWN
    return {name: value for name, value in found.items() if not name.startswith("__")}


def _instructions(code: types.CodeType) -> list[dis.Instruction]:
    return [i for i in dis.get_instructions(code) if i.opname not in _LAYOUT]


def _compiled_from_file(obj: Any) -> bool:
    """Whether ``obj`` was compiled by Python from its module's file as it was then: not by a loader that
    rewrites code (pytest's assertions, say), and not from a notebook cell (whose text cannot change)."""
    module = sys.modules.get(getattr(obj, "__module__", None) or "")
    if not isinstance(getattr(module, "__loader__", None), importlib.machinery.SourceFileLoader):
        return False
    code = getattr(inspect.unwrap(obj), "__code__", None)
    return code is None or code.co_filename == getattr(module, "__file__", None)


def _source_by_name(obj: Any) -> str | None:
    """The dedented source of the definition named like ``obj`` in its file now, found by qualified name."""
    obj = inspect.unwrap(obj)
    try:
        tree = ast.parse("".join(linecache.getlines(inspect.getsourcefile(obj) or "")))
    except (SyntaxError, TypeError, ValueError):
        return None
    lines = linecache.getlines(inspect.getsourcefile(obj) or "")
    scope: list[ast.stmt] = tree.body
    node: ast.stmt | None = None
    for part in getattr(obj, "__qualname__", "").split("."):
        if part == "<locals>":
            continue
        node = next((n for n in scope if isinstance(n, _DEFINITIONS) and n.name == part), None)
        if node is None:
            return None
        scope = node.body
    if node is None:
        return None
    first = min([node.lineno, *(d.lineno for d in node.decorator_list)])  # type: ignore[attr-defined]
    return textwrap.dedent("".join(lines[first - 1:node.end_lineno]))


def _loaded_state(obj: Any) -> tuple[Any, ...]:
    """What identifies the loaded code of ``obj``: its code objects, and a class's plain constants."""
    if isinstance(obj, type):
        constants = tuple((name, type(value), value) for name, value in vars(obj).items()
                          if isinstance(value, (bool, int, float, complex, str, bytes, type(None))))
        return (*[m.__code__ for m in _methods(obj)], constants)
    return (getattr(inspect.unwrap(obj), "__code__", None),)


def _same(old: tuple[Any, ...], new: tuple[Any, ...]) -> bool:
    return len(old) == len(new) and all(
        a is b if isinstance(a, types.CodeType) else a == b for a, b in zip(old, new, strict=True))


def _same_value(a: Any, b: Any) -> bool:
    return type(a) is type(b) and (a == b or repr(a) == repr(b))


def _methods(cls: type) -> list[Any]:
    """The functions defined in a class body: methods, static and class methods, property accessors."""
    found: list[Any] = []
    for value in vars(cls).values():
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if isinstance(value, property):
            found.extend(f for f in (value.fget, value.fset, value.fdel) if isinstance(f, types.FunctionType))
        elif isinstance(value, types.FunctionType):
            found.append(value)
    found = [inspect.unwrap(f) for f in found]
    # Not the methods made by code (dataclasses' __init__, ...), nor functions assigned from elsewhere.
    file = _module_file(cls)
    return [f for f in found if isinstance(f, types.FunctionType) and f.__code__.co_filename == file
            and f.__qualname__.startswith(cls.__qualname__ + ".")]


def _module_file(obj: Any) -> str | None:
    try:
        return inspect.getfile(obj)
    except TypeError:
        return None


def _described(obj: Any) -> str:
    kind = "class" if isinstance(obj, type) else "function"
    return f"{kind} {getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def _file_of(obj: Any) -> str:
    try:
        return inspect.getsourcefile(obj) or "its source file"
    except TypeError:
        return "its source file"
