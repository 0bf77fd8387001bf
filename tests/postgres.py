"""A throw-away PostgreSQL server for tests and benches: ``initdb`` into a temporary folder, ``pg_ctl start`` on a
free loopback port, one database per test (``CREATE DATABASE``), ``pg_ctl stop`` at the end. Debian's
``postgresql`` package provides the programs (``.ci/run`` installs it); as root the server runs as the
``postgres`` user (or ``nobody``), since PostgreSQL refuses to run as root."""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

BIN_GLOB = "/usr/lib/postgresql/*/bin"


def bin_dir() -> Path | None:
    """The newest installed PostgreSQL's programs (``pg_ctl``, ``initdb``), or None."""
    found = sorted(glob.glob(BIN_GLOB), key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0)
    if found and (Path(found[-1]) / "pg_ctl").is_file():
        return Path(found[-1])
    exe = shutil.which("pg_ctl")
    return Path(exe).parent if exe else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """One server in a temporary folder; :meth:`database` makes a fresh database and returns its URL."""

    def __init__(self, bindir: Path):
        self.bindir, self.port = bindir, _free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="layerlab-pg-"))
        self.user = None
        if os.geteuid() == 0:  # postgres refuses root: run it as the postgres user (Debian's package makes one)
            self.user = next((u for u in ("postgres", "nobody") if _exists(u)), None)
            if self.user is None:
                raise RuntimeError("running as root and neither a postgres nor a nobody user exists")
            os.chmod(self.dir, 0o755)
            shutil.chown(self.dir, self.user)
        self.data = self.dir / "data"
        self._run(["initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
        opts = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=400 -c shared_buffers=64MB")
        self._run(["pg_ctl", "-D", str(self.data), "-l", str(self.dir / "log"), "-w", "-t", "60", "-o", opts, "start"])
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, argv: list[str]) -> None:
        cmd = [str(self.bindir / argv[0]), *argv[1:]]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if done.returncode:
            log = (self.dir / "log").read_text() if (self.dir / "log").is_file() else ""
            raise RuntimeError(f"{' '.join(argv[:2])} failed: {done.stdout}{done.stderr}{log[-2000:]}")

    def database(self) -> str:
        """A new empty database on this server; its SQLAlchemy URL."""
        import psycopg

        name = "t_" + secrets.token_hex(6)
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True) as c:
            c.execute(f"CREATE DATABASE {name}")
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        """Stop the server and remove its folder."""
        try:
            self._run(["pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop"])
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def _exists(user: str) -> bool:
    try:
        pwd.getpwnam(user)
        return True
    except KeyError:
        return False
