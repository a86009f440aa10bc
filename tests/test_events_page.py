"""The page's history view in a real headless Chromium: the stored events listed with their
thumbnails, filtered by label, an event's detail with its snapshot, deleted; a label that looks
like HTML shows as text (textContent, never innerHTML)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from streamer.history.writer import Pending
from streamer.web.keys import PIPELINE
from tests.conftest import metric, wait_for
from tests.support.browser import Browser
from tests.test_events_store import look, rec

pytestmark = pytest.mark.system
HOSTILE = '<img src="x" id="pwned">'

COUNT = "document.querySelectorAll('#h-list li').length"
THUMBS_LOADED = (
    "[...document.querySelectorAll('#h-list .h-thumb')].filter(i => i.complete && i.naturalWidth > 0).length"
)


def test_page_loads_the_history_script_and_never_uses_innerhtml() -> None:
    static = Path(__file__).resolve().parents[1] / "streamer" / "web" / "static"
    js = (static / "history.js").read_text()
    assert "innerHTML" not in js and "insertAdjacentHTML" not in js and "textContent" in js
    assert '<script src="/static/history.js">' in (static / "index.html").read_text()


@pytest.mark.parametrize("token", ["", "history-token-0123456789"], ids=["open", "token"])
async def test_history_view_lists_filters_shows_and_deletes(
    make_app, chromium: str, tmp_path: Path, token: str
) -> None:
    # with an API token the thumbnails and snapshots need it too (as a header: <img> URLs cannot carry it)
    client = await make_app(server={"api_token": token})
    history = client.server.app[PIPELINE].history
    await wait_for(lambda: history.writer.ready.is_set(), 30, "the store open")
    now = time.time()
    for i in range(5):
        r = rec(i, now - 600 + i * 60, "female" if i == 3 else "male", stream="door")
        if i == 4:
            r.labels = {"gender": {"label": HOSTILE, "p": 0.5}}
        history.writer.put(Pending(r, look(seed=i)))
    await wait_for(lambda: history.writer.written == 5, 30, "the records written")

    async with Browser(chromium, tmp_path / "profile", tmp_path / "no-camera.y4m") as browser:
        await browser.goto(str(client.make_url("/")) + (f"#token={token}" if token else ""))
        assert await browser.poll(COUNT, lambda n: n == 5) == 5
        assert await browser.poll(THUMBS_LOADED, lambda n: n == 5) == 5
        first = await browser.eval("document.querySelector('#h-list li .h-labels').textContent")
        assert first == HOSTILE + " 0.50"  # the newest first; the markup shown as text
        assert await browser.eval("document.getElementById('pwned') === null")

        await browser.eval(
            "document.getElementById('h-label').value = 'female';"
            "document.getElementById('h-filters').requestSubmit()"
        )
        assert await browser.poll(COUNT, lambda n: n == 1) == 1
        counts = "document.querySelector('#h-counts').textContent"
        assert "5 tracks" in await browser.poll(counts, lambda t: "5 tracks" in t)  # (per hour: every label)

        await browser.eval("document.querySelector('#h-list li').click()")
        face = (
            "(() => { const i = document.querySelector('#h-detail .h-face');"
            " return i && i.complete ? i.naturalWidth : 0 })()"
        )
        assert await browser.poll(face, lambda w: w > 0) > 0
        assert "#3" in await browser.eval("document.getElementById('h-detail').textContent")
        await browser.eval("document.querySelector('#h-detail .h-delete').click()")
        assert await browser.poll(COUNT, lambda n: n == 0) == 0
    r = await client.get("/events?stream=door", headers={"X-API-Token": token} if token else {})
    assert len((await r.json())["events"]) == 4
    assert metric(client.server.app, "streamer_errors_total", kind="unauthorized") == 0
