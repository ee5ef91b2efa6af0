"""Each web page's server time versus the JSON endpoint(s) it wraps.

A page calls the same services as its JSON endpoint and renders HTML instead of
serialising JSON, so it should cost about the same. The app runs in this process
(its lifespan, SQLite in a temporary folder or a fresh PostgreSQL database as in
bench/_common.py); a user with an outbox mailbox, a list of 50 people, a template,
a draft campaign to review and a scheduled campaign of 10 emails is made through the
API, then each page and its endpoint are requested over ``httpx.ASGITransport``, one
after the other, after a warm-up. The time of one request is the whole ASGI call
(the same client overhead on both sides); medians are compared because the machine
is shared and noisy.

A page that shows what several endpoints answer (the campaign page: the campaign,
its stats and its emails) is held to the calls an API client would make to show the
same, one after the other: the baseline is the sum of their medians.

Target per page: page time / endpoint time <= 2.

    uv run python bench/web_pages.py [--rounds 5] [--requests 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _common import Target, add_database_options, database_label, exit_code, fresh_database, report

from outreach.app import create_app
from outreach.config import Environment, Settings
from outreach.kit.db import Database
from outreach.migrations.runner import upgrade

TARGET = Target("<=", 2.0)
PEOPLE = 50


Endpoint = tuple[str, str]  # (method, path)


def pairs(ids: dict[str, str]) -> list[tuple[str, tuple[Endpoint, ...]]]:
    """(page, endpoints): what each page shows, as the API serves it."""
    draft, lst, template = ids["draft"], ids["list"], ids["template"]
    sent, person = ids["scheduled"], ids["person"]
    return [
        ("/", (("GET", "/v1/onboarding/status"),)),
        ("/mailboxes", (("GET", "/v1/mailboxes"),)),
        ("/lists", (("GET", "/v1/recipients/lists"),)),
        (f"/lists/{lst}", (("GET", f"/v1/recipients/lists/{lst}/items"),)),
        ("/templates", (("GET", "/v1/templates"),)),
        (f"/templates/{template}", (("POST", f"/v1/templates/{template}/render"),)),
        ("/campaigns", (("GET", "/v1/campaigns"),)),
        # The review is the outreach plan (checks, risks, schedule) with 3 emails shown.
        (f"/campaigns/{draft}/review", (("GET", f"/v1/campaigns/{draft}/outreach-plan"),)),
        (
            f"/campaigns/{sent}",
            (
                ("GET", f"/v1/campaigns/{sent}"),
                ("GET", f"/v1/campaigns/{sent}/stats"),
                ("GET", f"/v1/campaigns/{sent}/emails?limit=100"),
            ),
        ),
        (
            f"/campaigns/{sent}/timeline?email={person}",
            (("GET", f"/v1/campaigns/{sent}/timeline?email={person}"),),
        ),
        ("/credits", (("GET", "/v1/credits/ledger"),)),
        ("/settings", (("GET", "/v1/referrals/me"),)),
    ]


async def seed(client: httpx.AsyncClient) -> dict[str, str]:
    async def call(method: str, url: str, **kwargs: object) -> dict:
        response = await client.request(method, url, **kwargs)  # type: ignore[arg-type]
        response.raise_for_status()
        return response.json()

    await call("POST", "/v1/auth/dev-login", json={"email": "asha@example.com", "name": "Asha"})
    client.headers["X-CSRF-Token"] = client.cookies["outreach_csrf"]
    mailbox = await call("POST", "/v1/mailboxes/outbox", json={"address": "asha@example.com"})
    lst = await call("POST", "/v1/recipients/lists", json={"name": "Leads"})
    people = [
        {"email": f"person{i}@company{i}.example", "first_name": f"P{i}", "company": f"Co {i}"}
        for i in range(PEOPLE)
    ]
    await call("POST", f"/v1/recipients/lists/{lst['id']}/items", json={"items": people})
    template = await call(
        "POST",
        "/v1/templates",
        json={"name": "Intro", "subject": "Hi {{ first_name }}", "body_text": "At {{ company }}?"},
    )
    draft = await call(
        "POST",
        "/v1/campaigns",
        json={
            "name": "Leads",
            "mailbox_id": mailbox["id"],
            "template_id": template["id"],
            "list_id": lst["id"],
        },
    )
    few = await call("POST", "/v1/recipients/lists", json={"name": "A few"})
    await call("POST", f"/v1/recipients/lists/{few['id']}/items", json={"items": people[:10]})
    scheduled = await call(
        "POST",
        "/v1/campaigns",
        json={
            "name": "Sent",
            "mailbox_id": mailbox["id"],
            "template_id": template["id"],
            "list_id": few["id"],
        },
    )
    await call(
        "POST",
        f"/v1/campaigns/{scheduled['id']}/schedule",
        headers={"Idempotency-Key": "bench-schedule"},
    )
    return {
        "draft": draft["id"],
        "scheduled": scheduled["id"],
        "person": people[0]["email"],
        "list": lst["id"],
        "template": template["id"],
    }


async def timed(client: httpx.AsyncClient, method: str, url: str, requests: int) -> list[float]:
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        response = await client.request(method, url, json={} if method == "POST" else None)
        times.append(time.perf_counter() - started)
        if response.status_code != 200:  # every page and endpoint answers 200 here
            raise SystemExit(f"{method} {url} answered {response.status_code}: {response.text}")
    return times


async def run(args: argparse.Namespace) -> int:
    async with fresh_database("web_pages", postgres=args.postgres) as url:
        await asyncio.to_thread(upgrade, url)
        with tempfile.TemporaryDirectory(prefix="bench-web-") as folder:
            settings = Settings(
                _env_file=None,  # type: ignore[call-arg]
                env=Environment.development,
                secret_key="x" * 40,
                database_url=url,
                storage_path=Path(folder) / "storage",
                outbox_path=Path(folder) / "outbox",
                embedded_scheduler=False,
                log_level="WARNING",
            )
            database = Database.from_settings(settings)
            app = create_app(settings, database=database)
            transport = httpx.ASGITransport(app=app)
            try:
                async with (
                    app.router.lifespan_context(app),
                    httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
                ):
                    ids = await seed(client)
                    args.ids = ids
                    results = await measure(client, pairs(ids), args)
            finally:
                await database.dispose()
    met = [
        report(
            "web_pages",
            _named(f"{page} vs {' + '.join(f'{m} {e}' for m, e in endpoints)}", args.ids),
            ours=ours * 1000,
            baseline=base * 1000,
            unit="ms",
            target=TARGET,
            database=database_label(args.postgres),
        )
        for (page, endpoints), (ours, base) in results.items()
    ]
    return exit_code(*met)


def _named(measure: str, ids: dict[str, str]) -> str:
    for key, value in ids.items():
        measure = measure.replace(value, "{email}" if key == "person" else "{id}")
    return measure


async def measure(
    client: httpx.AsyncClient,
    which: list[tuple[str, tuple[Endpoint, ...]]],
    args: argparse.Namespace,
) -> dict[tuple[str, tuple[Endpoint, ...]], tuple[float, float]]:
    results = {}
    for page, endpoints in which:
        await timed(client, "GET", page, 3)  # warm-up
        for method, endpoint in endpoints:
            await timed(client, method, endpoint, 3)
        page_times: list[float] = []
        api_times: dict[Endpoint, list[float]] = {e: [] for e in endpoints}
        for _ in range(args.rounds * args.requests):  # interleaved: noise hits both alike
            page_times += await timed(client, "GET", page, 1)
            for method, endpoint in endpoints:
                api_times[(method, endpoint)] += await timed(client, method, endpoint, 1)
        ours = statistics.median(page_times)
        base = sum(statistics.median(times) for times in api_times.values())
        print(f"{_named(page, args.ids):<40} {ours * 1000:7.2f} ms   {base * 1000:7.2f} ms")
        results[(page, endpoints)] = (ours, base)
    return results


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=20, help="requests per round and side")
    add_database_options(parser)
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
