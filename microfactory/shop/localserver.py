"""A throwaway PostgreSQL server of its own, for the tests, the benchmark and a try-out shop.

Why not pytest-postgresql: it needs the same binaries and the same care about root (PostgreSQL refuses
to run as root), and the benchmark needs the server outside pytest too; this is the ~100 lines both
share. The server is found on ``PATH`` or in Debian's ``/usr/lib/postgresql/N/bin``; as root, ``initdb``
and ``postgres`` run as the ``postgres`` user (or ``nobody``) through ``runuser``, in a directory that
user owns. It listens on 127.0.0.1 on a free port with password (SCRAM) authentication, so the roles the
tests connect as are real logins, not trusted sockets.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from microfactory.errors import MicrofactoryError

#: Where Debian and the official images put the server binaries (newest first).
SEARCH = ("/usr/lib/postgresql/17/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/15/bin",
          "/usr/lib/postgresql/14/bin", "/usr/local/pgsql/bin")


def find_binaries() -> Path:
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres``; MicrofactoryError naming the packages
    to install when there is none."""
    on_path = shutil.which("initdb")
    candidates = ([Path(on_path).resolve().parent] if on_path else []) + [Path(p) for p in SEARCH]
    for folder in candidates:
        if all((folder / name).exists() for name in ("initdb", "pg_ctl", "postgres")):
            return folder
    raise MicrofactoryError("no PostgreSQL server binaries (initdb, pg_ctl, postgres) on PATH or in "
                            "/usr/lib/postgresql/*/bin",
                            hint="install them (Debian: apt-get install postgresql; scripts/setup.sh does)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server_user() -> str | None:
    """The user the server runs as when we are root (None: run as ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise MicrofactoryError("running as root and there is no 'postgres' or 'nobody' user to run "
                            "PostgreSQL as (it refuses to run as root)", hint="create a 'postgres' user")


@dataclass
class LocalServer:
    """A PostgreSQL cluster in a temporary folder. :meth:`start` it, use :attr:`admin_dsn` (the superuser
    ``postgres`` with a random password), :meth:`stop` it (:meth:`kill` for a crash test)."""

    port: int = 0
    password: str = field(default_factory=lambda: secrets.token_hex(12))
    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="microfactory-pg-")))
    process: subprocess.Popen[bytes] | None = None

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def dsn(self, user: str = "postgres", password: str | None = None, dbname: str = "postgres") -> str:
        return (f"postgresql://{user}:{password if password is not None else self.password}"
                f"@127.0.0.1:{self.port}/{dbname}")

    @property
    def admin_dsn(self) -> str:
        return self.dsn()

    def _ids(self) -> tuple[int | None, int | None]:
        """(uid, gid) for subprocess: the server is our own child (so a killed one is reaped here, never
        left a zombie whose pid would block the restart)."""
        user = _server_user()
        if not user:
            return None, None
        entry = pwd.getpwnam(user)
        return entry.pw_uid, entry.pw_gid

    def initdb(self) -> None:
        bin_dir = find_binaries()
        user = _server_user()
        pwfile = self.folder / "pw"
        pwfile.write_text(self.password + "\n")
        if user:
            entry = pwd.getpwnam(user)
            for path in (self.folder, pwfile):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self.folder.chmod(0o700)
        result = subprocess.run([
            str(bin_dir / "initdb"), "-D", str(self.data), "-U", "postgres", f"--pwfile={pwfile}",
            "--auth-local=scram-sha-256", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-locale",
            "--no-sync"], capture_output=True, check=False, cwd=self.folder, user=self._ids()[0],
            group=self._ids()[1])
        pwfile.unlink()
        if result.returncode != 0:
            raise MicrofactoryError(f"initdb failed in {self.data}: {result.stderr.decode(errors='replace')}")

    def start(self, timeout_s: float = 60.0) -> LocalServer:
        """Start (or restart after :meth:`kill`) the server and wait until it accepts connections."""
        if not self.data.exists():
            self.initdb()
        self.port = self.port or _free_port()
        argv = [str(find_binaries() / "postgres"), "-D", str(self.data), "-p", str(self.port),
                "-h", "127.0.0.1", "-k", str(self.folder), "-c", "fsync=off", "-c", "max_connections=200",
                "-c", "full_page_writes=off"]
        log = (self.folder / "server.log").open("ab")
        uid, gid = self._ids()
        self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                        cwd=self.folder, user=uid, group=gid)
        log.close()
        self._wait_ready(timeout_s)
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        import psycopg

        deadline = time.monotonic() + timeout_s
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise MicrofactoryError(f"PostgreSQL exited at start (code {self.process.returncode}): "
                                        f"{self.log_tail()}")
            try:
                psycopg.connect(self.admin_dsn, connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise MicrofactoryError(f"PostgreSQL did not accept connections on port {self.port} "
                                            f"within {timeout_s:.0f} s: {self.log_tail()}") from None
                time.sleep(0.05)  # polling a server coming up, not waiting on a device

    def log_tail(self) -> str:
        path = self.folder / "server.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def kill(self) -> None:
        """SIGKILL the postmaster (a crash: no checkpoint, clients cut); :meth:`start` recovers it."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, 9)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # fast shutdown: clients are disconnected
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
