"""The OpenAPI document: FastAPI's, completed with what the shared machinery answers.

FastAPI documents what each endpoint declares. What the machinery every
endpoint shares can answer is added here, once, to each operation it applies
to, so a new endpoint cannot forget it (``tests/contract`` fuzzes the app
against this document):

* the ``Problem`` schema, and every 422 as ``application/problem+json``
  (FastAPI documents its own ``HTTPValidationError`` JSON, which we never send);
* what dependencies declare with :func:`declares_problems` (the session's 401,
  the CSRF check's and the admin guard's 403, a bad pagination cursor's 400,
  the ``Idempotency-Key``'s 400/409/422, 503 when the database cannot be
  reached, ...) and with :func:`documents_parameters` (a header a dependency
  reads and checks itself, such as ``Idempotency-Key``);
* 400 and 413 on every operation taking a body (a body that cannot be parsed,
  a body over ``OUTREACH_MAX_BODY_BYTES``);
* 404 on every operation with a UUID path segment (``kit.routing``: a
  malformed id names no resource).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterator
from typing import Any, TypeVar

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from starlette.convertors import UUIDConvertor

from outreach.kit.errors import PROBLEM_JSON, Problem, problem_responses

BODY_PROBLEMS = (400, 413)
_PROBLEMS_ATTRIBUTE = "__outreach_problem_statuses__"
_PARAMETERS_ATTRIBUTE = "__outreach_openapi_parameters__"
_FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")
Call = TypeVar("Call", bound=Callable[..., Any])


def declares_problems(
    *statuses: int, methods: Collection[str] | None = None
) -> Callable[[Call], Call]:
    """Mark a dependency with the problem statuses it can answer (for ``methods``
    only, when given); every operation using it declares them."""

    def mark(call: Call) -> Call:
        only = frozenset(method.upper() for method in methods) if methods else None
        declared = [*getattr(call, _PROBLEMS_ATTRIBUTE, []), (frozenset(statuses), only)]
        setattr(call, _PROBLEMS_ATTRIBUTE, declared)
        return call

    return mark


def declared_problems(call: Callable[..., Any], method: str) -> set[int]:
    """The statuses :func:`declares_problems` put on ``call`` for an HTTP ``method``."""
    declared: list[tuple[frozenset[int], frozenset[str] | None]] = getattr(
        call, _PROBLEMS_ATTRIBUTE, []
    )
    return {
        status
        for statuses, only in declared
        if only is None or method.upper() in only
        for status in statuses
    }


def documents_parameters(*parameters: dict[str, Any]) -> Callable[[Call], Call]:
    """Mark a dependency with OpenAPI parameter objects it reads and checks itself
    (FastAPI's own validation would answer 422 instead of the dependency's problem)."""

    def mark(call: Call) -> Call:
        setattr(
            call, _PARAMETERS_ATTRIBUTE, [*getattr(call, _PARAMETERS_ATTRIBUTE, []), *parameters]
        )
        return call

    return mark


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document (see the module docstring)."""
    schema = get_openapi(
        title=app.title, version=app.version, summary=app.summary, routes=app.routes
    )
    _add_problem_schema(schema)
    for route in iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        for method in route.methods or ():
            operation = schema["paths"].get(route.path_format, {}).get(method.lower())
            if operation is not None:
                _complete_operation(operation, route, method)
    _drop_unused_fastapi_schemas(schema)
    return schema


def _add_problem_schema(schema: dict[str, Any]) -> None:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in problem.pop("$defs", {}).items():
        components.setdefault(name, definition)
    components["Problem"] = problem


def _dependency_calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for dependency in dependant.dependencies:
        if dependency.call is not None:
            yield dependency.call
        yield from _dependency_calls(dependency)


def _problem_statuses(route: RouteContext, method: str, operation: dict[str, Any]) -> set[int]:
    statuses: set[int] = set()
    for call in _dependency_calls(route.dependant):
        statuses |= declared_problems(call, method)
    if "requestBody" in operation:
        statuses.update(BODY_PROBLEMS)
    if any(isinstance(c, UUIDConvertor) for c in route.param_convertors.values()):
        statuses.add(404)
    return statuses


def _add_parameters(operation: dict[str, Any], route: RouteContext) -> None:
    parameters: list[dict[str, Any]] = operation.get("parameters", [])
    present = {(p["name"].lower(), p["in"]) for p in parameters}
    for call in _dependency_calls(route.dependant):
        for parameter in getattr(call, _PARAMETERS_ATTRIBUTE, []):
            if (parameter["name"].lower(), parameter["in"]) not in present:
                parameters.append(parameter)
                present.add((parameter["name"].lower(), parameter["in"]))
    if parameters:
        operation["parameters"] = parameters


def _complete_operation(operation: dict[str, Any], route: RouteContext, method: str) -> None:
    _add_parameters(operation, route)
    responses: dict[str, Any] = operation.setdefault("responses", {})
    validation = responses.get("422", {}).get("content", {})
    if "application/json" in validation and PROBLEM_JSON not in validation:
        # Request validation answers problem+json (kit.exception_handlers), not FastAPI's JSON.
        responses["422"] = problem_responses(422)[422]
    for status, response in problem_responses(*_problem_statuses(route, method, operation)).items():
        responses.setdefault(str(status), response)
    operation["responses"] = dict(sorted(responses.items()))


def _drop_unused_fastapi_schemas(schema: dict[str, Any]) -> None:
    components = schema["components"]["schemas"]
    for name in _FASTAPI_VALIDATION_SCHEMAS:
        definition = components.pop(name, None)
        if definition is not None and f'"#/components/schemas/{name}"' in json.dumps(schema):
            components[name] = definition
