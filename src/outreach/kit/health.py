"""Liveness and readiness."""

from __future__ import annotations

import asyncio
import time
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class ComponentStatus(BaseModel):
    status: Literal["ok", "error", "disabled"]
    latency_ms: float | None = None
    error: str | None = None


class Readiness(BaseModel):
    status: Literal["ok", "error"]
    components: dict[str, ComponentStatus]


@router.get("/health", summary="Liveness: the process answers (no I/O)")
async def health() -> Health:
    return Health()


async def _timed(check: object) -> ComponentStatus:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(check, timeout=3)  # type: ignore[arg-type]
    except Exception as exc:
        return ComponentStatus(status="error", error=f"{type(exc).__name__}: {exc}"[:200])
    return ComponentStatus(status="ok", latency_ms=round((time.perf_counter() - started) * 1000, 2))


@router.get(
    "/ready",
    summary="Readiness: database, Redis (when configured) and storage answer",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "A component is not ready"}},
)
async def ready(request: Request) -> JSONResponse:
    state = request.app.state
    components: dict[str, ComponentStatus] = {}

    components["database"] = await _timed(state.database.ping())
    if state.redis is not None:
        components["redis"] = await _timed(state.redis.ping())
    else:
        components["redis"] = ComponentStatus(status="disabled")
    components["storage"] = await _timed(state.storage.check())
    healthy = all(c.status != "error" for c in components.values())
    body = Readiness(status="ok" if healthy else "error", components=components)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=200 if healthy else 503)
