"""A throwaway PostgreSQL server for tests: initdb into a temp dir, serve on a free loopback port.

The cluster lives in its own temporary directory (data, unix socket, log), trusts every local
connection, listens on 127.0.0.1 only and is stopped with ``pg_ctl stop -m fast`` and removed by
:meth:`PostgresServer.stop`. PostgreSQL refuses to run as root: when this process is root, initdb
and postgres run as the ``postgres`` system user (the Debian package creates it) and the temp dir
is handed to that user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

INSTALL_HINT = "sh scripts/install_postgresql.sh"
SYSTEM_USER = "postgres"
SUPERUSER = "postgres"


def find_postgres_bindir() -> Path | None:
    """The directory holding initdb, postgres and pg_ctl: ``pg_config --bindir`` when it has
    them, else the newest /usr/lib/postgresql/<major>/bin (Debian keeps them off PATH)."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        answer = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True,
                                check=False)
        if answer.returncode == 0:
            candidates.append(Path(answer.stdout.strip()))
    on_path = shutil.which("initdb")
    if on_path is not None:
        candidates.append(Path(on_path).parent)
    candidates += sorted((Path(found) for found in glob.glob("/usr/lib/postgresql/*/bin")),
                         key=lambda path: _major(path.parent.name), reverse=True)
    for bindir in candidates:
        if all((bindir / tool).is_file() for tool in ("initdb", "postgres", "pg_ctl")):
            return bindir
    return None


def _major(text: str) -> int:
    return int(text) if text.isdigit() else -1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """One PostgreSQL cluster of our own: :meth:`start`, :meth:`create_database`, :meth:`stop`."""

    def __init__(self) -> None:
        self.port = 0
        self.directory: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self._bindir: Path | None = None

    @property
    def data(self) -> Path:
        if self.directory is None:
            raise RuntimeError("the PostgreSQL server is not started")
        return self.directory / "data"

    @property
    def log(self) -> Path:
        return self.data.parent / "postgres.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _as_owner(self) -> dict[str, Any]:
        """Popen arguments running a tool as the cluster's owner (``postgres`` when root)."""
        if os.geteuid() != 0:
            return {}
        return {"user": SYSTEM_USER, "group": pwd.getpwnam(SYSTEM_USER).pw_gid,
                "extra_groups": []}

    def _tool(self, name: str) -> str:
        if self._bindir is None:
            raise RuntimeError("the PostgreSQL server is not started")
        return str(self._bindir / name)

    def start(self, timeout: float = 30.0) -> PostgresServer:
        """initdb a new cluster in a temp dir and start postgres on a free loopback port.

        Raises:
            RuntimeError: PostgreSQL is not installed, root without a ``postgres`` user, or the
                server did not start (the end of its log is in the message).
        """
        self._bindir = find_postgres_bindir()
        if self._bindir is None:
            raise RuntimeError(f"PostgreSQL is not installed: run {INSTALL_HINT}")
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam(SYSTEM_USER)
            except KeyError:
                raise RuntimeError(f"running as root needs the {SYSTEM_USER!r} system user: "
                                   f"run {INSTALL_HINT}") from None
        self.directory = Path(tempfile.mkdtemp(prefix="citychain-postgres-"))
        try:
            if os.geteuid() == 0:
                os.chown(self.directory, owner.pw_uid, owner.pw_gid)
            self._initdb()
            self._serve(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _initdb(self) -> None:
        answer = subprocess.run(
            [self._tool("initdb"), "-D", str(self.data), "-U", SUPERUSER, "-A", "trust",
             "-E", "UTF8", "--locale=C", "--no-sync"],
            capture_output=True, text=True, cwd=self.directory, check=False,
            **self._as_owner())
        if answer.returncode != 0:
            raise RuntimeError(f"initdb failed: {(answer.stderr or answer.stdout)[-800:]}")

    def _serve(self, timeout: float) -> None:
        sockets = self.data.parent / "socket"
        sockets.mkdir()
        if os.geteuid() == 0:
            shutil.chown(sockets, SYSTEM_USER, SYSTEM_USER)
        for _attempt in range(3):  # a free port can be taken before postgres binds it
            self.port = _free_port()
            with self.log.open("wb") as out:
                self.process = subprocess.Popen(
                    [self._tool("postgres"), "-D", str(self.data), "-p", str(self.port),
                     "-c", "listen_addresses=127.0.0.1",
                     "-c", f"unix_socket_directories={sockets}"],
                    stdout=out, stderr=subprocess.STDOUT, cwd=self.directory,
                    start_new_session=True, **self._as_owner())
            if self._wait_ready(timeout):
                return
        raise RuntimeError(f"postgres did not start: {self.log.read_text()[-800:]}")

    def _wait_ready(self, timeout: float) -> bool:
        """True once it accepts connections; False when it exited (port taken?)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            try:
                psycopg.connect(self.url(), connect_timeout=2).close()
                return True
            except psycopg.OperationalError:
                time.sleep(0.05)
        raise RuntimeError(f"postgres did not accept connections within {timeout} s: "
                           f"{self.log.read_text()[-800:]}")

    def create_database(self, name: str) -> str:
        """Create database ``name`` (letters, digits, underscores) and return its URL."""
        if not name.replace("_", "").isalnum() or not name.isascii():
            raise ValueError(f"database name {name!r}: letters, digits and underscores only")
        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        """``pg_ctl stop -m fast``, reap the process and remove the temp dir; a no-op when
        it is not running."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            subprocess.run([self._tool("pg_ctl"), "stop", "-D", str(self.data), "-m", "fast",
                            "-w", "-t", "30"], capture_output=True, cwd=self.directory,
                           check=False, **self._as_owner())
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        directory, self.directory = self.directory, None
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["INSTALL_HINT", "PostgresServer", "find_postgres_bindir"]
