"""A small headless-Chromium driver for tests: the DevTools protocol over a pipe
(`--remote-debugging-pipe`: commands on fd 3, replies on fd 4, each message JSON ended by a NUL),
so it needs no websocket library, no network and no driver binary; only Debian's `chromium`.

    with Browser.start(tmp_path) as b:       # skips the test when chromium is absent
        b.goto(url)
        b.wait_for("document.querySelectorAll('.row').length > 0")
        b.click("#go")
        b.screenshot(tmp_path / "view.png")
        assert not b.errors                  # console errors, uncaught exceptions, failed loads
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
]


def chromium_path() -> str | None:
    """Debian's chromium (or chromium-browser), or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    """One headless Chromium with one page, driven over the DevTools pipe."""

    def __init__(self, proc: subprocess.Popen, write_fd: int, read_fd: int) -> None:
        self.proc, self._w, self._r = proc, write_fd, read_fd
        self._buf = b""
        self._next = 0
        self.events: list[dict] = []
        self.errors: list[str] = []
        self.session = ""

    # ---- start / stop -----------------------------------------------------------------
    @classmethod
    def start(cls, tmp_path: Path, width: int = 1280, height: int = 900) -> Browser:
        """Start chromium (skip the calling test when it is not installed) with a blank page."""
        exe = chromium_path()
        if exe is None:
            pytest.skip("chromium not installed (apt-get install chromium); .ci/run installs it")
        cmd_r, cmd_w = os.pipe()
        out_r, out_w = os.pipe()
        # close-on-exec copies above 10, so the dup2 onto 3 and 4 in the child cannot clobber one another
        # and only 3 and 4 reach chromium
        hi_r, hi_w = (
            fcntl.fcntl(cmd_r, fcntl.F_DUPFD_CLOEXEC, 10),
            fcntl.fcntl(out_w, fcntl.F_DUPFD_CLOEXEC, 10),
        )

        def child_fds() -> None:
            os.dup2(hi_r, 3)
            os.dup2(hi_w, 4)

        proc = subprocess.Popen(
            [exe, *FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # keep fds 3 and 4 (our dup2 targets) open past close_fds; when the parent has no fd 3 or 4
            # to mark, leave every fd open instead
            **({"pass_fds": (3, 4)} if _open(3) and _open(4) else {"close_fds": False}),
            preexec_fn=child_fds,
        )
        for fd in (cmd_r, out_w, hi_r, hi_w):
            os.close(fd)
        b = cls(proc, cmd_w, out_r)
        target = b.send("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        b.session = b.send("Target.attachToTarget", {"targetId": target, "flatten": True}, session=False)[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Log"):
            b.send(f"{domain}.enable")
        b.resize(width, height)
        return b

    def close(self) -> None:
        """Close the browser (kill it if it does not exit)."""
        try:
            self.send("Browser.close", session=False, timeout=5)
        except Exception:  # noqa: BLE001 - closing anyway
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._w, self._r):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- protocol ---------------------------------------------------------------------
    def send(
        self, method: str, params: dict | None = None, session: bool = True, timeout: float = 30
    ) -> dict:
        """Send one command and return its result (RuntimeError on a protocol error)."""
        self._next += 1
        msg: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self._event(reply)

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._r], [], [], left)[0]:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self._r, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def _event(self, msg: dict) -> None:
        self.events.append(msg)
        method, p = msg.get("method"), msg.get("params", {})
        if method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            self.errors.append(f"exception: {d.get('exception', {}).get('description') or d.get('text')}")
        elif method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            self.errors.append(
                "console: " + " ".join(str(a.get("value", a.get("description"))) for a in p["args"])
            )
        elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            e = p["entry"]
            self.errors.append(f"log: {e.get('text')} {e.get('url', '')}")

    def pump(self, seconds: float) -> None:
        """Read events for `seconds` (e.g. console errors logged after a command returned)."""
        deadline = time.monotonic() + seconds
        try:
            while True:
                self._event(self._read(deadline))
        except TimeoutError:
            pass

    # ---- page -------------------------------------------------------------------------
    def resize(self, width: int, height: int = 900) -> None:
        """Emulate a window `width` CSS pixels wide (a phone width is mobile-like)."""
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600},
        )

    def goto(self, url: str, timeout: float = 30) -> None:
        """Navigate and wait for the load event."""
        seen = len(self.events)
        self.send("Page.navigate", {"url": url})
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events[seen:]):
            self._event(self._read(deadline))

    def eval(self, expression: str) -> Any:
        """The value of a JavaScript expression (promises awaited)."""
        r = self.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True}
        )
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression[:80]}: {r['exceptionDetails'].get('text')}")
        return r.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = 15) -> Any:
        """Poll until `expression` is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.eval(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"never true: {expression}")
            self.pump(0.05)

    def click(self, selector: str) -> None:
        """A real mouse click (press + release) at the centre of the first element matching `selector`."""
        box = self.eval(
            f"(()=>{{const e=document.querySelector({json.dumps(selector)});if(!e)return null;"
            "e.scrollIntoView({block:'center'});const r=e.getBoundingClientRect();"
            "return {x:r.left+r.width/2,y:r.top+r.height/2}})()"
        )
        if box is None:
            raise AssertionError(f"nothing matches {selector!r}")
        for kind in ("mousePressed", "mouseReleased"):
            self.send(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": box["x"], "y": box["y"], "button": "left", "clickCount": 1},
            )

    def type(self, selector: str, text: str) -> None:
        """Focus the element and type `text` into it (real key input)."""
        self.click(selector)
        self.send("Input.insertText", {"text": text})

    def screenshot(self, path: Path, full_page: bool = True) -> Path:
        """A PNG of the page (the whole document when `full_page`) at the current width."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = self.send("Page.getLayoutMetrics")["cssContentSize"]
            width = self.eval("window.innerWidth")
            params |= {
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": width, "height": min(size["height"], 12000), "scale": 1},
            }
        path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", params)["data"]))
        return path

    def broken_images(self) -> list[str]:
        """<img> elements that failed to load, and CSS background images that do not decode."""
        return self.eval(
            """(async()=>{const bad=[];
            for(const i of document.images){if(i.complete&&i.naturalWidth===0&&i.getAttribute('src'))bad.push(i.src.slice(0,80));}
            const urls=new Set();
            for(const e of document.querySelectorAll('.th')){const m=getComputedStyle(e).backgroundImage.match(/url\\("(.*)"\\)/);if(m)urls.add(m[1]);}
            await Promise.all([...urls].map(u=>new Promise(res=>{const im=new Image();
              im.onload=()=>{if(!im.naturalWidth)bad.push(u.slice(0,80));res();};
              im.onerror=()=>{bad.push(u.slice(0,80));res();};im.src=u;})));
            return bad;})()"""
        )


def _open(fd: int) -> bool:
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False
