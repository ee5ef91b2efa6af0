"""Hostile template renders versus rendering a small template, through the API, same run.

Issue 17 item 1: a template whose body is ``{{a}}`` x10,000, rendered with a
100,000-character sample value, grew the API process by 1 GB and answered after 2 s.

* **ours**: ``POST /v1/templates/{id}/render`` (the real app in process, through
  httpx's ASGI transport, on a migrated database) for
  1. the reported request: ``{{a}}`` x10,000 (stored as an older release would have
     saved it) with a 100,000-character value: refused by the value cap, and
  2. the budget case: ``{{a}}`` x200 (the most a part may have) with 2,000-character
     values (the most a value may be): 400,000 characters, stopped by the output
     budget after 100,000;
* **baseline**: the same endpoint rendering a small, ordinary template (a greeting,
  a company, the sender's name, one ``if``).

Targets: each hostile request / the small render <= 3 (time, medians of rounds that
alternate baseline and ours after a warm-up), and each below 100 ms; the hostile
requests' tracemalloc peak < 50 MB (measured once, apart from the timing).

    uv run python bench/template_render.py [--rounds 5] [--repeat 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from _common import Target, add_database_options, database_label, exit_code, fresh_database, report
from sqlalchemy import update

from outreach.app import create_app
from outreach.config import Environment, Settings, use_settings
from outreach.kit.db import Database, create_engine
from outreach.migrations.runner import upgrade
from outreach.models import TemplateVersion

SMALL = (
    "Hi {{ first_name | default('there') }},\n\nI admire {{ company }}'s work"
    "{% if title %} as {{ title | lower }}{% endif %}.\n\n{{ sender.name }}"
)
HOSTILE = {
    "the reported request: {{a}} x10,000, a 100,000-char value": (
        "{{a}}" * 10_000,
        "x" * 100_000,
    ),
    "{{a}} x200 with 2,000-char values, stopped by the budget": ("{{a}}" * 200, "x" * 2_000),
}


async def save(client: httpx.AsyncClient, database: Database, source: str) -> str:
    """A template holding ``source``, stored directly when today's check refuses it."""
    response = await client.post(
        "/v1/templates", json={"name": "bench", "subject": "Hello", "body_text": source}
    )
    if response.status_code == 201:
        return str(response.json()["id"])
    template_id = (
        await client.post(
            "/v1/templates", json={"name": "bench", "subject": "Hello", "body_text": "x"}
        )
    ).json()["id"]
    async with database.session() as session:
        await session.execute(
            update(TemplateVersion)
            .where(TemplateVersion.template_id == uuid.UUID(template_id))
            .values(body_text=source)
        )
    return str(template_id)


async def timed(client: httpx.AsyncClient, url: str, body: dict[str, Any], repeat: int) -> float:
    """Seconds per request, over ``repeat`` requests one after another."""
    start = time.perf_counter()
    for _ in range(repeat):
        response = await client.post(url, json=body)
        if response.status_code not in (200, 422):
            raise SystemExit(f"{url} answered {response.status_code}: {response.text[:200]}")
    return (time.perf_counter() - start) / repeat


async def peak_bytes(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> int:
    tracemalloc.start()
    try:
        response = await client.post(url, json=body)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 422, response.text
    return peak


def app_settings(url: str, folder: Path) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        env=Environment.testing,
        secret_key="bench-template-render-secret-key-0123456789",
        database_url=url,
        storage_path=folder / "storage",
        embedded_scheduler=False,
        enable_dev_login=True,
        log_level="WARNING",
    )


async def measure(url: str, rounds: int, repeat: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        await asyncio.to_thread(upgrade, url)
        settings = app_settings(url, Path(folder))
        use_settings(settings)
        database = Database(create_engine(url))
        app = create_app(settings, database=database)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                await client.post("/v1/auth/dev-login", json={"email": "b@example.com"})
                client.headers["X-CSRF-Token"] = client.cookies["outreach_csrf"]
                small_url = f"/v1/templates/{await save(client, database, SMALL)}/render"
                small_body = {"sample": {"first_name": "Ravi", "company": "Zoho"}}
                cases = {}
                for name, (source, value) in HOSTILE.items():
                    hostile_url = f"/v1/templates/{await save(client, database, source)}/render"
                    cases[name] = (hostile_url, {"sample": {"a": value}})
                result = await _rounds(client, (small_url, small_body), cases, rounds, repeat)
        await database.dispose()
    return result


async def _rounds(
    client: httpx.AsyncClient,
    small: tuple[str, dict[str, Any]],
    cases: dict[str, tuple[str, dict[str, Any]]],
    rounds: int,
    repeat: int,
) -> dict[str, Any]:
    peaks = {name: await peak_bytes(client, *case) for name, case in cases.items()}
    await timed(client, *small, repeat)  # warm-up: compile caches, connections
    for case in cases.values():
        await timed(client, *case, repeat)
    baseline: list[float] = []
    ours: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        baseline.append(await timed(client, *small, repeat))
        for name, case in cases.items():
            ours[name].append(await timed(client, *case, repeat))
    return {
        "baseline": statistics.median(baseline),
        "ours": {name: statistics.median(times) for name, times in ours.items()},
        "peaks": peaks,
    }


async def main(rounds: int, repeat: int, postgres: bool) -> int:
    async with fresh_database("template_render", postgres=postgres) as url:
        result = await measure(url, rounds, repeat)
    database = database_label(postgres)
    base = result["baseline"]
    print(f"small template render: {base * 1000:.1f} ms (median of {rounds} x {repeat})")
    met = True
    for name, seconds in result["ours"].items():
        peak_mb = result["peaks"][name] / 1024 / 1024
        print(f"{name}: {seconds * 1000:.1f} ms, ratio {seconds / base:.2f}, peak {peak_mb:.1f} MB")
        met &= report(
            "template_render",
            f"{name} (422) vs a small render",
            ours=seconds * 1000,
            baseline=base * 1000,
            unit="ms",
            target=Target("<=", 3),
            database=database,
            note=f"{seconds * 1000:.1f} ms (< 100 ms wanted)",
        )
        met &= report(
            "template_render",
            f"{name}: < 100 ms",
            ours=seconds * 1000,
            unit="ms",
            target=Target("<", 100, on="ours"),
            database=database,
        )
        met &= report(
            "template_render",
            f"{name}: tracemalloc peak",
            ours=round(peak_mb, 1),
            unit="MB",
            target=Target("<", 50, on="ours"),
            database=database,
        )
    return exit_code(met)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=20)
    add_database_options(parser)
    arguments = parser.parse_args()
    sys.exit(asyncio.run(main(arguments.rounds, arguments.repeat, arguments.postgres)))
