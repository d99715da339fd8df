"""The HTTP side: one FastAPI app (Twilio webhooks, media WebSocket, health), served by uvicorn
inside the daemon's event loop on a socket the daemon binds itself (so the port is known before
READY, also when the config asks for port 0)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable, Iterable, Iterator

import uvicorn
from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse

from reautod import __version__
from reautod.api.tls import TlsFiles, loopback_client_context
from reautod.control.results import HealthReport

log = logging.getLogger(__name__)

MAX_WS_MESSAGE_BYTES = 64 * 1024  # a Twilio media frame is well under 1 KB; bigger is abuse


def create_app(
    routers: Iterable[APIRouter], *, health: Callable[[], Awaitable[HealthReport]]
) -> FastAPI:
    # FastAPI's Swagger UI and ReDoc load their scripts from a CDN (an offline box cannot reach
    # it, and a page served here should not run code from elsewhere): ours are `docs.py`'s.
    app = FastAPI(title="reautod", version=__version__, docs_url=None, redoc_url=None)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        report = await health()
        return JSONResponse(report.model_dump(mode="json"),
                            status_code=200 if report.ok else 503)

    for router in routers:
        app.include_router(router)
    return app


class _EmbeddedUvicorn(uvicorn.Server):
    """uvicorn that leaves signal handling to the daemon (its own handlers would replace ours)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HttpServer:
    """uvicorn on a pre-bound socket (ours, or `sock`: one systemd passed), run as a task of the
    daemon's loop; https/wss with `tls`."""

    def __init__(self, app: FastAPI, host: str, port: int, tls: TlsFiles | None = None, *,
                 sock: socket.socket | None = None) -> None:
        if sock is None:
            sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))  # raises OSError (address in use) before READY
            sock.listen(128)
            sock.set_inheritable(False)
        else:  # bound and listening already (systemd's, reautod.api.activation)
            host = str(sock.getsockname()[0])
        self._sock = sock
        self.host = host
        self.port: int = sock.getsockname()[1]
        self.scheme = "https" if tls is not None else "http"
        # what the daemon's own clients (call.simulate) connect with: pinned to our certificate
        self.loopback_ssl = loopback_client_context(tls) if tls is not None else None
        config = uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            lifespan="off",
            ws_max_size=MAX_WS_MESSAGE_BYTES,
            timeout_graceful_shutdown=2,
            ssl_certfile=tls.cert_file if tls is not None else None,
            ssl_keyfile=tls.key_file if tls is not None else None,
        )
        self._server = _EmbeddedUvicorn(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve(sockets=[self._sock]), name="http")
        while not self._server.started:
            if self._task.done():
                self._task.result()  # re-raise the start-up failure
                raise RuntimeError("HTTP server stopped during start-up")
            await asyncio.sleep(0.01)
        log.info("HTTP listening on %s://%s:%d", self.scheme, self.host, self.port)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done() and self._server.started

    async def close(self) -> None:
        if self._task is None:
            self._sock.close()
            return
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._sock.close()
