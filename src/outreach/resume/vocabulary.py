"""The curated keyword data shipped with the package (``data/keywords.json``):
skills with their synonyms, keyword lists per common role, action verbs."""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

from rapidfuzz import fuzz, process


@dataclass(frozen=True)
class Skill:
    name: str
    aliases: tuple[str, ...]


@dataclass(frozen=True)
class Role:
    name: str
    aliases: tuple[str, ...]
    must: tuple[str, ...]
    nice: tuple[str, ...]


@dataclass(frozen=True)
class Vocabulary:
    skills: tuple[Skill, ...]
    roles: tuple[Role, ...]
    action_verbs: frozenset[str]
    weak_phrases: tuple[str, ...]

    def skill(self, name: str) -> Skill:
        return next(skill for skill in self.skills if skill.name == name)


def term_pattern(term: str) -> re.Pattern[str]:
    """A whole-word pattern for a skill term. Short or capitalised terms ("Go", "ML",
    "Node") match in their own case only, so "go" or "ml" in prose do not count."""
    body = r"\s*".join(re.escape(part) for part in term.split())
    pattern = rf"(?<![\w+#./-]){body}(?![\w+#]|\.\w)"
    return re.compile(pattern, 0 if _is_case_sensitive(term) else re.IGNORECASE)


@functools.cache
def vocabulary() -> Vocabulary:
    raw = json.loads(resources.files("outreach.resume").joinpath("data/keywords.json").read_text())
    skills = tuple(Skill(name, tuple(aliases)) for name, aliases in raw["skills"].items())
    roles = tuple(
        Role(name, tuple(spec["aliases"]), tuple(spec["must"]), tuple(spec["nice"]))
        for name, spec in raw["roles"].items()
    )
    return Vocabulary(
        skills=skills,
        roles=roles,
        action_verbs=frozenset(raw["action_verbs"]),
        weak_phrases=tuple(raw["weak_phrases"]),
    )


def _is_case_sensitive(term: str) -> bool:
    return len(term) <= 4 and any(ch.isupper() for ch in term)


def _key(text: str) -> str:
    return " ".join(text.lower().split())


def _trie_pattern(terms: list[str]) -> str:
    """An alternation of lower-case terms as a trie ("go|golang" → "go(?:lang)?"), so
    the engine tries a handful of branches per position instead of every term; the
    longest term wins. A space matches any run of white space."""
    trie: dict[str, Any] = {}
    for term in terms:
        node = trie
        for char in term:
            node = node.setdefault(char, {})
        node[""] = {}

    def render(node: dict[str, Any]) -> str:
        branches = [
            (r"\s+" if char == " " else re.escape(char)) + render(child)
            for char, child in sorted(node.items())
            if char
        ]
        if not branches:
            return ""
        group = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{group})?" if "" in node else group

    return render(trie)


@functools.cache
def _skill_scanner() -> tuple[re.Pattern[str], dict[str, list[tuple[str, str]]]]:
    """One pattern for every skill term (longest first) and, per lower-cased term,
    the (skill, term as written) pairs it may stand for."""
    lookup: dict[str, list[tuple[str, str]]] = {}
    for skill in vocabulary().skills:
        for term in (skill.name, *skill.aliases):
            lookup.setdefault(_key(term), []).append((skill.name, term))
    body = _trie_pattern(sorted(lookup))
    return re.compile(rf"(?<![\w+#./-])(?:{body})(?![\w+#]|\.\w)", re.IGNORECASE), lookup


def scan_skills(text: str) -> list[tuple[int, str, str]]:
    """(position, skill, text as found) for every skill mention, in one pass. Short
    or capitalised terms ("Go", "ML", "Node") count in their own case only."""
    pattern, lookup = _skill_scanner()
    found: list[tuple[int, str, str]] = []
    for match in pattern.finditer(text):
        start, written = match.start(), match.group(0)
        for skill, term in lookup.get(_key(written), ()):
            if not _is_case_sensitive(term) or " ".join(written.split()) == term:
                found.append((start, skill, written))
                break
    return found


def find_role(target_role: str) -> Role | None:
    """The curated role closest to what the user typed, if any is close enough."""
    choices: dict[str, Role] = {}
    for role in vocabulary().roles:
        for name in (role.name, *role.aliases):
            choices[name.lower()] = role
    match = process.extractOne(
        target_role.lower().strip(), list(choices), scorer=fuzz.token_set_ratio, score_cutoff=80
    )
    return choices[match[0]] if match else None
