"""An ASGI server (uvicorn) in a thread of the test process, on the test database.

Playwright's ``live_server`` is WSGI, where the pages' event streams answer 204 and the pages
poll. The live path needs ASGI; in the same process, the embedded default's in-process channel
reaches the streams, and on PostgreSQL + Redis the Redis channel does.
Ports 18140–18149 belong to issue 14's tests and benchmarks.
"""

from __future__ import annotations

import socket
import threading
import time

import uvicorn
from django.core.asgi import get_asgi_application
from django.db import connections

PORTS = range(18140, 18150)


def free_port() -> int:
    for port in PORTS:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("ports 18140-18149 are all taken")


class AsgiServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            get_asgi_application(),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> AsgiServer:
        # Each request closes its connection (the server's threads must not keep the test database open).
        self.conn_max_age = connections.settings["default"].get("CONN_MAX_AGE", 0)
        connections.settings["default"]["CONN_MAX_AGE"] = 0
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        connections.settings["default"]["CONN_MAX_AGE"] = self.conn_max_age
