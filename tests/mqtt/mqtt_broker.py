"""A real MQTT broker for the Sparkplug tests: Debian's mosquitto on a free localhost port.

The fixture writes a temporary config (localhost only, anonymous, no persistence), starts
``mosquitto -c CONFIG`` and waits until it accepts connections; tests may ``kill()`` it (SIGKILL: the
broker vanishes without a goodbye) and ``start()`` it again on the same port. Skipped, saying why, only
when no mosquitto executable is found.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import time
from pathlib import Path

from microfactory.mqtt import MqttOptions

START_TIMEOUT_S = 15.0


def find_mosquitto() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    for candidate in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        if Path(candidate).is_file():
            return candidate
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1 signed by it: (ca, cert, key)."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj",
             "/CN=microfactory test CA", cwd=folder)
    _openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1", cwd=folder)
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "server.pem", "-days", "2", "-extfile", "san.ext", cwd=folder)
    return folder / "ca.pem", folder / "server.pem", folder / "server.key"


class Broker:
    """One mosquitto process on ``port``; ``log`` is its own log file.

    With ``users`` it refuses anonymous clients and knows these user names and passwords; with ``tls``
    its listener speaks only TLS with a certificate from a throw-away CA (``ca``).
    """

    def __init__(self, exe: str, folder: Path, *, users: dict[str, str] | None = None,
                 tls: bool = False) -> None:
        self.exe = exe
        self.port = free_port()
        self.config = folder / "mosquitto.conf"
        self.log = folder / "mosquitto.log"
        self.ca: Path | None = None
        # run as whoever runs the tests: as root, mosquitto would switch to its own user, who cannot
        # read the test's temporary folder
        lines = [f"listener {self.port} 127.0.0.1", f"user {pwd.getpwuid(os.geteuid()).pw_name}",
                 "persistence false", f"log_dest file {self.log}", "log_type all"]
        if users:
            passwd = folder / "passwd"
            passwd.touch()
            for name, password in users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(passwd), name, password], check=True,
                               capture_output=True, timeout=30)
            lines += ["allow_anonymous false", f"password_file {passwd}"]
        else:
            lines.append("allow_anonymous true")
        if tls:
            self.ca, cert, key = make_certificates(folder)
            lines += [f"cafile {self.ca}", f"certfile {cert}", f"keyfile {key}"]
        self.config.write_text("\n".join(lines) + "\n")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def options(self) -> MqttOptions:
        return MqttOptions(host="127.0.0.1", port=self.port, group="test", reconnect_min_s=1,
                           reconnect_max_s=2, tls=self.ca is not None,
                           ca_file=str(self.ca) if self.ca else None)

    def start(self) -> None:
        self.process = subprocess.Popen([self.exe, "-c", str(self.config)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:  # wait (bounded) until it listens: connecting is the only way to know
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                raise RuntimeError(f"mosquitto exited at start ({self.process.returncode}): {err}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"mosquitto did not listen on {self.port} within {START_TIMEOUT_S} s")
            time.sleep(0.05)

    def kill(self) -> None:
        """Gone at once, as a crashed or unplugged broker: no clean close of any connection."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()
