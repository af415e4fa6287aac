"""A read-only web view of a store: ``memostore serve DB``.

Pages for the store, each op (versions, source, diffs, calls), each call
(values with previews, where inputs came from and outputs went) and the op
graph. Built only on memostore's public API, with Starlette, Jinja2 templates
(beside this file) and uvicorn: ``pip install "memostore[viewer]"``.
"""

from memostore.viewer.app import create_app, open_read_only

__all__ = ["create_app", "open_read_only"]
