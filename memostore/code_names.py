"""Which functions and classes are your own code, and their code's canonical text, for content ids.

A function of a module you write (not installed in site-packages, not the
standard library, not ``__main__``, which cloudpickle hashes by value) is
named by reference when pickled: its id would not change when you edit it.
``own_code`` gives its name with the canonical text of its source, which
hashing folds into the id. Installed code keeps its name alone: library
upgrades are not tracked, as for versions.
"""

from __future__ import annotations

import os
import site
import sys
import sysconfig
import types
import weakref
from typing import Any, Callable

# Reads the canonical text of a function's or class's source (None without source); set by memostore.canonical,
# which sits above hashing and this module.
_code_text: Callable[[Any], str | None] | None = None
_OWN_CODE: weakref.WeakKeyDictionary[Any, tuple[str, str] | None] = weakref.WeakKeyDictionary()
# Installed code, whose upgrades are not tracked: the standard library, site-packages, and memostore itself.
_INSTALLED_DIRS = tuple(os.path.join(os.path.realpath(path), "") for path in {
    *(sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")),
    *getattr(site, "getsitepackages", list)(), site.getusersitepackages(), os.path.dirname(__file__)})


def register_code_reader(read: Callable[[Any], str | None]) -> None:
    """Set how a function's or class's code is read (memostore.canonical does, as it is imported)."""
    global _code_text
    _code_text = read


def own_code(obj: Any) -> tuple[str, str] | None:
    """``(module.qualname, canonical source)`` of a function or class of your own importable code;
    None for anything pickling does not name by reference, installed code, or code without source.

    >>> import json
    >>> own_code(json.dumps) is None  # the standard library: named alone
    True
    """
    try:
        return _OWN_CODE[obj]
    except KeyError:
        pass
    except TypeError:  # not weakly referenceable
        return None
    named = None
    module = sys.modules.get(getattr(obj, "__module__", None) or "")
    qualname = getattr(obj, "__qualname__", "")
    if module is not None and module.__name__ != "__main__" and "<locals>" not in qualname \
            and _lookup(module, qualname) is obj and not _installed(module) and _code_text is not None:
        text = _code_text(obj)
        if text is not None:
            named = (f"{module.__name__}.{qualname}", text)
    _OWN_CODE[obj] = named
    return named


def _lookup(module: types.ModuleType, qualname: str) -> Any:
    found: Any = module
    for part in qualname.split("."):
        found = getattr(found, part, None)
    return found


def _installed(module: types.ModuleType) -> bool:
    path = getattr(module, "__file__", None)
    return not path or os.path.realpath(path).startswith(_INSTALLED_DIRS)
