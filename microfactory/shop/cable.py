"""A TCP cable between clients and the PostgreSQL server that a test (or the benchmark) can unplug and plug
back in: unplugged, every connection through it is cut and new ones are refused (the network is gone)."""

from __future__ import annotations

import contextlib
import socket
import threading


class Cable:
    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = int(probe.getsockname()[1])
        probe.close()
        self._lock = threading.Lock()
        self._links: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self.plug()

    def plug(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def unplug(self) -> None:
        with self._lock:
            if self._listener is not None:
                with contextlib.suppress(OSError):  # wakes the thread blocked in accept() (Linux)
                    self._listener.shutdown(socket.SHUT_RDWR)
                self._listener.close()
                self._listener = None
            for s in self._links:
                with contextlib.suppress(OSError):  # already closed by the other side
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            self._links.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # unplugged
            try:
                server = socket.create_connection(self.target)
            except OSError:  # the server is down: the client sees its connection closed
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:  # unplugged while this one was connecting
                    client.close()
                    server.close()
                    return
                self._links += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass  # the cable was cut
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):  # already down
                    s.shutdown(socket.SHUT_RDWR)
