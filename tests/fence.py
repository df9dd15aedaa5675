"""A recording proxy on loopback: every request a command sends towards the outside world through
the proxy variables is noted, then refused with a 403, so a test can say what was tried.

    with Fence() as fence:
        run(mlstack("demo"), {**env, **fence.env})
    assert fence.hosts == {...}
"""

from __future__ import annotations

import socketserver
import threading
from urllib.parse import urlsplit


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        line = self.rfile.readline(8192).decode("latin-1").strip()
        self.server.tried.append(line)  # type: ignore[attr-defined]
        self.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


class Fence:
    def __init__(self) -> None:
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.tried = []  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def env(self) -> dict[str, str]:
        """The proxy variables that send every client but loopback's requests here."""
        names = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")
        loopback = "127.0.0.1,localhost,::1"
        return {**dict.fromkeys(names, self.url), "NO_PROXY": loopback, "no_proxy": loopback}

    @property
    def tried(self) -> list[str]:
        """Each request's first line: `CONNECT host:443 HTTP/1.1`, `GET http://host/path HTTP/1.1`."""
        return list(self._server.tried)  # type: ignore[attr-defined]

    @property
    def hosts(self) -> set[str]:
        found = set()
        for line in self.tried:
            method, target = ([*line.split(), "", ""])[:2]
            host = target.rsplit(":", 1)[0] if method == "CONNECT" else urlsplit(target).hostname
            found.add(host or line)
        return found

    def __enter__(self) -> Fence:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
