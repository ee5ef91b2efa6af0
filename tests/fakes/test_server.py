from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.fakes.server import FakeServer, FakeServerError


def _app(name: str) -> Starlette:
    received: list[dict[str, object]] = []

    async def hello(request: Request) -> JSONResponse:
        return JSONResponse({"server": name, "path": request.url.path})

    async def record(request: Request) -> JSONResponse:
        received.append(await request.json())
        return JSONResponse({"received": len(received)}, status_code=201)

    app = Starlette(routes=[Route("/hello", hello), Route("/record", record, methods=["POST"])])
    app.state.received = received
    return app


class TestFakeServer:
    def test_answers_a_blocking_client(self) -> None:
        with FakeServer(_app("one")) as server:
            response = httpx.get(f"{server.url}/hello")

        assert response.status_code == 200
        assert response.json() == {"server": "one", "path": "/hello"}

    async def test_answers_an_async_client(self) -> None:
        app = _app("one")
        async with (
            FakeServer(app) as server,
            httpx.AsyncClient(base_url=server.url) as client,
        ):
            response = await client.post("/record", json={"to": "hr@example.com"})

        assert response.status_code == 201
        assert response.json() == {"received": 1}
        assert app.state.received == [{"to": "hr@example.com"}]

    async def test_two_servers_at_once_on_different_ports(self) -> None:
        async with FakeServer(_app("google")) as google, FakeServer(_app("razorpay")) as razorpay:
            assert google.port != razorpay.port
            async with httpx.AsyncClient() as client:
                answers = await asyncio.gather(
                    client.get(f"{google.url}/hello"), client.get(f"{razorpay.url}/hello")
                )

        assert [answer.json()["server"] for answer in answers] == ["google", "razorpay"]

    def test_url_is_loopback_with_the_port(self) -> None:
        with FakeServer(_app("one")) as server:
            assert server.url == f"http://127.0.0.1:{server.port}"
            assert not server.url.endswith("/")

    def test_stop_closes_the_port(self) -> None:
        server = FakeServer(_app("one"))
        server.start()
        url = server.url
        server.stop()

        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/hello")
        with pytest.raises(FakeServerError):
            _ = server.url
        server.stop()  # stopping twice is harmless

    def test_can_be_restarted(self) -> None:
        server = FakeServer(_app("one"))
        with server:
            assert httpx.get(f"{server.url}/hello").status_code == 200
        with server:
            assert httpx.get(f"{server.url}/hello").status_code == 200

    def test_runs_the_app_lifespan(self) -> None:
        events: list[str] = []

        @asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            events.append("startup")
            yield
            events.append("shutdown")

        with FakeServer(Starlette(lifespan=lifespan)):
            assert events == ["startup"]

        assert events == ["startup", "shutdown"]

    def test_failed_startup_raises(self) -> None:
        @asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            raise RuntimeError("cannot start")
            yield

        with (
            pytest.raises(FakeServerError, match="startup"),
            FakeServer(Starlette(lifespan=lifespan)),
        ):
            pass
