"""The ``memostore`` command: read and tend a store by its path or URL, without its code.

Built only on the public API (``from memostore import ...``). Exit codes a
script can rely on:

====  ==============================================================
code  meaning
====  ==============================================================
0     done
1     the store could not be read or changed (a ``MemostoreError``)
2     bad usage: a missing store, an unknown op or version, a bad option
3     ``drop`` was not confirmed: nothing was deleted
====  ==============================================================
"""

from memostore.cli import run_commands  # noqa: F401  (registers its commands on main)
from memostore.cli.commands import main

__all__ = ["main"]
