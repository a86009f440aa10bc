"""The held-out part of a real clip as a file of its own, cut without re-encoding.

The real benchmark's tuning used the first seconds of each clip (reference.py's CLIPS). The rest
of the longer clips is kept aside (reference.py's HELD_OUT) and judged the same way, so that what
the tuning bought is checked on minutes it never saw. Every tool of the benchmark (the reference,
the planned and live runs, the closer look) reads a clip as a file from its frame 0, so the part
is written to ``.cache/real/segments/`` by copying the source's compressed packets from its first
key frame at or after the part's start (PyAV, which aiortc brings): the frames decode to exactly
the source's pixels, and the part starts at that key frame.
"""

from __future__ import annotations

import json
from pathlib import Path


def cut(src: Path, dst: Path, start_s: float) -> float:
    """Write ``src`` from its first key frame at or after ``start_s`` to ``dst`` (packets copied,
    timestamps from 0); the seconds into ``src`` where the part starts."""
    import av

    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.stem + ".part" + dst.suffix)
    with av.open(str(src)) as inp, av.open(str(tmp), "w") as out:
        vs = inp.streams.video[0]
        # (PyAV 14 and later; before it, add_stream(template=...))
        add = getattr(out, "add_stream_from_template", None)
        os_ = add(vs) if add else out.add_stream(template=vs)
        tb = vs.time_base
        inp.seek(int(start_s / tb), stream=vs, backward=True, any_frame=False)
        off, at = None, 0.0
        for pkt in inp.demux(vs):
            if pkt.dts is None or pkt.pts is None:
                continue
            if off is None:
                if not pkt.is_keyframe or float(pkt.pts * tb) < start_s - 1e-6:
                    continue
                off, at = min(pkt.pts, pkt.dts), float(pkt.pts * tb)
            pkt.pts -= off
            pkt.dts -= off
            pkt.stream = os_
            out.mux(pkt)
    if off is None:
        tmp.unlink(missing_ok=True)
        raise ValueError(f"{src.name}: no key frame after {start_s} s")
    tmp.replace(dst)
    dst.with_suffix(".json").write_text(json.dumps({"source": src.name, "start_s": round(at, 3)}))
    return at


def start_of(part: Path) -> float | None:
    """Where in its source a part cut by ``cut`` starts (seconds), if it has been cut."""
    info = part.with_suffix(".json")
    return json.loads(info.read_text())["start_s"] if info.exists() else None
