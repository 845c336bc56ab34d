"""Browser-test support: calsync served in-process by uvicorn on a loopback port, and headless
Debian Chromium driven by Playwright (never a downloaded browser).

Without Playwright or Chromium the tests are skipped, or failed when CALSYNC_REQUIRE_BROWSER=1.
Screenshots go to ``tests/artifacts/screenshots/`` (ignored by git).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from calsync.api.app import create_app
from calsync.service.runtime import Runtime
from tests.peers.browser import CHROMIUM_ARGS, CHROMIUM_PATH, REQUIRE_BROWSER

SCREENSHOTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(rt: Runtime, port: int) -> Iterator[str]:
    """calsync (with its worker) on http://127.0.0.1:<port> until the block ends."""
    server = uvicorn.Server(
        uvicorn.Config(create_app(rt), host="127.0.0.1", port=port, log_config=None, lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("calsync did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def unavailable(message: str) -> None:
    if os.environ.get(REQUIRE_BROWSER) == "1":
        pytest.fail(f"{message} ({REQUIRE_BROWSER}=1)")
    pytest.skip(message)


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Debian Chromium (a Playwright ``Browser``)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the playwright Python package is not installed")
        raise  # unreachable: skip/fail raise
    if not (os.path.isfile(CHROMIUM_PATH) and os.access(CHROMIUM_PATH, os.X_OK)):
        unavailable(f"Chromium is not installed at {CHROMIUM_PATH} (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM_PATH, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def screenshot(page: Any, name: str, *, full_page: bool = True) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def focused(page: Any) -> dict[str, str]:
    """What has keyboard focus: its tag, id, text and computed outline style."""
    result: dict[str, str] = page.evaluate(
        """() => {
            const e = document.activeElement;
            const s = getComputedStyle(e);
            return {tag: e.tagName, id: e.id || '', text: (e.innerText || e.value || '').trim(),
                    label: e.labels && e.labels.length ? e.labels[0].innerText.trim() : '',
                    outline: s.outlineStyle};
        }"""
    )
    return result


def tab_to(page: Any, wanted: str, *, limit: int = 40) -> dict[str, str]:
    """Press Tab until the focused element's text, label or id is ``wanted``."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        now = focused(page)
        if wanted in (now["text"], now["label"], now["id"]):
            return now
    raise AssertionError(f"{wanted!r} was not reached with Tab; focus is on {focused(page)}")


def press_and_load(page: Any, key: str = "Enter") -> None:
    """Press ``key`` on a link or submit control and wait for the page it leads to."""
    with page.expect_navigation():
        page.keyboard.press(key)
