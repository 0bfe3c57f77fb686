"""A throwaway PostgreSQL server on loopback for the tests that share a study across workers.

:func:`start_server` runs Debian's ``initdb`` and ``pg_ctl`` (``/usr/lib/postgresql/*/bin``,
installed by ``make setup``) on a fresh data directory in a temporary folder and a free
127.0.0.1 port, with trust authentication for loopback only. PostgreSQL refuses to run
as root, so under root the cluster belongs to the ``postgres`` user (created by the
Debian package) and every server command runs through ``runuser``. :meth:`PgServer.stop`
stops it and removes the folder. :func:`why_unavailable` says why no server can be
started here (the reason a test skips with), or None.
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
from dataclasses import dataclass
from pathlib import Path

SUPERUSER = "evonas"  # the cluster's superuser, trusted on loopback
START_TIMEOUT_S = 60


def server_bin() -> Path | None:
    """The newest ``/usr/lib/postgresql/VERSION/bin`` that has initdb and pg_ctl, or None."""
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb") if Path(p).with_name("pg_ctl").exists()]
    return max(found, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0) if found else None


def run_as() -> str | None:
    """The user that runs the server: ``postgres`` when we are root, else None (ourselves)."""
    return "postgres" if os.geteuid() == 0 else None


def why_unavailable() -> str | None:
    """Why no throwaway server can be started here, or None when one can."""
    if server_bin() is None:
        return ("PostgreSQL server is not installed (no /usr/lib/postgresql/*/bin/initdb): install Debian's "
                "'postgresql' package (make setup does)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "the PostgreSQL driver psycopg is not installed: pip install 'psycopg[binary]' (make setup does)"
    user = run_as()
    if user is not None:
        try:
            pwd.getpwnam(user)
        except KeyError:
            return f"running as root and there is no {user!r} user to run PostgreSQL as (Debian's package creates it)"
        if shutil.which("runuser") is None:
            return "running as root and runuser (util-linux) is missing, so PostgreSQL cannot be run as another user"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PgServer:
    """A running throwaway cluster: its folder, port, and how to make databases on it."""

    bin: Path
    root: Path  # temporary folder: data/, the socket and the log
    port: int
    user: str | None  # the OS user it runs as (None: this process's)

    @property
    def data(self) -> Path:
        return self.root / "data"

    def _cmd(self, *args: str) -> list[str]:
        return (["runuser", "-u", self.user, "--"] if self.user else []) + list(args)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create database ``name`` and return its SQLAlchemy URL."""
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user=SUPERUSER, dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        subprocess.run(self._cmd(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"),
                       capture_output=True, timeout=START_TIMEOUT_S, check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def start_server() -> PgServer:
    """Initialise and start a cluster on a free loopback port; raises RuntimeError with the server's log on failure."""
    bin_dir = server_bin()
    assert bin_dir is not None, why_unavailable()
    user = run_as()
    root = Path(tempfile.mkdtemp(prefix="evonas-pg-"))
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    server = PgServer(bin=bin_dir, root=root, port=free_port(), user=user)
    try:
        def run(*args: str) -> None:
            done = subprocess.run(server._cmd(*args), capture_output=True, text=True, timeout=START_TIMEOUT_S,
                                  cwd=root, check=False)
            if done.returncode != 0:
                log = (root / "log").read_text() if (root / "log").exists() else ""
                raise RuntimeError(f"{' '.join(args[:1])} failed ({done.returncode}): {done.stderr.strip()} {log[-2000:]}")

        run(str(bin_dir / "initdb"), "-D", str(server.data), "-U", SUPERUSER, "-A", "trust", "--no-sync",
            "-E", "UTF8", "--locale", "C")
        options = (f"-p {server.port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=50")
        run(str(bin_dir / "pg_ctl"), "-D", str(server.data), "-o", options, "-l", str(root / "log"),
            "-t", str(START_TIMEOUT_S), "-w", "start")
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:  # pg_ctl -w waits for the socket; make sure TCP answers too
            try:
                with socket.create_connection(("127.0.0.1", server.port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"PostgreSQL did not listen on 127.0.0.1:{server.port}") from None
                time.sleep(0.1)
    except BaseException:
        server.stop()
        raise
    return server
