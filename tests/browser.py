"""Headless Chromium driven through its DevTools protocol, for tests that look at the MLflow UI after
a click (a sweep's child runs sit folded under their parent until one unfolds them)."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp  # comes with mlflow: its server's client side

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-allow-origins=*",
]


def screenshot_and_dom(url: str, screenshot: Path, window: str, budget_ms: int, timeout: float) -> str:
    """Load ``url`` once in headless Chromium (its virtual clock run ``budget_ms`` ahead, so the page's
    scripts settle), save a screenshot and return the rendered DOM."""
    flags = [
        *(flag for flag in FLAGS if flag != "--remote-allow-origins=*"),
        f"--user-data-dir={screenshot.parent / (screenshot.stem + '-profile')}",
        f"--window-size={window}",
        f"--virtual-time-budget={budget_ms}",
        f"--screenshot={screenshot}",
        "--dump-dom",
    ]
    done = subprocess.run([str(CHROMIUM), *flags, url], capture_output=True, text=True, timeout=timeout)
    return done.stdout


class Page:
    """One tab: evaluate JavaScript in it, wait for a condition, take a screenshot."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self.socket, self.ids = socket, itertools.count(1)

    async def call(self, method: str, **params: Any) -> dict:
        message_id = next(self.ids)
        await self.socket.send_str(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            reply = json.loads((await self.socket.receive()).data)
            if reply.get("id") == message_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    async def evaluate(self, expression: str) -> Any:
        result = await self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not await self.evaluate(expression):
            if time.monotonic() > deadline:
                text = await self.evaluate("document.body ? document.body.innerText : ''")
                raise TimeoutError(f"{expression} not true in {timeout}s; the page says: {str(text)[:2000]}")
            await asyncio.sleep(0.25)

    async def screenshot(self, path: Path) -> Path:
        path.write_bytes(base64.b64decode((await self.call("Page.captureScreenshot", format="png"))["data"]))
        return path


def browse(url: str, profile: Path, steps, size: tuple[int, int] = (1400, 1000)) -> Any:
    """Open ``url`` in a fresh headless Chromium (its profile in ``profile``) and run ``await
    steps(page)`` on it; returns what the steps return. Chromium is stopped after, whatever happens."""
    profile.mkdir(parents=True, exist_ok=True)
    chromium = subprocess.Popen(
        [
            str(CHROMIUM),
            *FLAGS,
            f"--user-data-dir={profile}",
            f"--window-size={size[0]},{size[1]}",
            "--remote-debugging-port=0",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        return asyncio.run(_drive(chromium, profile, url, steps))
    finally:
        chromium.terminate()
        try:
            chromium.wait(timeout=20)
        except subprocess.TimeoutExpired:
            chromium.kill()
            chromium.wait()
        shutil.rmtree(profile, ignore_errors=True)


async def _drive(chromium: subprocess.Popen, profile: Path, url: str, steps) -> Any:
    port_file, deadline = profile / "DevToolsActivePort", time.monotonic() + 60
    while not (port_file.is_file() and port_file.read_text().strip()):
        if chromium.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("chromium did not open its DevTools port")
        await asyncio.sleep(0.1)
    port = int(port_file.read_text().split()[0])
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
            target = next(t for t in await response.json() if t["type"] == "page")
        async with session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as socket:
            page = Page(socket)
            await page.call("Page.enable")
            await page.call("Page.navigate", url=url)
            return await steps(page)
