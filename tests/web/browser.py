"""A real browser on a real server: uvicorn on a free 127.0.0.1 port in the test's
event loop, Debian's Chromium driven by Playwright (launched by its path; Playwright's
own browser download is not used)."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from playwright.async_api import Page, async_playwright, expect

from outreach.app import create_app
from outreach.config import Settings
from outreach.kit.db import Database

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "var" / "screenshots"  # git-ignored; a few are copied to docs/
WIDTHS = (375, 1280)


def chromium_path() -> str:
    """Debian's Chromium; missing is a failure in CI and a skip on a laptop without it."""
    for name in ("chromium", "chromium-browser"):
        if found := shutil.which(name):
            return found
    message = "Chromium is not installed (apt-get install -y chromium; make test does it as root)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class LiveServer:
    url: str
    settings: Settings


async def serve(settings: Settings, database: Database) -> AsyncIterator[LiveServer]:
    """The whole app (lifespan included) behind uvicorn, until the test ends."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = settings.model_copy(update={"base_url": url, "cors_origins": [url]})
    app = create_app(settings, database=database)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started or task.done():
            break
        await asyncio.sleep(0.02)
    assert server.started, "uvicorn did not start"
    try:
        yield LiveServer(url, settings)
    finally:
        server.should_exit = True
        await task


async def open_browser() -> AsyncIterator[Page]:
    path = chromium_path()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=path, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        # Generous waits: the suite shares two cores with other work; nothing here is timed.
        context.set_default_timeout(30_000)
        expect.set_options(timeout=30_000)
        page = await context.new_page()
        try:
            yield page
        finally:
            await browser.close()


async def snap(page: Page, name: str) -> None:
    """The page as it is now, at a phone's width and a laptop's."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for width in WIDTHS:
        await page.set_viewport_size({"width": width, "height": 900})
        await page.screenshot(path=SCREENSHOTS / f"{name}-{width}.png", full_page=True)
    await page.set_viewport_size({"width": 1280, "height": 900})
