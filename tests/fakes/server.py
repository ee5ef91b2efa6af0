"""Run an ASGI app (FastAPI, Starlette) as a real HTTP server on 127.0.0.1 for a test.

Fakes of outside services (Google, Gmail, Razorpay) are small ASGI apps; code under
test reaches them over real sockets by pointing its base URL at ``server.url``::

    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from tests.fakes.server import FakeServer


    async def token(request):
        return JSONResponse({"access_token": "fake"})


    app = Starlette(routes=[Route("/token", token, methods=["POST"])])


    def test_sync() -> None:
        with FakeServer(app) as server:
            assert httpx.post(f"{server.url}/token").json() == {"access_token": "fake"}


    async def test_async() -> None:
        async with FakeServer(app) as server:
            async with httpx.AsyncClient(base_url=server.url) as client:
                ...


    @pytest.fixture(scope="session")
    def fake_google() -> Iterator[FakeServer]:
        with FakeServer(app) as server:
            yield server

Design: uvicorn runs in a background thread with its own event loop, not as a task
in the test's loop. The test loop (pytest-asyncio, session scoped) stays free, so
the server also answers blocking clients (``httpx.Client``, code under test that is
sync) and session-scoped servers outlive any one test. The price: the app runs in
another loop and thread, so share plain data with it (lists, dicts, attributes
set before a request), never asyncio objects from the test loop.

The socket is bound to port 0 before uvicorn starts, so the port is known at once
and there is no race for a "free" port. ``start()`` returns once uvicorn accepts
connections (after the app's lifespan startup); ``stop()`` waits for it to finish.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from types import TracebackType
from typing import Self

import uvicorn
from starlette.types import ASGIApp

HOST = "127.0.0.1"


class FakeServerError(RuntimeError):
    pass


class FakeServer:
    """One uvicorn server for one ASGI app, on 127.0.0.1 and a port of its own."""

    def __init__(
        self, app: ASGIApp, *, startup_timeout: float = 10.0, keep_alive_seconds: int = 5
    ) -> None:
        self.app = app
        self.startup_timeout = startup_timeout
        # uvicorn's default; a benchmark whose connections idle between phases wants longer
        self.keep_alive_seconds = keep_alive_seconds
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._socket is None:
            raise FakeServerError("the server is not running")
        port: int = self._socket.getsockname()[1]
        return port

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, such as ``http://127.0.0.1:54321``."""
        return f"http://{HOST}:{self.port}"

    def start(self) -> None:
        if self._thread is not None:
            raise FakeServerError("the server is already running")
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind((HOST, 0))
        config = uvicorn.Config(
            self.app,
            loop="asyncio",
            log_config=None,  # leave the test run's logging alone
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=5,
            timeout_keep_alive=self.keep_alive_seconds,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._serve,
            args=(self._server, self._socket),
            name=f"fake-server-{self.port}",
            daemon=True,  # a test that forgets stop() must not hang the run
        )
        self._thread.start()
        self._wait_until_started()

    @staticmethod
    def _serve(server: uvicorn.Server, listening: socket.socket) -> None:
        try:
            server.run(sockets=[listening])
        except SystemExit:  # uvicorn exits when the app's lifespan startup fails
            return

    def _wait_until_started(self) -> None:
        assert self._server is not None
        assert self._thread is not None
        deadline = time.monotonic() + self.startup_timeout
        while not self._server.started:
            if not self._thread.is_alive():
                self._reset()
                raise FakeServerError("the server stopped during startup (see the log)")
            if time.monotonic() > deadline:
                self.stop()
                raise FakeServerError(f"the server did not start in {self.startup_timeout}s")
            time.sleep(0.005)

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout=10)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout=5)
        self._reset()

    def _reset(self) -> None:
        if self._socket is not None:
            self._socket.close()
        self._socket = None
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # Starting and stopping block for a moment; in async code do it off the loop.
    async def __aenter__(self) -> Self:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)
