"""A WSGI app served on a free port of 127.0.0.1 in a background thread: what the fake APIs
of the tests (tests/fake_telegram.py, tests/fake_whatsapp.py) share."""

from __future__ import annotations

import threading
from typing import Any, Self

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server


class QuietHandler(WSGIRequestHandler):
    """A request handler that does not log every request."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Stay quiet."""


class LocalServer:
    """Serves the class's WSGI `app` on a free port of 127.0.0.1 in a background thread (the
    fake APIs' shared start and stop)."""

    server: BaseWSGIServer | None

    def app(self, environ: dict[str, Any], start_response: Any) -> Any:
        """Answer a request."""
        raise NotImplementedError

    def start(self) -> Self:
        """Serve in a background thread."""
        self.server = make_server(
            "127.0.0.1", 0, self.app, threaded=True, request_handler=QuietHandler
        )
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    @property
    def root(self) -> str:
        """The server's address."""
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_port}"
