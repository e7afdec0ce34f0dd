"""A real browser for the report tests: headless Chromium (Debian's `chromium`) driven over the
DevTools protocol (a websocket, aiohttp's client), so a test sees what a reader's browser
sees: every console message and uncaught exception, every resource that failed to load, whether
each figure decoded (an <img>'s naturalWidth), and a screenshot.

`--dump-dom` and `--screenshot` alone cannot say whether the console logged an error; the
protocol can, and it tells when the page has loaded instead of guessing with a sleep.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

CHROMIUM = "/usr/bin/chromium"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu")
_LISTENING = re.compile(r"DevTools listening on (ws://\S+)")

# What the page reports about its figures once loaded.
_IMAGES = """JSON.stringify(Array.from(document.images).map(img => ({
    alt: img.alt, complete: img.complete, width: img.naturalWidth, height: img.naturalHeight})))"""
_SIZE = "JSON.stringify([document.documentElement.scrollWidth, document.body.scrollHeight])"


def chromium() -> str | None:
    """The Chromium binary, or None where it is not installed."""
    return CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")


@dataclass
class PageLoad:
    """What the browser saw while loading one page."""

    errors: list[str] = field(default_factory=list)  # console errors, exceptions, failed loads
    images: list[dict] = field(default_factory=list)  # alt, complete, width, height
    screenshot: Path | None = None

    @property
    def broken_images(self) -> list[str]:
        return [img["alt"] or "(no alt)" for img in self.images if not img["width"]]


def load_page(page: Path, screenshot: Path, timeout_s: float = 60.0) -> PageLoad:
    """Open `page` (a file) in headless Chromium, wait for its load event, and return what it
    logged and rendered; write a full-page PNG screenshot to `screenshot`."""
    return asyncio.run(asyncio.wait_for(_load(page, screenshot), timeout_s))


async def _load(page: Path, screenshot: Path) -> PageLoad:
    binary = chromium()
    if binary is None:
        raise FileNotFoundError("chromium is not installed")
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        proc = await asyncio.create_subprocess_exec(
            binary,
            *FLAGS,
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "--no-first-run",
            "--hide-scrollbars",
            "about:blank",
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            browser_url = await _devtools_url(proc)
            return await _drive(browser_url, page, screenshot)
        finally:
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 10)
                except asyncio.TimeoutError:
                    proc.kill()
                    await proc.wait()


async def _devtools_url(proc: asyncio.subprocess.Process) -> str:
    """The browser's websocket URL, which Chromium prints on stderr once it listens."""
    assert proc.stderr is not None
    seen = []
    while line := await proc.stderr.readline():
        text = line.decode(errors="replace")
        seen.append(text)
        if match := _LISTENING.search(text):
            return match.group(1)
    raise RuntimeError("chromium exited before it listened: " + "".join(seen)[-2000:])


class _Session:
    """One DevTools websocket: commands answered by id, events kept in order."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.events: list[dict] = []

    async def send(self, method: str, session: str | None = None, **params) -> dict:
        number = next(self.ids)
        message = {"id": number, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        await self.ws.send_str(json.dumps(message))
        while True:
            reply = json.loads((await self.ws.receive()).data)
            if reply.get("id") == number:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    async def until(self, method: str) -> dict:
        """Wait for the first event named `method` (kept ones included)."""
        for event in self.events:
            if event.get("method") == method:
                return event
        while True:
            event = json.loads((await self.ws.receive()).data)
            self.events.append(event)
            if event.get("method") == method:
                return event


async def _drive(browser_url: str, page: Path, screenshot: Path) -> PageLoad:
    async with aiohttp.ClientSession() as http, http.ws_connect(browser_url, max_msg_size=0) as ws:
        cdp = _Session(ws)
        target = await cdp.send("Target.createTarget", url="about:blank")
        attached = await cdp.send(
            "Target.attachToTarget", targetId=target["targetId"], flatten=True
        )
        sid = attached["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            await cdp.send(f"{domain}.enable", sid)
        await cdp.send(
            "Emulation.setDeviceMetricsOverride",
            sid,
            width=1280,
            height=900,
            deviceScaleFactor=1,
            mobile=False,
        )
        await cdp.send("Page.navigate", sid, url=page.resolve().as_uri())
        await cdp.until("Page.loadEventFired")
        images = json.loads((await _evaluate(cdp, sid, _IMAGES)) or "[]")
        width, height = json.loads(await _evaluate(cdp, sid, _SIZE))
        shot = await cdp.send(
            "Page.captureScreenshot",
            sid,
            format="png",
            captureBeyondViewport=True,
            clip={"x": 0, "y": 0, "width": width, "height": min(height, 16000), "scale": 1},
        )
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        return PageLoad(errors=_errors(cdp.events), images=images, screenshot=screenshot)


async def _evaluate(cdp: _Session, sid: str, expression: str) -> str:
    result = await cdp.send("Runtime.evaluate", sid, expression=expression, returnByValue=True)
    return result["result"].get("value", "")


def _errors(events: list[dict]) -> list[str]:
    """Console errors, uncaught exceptions, error log entries and failed loads, as text."""
    found = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            args = params.get("args", [])
            found.append("console: " + " ".join(str(a.get("value", a)) for a in args))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            found.append(
                "exception: "
                + str(details.get("exception", details).get("description", details.get("text", "")))
            )
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            found.append(f"log: {entry.get('text', '')} {entry.get('url', '')}".strip())
        elif method == "Network.loadingFailed":
            found.append(f"load failed: {params.get('errorText', '')}")
    return found
