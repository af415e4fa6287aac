"""A throwaway PostgreSQL server for the tests, started from Debian's binaries.

``MEMOSTORE_TEST_POSTGRES_URL`` (an admin SQLAlchemy URL) wins when set.
Otherwise, where ``initdb`` is installed, a server is initialised in a
temporary directory and started on loopback as an unprivileged user; it is
stopped when the test session ends. Each test then gets a schema of its own.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

URL_VARIABLE = "MEMOSTORE_TEST_POSTGRES_URL"


def find_bin_dir() -> Path | None:
    """Debian's versioned PostgreSQL bin directory (the newest), or the PATH's."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    if candidates:
        return Path(candidates[-1])
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TemporaryServer:
    """initdb + pg_ctl in a temporary directory, trust auth on 127.0.0.1."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="memostore-pg-"))
        self.data = self.root / "data"
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            self.as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.root, "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "memostore", "--no-sync")
        # Chosen after initdb (seconds on a loaded machine), not before: the port is free only until someone binds
        # it, and every outgoing connection on this machine takes a port from the same range meanwhile.
        self.port = _free_port()
        self.start()

    def start(self) -> None:
        """Start the server (again), on the same port."""
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "start",
                  "-o", f"-h 127.0.0.1 -p {self.port} -k {self.root} -c fsync=off -c max_connections=200")

    def halt(self) -> None:
        """Stop the server as an operator would (``pg_ctl stop -m fast``): sessions end, data stays."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def restart(self) -> None:
        """``pg_ctl restart``: every open connection is dropped."""
        # With its log file: a server writing to our pipes would keep subprocess.run waiting.
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-m", "fast", "-w", "restart")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://memostore@127.0.0.1:{self.port}/postgres"

    def _run(self, program: str, *args: str, check: bool = True) -> None:
        subprocess.run([*self.as_user, str(self.bin_dir / program), *args], check=check,
                       capture_output=True, text=True)

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop", check=False)  # also if halted
        shutil.rmtree(self.root, ignore_errors=True)


def new_schema_url(admin_url: str) -> str:
    """A fresh, empty schema on the server; returns a URL whose search_path is it."""
    import psycopg

    schema = "test_" + uuid.uuid4().hex[:12]
    plain = admin_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in admin_url else "?"
    return f"{admin_url}{separator}options=-csearch_path%3D{schema}"
