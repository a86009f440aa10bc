"""The detector benchmark runs and writes its JSON and Markdown (tiny --quick run)."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_quick_benchmark_writes_report(tmp_path):
    pytest.importorskip("dlib")
    pytest.importorskip("cv2")
    from benchmarks import detector

    report = detector.main(["--quick", "--frames", "1", "--batch", "2", "--out", str(tmp_path)])
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 2 and files[0].endswith(".json") and files[1].endswith(".md")
    data = json.loads((tmp_path / files[0]).read_text())
    assert data == json.loads(json.dumps(report))
    for key in ("cpu", "cores", "keras", "dlib", "numpy", "git_commit"):
        assert key in data["machine"]
    row = data["results"][0]
    assert row["size"] == "320x240" and row["same_boxes_as_dlib"] is True
    b1 = row["batch1"]
    for key in ("mmod_ms_per_frame", "mmod_fps", "dlib_ms_per_frame", "dlib_fps", "speedup_vs_dlib"):
        assert isinstance(b1[key], float)
    assert row["batch2"]["mmod_ms_per_frame"] > 0
