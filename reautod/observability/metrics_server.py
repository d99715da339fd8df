"""The Prometheus `/metrics` endpoint, served from a thread so a scrape never touches the loop.

prometheus_client's threaded WSGI server is used as is: scrapes are rare (every 15 s or so), a
scrape only reads the registry (thread-safe) and NVML, and a thread keeps the collection cost off
the event loop entirely, which an in-loop aiohttp/uvicorn route would not.
"""

from __future__ import annotations

import logging
import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server

from reautod.errors import UnavailableError
from reautod.observability.metrics import Metrics

logger = logging.getLogger(__name__)


class MetricsServer:
    """A running /metrics endpoint; `port` is the bound port; `close()` stops it and joins the thread."""

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread
        self.host = str(server.server_address[0])
        self.port = int(server.server_address[1])

    def close(self) -> None:
        # shutdown() waits for serve_forever to notice (poll interval 0.5 s): call from a thread
        # (`await asyncio.to_thread(server.close)`) at daemon shutdown.
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def start_metrics_server(metrics: Metrics, host: str, port: int) -> MetricsServer:
    """Serve `metrics.registry` on http://host:port/metrics (port 0 = a free port)."""
    try:
        server, thread = start_http_server(port, addr=host, registry=metrics.registry)
    except OSError as err:
        raise UnavailableError(
            f"cannot serve metrics on {host}:{port}: {err.strerror or err}"
            " (set [metrics] port in the config, or 0 for a free port)"
        ) from err
    thread.name = "metrics-http"
    result = MetricsServer(server, thread)
    logger.info("metrics on http://%s:%d/metrics", host, result.port)
    return result
