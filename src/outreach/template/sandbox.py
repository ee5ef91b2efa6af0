"""The template language: a small, safe subset of Jinja2.

A template is parsed and every node checked against an allowlist when it is
saved (:mod:`outreach.template.language`): output, names, string constants,
``sender.<field>``, a few filters, ``if``/``elif``/``else``, comparisons and tests,
``and``/``or``/``not``. Loops, macros, includes, ``set``, calls, item access and
arithmetic are refused, because the sandbox alone bounds neither time nor memory
(``{{ 9**9**9 }}``, ``{{ 'x' * 10**9 }}``). Rendering then runs in a
``SandboxedEnvironment`` with ``StrictUndefined``, prints only text, and stops as
soon as the output passes its budget.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, UndefinedError, nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import Undefined
from jinja2.sandbox import SandboxedEnvironment
from jinja2.visitor import NodeTransformer

from outreach.template.language import (
    FILTERS,
    MAX_CONST_CHARS,
    MAX_SOURCE_CHARS,
    TESTS,
    TemplateProblem,
    TemplateShape,
    check_template,
)

__all__ = [
    "FILTERS",
    "MAX_CONST_CHARS",
    "MAX_OUTPUT_CHARS",
    "MAX_SOURCE_CHARS",
    "MAX_SUBJECT_CHARS",
    "MAX_VALUE_CHARS",
    "MissingVariables",
    "TemplateProblem",
    "TemplateShape",
    "check_template",
    "render_source",
]

MAX_OUTPUT_CHARS = 100_000
MAX_SUBJECT_CHARS = 300
MAX_VALUE_CHARS = 2_000  # one variable's value: the longest a list cell may be


class MissingVariables(ValueError):
    def __init__(self, names: list[str]) -> None:
        super().__init__(f"no value and no default for: {', '.join(names)}")
        self.names = names


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

    def __contains__(self, item: object) -> bool:  # type: ignore[override]
        return False  # {% if 'VP' in title %} without a title is false, like the title


def _plain_value(value: object) -> object:
    """What ``{{ … }}`` prints: text (or a number), never an object's representation."""
    if isinstance(value, Undefined | str):
        return value  # printing an Undefined raises, naming the missing variable
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    raise TemplateProblem(f"only text can be printed, not {type(value).__name__}", field="body")


def _within(item: object, container: object) -> bool:
    """``item in container`` for texts; a missing value on either side is simply false
    (Python's ``in`` raises when the left side is missing and the right is text)."""
    return isinstance(item, str) and isinstance(container, str) and item in container


class _PairwiseIn(NodeTransformer):
    """Rewrites ``a in b`` (and chains such as ``a == b in c``) into the ``_within``
    test, so that a missing value on the left is false, as it is in any other test."""

    def visit_Compare(self, node: nodes.Compare) -> nodes.Node:
        self.generic_visit(node)
        left, parts = node.expr, []
        for operand in node.ops:
            part: nodes.Expr
            if operand.op in ("in", "notin"):
                part = nodes.Test(left, "_within", [operand.expr], [], None, None)
                part = nodes.Not(part) if operand.op == "notin" else part
            else:
                part = nodes.Compare(left, [operand])
            parts.append(part.set_lineno(node.lineno))
            left = operand.expr
        return functools.reduce(lambda a, b: nodes.And(a, b, lineno=node.lineno), parts)


# Names a dict answers as attributes: ``sender.items`` must stay the method, as in Jinja.
_DICT_ATTRIBUTES = frozenset(dir(dict))


class _Environment(SandboxedEnvironment):
    def getattr(self, obj: Any, attribute: str) -> Any:
        """``sender.name``: the sender is the one value read by attribute, a dict of texts.
        Jinja tries the attribute first and takes the key after an AttributeError; a key
        that is no dict attribute gives the same answer without raising one."""
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        return cast(nodes.Template, _PairwiseIn().visit(super()._parse(source, name, filename)))


def _environment(autoescape: bool) -> SandboxedEnvironment:
    env = _Environment(undefined=_Undefined, autoescape=autoescape, finalize=_plain_value)
    own = {name: rule.function for name, rule in FILTERS.items() if rule.function is not None}
    env.filters = own | {"default": env.filters["default"]}
    env.tests = {name: env.tests[name] for name in TESTS} | {"_within": _within}
    env.globals = {}
    return env


_TEXT_ENV = _environment(autoescape=False)
_HTML_ENV = _environment(autoescape=True)


@dataclass(frozen=True)
class _Refusal:
    message: str
    line: int | None


@lru_cache(maxsize=512)
def _prepared(source: str, html: bool) -> Template | _Refusal:
    """The compiled template, or why it may not render. A version saved by an older
    release is checked against today's rules too. Cached: compiling costs far more
    than rendering, and a campaign renders one source 10,000 times."""
    try:
        check_template(source, field_name="body")
        template = (_HTML_ENV if html else _TEXT_ENV).from_string(source)
        # No template has globals (the environment's are emptied). Jinja's own empty
        # ChainMap would be walked at every render to list them; a dict costs nothing.
        template.globals = {}
        return template
    except TemplateProblem as exc:
        return _Refusal(str(exc), exc.line)
    except (TemplateSyntaxError, RecursionError) as exc:
        return _Refusal(f"it cannot be compiled ({type(exc).__name__})", None)


def _stream(template: Template, context: dict[str, Any], budget: int) -> str:
    """Render piece by piece, stopping as soon as the text passes ``budget``: the
    whole text is never built when it is too long (a long value printed 200 times)."""
    parts: list[str] = []
    used = 0
    # What ``template.generate`` does, without its copies of the context (``shared``:
    # the render only reads it) and without a generator around the generator; an
    # error reaches render_source as raised, which names it.
    for chunk in template.root_render_func(template.new_context(context, shared=True)):
        used += len(chunk)
        if used > budget:
            raise TemplateProblem(
                f"the rendered text is longer than {budget} characters", field="body"
            )
        parts.append(chunk)
    return "".join(parts)


def render_source(
    source: str,
    context: Mapping[str, Any],
    *,
    html: bool = False,
    field_name: str = "body",
    budget: int = MAX_OUTPUT_CHARS,
) -> str:
    """Render a template; raises :class:`MissingVariables` or :class:`TemplateProblem`,
    never anything else, whatever the source and the values."""
    prepared = _prepared(source, html)
    if isinstance(prepared, _Refusal):
        raise TemplateProblem(
            f"this template no longer renders; edit and save it again: {prepared.message}",
            field=field_name,
            line=prepared.line,
        )
    try:
        return _stream(prepared, context if type(context) is dict else dict(context), budget)
    except UndefinedError as exc:
        raise MissingVariables([_undefined_name(str(exc))]) from exc
    except TemplateProblem as exc:
        raise TemplateProblem(str(exc), field=field_name, line=exc.line) from exc
    except SecurityError as exc:
        raise TemplateProblem(f"not allowed: {exc}", field=field_name) from exc
    except Exception as exc:  # the template's failure for these values, never a 500
        raise TemplateProblem(f"cannot be rendered: {exc}", field=field_name) from exc


def _undefined_name(message: str) -> str:
    # Jinja says "'first_name' is undefined" or "'dict object' has no attribute 'x'"
    # (the sender is the only value with attributes).
    parts = message.split("'")
    if "has no attribute" in message and len(parts) >= 4:
        return f"sender.{parts[3]}"
    return parts[1] if len(parts) >= 2 else message
