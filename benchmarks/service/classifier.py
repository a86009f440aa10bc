"""Service part ``classifier``: classifier throughput, faces per second at batch 1, 8, 32 and 128."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from benchmarks.report import progress
from benchmarks.service.options import Options, classifier_configs
from streamer.classify import Classifier

BATCHES = (1, 8, 32, 128)


def run(opts: Options) -> dict[str, Any]:
    budget = 0.2 if opts.quick else 3.0  # seconds of calls per (model, batch)
    rows = []
    for c in classifier_configs(opts):
        clf = Classifier(c.name, c.model, c.threshold, max_batch=max(BATCHES))
        h, w = clf.meta.input_size
        rng = np.random.default_rng(0)
        for b in BATCHES:
            if clf.uses_backbone:  # a head on the face backbone: (b, D) features in (the backbone: stages)
                x = rng.normal(size=(b, clf.inputs)).astype(np.float32)
            else:
                x = rng.integers(0, 256, (b, h, w, 3), dtype=np.uint8)
            clf.predict_proba(x)  # warm-up (trace / compile for this shape)
            calls, t0 = 0, time.perf_counter()
            while calls < 3 or time.perf_counter() - t0 < budget:
                clf.predict_proba(x)
                calls += 1
            dt = time.perf_counter() - t0
            rows.append(
                {
                    "classifier": c.name,
                    "input": f"{w}x{h}",
                    "batch": b,
                    "faces_per_s": round(calls * b / dt, 1),
                    "ms_per_batch": round(1000 * dt / calls, 3),
                }
            )
            progress(f"classifier {c.name} batch {b}: {rows[-1]['faces_per_s']} faces/s")
    return {"backend": __import__("keras").backend.backend(), "rows": rows}
