"""Routing the HTTP contract needs: typed id segments, storable text, a truthful ``Allow``.

* :class:`ApiRoute` (every router's route class, through ``IdempotentRoute``)
  makes a ``uuid.UUID`` path parameter match only a UUID (Starlette's
  ``{name:uuid}`` convertor). Without it ``/v1/templates/variables`` and
  ``/v1/templates/{template_id}`` compete: ``DELETE /v1/templates/variables``
  reached the template route and answered 422 (or 401 before that) about a
  malformed template id, where the resource ``/v1/templates/variables`` simply
  has no DELETE (405). A malformed id now names no resource: 404.
* It also refuses text holding a NUL character (U+0000) in a path parameter,
  a declared query parameter or the body with a 422 naming the field:
  PostgreSQL cannot store or even compare such text and answered 500.
* :func:`allowed_methods` lists every method any route serves at a path.
  Starlette keeps one route per method, so the 405 it raises carries the
  ``Allow`` of the one route that matched the path, not of the resource.
"""

from __future__ import annotations

import typing
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import Depends, FastAPI, Request, params
from fastapi.dependencies.utils import get_flat_params, get_typed_signature
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.datastructures import UploadFile
from starlette.routing import Match
from starlette.types import Scope

NUL = "\x00"
_NUL_MESSAGE = "text may not contain the NUL character (U+0000)"


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


def _nul_locations(value: Any, location: tuple[str | int, ...]) -> Iterator[tuple[str | int, ...]]:
    if isinstance(value, str):
        if NUL in value:
            yield location
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and NUL in key:
                yield (*location, key)
            yield from _nul_locations(item, (*location, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _nul_locations(item, (*location, index))


def _is_json(request: Request) -> bool:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return content_type.startswith("application/") and (
        content_type.endswith("/json") or content_type.endswith("+json")
    )


async def _parsed_body(request: Request, route: APIRoute) -> Any:
    # Only what FastAPI has already parsed for this route (cached on the request).
    if route.body_field is None:
        return None
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        form = await request.form()
        # A file's bytes go to storage; its name, like every other field, to the database.
        return {k: v.filename if isinstance(v, UploadFile) else v for k, v in form.multi_items()}
    if _is_json(request) and await request.body():
        return await request.json()
    return None


async def refuse_nul_text(request: Request) -> None:
    """422 for a NUL character in a path parameter, a declared query parameter or the body."""
    route = request.scope.get("route")
    if not isinstance(route, ApiRoute):
        return
    locations = [*_nul_locations(request.path_params, ("path",))]
    for name, value in request.query_params.multi_items():
        if name in route.declared_query and NUL in value:
            locations.append(("query", name))
    locations.extend(_nul_locations(await _parsed_body(request, route), ("body",)))
    if locations:
        raise RequestValidationError(
            [{"type": "string_nul", "loc": loc, "msg": _NUL_MESSAGE} for loc in locations]
        )


class ApiRoute(APIRoute):
    """The base of every route: UUID-only id segments and no NUL characters in text
    (see the module docstring). The OpenAPI path (``path_format``) is unchanged."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        kwargs["dependencies"] = [Depends(refuse_nul_text), *(kwargs.get("dependencies") or [])]
        super().__init__(with_uuid_segments(path, endpoint), endpoint, **kwargs)
        self.declared_query = frozenset(
            field.alias
            for field in get_flat_params(self.dependant)
            if isinstance(field.field_info, params.Query)
        )


def allowed_methods(app: FastAPI, scope: Scope) -> list[str]:
    """Every method some route of ``app`` serves at the path of ``scope``, sorted."""
    probe = {**scope, "type": "http"}
    methods: set[str] = set()
    for route in iter_route_contexts(app.router.routes):
        route_methods = route.methods
        if route_methods and route.matches(probe)[0] != Match.NONE:
            methods.update(route_methods)
    return sorted(methods)
