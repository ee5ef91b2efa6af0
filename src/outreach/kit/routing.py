"""Routing the HTTP contract needs: typed id segments and a truthful ``Allow``.

* :class:`TypedPathRoute` makes a ``uuid.UUID`` path parameter match only a
  UUID (Starlette's ``{name:uuid}`` convertor). Without it
  ``/v1/templates/variables`` and ``/v1/templates/{template_id}`` compete:
  ``DELETE /v1/templates/variables`` reached the template route and answered
  422 (or 401 before that) about a malformed template id, where the resource
  ``/v1/templates/variables`` simply has no DELETE (405). A malformed id now
  names no resource: 404.
* :func:`allowed_methods` lists every method any route serves at a path.
  Starlette keeps one route per method, so the 405 it raises carries the
  ``Allow`` of the one route that matched the path, not of the resource.
"""

from __future__ import annotations

import typing
import uuid
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.utils import get_typed_signature
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import Match
from starlette.types import Scope


def _is_uuid(annotation: Any) -> bool:
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation is uuid.UUID


def with_uuid_segments(path: str, endpoint: Callable[..., Any]) -> str:
    """``path`` with ``{name}`` turned into ``{name:uuid}`` for the endpoint's UUID parameters."""
    for parameter in get_typed_signature(endpoint).parameters.values():
        if _is_uuid(parameter.annotation):
            path = path.replace("{" + parameter.name + "}", "{" + parameter.name + ":uuid}")
    return path


class TypedPathRoute(APIRoute):
    """An ``APIRoute`` whose UUID path parameters match UUIDs only (see the module docstring).

    The OpenAPI path (``path_format``) is unchanged: ``{template_id}``.
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(with_uuid_segments(path, endpoint), endpoint, **kwargs)


def allowed_methods(app: FastAPI, scope: Scope) -> list[str]:
    """Every method some route of ``app`` serves at the path of ``scope``, sorted."""
    probe = {**scope, "type": "http"}
    methods: set[str] = set()
    for route in iter_route_contexts(app.router.routes):
        route_methods = route.methods
        if route_methods and route.matches(probe)[0] != Match.NONE:
            methods.update(route_methods)
    return sorted(methods)
