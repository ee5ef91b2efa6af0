"""What a template may say, checked when it is saved: the one vocabulary and the limits.

A saved template renders or refuses one recipient cleanly; it never fails on its own
shape. So the check here bounds size and nesting (before Jinja's recursive parser
sees the text), allows each filter only the arguments it takes, and gives every
expression a kind: ``text``, ``bool`` or ``none``. Only text is printed, ``in`` is
only between texts, and ``sender`` is only read as ``sender.<field>``: no object, no
method and no ``self`` ever reaches an email. ``GET /v1/templates/variables`` lists
from the same vocabulary (:data:`RECIPIENT_FIELDS`, :data:`SENDER_FIELDS`,
:func:`usable_name`).
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from jinja2 import Environment, TemplateSyntaxError, nodes

RECIPIENT_FIELDS = ("email", "first_name", "last_name", "full_name", "company", "title")
SENDER_FIELDS = ("name", "first_name", "email", "target_role", "top_skills", "years_experience")
# Names Jinja gives a meaning of its own (``self`` is the template object), and the
# sender, which is only read field by field.
RESERVED_NAMES = frozenset({"self", "sender", "loop", "caller", "varargs", "kwargs", "super"})

MAX_SOURCE_CHARS = 50_000
MAX_EXPRESSIONS = 200  # {{ … }} and {% … %} tags per part
MAX_NESTING = 8  # brackets within a tag, and {% if %} blocks within each other
MAX_TAG_PARTS = 40  # names, constants and operators within one tag
MAX_CONST_CHARS = 500

Kind = Literal["text", "bool", "none"]
_PARSER = Environment(autoescape=True)  # parses only; the sandbox renders
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*\Z", re.IGNORECASE)
_JINJA_WORDS = frozenset({"and", "or", "not", "in", "is", "if", "else", "true", "false", "none"})
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


def _first_word(value: object) -> str:
    text = str(value).strip()
    return text.split()[0] if text else ""


def _title(value: object) -> str:
    # str.title() would make "McDonald's" into "Mcdonald'S"; capitalise words instead.
    return " ".join(word[:1].upper() + word[1:] for word in str(value).split(" "))


@dataclass(frozen=True)
class FilterRule:
    """A filter's function (None: Jinja's own) and the kind of each argument it takes."""

    function: Callable[[object], str] | None
    arguments: tuple[Kind, ...] = ()


FILTERS: dict[str, FilterRule] = {
    # Jinja's own: covers undefined (and so empty) values; default(text, use_for_empty)
    "default": FilterRule(None, ("text", "bool")),
    "title": FilterRule(_title),
    "first_word": FilterRule(_first_word),
    "upper": FilterRule(lambda value: str(value).upper()),
    "lower": FilterRule(lambda value: str(value).lower()),
    "capitalize": FilterRule(lambda value: str(value).capitalize()),
    "trim": FilterRule(lambda value: str(value).strip()),
}
TESTS = ("defined", "undefined", "none", "string")


class TemplateProblem(ValueError):
    """A template that may not be saved or rendered; ``field`` names where."""

    def __init__(self, message: str, *, field: str, line: int | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.line = line


@dataclass(frozen=True)
class TemplateShape:
    """What a checked template uses, by the names of ``GET /v1/templates/variables``."""

    variables: list[str]  # e.g. first_name, company, sender.name
    required: list[str]  # used without a default() fallback or an if-guard
    fallbacks: dict[str, str] = field(default_factory=dict)


def usable_name(name: str) -> bool:
    """Whether ``{{ name }}`` can stand for a recipient's value (a list column's too)."""
    return (
        bool(_IDENTIFIER.match(name))
        and not name.startswith("_")
        and name.lower() not in _JINJA_WORDS
        and not keyword.iskeyword(name)
        and name not in RESERVED_NAMES
    )


# --------------------------------------------------------------------------- size and depth


_OPENING, _CLOSING = frozenset("([{"), frozenset(")]}")
_NOT_A_PART = frozenset({"variable_end", "block_end", "whitespace", "data"})


def _size_problem(tags: int, parts: int, brackets: int, blocks: int) -> str | None:
    if tags > MAX_EXPRESSIONS:
        return f"more than {MAX_EXPRESSIONS} expressions ({{{{ … }}}} and {{% … %}})"
    if parts > MAX_TAG_PARTS:
        return f"an expression is too long (more than {MAX_TAG_PARTS} parts)"
    if brackets > MAX_NESTING or blocks > MAX_NESTING:
        return f"nested more than {MAX_NESTING} deep"
    return None


def _check_tokens(source: str, field_name: str) -> None:
    """Bound tags, nesting and tag length on the token stream, so that Jinja's
    recursive parser and compiler never meet a deep template."""
    tags = brackets = blocks = parts = 0
    previous = ""
    for line, lexeme, value in _PARSER.lex(source):
        if lexeme in ("variable_begin", "block_begin"):
            tags, parts = tags + 1, 0
        elif lexeme not in _NOT_A_PART and not lexeme.startswith(("comment", "raw", "linecomment")):
            parts += 1
        if lexeme == "operator":
            brackets += (value in _OPENING) - (value in _CLOSING)
        if previous == "block_begin" and lexeme == "name":
            blocks += {"if": 1, "endif": -1}.get(value, 0)
        problem = _size_problem(tags, parts, brackets, blocks)
        if problem is not None:
            raise TemplateProblem(problem, field=field_name, line=line)
        previous = previous if lexeme == "whitespace" else lexeme


def _parse(source: str, field_name: str) -> nodes.Template:
    if len(source) > MAX_SOURCE_CHARS:
        raise TemplateProblem(f"longer than {MAX_SOURCE_CHARS} characters", field=field_name)
    try:
        _check_tokens(source, field_name)
        return _PARSER.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateProblem(
            f"syntax error: {exc.message}", field=field_name, line=exc.lineno
        ) from exc
    except RecursionError as exc:  # the bounds above should make this unreachable
        raise TemplateProblem("nested too deep", field=field_name) from exc


# --------------------------------------------------------------------------- kinds


class _Checker:
    """Gives each expression its kind, refusing what would fail or leak at render."""

    def __init__(self, field_name: str) -> None:
        self.field_name = field_name

    def refuse(self, message: str, node: nodes.Node) -> TemplateProblem:
        return TemplateProblem(message, field=self.field_name, line=getattr(node, "lineno", None))

    def statement(self, node: nodes.Node) -> None:
        if isinstance(node, nodes.Output):
            for child in node.nodes:
                if not isinstance(child, nodes.TemplateData) and self.kind(child) != "text":
                    raise self.refuse(
                        "only text can be printed ({{ … }} here gives true, false or none)",
                        child,
                    )
        elif isinstance(node, nodes.If):
            self.kind(node.test)
            for inner in [*node.body, *node.elif_, *node.else_]:
                self.statement(inner)

    def kind(self, node: nodes.Node) -> Kind:
        if isinstance(node, nodes.Const):
            if node.value is None:
                return "none"
            return "bool" if isinstance(node.value, bool) else "text"
        if isinstance(node, nodes.Name):
            return self.name(node)
        if isinstance(node, nodes.Getattr):
            return self.sender_field(node)
        if isinstance(node, nodes.Filter):
            return self.filter(node)
        if isinstance(node, nodes.Compare):
            return self.compare(node)
        if isinstance(node, nodes.Test):
            self.kind(node.node)
            return "bool"
        if isinstance(node, nodes.Not):
            self.kind(node.node)
            return "bool"
        if isinstance(node, nodes.And | nodes.Or):
            kinds = {self.kind(node.left), self.kind(node.right)}
            return "text" if kinds == {"text"} else "bool"
        if isinstance(node, nodes.CondExpr):
            return self.condition(node)
        raise self.refuse(f"{type(node).__name__} is not allowed here", node)

    def name(self, node: nodes.Name) -> Kind:
        if node.name == "sender":
            raise self.refuse(
                f"use the sender's fields: sender.{', sender.'.join(SENDER_FIELDS)}", node
            )
        if not usable_name(node.name):
            raise self.refuse(f"{node.name!r} is not a variable", node)
        return "text"

    def sender_field(self, node: nodes.Getattr) -> Kind:
        if not (isinstance(node.node, nodes.Name) and node.node.name == "sender"):
            raise self.refuse("attributes are only read as sender.<field>", node)
        if node.attr not in SENDER_FIELDS:
            raise self.refuse(
                f"sender has no field {node.attr!r}; use one of {', '.join(SENDER_FIELDS)}",
                node,
            )
        return "text"

    def filter(self, node: nodes.Filter) -> Kind:
        rule = FILTERS[node.name]
        if node.node is None or self.kind(node.node) != "text":
            raise self.refuse(f"the {node.name} filter applies to text only", node)
        if len(node.args) > len(rule.arguments):
            takes = f"at most {len(rule.arguments)}" if rule.arguments else "no"
            raise self.refuse(f"the {node.name} filter takes {takes} arguments", node)
        for argument, expected in zip(node.args, rule.arguments, strict=False):
            if self.kind(argument) != expected or (
                expected == "bool" and not isinstance(argument, nodes.Const)
            ):
                raise self.refuse(f"the {node.name} filter's arguments are: {rule.arguments}", node)
        return "text"

    def compare(self, node: nodes.Compare) -> Kind:
        left = self.kind(node.expr)
        for operand in node.ops:
            right = self.kind(operand.expr)
            if operand.op in ("in", "notin") and (left, right) != ("text", "text"):
                raise self.refuse("'in' compares a text with a text", node)
            left = right
        return "bool"

    def condition(self, node: nodes.CondExpr) -> Kind:
        if node.expr2 is None:
            raise self.refuse("an inline if needs an else: {{ a if b else '' }}", node)
        self.kind(node.test)
        kinds = {self.kind(node.expr1), self.kind(node.expr2)}
        return "text" if kinds == {"text"} else "bool"


# --------------------------------------------------------------------------- the check


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
    if isinstance(node, nodes.Const) and len(str(node.value)) > MAX_CONST_CHARS:
        raise TemplateProblem("a text constant is too long", field=field_name, line=line)
    if isinstance(node, nodes.Name) and node.ctx != "load":
        raise TemplateProblem("assignments are not allowed", field=field_name, line=line)
    if isinstance(node, nodes.Filter):
        if node.name not in FILTERS:
            raise TemplateProblem(
                f"unknown filter {node.name!r}; use one of {', '.join(sorted(FILTERS))}",
                field=field_name,
                line=line,
            )
        if node.kwargs or node.dyn_args or node.dyn_kwargs:
            raise TemplateProblem("filters take plain arguments only", field=field_name, line=line)
    if isinstance(node, nodes.Test) and (
        node.name not in TESTS or node.args or node.kwargs or node.dyn_args or node.dyn_kwargs
    ):
        raise TemplateProblem(f"unknown test {node.name!r}", field=field_name, line=line)
    if isinstance(node, nodes.Operand) and node.op not in _ALLOWED_COMPARISONS:
        raise TemplateProblem(
            "only ==, !=, in and not in comparisons are allowed", field=field_name, line=line
        )


def _reference(node: nodes.Node) -> str | None:
    """The variable a node reads, by its listed name (``sender.name``), if any."""
    if isinstance(node, nodes.Getattr) and isinstance(node.node, nodes.Name):
        return f"{node.node.name}.{node.attr}"
    if isinstance(node, nodes.Name) and node.name != "sender":
        return node.name
    return None


def _references(node: nodes.Node) -> frozenset[str]:
    found = {_reference(n) for n in node.find_all((nodes.Name, nodes.Getattr))}
    found.add(_reference(node))
    return frozenset(name for name in found if name is not None)


def _walk(node: nodes.Node, guards: frozenset[str]) -> Iterator[tuple[nodes.Node, frozenset[str]]]:
    yield node, guards
    if isinstance(node, nodes.If):
        guarded = guards | _references(node.test)
        yield from _walk(node.test, guarded)  # a test of an empty value is simply false
        for child in node.body:
            yield from _walk(child, guarded)
        for elif_ in node.elif_:
            yield from _walk(elif_, guarded)
        for child in node.else_:
            yield from _walk(child, guards)
        return
    if isinstance(node, nodes.CondExpr):
        guarded = guards | _references(node.test)
        yield from _walk(node.test, guarded)
        yield from _walk(node.expr1, guarded)
        if node.expr2 is not None:
            yield from _walk(node.expr2, guards)
        return
    if isinstance(node, nodes.Filter) and node.name == "default" and node.node is not None:
        # The value under default() needs no value of its own.
        guards = guards | _references(node.node)
    for child in node.iter_child_nodes():
        yield from _walk(child, guards)


def check_template(source: str, *, field_name: str) -> TemplateShape:
    """Parse and check one template source; raises :class:`TemplateProblem`."""
    tree = _parse(source, field_name)
    variables: list[str] = []
    required: list[str] = []
    fallbacks: dict[str, str] = {}
    for node, guards in _walk(tree, frozenset()):
        _check_node(node, field_name)
        if isinstance(node, nodes.Filter) and node.name == "default" and node.args:
            target, value = _reference(node.node) if node.node else None, node.args[0]
            if target is not None and isinstance(value, nodes.Const):
                fallbacks.setdefault(target, str(value.value))
        name = _reference(node)
        if name is not None:
            variables += [name] if name not in variables else []
            required += [name] if name not in guards and name not in required else []
    checker = _Checker(field_name)
    for statement in tree.body:
        checker.statement(statement)
    return TemplateShape(variables=variables, required=required, fallbacks=fallbacks)
