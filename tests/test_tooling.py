"""The developer tooling says what CI does: the GitHub workflow runs the same steps
as ``.ci/run``, pre-commit runs the same commands as ``make lint``, and the editor's
launch configurations start commands that exist."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.main import get_command

from outreach.cli import app
from tests.web import browser

ROOT = Path(__file__).resolve().parent.parent
TEST_SERVICES = ("OUTREACH_TEST_DATABASE_URL", "OUTREACH_TEST_REDIS_URL")


def make_targets(command: str) -> list[str]:
    """The make targets a shell line runs (``make lint`` → ``["lint"]``)."""
    words = shlex.split(command)
    return [words[i + 1] for i, word in enumerate(words[:-1]) if word == "make"]


def ci_run_steps() -> list[tuple[str, dict[str, str]]]:
    """Each ``make`` of ``.ci/run`` with the test-service variables it sets or unsets
    (a line continued with ``\\`` is one command)."""
    script = (ROOT / ".ci" / "run").read_text().replace("\\\n", " ")
    steps = []
    for line in script.splitlines():
        for target in make_targets(line):
            env = dict(re.findall(r'(OUTREACH_TEST_\w+)="([^"]*)"', line))
            steps.append((target, env))
    return steps


def workflow() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / ".github/workflows/ci.yml").read_text())
    return loaded


def workflow_steps() -> list[tuple[str, dict[str, str]]]:
    steps = []
    for job in workflow()["jobs"].values():
        for step in job["steps"]:
            for target in make_targets(step.get("run", "")):
                env = {k: str(v) for k, v in (step.get("env") or {}).items() if k in TEST_SERVICES}
                steps.append((target, env))
    return steps


def test_the_workflow_runs_the_steps_of_ci_run_with_the_same_services() -> None:
    expected = ci_run_steps()
    assert [target for target, _ in expected] == ["lint", "test", "test"]
    assert workflow_steps() == expected
    # The PostgreSQL run of .ci/run sets both variables; the SQLite run sets neither.
    assert set(expected[1][1]) == set(TEST_SERVICES)
    assert expected[2][1] == {}


def _first(lines: list[str], *needles: str) -> int:
    return next(i for i, line in enumerate(lines) if any(n in line for n in needles))


def test_both_ci_paths_have_chromium_before_the_first_test_run() -> None:
    """The browser tests fail, not skip, under CI without Chromium: .ci/run (root)
    installs it, the workflow (a non-root runner) uses sudo, both before testing."""
    script = (ROOT / ".ci" / "run").read_text().splitlines()
    assert _first(script, "apt-get install -y chromium") < _first(script, "make test")
    (job,) = workflow()["jobs"].values()
    runs = [str(step.get("run", "")) for step in job["steps"]]
    chromium = _first(runs, "chromium --version")
    assert chromium < _first(runs, "make test")
    assert "sudo" in runs[chromium]
    assert "apt-get install -y -q chromium" in runs[chromium]


def test_the_browser_tests_fail_under_ci_without_chromium(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(browser.shutil, "which", lambda name: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="Chromium is not installed"):
        browser.chromium_path()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        browser.chromium_path()


def test_the_workflow_has_postgres_and_redis_where_the_urls_point() -> None:
    (job,) = workflow()["jobs"].values()
    services = job["services"]
    assert services["postgres"]["image"].startswith("postgres:")
    assert "5432:5432" in services["postgres"]["ports"]
    assert services["postgres"]["env"]["POSTGRES_DB"] == "outreach_ci"
    assert services["redis"]["image"].startswith("redis:")
    assert "6379:6379" in services["redis"]["ports"]
    uv = next(s for s in job["steps"] if str(s.get("uses", "")).startswith("astral-sh/setup-uv"))
    assert uv["with"]["enable-cache"] is True


def lint_commands() -> list[str]:
    """The recipe of ``make lint``, ``$(UV)`` read as ``uv``."""
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = lines.index("lint: sync") + 1
    recipe = []
    for line in lines[start:]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip().replace("$(UV)", "uv"))
    return recipe


def test_pre_commit_runs_exactly_what_make_lint_runs() -> None:
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    hooks = [hook for repo in config["repos"] for hook in repo["hooks"]]
    assert [hook["entry"] for hook in hooks] == lint_commands()
    # On the whole tree, as make does, not on the staged files alone.
    assert all(hook["pass_filenames"] is False for hook in hooks)


def test_every_launch_configuration_starts_a_real_command() -> None:
    launch = json.loads((ROOT / ".vscode/launch.json").read_text())
    commands = get_command(app).commands  # type: ignore[attr-defined]
    names = set()
    for configuration in launch["configurations"]:
        names.add(configuration["name"].split(" ")[0])
        if configuration["module"] == "outreach":
            assert configuration["args"][0] in commands
        else:
            assert configuration["module"] == "pytest"
    assert names == {"API", "Worker", "Scheduler", "Tests"}
