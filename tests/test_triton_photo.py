"""A photo described on the Triton tier (a front end that loads no model of its own): the model
server finds the faces and describes the chips the front end cut, with the descriptors
``FaceFinder`` gives in-process (issue #33). The model server's own output carries none of
tritonserver's log lines: they go to a file of their own."""

from __future__ import annotations

import re
from pathlib import Path

import aiortc  # noqa: F401  (before TensorFlow: pylibsrtp segfaults otherwise)
import cv2
import numpy as np
import pytest

from streamer.inference.triton_client import BackendUnavailable, TritonPool
from streamer.metrics import Metrics
from streamer.people.faces import ENROL_MIRRORED, FaceFinder
from tests.test_triton import ModelServer


def server_up(pool: TritonPool) -> bool:
    return pool.metrics.backend_up.labels(pool.servers[0].url)._value.get() == 1


@pytest.mark.slow
async def test_a_photo_is_described_on_the_model_server_as_in_process(tmp_path: Path, shared: Path) -> None:
    config = tmp_path / "model_server.toml"
    config.write_text(  # (no classifier; Triton's own log beside the config file)
        '[pipeline]\ndetector = "mmod"\n[model_server]\nmax_batch = 8\nlog_file = "triton.log"\n'
    )
    server = ModelServer(config)
    await server.start()
    # the server's output is its own: tritonserver's lines ("I1207 12:00:00.000 123 server.cc:604]",
    # its CUDA/NVML/DCGM errors on a machine without a GPU) and PyTriton's notices go to the file
    said = server.log.read_text()
    assert f"Triton's own log: {tmp_path / 'triton.log'}" in said
    assert not re.search(r"^[IWE]\d{4} |NVML|DCGM|pytriton", said, re.M), said[-3000:]
    assert "successfully loaded 'streamer_photo_chips'" in (tmp_path / "triton.log").read_text()
    pool = TritonPool([server.url], Metrics(), 640, 0.5)
    finder = FaceFinder()
    try:
        photo = cv2.cvtColor(cv2.imread(str(shared / "media" / "obama-720p.jpg")), cv2.COLOR_BGR2RGB)
        small = np.zeros((1440, 2560, 3), np.uint8)  # (its face found only at upsample 1)
        small[:720, :1280] = photo
        for image in (photo, small):
            (face,) = await pool.describe_photo(image, ENROL_MIRRORED)
            want = finder.one_face(image, mirrored=ENROL_MIRRORED)
            assert face.box == want.box
            assert np.abs(face.descriptor - want.descriptor).max() < 1e-5
        (plain,) = await pool.describe_photo(photo, mirrored=False)
        assert np.abs(plain.descriptor - finder.describe(photo, [plain.box])[0]).max() < 1e-5
        assert await pool.describe_photo(np.full((300, 300, 3), 128, np.uint8), True) == []
        two = cv2.cvtColor(cv2.imread(str(shared / "media" / "two_people.jpg")), cv2.COLOR_BGR2RGB)
        crowd = await pool.describe_photo(two, ENROL_MIRRORED, most=1)  # (none described: refused)
        assert len(crowd) == 2 and all(f.chip is None and f.descriptor is None for f in crowd)
        # a model the server does not serve (an older model server, without the photo models):
        # the photo fails, the server stays up for the live frames
        with pytest.raises(BackendUnavailable):
            await pool._call("streamer_no_such_model", {"image": photo[None]}, ["result"], 5.0, False)
        assert pool.up and server_up(pool)
    finally:
        await pool.close()
        assert await server.stop() == 0
    # (stopping it: tritonserver's "Signal (2) received." on its stdout, which PyTriton echoed)
    said = server.log.read_text()
    assert "model server stopped" in said and "Signal (" not in said, said[-2000:]
