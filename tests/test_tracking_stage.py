"""The face stage's events and metrics: a slow event client is dropped, counters carry the stream,
a merged track counts neither as a face nor as a track of its own."""

from __future__ import annotations

import numpy as np

from streamer.metrics import Metrics
from streamer.pipeline.events import EventHub
from streamer.pipeline.tracking import FaceStage
from streamer.track.tracker import TrackEvent
from streamer.types import Box, Detections, Face, Frame, Label
from tests.support.tracking import GREY, face


def test_event_hub_drops_a_slow_client_and_never_blocks() -> None:
    m = Metrics()
    hub = EventHub("cam", m)
    slow = hub.subscribe()
    box = Box(0, 0, 9, 9, 1.0)
    hub.publish([TrackEvent("start", i, 0.0, box, (), 0.0) for i in range(300)])
    assert slow.dropped and slow not in hub.clients
    assert m.registry.get_sample_value("streamer_events_dropped_total", {"stream": "cam"}) > 0
    fresh = hub.subscribe()  # a new client first gets the open tracks
    assert fresh.queue.qsize() == 300
    m.forget_stream("cam")
    assert m.registry.get_sample_value("streamer_events_dropped_total", {"stream": "cam"}) is None


def test_face_stage_metrics_carry_the_stream_and_are_forgotten_with_it() -> None:
    m = Metrics()
    stage = FaceStage("door", 1, m)
    male = (Label("gender", "male", 0.9),)
    for i in range(3):
        f = Frame("door", i, GREY, i / 30)
        assert stage.due(i)
        stage.on_detections(Detections("door", i, f.captured_at, (face(100, 50, labels=male),)))
        out = stage.process(f)
        assert out.faces and out.faces[0].track == 1
    assert not np.array_equal(out.image, GREY)  # drawn
    get = m.registry.get_sample_value
    assert get("streamer_tracks_active", {"stream": "door"}) == 1
    assert get("streamer_track_switches_total", {"stream": "door"}) == 0  # there, at 0
    stage.close(1.0)
    assert get("streamer_tracks_total", {"stream": "door"}) == 1
    assert get("streamer_faces_total", {"stream": "door", "label": "gender:male"}) == 1  # once per track
    assert get("streamer_tracks_active", {"stream": "door"}) == 0
    assert get("streamer_stage_seconds_count", {"stage": "track"}) == 3
    # a track whose box came to lie on someone else ends, and says so
    gate = FaceStage("gate", 1, m)
    me, you = np.zeros(128, np.float32), np.full(128, 0.1, np.float32)  # 1.13 apart
    for i, who in enumerate((me, me, you)):
        f = Frame("gate", i, GREY, i / 30)
        gate.on_detections(
            Detections("gate", i, f.captured_at, (Face(face(100, 50).box, male, identity=who),))
        )
        gate.process(f)
    assert get("streamer_track_switches_total", {"stream": "gate"}) == 1
    # mine ended, and counts; yours is new: it counts once past its first looks, or when it ends
    assert get("streamer_tracks_total", {"stream": "gate"}) == 1
    assert get("streamer_tracks_resumed_total", {"stream": "gate"}) == 0
    # ... and I come back (my track had ended): my track goes on, not a new face nor a new count
    f = Frame("gate", 3, GREY, 3 / 30)
    gate.on_detections(Detections("gate", 3, f.captured_at, (Face(face(200, 100).box, male, identity=me),)))
    assert 1 in [x.track for x in gate.process(f).faces]
    assert get("streamer_tracks_resumed_total", {"stream": "gate"}) == 1
    assert get("streamer_tracks_total", {"stream": "gate"}) == 1
    gate.close(1.0)
    assert get("streamer_tracks_total", {"stream": "gate"}) == 2  # you, as you ended
    assert get("streamer_faces_total", {"stream": "gate", "label": "gender:male"}) == 1  # me, once
    m.forget_stream("door")
    text = m.render().decode()
    assert 'stream="door"' not in text


def test_a_merged_track_is_not_counted_as_a_face_of_its_own() -> None:
    m = Metrics()
    stage = FaceStage("hall", 1, m)
    male = (Label("gender", "male", 0.9),)
    me = np.zeros(128, np.float32)
    blurred = me + np.full(128, 0.4 / np.sqrt(128), np.float32)  # 0.4 off: not recognised at once
    looks = [
        (0.0, me, male),
        (0.1, me, male),
        (0.2, None, ()),
        (1.3, None, ()),
        (1.4, blurred, ()),
        (1.5, me, ()),
    ]
    for i, (t, who, labels) in enumerate(looks):
        f = Frame("hall", i, GREY, t)
        faces = () if who is None else (Face(face(100, 50).box, labels, identity=who),)
        stage.on_detections(Detections("hall", i, t, faces))
        stage.process(f, draw=False)
    assert [x.track for x in stage.faces] == [1]  # the new track (2) became mine at its second look
    stage.close(2.0)
    get = m.registry.get_sample_value
    assert get("streamer_faces_total", {"stream": "hall", "label": "gender:male"}) == 1
    for other in ("gender:?", "face"):  # track 2 is not a face of its own
        assert get("streamer_faces_total", {"stream": "hall", "label": other}) is None
    assert get("streamer_tracks_resumed_total", {"stream": "hall"}) == 1


def test_a_track_merged_after_its_label_settled_counts_neither_face_nor_track_again() -> None:
    """I leave; a new track on me, not recognised at its first looks, settles my label, then is
    recognised and merges into my track: one face, one track, one label in the counters; a new face
    past its first looks counts at once."""
    m = Metrics()
    stage = FaceStage("hall", 1, m)
    male = (Label("gender", "male", 0.9),)
    me = np.zeros(128, np.float32)
    blurred = me + np.full(128, 0.4 / np.sqrt(128), np.float32)  # 0.4 off: not recognised
    looks = [(0.0, me), (0.1, me), (0.2, None), (1.3, None), (1.4, blurred), (1.5, blurred), (1.6, me)]
    get = m.registry.get_sample_value
    for i, (t, who) in enumerate(looks):
        f = Frame("hall", i, GREY, t)
        faces = () if who is None else (Face(face(100, 50).box, male, identity=who),)
        stage.on_detections(Detections("hall", i, t, faces))
        out = stage.process(f, draw=False)
        if i == 5:  # the new track shows "male", settled, as its own id
            assert [(x.track, x.labels[0].label) for x in out.faces] == [(2, "male")]
    assert [x.track for x in stage.faces] == [1]  # ... until it was recognised as mine
    assert get("streamer_tracks_total", {"stream": "hall"}) == 1
    assert get("streamer_faces_total", {"stream": "hall", "label": "gender:male"}) == 1
    # someone new, seen on more than recognise_hits detections: counted while still in view
    you = np.full(128, 0.1, np.float32)
    for i in range(7, 13):
        f = Frame("hall", i, GREY, i / 10)
        faces = (Face(face(100, 50).box, male, identity=me), Face(face(250, 50).box, male, identity=you))
        stage.on_detections(Detections("hall", i, i / 10, faces))
        stage.process(f, draw=False)
    assert get("streamer_tracks_total", {"stream": "hall"}) == 2
    assert get("streamer_faces_total", {"stream": "hall", "label": "gender:male"}) == 2
    stage.close(2.0)
    assert get("streamer_tracks_total", {"stream": "hall"}) == 2
    assert get("streamer_faces_total", {"stream": "hall", "label": "gender:male"}) == 2
