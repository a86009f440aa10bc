"""The detector benchmark runs and writes its JSON and Markdown (tiny --quick run)."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_quick_benchmark_writes_report(tmp_path):
    pytest.importorskip("dlib")
    pytest.importorskip("cv2")
    from benchmarks import detector

    assert detector.main(["--quick", "--frames", "1", "--batch", "2", "--out", str(tmp_path)]) == 0
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 2 and files[0].endswith("-quick.json") and files[1].endswith("-quick.md")
    data = json.loads((tmp_path / files[0]).read_text())
    for key in ("cpu", "cores", "keras", "onnxruntime", "dlib", "numpy", "git_commit"):
        assert key in data["machine"]
    row = data["results"][0]
    assert row["size"] == "320x240"
    assert isinstance(row["dlib"]["ms_per_frame"], float)
    for rt in ("keras", "onnxruntime"):
        r = row[rt]
        assert r["same_boxes_as_dlib"] is True
        for key in ("ms_per_frame", "megapixels_per_s", "speedup_vs_dlib", "batch2_ms_per_frame"):
            assert isinstance(r[key], float) and r[key] > 0
        assert set(r["share"]) == {"canvas", "network", "postprocess"}
        assert abs(sum(r["share"].values()) - 1) < 0.01 and r["share"]["network"] > 0
        assert f"mmod {rt}" in (tmp_path / files[1]).read_text()
