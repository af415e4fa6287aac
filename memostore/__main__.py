"""``python -m memostore``: the same as the ``memostore`` command."""

from memostore.cli import main

main()
