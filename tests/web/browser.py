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


# Run in the page: every visible text element whose colour falls below WCAG AA against
# the background it is drawn on (ancestors' backgrounds blended, white under them all).
CONTRAST_FAILURES = """() => {
  const parse = (c) => {
    const m = c.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const p = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number);
    return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
  };
  const over = (top, under) => ({
    r: top.r * top.a + under.r * (1 - top.a), g: top.g * top.a + under.g * (1 - top.a),
    b: top.b * top.a + under.b * (1 - top.a), a: 1 });
  const channel = (v) => {
    v /= 255;
    return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  };
  const lum = (c) => 0.2126 * channel(c.r) + 0.7152 * channel(c.g) + 0.0722 * channel(c.b);
  const behind = (el) => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c.a > 0) { layers.push(c); if (c.a >= 1) break; }
    }
    const white = { r: 255, g: 255, b: 255, a: 1 };
    return layers.reverse().reduce((under, top) => over(top, under), white);
  };
  const skip = new Set(["OPTION", "PROGRESS", "SCRIPT", "STYLE", "TITLE", "NOSCRIPT"]);
  const failures = [];
  for (const el of document.querySelectorAll("body *")) {
    if (skip.has(el.tagName)) continue;
    const own = [...el.childNodes].filter((n) => n.nodeType === 3);
    const text = own.map((n) => n.textContent).join("").trim();
    if (!text || el.getClientRects().length === 0) continue;
    const style = getComputedStyle(el);
    if (style.visibility === "hidden") continue;
    const bg = behind(el);
    const fg = over(parse(style.color), bg);
    const [hi, lo] = [lum(fg), lum(bg)].sort((x, y) => y - x);
    const ratio = (hi + 0.05) / (lo + 0.05);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (parseInt(style.fontWeight) >= 700 && size >= 18.66);
    if (ratio < (large ? 3 : 4.5)) {
      failures.push(`${el.tagName} "${text.slice(0, 40)}": ${ratio.toFixed(2)}:1`);
    }
  }
  return failures;
}"""

# Every form control a person can reach has a name a screen reader can say.
UNLABELLED = """() => [...document.querySelectorAll("input, select, textarea")]
  .filter((el) => el.type !== "hidden")
  .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute("aria-label")
    && !el.getAttribute("aria-labelledby"))
  .map((el) => el.name || el.id || el.outerHTML.slice(0, 60))"""

OVERFLOW = """() => document.documentElement.scrollWidth - document.documentElement.clientWidth"""


async def check_page(page: Page, name: str) -> None:
    """What every page must be, measured in the browser: labelled inputs, text colours
    AA against what is behind them, and nothing wider than the screen at 375 px (a wide
    table scrolls inside its own box)."""
    assert await page.evaluate(UNLABELLED) == [], f"{name}: inputs without a label"
    assert await page.evaluate(CONTRAST_FAILURES) == [], f"{name}: text below AA contrast"
    assert "Traceback" not in await page.content(), name


async def snap(page: Page, name: str) -> None:
    """The page as it is now, at a phone's width and a laptop's, checked at both."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await check_page(page, name)
    for width in WIDTHS:
        await page.set_viewport_size({"width": width, "height": 900})
        overflow = await page.evaluate(OVERFLOW)
        assert overflow <= 0, f"{name}: {overflow} px wider than a {width} px screen"
        await page.screenshot(path=SCREENSHOTS / f"{name}-{width}.png", full_page=True)
    await page.set_viewport_size({"width": 1280, "height": 900})
