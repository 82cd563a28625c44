"""The API's threaded WSGI server (cheroot) inside the controller process."""

from __future__ import annotations

import logging
import threading
from typing import Any

from cheroot import wsgi

LOG = logging.getLogger("amphora-controller.api")


class ApiServer:
    """Binds on :meth:`start` (port 0: any free port, see :attr:`address`)."""

    def __init__(self, app: Any, host: str, port: int, threads: int = 8) -> None:
        self.server = wsgi.Server((host, port), app, numthreads=threads,
                                  server_name="amphora-controller")
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.server.bind_addr[:2]
        return host, port

    def start(self) -> ApiServer:
        self.server.prepare()
        self._thread = threading.Thread(target=self.server.serve, name="controller-api",
                                        daemon=True)
        self._thread.start()
        LOG.info("API listening on %s port %d", *self.address)
        return self

    def stop(self) -> None:
        self.server.stop()
        if self._thread is not None:
            self._thread.join(10)
