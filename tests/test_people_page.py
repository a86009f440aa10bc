"""The page's People view in a real headless Chromium: enrolled people listed with their faces, a
hostile name shown as text (textContent, never innerHTML), an unknown cluster named in one step,
a person removed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from streamer.web.keys import PIPELINE
from tests.conftest import wait_for
from tests.support.browser import Browser

pytestmark = pytest.mark.system
HOSTILE = '<img src="x" id="pwned">'
PEOPLE = "[...document.querySelectorAll('#p-list li strong')].map(e => e.textContent).join('|')"
CLUSTERS = "document.querySelectorAll('#p-unknown li').length"


def test_page_loads_the_people_script_and_never_uses_innerhtml() -> None:
    static = Path(__file__).resolve().parents[1] / "streamer" / "web" / "static"
    js = (static / "people.js").read_text()
    assert "innerHTML" not in js and "insertAdjacentHTML" not in js and "textContent" in js
    assert '<script src="/static/people.js">' in (static / "index.html").read_text()


async def test_people_view_lists_names_a_cluster_and_removes(make_app, chromium: str, tmp_path: Path) -> None:
    client = await make_app()
    people = client.server.app[PIPELINE].people
    await wait_for(lambda: people.clusters.loaded, 30, "the library read")
    rng = np.random.default_rng(1)
    await people.enroll(HOSTILE, [(rng.normal(0, 0.09, 128).astype(np.float32), None)], "file")
    stranger = rng.normal(0, 0.09, 128).astype(np.float32)
    for i in range(3):
        people.clusters.add("door", i, stranger, 3)

    async with Browser(chromium, tmp_path / "profile", tmp_path / "no-camera.y4m") as browser:
        await browser.goto(str(client.make_url("/")))
        assert await browser.poll(PEOPLE, lambda t: t == HOSTILE) == HOSTILE  # the markup shown as text
        assert await browser.eval("document.getElementById('pwned') === null")
        assert await browser.poll(CLUSTERS, lambda n: n == 1) == 1
        text = await browser.eval("document.querySelector('#p-unknown li').textContent")
        assert "unknown 1: 3 sightings" in text
        await browser.eval(
            "document.querySelector('#p-unknown li input').value = 'Carol';"
            "document.querySelector('#p-unknown li button').click()"
        )
        names = await browser.poll(PEOPLE, lambda t: "Carol" in t)
        assert names.split("|") == sorted([HOSTILE, "Carol"]) or set(names.split("|")) == {HOSTILE, "Carol"}
        assert await browser.poll(CLUSTERS, lambda n: n == 0) == 0
        await browser.eval(
            "[...document.querySelectorAll('#p-list li')].find(li => li.querySelector('strong')"
            ".textContent === 'Carol').querySelector('button').click()"
        )
        assert await browser.poll(PEOPLE, lambda t: t == HOSTILE) == HOSTILE
    assert people.gallery.names == [HOSTILE]
