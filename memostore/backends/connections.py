"""A database server that went away: how to recognise it, what to tell the user, and idle connections.

A PostgreSQL server restarts, fails over, or drops an idle connection; the
driver then raises on the next statement, or cannot connect for a while.
``is_transient`` tells those errors (worth reconnecting and retrying) from
the ones a retry cannot fix (a wrong password, a missing database, a bad
statement). ``unavailable_error`` is what a user sees once retrying took too
long: the server's host and port, and its own message, never the password.
``IdleCloser`` gives back the connections of stores that sit idle, so
long-lived workers do not each hold one per store for life.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from typing import Any, Protocol

from sqlalchemy.engine import make_url

from memostore.errors import StoreUnavailableError

# SQLSTATE classes and codes of a connection that broke or could not be made (PostgreSQL appendix A).
_TRANSIENT_SQLSTATE_CLASSES = ("08",)  # connection_exception
_TRANSIENT_SQLSTATES = frozenset({
    "57P01",  # admin_shutdown: the server is stopping or restarting
    "57P02",  # crash_shutdown
    "57P03",  # cannot_connect_now: the server is starting up
    "57P05",  # idle_session_timeout
    "53300",  # too_many_connections: others give theirs back
})
# The same, as libpq and psycopg word them where there is no SQLSTATE (no connection to ask).
_TRANSIENT_TEXTS = (
    "connection refused", "server closed the connection", "the connection is closed", "connection already closed",
    "connection not open", "connection is lost", "no connection to the server", "terminating connection",
    "the database system is starting up", "the database system is shutting down",
    "the database system is in recovery mode", "could not receive data", "could not send data",
    "connection reset", "connection timed out", "timeout expired", "broken pipe", "consuming input failed",
    "ssl syscall error", "eof detected",
)
# Connection failures a retry cannot fix, though the driver reports them like the ones above.
_PERMANENT_TEXTS = ("password authentication failed", "authentication failed", "no pg_hba.conf entry",
                    "does not exist", "permission denied", "could not translate host name")
MESSAGE_CHARS = 400  # at most this much of the server's message goes into an error


def is_transient(err: BaseException) -> bool:
    """Whether ``err`` (or an error it wraps) says the server went away, so reconnecting may succeed."""
    seen: BaseException | None = err
    while seen is not None:
        driver = getattr(seen, "orig", None) or seen  # SQLAlchemy wraps the driver's error
        text = str(driver).lower()
        sqlstate = getattr(driver, "sqlstate", None) or ""
        if any(part in text for part in _PERMANENT_TEXTS) or sqlstate.startswith("28") or sqlstate == "3D000":
            return False
        if sqlstate.startswith(_TRANSIENT_SQLSTATE_CLASSES) or sqlstate in _TRANSIENT_SQLSTATES \
                or any(part in text for part in _TRANSIENT_TEXTS):
            return True
        if isinstance(driver, StoreUnavailableError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def server_message(err: BaseException, url: str) -> str:
    """The server's (or libpq's) own words behind ``err``, on one line, without the URL's password."""
    driver = getattr(err, "orig", None) or err
    text = " ".join(str(driver).split())[:MESSAGE_CHARS] or type(driver).__name__
    password = make_url(url).password
    return text.replace(str(password), "***") if password else text


def server_address(url: str) -> str:
    """``host:port (database 'name', user 'who')`` of a server URL: what a message names, never the password."""
    parsed = make_url(url)
    host = parsed.host or os.environ.get("PGHOST") or "localhost (Unix socket)"
    port = parsed.port or os.environ.get("PGPORT") or 5432
    return f"{host}:{port} (database {parsed.database!r}, user {parsed.username!r})"


def unavailable_error(url: str, err: BaseException, waited_s: float, retry_s: float) -> StoreUnavailableError:
    """The error a caller gets once the server stayed unreachable for ``retry_s``."""
    return StoreUnavailableError(
        f"the PostgreSQL server at {server_address(url)} did not answer for {waited_s:.1f} s "
        f"(retry_s={retry_s:g}): {server_message(err, url)}; nothing committed is lost, and calls not "
        "committed yet stay pending in this process: start the server (or fix the network), then run "
        "again or call storage.commit(); Storage(retry_s=...) rides out longer outages")


class Closable(Protocol):
    def close_if_idle(self) -> None: ...


class IdleCloser:
    """One daemon thread per process that asks every watched database to close an idle connection."""

    TICK_S = 0.5  # how often idle connections are looked for

    def __init__(self) -> None:
        self._watched: weakref.WeakSet[Any] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._pid = -1

    def watch(self, database: Closable) -> None:
        """Close ``database``'s connection whenever it sits idle (see ``close_if_idle``)."""
        with self._lock:
            self._watched.add(database)
            if self._pid != os.getpid():  # none yet, or a forked child: threads do not survive a fork
                self._pid = os.getpid()
                threading.Thread(target=self._loop, name="memostore-idle-connections", daemon=True).start()

    def after_fork(self) -> None:
        """In a forked child: the parent's thread and lock are not ours."""
        self._lock = threading.Lock()
        self._pid = -1

    def _loop(self) -> None:
        pid = os.getpid()
        while pid == self._pid:
            time.sleep(self.TICK_S)
            for database in list(self._watched):
                database.close_if_idle()
