"""A throwaway PostgreSQL server for tests: ``initdb`` + ``pg_ctl`` in a temporary folder, on loopback.

Tests that need PostgreSQL take the ``postgres_url`` fixture (a fresh database on a server shared by
the session). Without the server binaries they are skipped on a laptop, but fail in CI (``CI=true``),
where ``.ci/run`` installs Debian's ``postgresql`` package: a missing server must not pass silently.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

SUPERUSER = "sweepkit"  # the role initdb creates; trust authentication on loopback only
START_TIMEOUT_S = 60
# A server that lives for one test session needs no durability: skip every flush to disk.
FAST_SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")
DEBIAN_BIN_DIRS = "/usr/lib/postgresql/*/bin"  # Debian keeps the server binaries off PATH


def find_bin_dir(search_path: str | None = None, debian_glob: str = DEBIAN_BIN_DIRS) -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``: PATH first, then Debian's versioned folders, newest first."""
    on_path = shutil.which("initdb", path=search_path)
    candidates = [Path(on_path).resolve().parent] if on_path else []
    candidates += sorted((Path(p) for p in glob.glob(debian_glob)), key=_major_version, reverse=True)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    return None


def _major_version(bin_dir: Path) -> int:
    name = bin_dir.parent.name
    return int(name) if name.isdigit() else 0


def require_bin_dir(search_path: str | None = None, debian_glob: str = DEBIAN_BIN_DIRS) -> Path:
    """The server binaries' folder; without one, skip the test, or fail it in CI (``CI=true``)."""
    bin_dir = find_bin_dir(search_path, debian_glob)
    if bin_dir is not None:
        return bin_dir
    reason = (
        f"PostgreSQL server binaries (initdb, pg_ctl) are neither on PATH nor in {debian_glob}; "
        "install them (Debian: apt-get install postgresql) to run the PostgreSQL tests"
    )
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(f"CI is set and {reason}: .ci/run should have installed them", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    """One PostgreSQL cluster in a temporary folder, listening on 127.0.0.1 only.

    PostgreSQL refuses to run as root, so under uid 0 every server command runs as the ``postgres``
    system user (``runuser``), which owns the folder.
    """

    def __init__(self, bin_dir: Path):
        self.bin_dir = bin_dir
        # Not under pytest's tmp_path: that is private to root (mode 0700), so the postgres user could
        # not reach it. mkdtemp gives a fresh 0700 folder in /tmp, handed over to the server's user.
        self.root = Path(tempfile.mkdtemp(prefix="sweepkit-pg-"))
        self.data_dir = self.root / "data"
        self.socket_dir = self.root / "sockets"  # -k: Unix sockets here, not in /var/run/postgresql
        self.log_file = self.root / "server.log"
        self.port: int | None = None
        self.socket_dir.mkdir()
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            user = _server_user()
            self._as_user = ["runuser", "-u", user.pw_name, "--"]
            for folder in (self.root, self.socket_dir):
                os.chown(folder, user.pw_uid, user.pw_gid)

    def _run(self, *args: str, timeout: float = START_TIMEOUT_S) -> None:
        command = [*self._as_user, str(self.bin_dir / args[0]), *args[1:]]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=self.root)
        if done.returncode != 0:
            log = self.log_file.read_text() if self.log_file.exists() else "(no server log)"
            raise RuntimeError(
                f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}{done.stderr}\n{log}"
            )

    def start(self, attempts: int = 3) -> None:
        """``initdb``, then ``pg_ctl start`` on a free port (another port if one is taken meanwhile)."""
        self._run(
            "initdb",
            "-D",
            str(self.data_dir),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        for attempt in range(attempts):
            self.port = free_port()
            options = [
                "-c listen_addresses=127.0.0.1",
                f"-c port={self.port}",
                f"-k {self.socket_dir}",
                *(f"-c {setting}" for setting in FAST_SETTINGS),
            ]
            try:
                self._run(
                    "pg_ctl",
                    "start",
                    "-D",
                    str(self.data_dir),
                    "-l",
                    str(self.log_file),
                    "-w",
                    "-t",
                    str(START_TIMEOUT_S),
                    "-o",
                    " ".join(options),
                )
                return
            except RuntimeError:
                if attempt == attempts - 1:
                    raise

    def stop(self) -> None:
        """Stop at once (no checkpoint: the data is thrown away) and delete the folder."""
        try:
            if (self.data_dir / "postmaster.pid").exists():
                self._run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "immediate", "-w")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of ``database`` on this server (psycopg2 driver)."""
        return f"postgresql+psycopg2://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create an empty database and return its URL."""
        import psycopg2

        connection = psycopg2.connect(host="127.0.0.1", port=self.port, user=SUPERUSER, dbname="postgres")
        try:
            connection.autocommit = True  # CREATE DATABASE cannot run inside a transaction
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()
        return self.url(name)


def _server_user() -> pwd.struct_passwd:
    """The unprivileged user that runs the server when the tests run as root."""
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError(
        "running as root, but there is neither a 'postgres' nor a 'nobody' user to run PostgreSQL as"
    )


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the whole session, stopped at its end even after failures."""
    server = PostgresServer(require_bin_dir())
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """``postgresql+psycopg2://sweepkit@127.0.0.1:<port>/<fresh database>`` for one test."""
    return postgres_server.create_database(f"test_{uuid.uuid4().hex[:12]}")
