"""moto's server on loopback, its requests applied one at a time (DynamoDB's and S3's atomic
conditional writes need it), and which stand-in asked (``SERVING``)."""

from __future__ import annotations

import threading
from typing import Any

# The stand-in whose server applies the request in this thread. moto's backends are one per process:
# two stand-ins in one process (a test module's and a shared one) share them, so a change is simulated
# by the stand-in it was asked of, never by every running one.
SERVING = threading.local()


class OneRequestAtATime:
    """A WSGI app run one request at a time, each whole: its body read, the backend call, the response built.

    moto's backends take no lock of their own around a request. DynamoDB's conditional put, for one, is
    ``current = table.get_item(key)``, the condition evaluated on it, then ``table.items[key] = item``: two
    server threads can both find a key free and both succeed, and the later write silently replaces the
    earlier (issue #9: two processes granted one lock, in 4 of 300 race rounds, their puts overlapping inside
    moto). DynamoDB and S3 apply each request atomically, conditional writes included; serialising the
    requests gives the stand-in that property (moto's request handling is Python under one GIL anyway).
    """

    def __init__(self, app: Any, owner: Any = None):
        self.app = app
        self.lock = threading.Lock()
        self.owner = owner       # whose request this is, while it is applied (see SERVING)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        with self.lock:
            SERVING.owner = self.owner
            try:
                result = self.app(environ, start_response)
                try:
                    return [b"".join(result)]
                finally:
                    close = getattr(result, "close", None)
                    if close is not None:
                        close()
            finally:
                SERVING.owner = None


class MotoServer:
    """``moto.server.ThreadedMotoServer`` (a threaded werkzeug server on loopback over moto's dispatcher
    app), its requests applied one at a time (:class:`OneRequestAtATime`)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, owner: Any = None):
        self.host, self.port, self.owner = host, port, owner
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> "MotoServer":
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        app = OneRequestAtATime(DomainDispatcherApplication(create_backend_app), self.owner)
        self._server = make_server(self.host, self.port, app, threaded=True, request_handler=MotoRequestHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto-server", daemon=True)
        self._thread.start()
        return self

    def get_host_and_port(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
