"""Take docs/page.png: the page watching the bundled demo clip, with labelled, tracked boxes.

    python scripts/screenshot.py [--out docs/page.png] [--port 0] [--wait 40]

Starts ``streamer serve`` on a free port with the built-in defaults (no source configured, so the
bundled demo clip is served as stream ``demo``), opens the page in headless Chromium over the
DevTools protocol, presses the demo card's *Watch (WebRTC)* button, waits until the card's track
list shows a face with settled labels and the video shows its box, and saves a screenshot.
Needs ``chromium`` on the PATH; takes a minute or two (the models load first).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import itertools
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
CARD = (
    "[...document.querySelectorAll('.card')].find(c => c.querySelector('h3').textContent.startsWith('demo'))"
)
# the track list of the card: a line per track, "#3 male, shaved · 12 s"; "?" while a label is unsettled
LABELLED = f"""(() => {{
  const c = {CARD};
  return c ? [...c.querySelectorAll('.tracks li')].map(li => li.textContent).join('\\n') : '';
}})()"""
# pixels of the video's current frame in one of the overlay's box colours (streamer/overlay.py)
BOX_PIXELS = f"""(() => {{
  const v = {CARD}?.querySelector('video');
  if (!v || !v.videoWidth) return 0;
  const c = document.createElement('canvas'); c.width = v.videoWidth; c.height = v.videoHeight;
  const g = c.getContext('2d'); g.drawImage(v, 0, 0);
  const d = g.getImageData(0, 0, c.width, c.height).data; let n = 0;
  const colours = [[0, 220, 90], [255, 170, 0], [0, 160, 255], [230, 60, 200]];
  for (let i = 0; i < d.length; i += 4)
    if (colours.some(([r, gr, b]) =>
        Math.abs(d[i] - r) < 40 && Math.abs(d[i+1] - gr) < 40 && Math.abs(d[i+2] - b) < 40)) n++;
  return n;
}})()"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Chromium:
    def __init__(self, binary: str, profile: str, width: int, height: int) -> None:
        self.args = [
            binary,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-quic",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--autoplay-policy=no-user-gesture-required",
            "--hide-scrollbars",
            f"--window-size={width},{height}",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "about:blank",
        ]
        self.ids = itertools.count(1)

    async def __aenter__(self) -> Chromium:
        self.proc = await asyncio.create_subprocess_exec(
            *self.args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
        port = None
        async with asyncio.timeout(60):
            while port is None:
                line = (await self.proc.stderr.readline()).decode(errors="replace")
                if not line:
                    raise RuntimeError("chromium exited")
                m = re.search(r"DevTools listening on ws://[^:]+:(\d+)/", line)
                port = int(m.group(1)) if m else None
        self.drain = asyncio.create_task(self._drain())
        self.session = aiohttp.ClientSession()
        async with self.session.get(f"http://127.0.0.1:{port}/json/list") as r:
            page = next(t for t in await r.json() if t["type"] == "page")
        self.ws = await self.session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)
        await self.call("Runtime.enable")
        return self

    async def _drain(self) -> None:
        while await self.proc.stderr.readline():
            pass

    async def __aexit__(self, *exc: object) -> None:
        await self.ws.close()
        await self.session.close()
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        self.drain.cancel()

    async def call(self, method: str, **params):
        msg_id = next(self.ids)
        await self.ws.send_str(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            msg = json.loads((await self.ws.receive()).data)
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]

    async def eval(self, expression: str):
        r = await self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        return r["result"].get("value")


async def shoot(url: str, out: Path, wait_s: float, width: int, height: int) -> str:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        raise SystemExit("chromium not found")
    with tempfile.TemporaryDirectory() as profile:
        async with Chromium(binary, profile, width, height) as page:
            await page.call(
                "Emulation.setDeviceMetricsOverride",
                width=width,
                height=height,
                deviceScaleFactor=1,
                mobile=False,
            )
            await page.call("Page.navigate", url=url)
            deadline = time.monotonic() + 60
            while not await page.eval(f"!!{CARD}"):
                if time.monotonic() > deadline:
                    raise SystemExit("no demo card in the page")
                await asyncio.sleep(0.5)
            # the page with no camera of its own: the demo card first, right under the header
            await page.eval("document.getElementById('mine').style.display = 'none'")
            await page.eval(f"{CARD}.querySelector('.watch').click()")
            deadline = time.monotonic() + wait_s
            tracks = ""
            while time.monotonic() < deadline:
                tracks = await page.eval(LABELLED) or ""
                settled = any("?" not in line and "face" not in line for line in tracks.splitlines())
                # a track whose labels have settled (no "?"), and its box drawn on the frame shown
                if settled and await page.eval(BOX_PIXELS) > 400:
                    break
                await asyncio.sleep(0.2)
            shot = await page.call("Page.captureScreenshot", format="png")
            out.write_bytes(base64.b64decode(shot["data"]))
            return tracks


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "page.png")
    ap.add_argument("--port", type=int, default=0, help="port for the service (0: a free one)")
    ap.add_argument("--wait", type=float, default=60.0, help="seconds to wait for a labelled track")
    ap.add_argument("--width", type=int, default=720)
    ap.add_argument("--height", type=int, default=670)
    args = ap.parse_args()
    port = args.port or free_port()
    streamer = [sys.executable, "-m", "streamer", "serve", "--port", str(port)]
    server = subprocess.Popen(streamer, cwd=ROOT)
    try:
        health = f"http://127.0.0.1:{port}/healthz"
        deadline = time.monotonic() + 180
        while True:  # /healthz answers 200 once the models are loaded
            with contextlib.suppress(OSError), urllib.request.urlopen(health, timeout=2) as r:
                if r.status == 200:
                    break
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("the service did not start")
            time.sleep(1)
        tracks = asyncio.run(shoot(f"http://127.0.0.1:{port}/", args.out, args.wait, args.width, args.height))
        print(f"wrote {args.out}; tracks shown:\n{tracks}")
    finally:
        server.terminate()
        server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
