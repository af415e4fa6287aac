"""The Starlette app behind ``memostore serve``: GET pages over one store, opened read-only.

The store is opened through a read-only connection (SQLite ``mode=ro``,
PostgreSQL read-only transactions) with ``allow_pickle=False`` unless
trusted, and the app has only GET routes: nothing it serves can change the
store. Requests are handled one at a time (a lock around the storage), which
suits the single reader a local viewer has.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from memostore import NotStoredError, Storage, StoreLocationError
from memostore.viewer import pages, runs

TEMPLATES = Path(__file__).parent / "templates"
READ_ONLY_PG_OPTION = "-c default_transaction_read_only=on"


def open_read_only(db: str, trust: bool = False) -> Storage:
    """The store at a path or URL through a read-only connection.

    A missing file raises StoreLocationError (an OSError): the viewer never creates a store.
    """
    if db.startswith("sqlite:///"):
        db = db[len("sqlite:///"):]
    if "://" in db:
        return Storage(db_url=_read_only_url(db), allow_pickle=trust)
    path = Path(db)
    if not path.is_file():
        raise StoreLocationError(f"no store at {db!r}: the file does not exist; the viewer only reads existing stores")
    url = "sqlite:///file:" + quote(str(path.resolve())) + "?mode=ro&uri=true"
    return Storage(db_url=url, blob_dir=str(path.resolve()) + "-blobs", allow_pickle=trust)


def create_app(db: str, trust: bool = False, host: str = "127.0.0.1") -> Starlette:
    """The viewer of the store at ``db`` (a SQLite file's path or a database URL).

    Requests must name this machine (or ``host``) in their Host header: a web page
    elsewhere that points a name of its own at 127.0.0.1 cannot read the store.
    """
    storage = open_read_only(db, trust)
    templates = Jinja2Templates(directory=str(TEMPLATES))
    templates.env.filters["short"] = lambda hid: hid[:8]
    templates.env.filters["quote"] = lambda text: quote(str(text), safe="")
    lock = threading.Lock()

    def page(template: str, gather: Callable[[Storage, Request], dict[str, Any]]) -> Callable[[Request], Response]:
        def endpoint(request: Request) -> Response:
            with lock:
                try:
                    context = gather(storage, request)
                except NotStoredError as err:
                    raise HTTPException(404, str(err.args[0])) from None
            return templates.TemplateResponse(request, template, {**context, "db": db, "trust": trust})
        return endpoint

    async def error(request: Request, exc: Exception) -> Response:
        code, detail = getattr(exc, "status_code", 500), getattr(exc, "detail", "") or "error"
        return HTMLResponse(templates.get_template("error.html").render(code=code, detail=detail, db=db),
                            status_code=code, headers=getattr(exc, "headers", None))

    routes = [Route(path, page(template, gather), methods=["GET"]) for path, template, gather in _PAGES]
    allowed = sorted({"127.0.0.1", "localhost", "[::1]", host})
    app = Starlette(routes=routes, exception_handlers={HTTPException: error},
                    middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=allowed)])
    app.state.db, app.state.storage = db, storage
    return app


def _overview(storage: Storage, request: Request) -> dict[str, Any]:
    counts = "ops=" + repr(storage).split(", ops=", 1)[-1].rstrip(")")  # the repr's figures, without the URL
    return {"counts": counts, "size": pages.size_on_disk(request.app.state.db), "ops": pages.op_rows(storage),
            "runs": runs.run_rows(storage)}


def _op(storage: Storage, request: Request) -> dict[str, Any]:
    name = request.path_params["name"]
    if name not in set(storage.ops()["op"]):
        raise NotStoredError(f"no op named {name!r} is stored")
    query = request.query_params
    status = query.get("status", "") if query.get("status", "") in pages.STATUSES else ""
    calls = pages.calls_page(storage, name, query.get("version", ""), status, _int(query.get("page")))
    return {"name": name, "versions": pages.versions_of(storage, name), "calls": calls, "statuses": pages.STATUSES}


def _call(storage: Storage, request: Request) -> dict[str, Any]:
    return pages.call_detail(storage, request.path_params["hid"])


def _run(storage: Storage, request: Request) -> dict[str, Any]:
    run = request.path_params["run"]
    if not run.isascii() or not run.isdigit() or len(run) > 18:
        raise NotStoredError(f"no run {run!r} is stored: runs are numbered")
    return runs.run_detail(storage, int(run))


def _graph(storage: Storage, request: Request) -> dict[str, Any]:
    ops = storage.ops()
    return {"svgs": pages.graph_svgs(storage, dict(zip(ops["op"], ops["calls"], strict=True)))}


_PAGES = [("/", "overview.html", _overview), ("/op/{name:path}", "op.html", _op),
          ("/call/{hid}", "call.html", _call), ("/run/{run}", "run.html", _run), ("/graph", "graph.html", _graph)]


def _int(text: str | None) -> int:
    """A page number from the query; anything but a plain small number is page 1."""
    if text is None or not text.isascii() or not text.isdigit() or len(text) > 9:
        return 1
    return int(text)


def _read_only_url(url: str) -> str:
    """A PostgreSQL URL whose sessions start read-only (kept with the URL's own ``options``)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query["options"] = (query.get("options", "") + " " + READ_ONLY_PG_OPTION).strip()
    return urlunsplit(parts._replace(query=urlencode(query)))
