"""The template language: a small, safe subset of Jinja2.

A template is parsed and every node checked against an allowlist when it is
saved: output, names, string constants, attribute access, a few filters,
``if``/``elif``/``else``, comparisons and tests, ``and``/``or``/``not``.
Loops, macros, includes, ``set``, calls, item access and arithmetic are
refused, because the sandbox alone bounds neither time nor memory
(``{{ 9**9**9 }}``, ``{{ 'x' * 10**9 }}``). Rendering then runs in a
``SandboxedEnvironment`` with ``StrictUndefined`` and an output cap.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, UndefinedError, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

MAX_SOURCE_CHARS = 50_000
MAX_OUTPUT_CHARS = 100_000
MAX_SUBJECT_CHARS = 300
MAX_CONST_CHARS = 500
MAX_VALUE_CHARS = 2_000


def _first_word(value: object) -> str:
    text = str(value).strip()
    return text.split()[0] if text else ""


def _title(value: object) -> str:
    # str.title() would make "McDonald's" into "Mcdonald'S"; capitalise words instead.
    return " ".join(word[:1].upper() + word[1:] for word in str(value).split(" "))


def _trim(value: object) -> str:
    return str(value).strip()


FILTERS = {
    "default": None,  # Jinja's own: covers undefined (and so empty) values
    "title": _title,
    "first_word": _first_word,
    "upper": lambda value: str(value).upper(),
    "lower": lambda value: str(value).lower(),
    "capitalize": lambda value: str(value).capitalize(),
    "trim": _trim,
}
TESTS = {"defined", "undefined", "none", "string"}
_ALLOWED_NODES: tuple[type[nodes.Node], ...] = (
    nodes.Template,
    nodes.Output,
    nodes.TemplateData,
    nodes.Name,
    nodes.Const,
    nodes.Getattr,
    nodes.Filter,
    nodes.Test,
    nodes.If,
    nodes.CondExpr,
    nodes.Compare,
    nodes.Operand,
    nodes.And,
    nodes.Or,
    nodes.Not,
)
_ALLOWED_COMPARISONS = {"eq", "ne", "in", "notin"}


class TemplateProblem(ValueError):
    """A template that may not be saved or rendered; ``field`` names where."""

    def __init__(self, message: str, *, field: str, line: int | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.line = line


class MissingVariables(ValueError):
    def __init__(self, names: list[str]) -> None:
        super().__init__(f"no value and no default for: {', '.join(names)}")
        self.names = names


@dataclass(frozen=True)
class TemplateShape:
    """What a checked template uses."""

    variables: list[str]  # top-level names, e.g. first_name, company, sender
    required: list[str]  # used without a default() fallback or an if-guard
    fallbacks: dict[str, str] = field(default_factory=dict)


class _Undefined(StrictUndefined):
    """Printing a missing value fails, but testing it (``{% if company %}``) is false."""

    def __bool__(self) -> bool:  # type: ignore[override]
        return False

    def __eq__(self, other: object) -> bool:  # type: ignore[override]
        return type(self) is type(other)

    def __ne__(self, other: object) -> bool:  # type: ignore[override]
        return not self.__eq__(other)

    def __hash__(self) -> int:  # type: ignore[override]
        return id(type(self))


def _environment(autoescape: bool) -> SandboxedEnvironment:
    env = SandboxedEnvironment(undefined=_Undefined, autoescape=autoescape)
    env.filters = {name: fn for name, fn in FILTERS.items() if fn is not None} | {
        "default": env.filters["default"]
    }
    env.tests = {name: env.tests[name] for name in TESTS}
    env.globals = {}
    return env


_TEXT_ENV = _environment(autoescape=False)
_HTML_ENV = _environment(autoescape=True)


def _names(node: nodes.Node) -> frozenset[str]:
    found = {n.name for n in node.find_all(nodes.Name)}
    if isinstance(node, nodes.Name):
        found.add(node.name)
    return frozenset(found)


def _walk(node: nodes.Node, guards: frozenset[str]) -> Iterator[tuple[nodes.Node, frozenset[str]]]:
    yield node, guards
    if isinstance(node, nodes.If):
        guarded = guards | _names(node.test)
        yield from _walk(node.test, guarded)  # a test of an empty value is simply false
        for child in node.body:
            yield from _walk(child, guarded)
        for elif_ in node.elif_:
            yield from _walk(elif_, guarded)
        for child in node.else_:
            yield from _walk(child, guards)
        return
    if isinstance(node, nodes.CondExpr):
        guarded = guards | _names(node.test)
        yield from _walk(node.test, guarded)
        yield from _walk(node.expr1, guarded)
        if node.expr2 is not None:
            yield from _walk(node.expr2, guards)
        return
    if isinstance(node, nodes.Filter) and node.name == "default" and node.node is not None:
        # The value under default() needs no value of its own.
        guards = guards | _names(node.node)
    for child in node.iter_child_nodes():
        yield from _walk(child, guards)


def _check_node(node: nodes.Node, field_name: str) -> None:
    line = getattr(node, "lineno", None)
    if not isinstance(node, _ALLOWED_NODES):
        kind = type(node).__name__
        raise TemplateProblem(
            f"{kind} is not allowed in templates (only variables, filters, if/else and "
            "comparisons)",
            field=field_name,
            line=line,
        )
    if isinstance(node, nodes.Const) and not (
        node.value is None or isinstance(node.value, bool | str)
    ):
        raise TemplateProblem("only text constants are allowed", field=field_name, line=line)
    if (
        isinstance(node, nodes.Const)
        and isinstance(node.value, str)
        and len(node.value) > MAX_CONST_CHARS
    ):
        raise TemplateProblem("a text constant is too long", field=field_name, line=line)
    if isinstance(node, nodes.Name) and node.ctx != "load":
        raise TemplateProblem("assignments are not allowed", field=field_name, line=line)
    if isinstance(node, nodes.Name | nodes.Getattr):
        name = node.name if isinstance(node, nodes.Name) else node.attr
        if name.startswith("_"):
            raise TemplateProblem(f"{name!r} is not a variable", field=field_name, line=line)
    if isinstance(node, nodes.Filter):
        if node.name not in FILTERS:
            raise TemplateProblem(
                f"unknown filter {node.name!r}; use one of {', '.join(sorted(FILTERS))}",
                field=field_name,
                line=line,
            )
        if node.kwargs or node.dyn_args or node.dyn_kwargs:
            raise TemplateProblem("filters take plain arguments only", field=field_name, line=line)
    if isinstance(node, nodes.Test) and node.name not in TESTS:
        raise TemplateProblem(f"unknown test {node.name!r}", field=field_name, line=line)
    if isinstance(node, nodes.Operand) and node.op not in _ALLOWED_COMPARISONS:
        raise TemplateProblem(
            "only ==, !=, in and not in comparisons are allowed", field=field_name, line=line
        )


def check_template(source: str, *, field_name: str) -> TemplateShape:
    """Parse and check one template source; raises :class:`TemplateProblem`."""
    if len(source) > MAX_SOURCE_CHARS:
        raise TemplateProblem(f"longer than {MAX_SOURCE_CHARS} characters", field=field_name)
    try:
        tree = _TEXT_ENV.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateProblem(
            f"syntax error: {exc.message}", field=field_name, line=exc.lineno
        ) from exc
    variables: list[str] = []
    required: list[str] = []
    fallbacks: dict[str, str] = {}
    for node, guards in _walk(tree, frozenset()):
        _check_node(node, field_name)
        if isinstance(node, nodes.Filter) and node.name == "default" and node.args:
            target, value = node.node, node.args[0]
            if isinstance(target, nodes.Name) and isinstance(value, nodes.Const):
                fallbacks.setdefault(target.name, str(value.value))
        if isinstance(node, nodes.Name):
            if node.name not in variables:
                variables.append(node.name)
            if node.name not in guards and node.name not in required:
                required.append(node.name)
    return TemplateShape(variables=variables, required=required, fallbacks=fallbacks)


@lru_cache(maxsize=512)
def _compiled(source: str, html: bool) -> Template:
    # Compiling costs far more than rendering; a campaign renders one source 10,000 times.
    return (_HTML_ENV if html else _TEXT_ENV).from_string(source)


def render_source(source: str, context: Mapping[str, Any], *, html: bool = False) -> str:
    """Render a checked template; raises :class:`MissingVariables` or :class:`TemplateProblem`."""
    try:
        output = _compiled(source, html).render(dict(context))
    except UndefinedError as exc:
        raise MissingVariables([_undefined_name(str(exc))]) from exc
    except SecurityError as exc:
        raise TemplateProblem(f"not allowed: {exc}", field="body") from exc
    if len(output) > MAX_OUTPUT_CHARS:
        raise TemplateProblem(
            f"the rendered text is longer than {MAX_OUTPUT_CHARS} characters", field="body"
        )
    return output


def _undefined_name(message: str) -> str:
    # Jinja says "'first_name' is undefined" or "'dict object' has no attribute 'x'".
    parts = message.split("'")
    if "has no attribute" in message and len(parts) >= 4:
        return parts[3]
    return parts[1] if len(parts) >= 2 else message
