"""The face library's tables (migration 4 of the event store, history/schema.py).

- ``people``: one row per name.
- ``person_faces``: a person's enrolled descriptors (dlib's 128-D as float32 bytes) with the face
  crop (JPEG) and where it came from (``upload``, ``file``, ``event``, ``cluster``); ``negative``
  1 for a "not this person" (kept, never matched as them: it vetoes them for faces nearer to it).
- ``unknown_clusters``: unknown people, grouped: the mean descriptor of their tracks, how many
  tracks (sightings), first and last seen, a face crop.
- ``unknown_tracks``: each unknown track's mean descriptor and its cluster (naming a cluster
  enrolls them).
"""

from __future__ import annotations

from typing import Any


def library_tables(d: Any) -> list[str]:
    f, b = d.float, d.blob
    return [
        f"""CREATE TABLE people (
            id {d.serial},
            name TEXT NOT NULL UNIQUE,
            created_at {f} NOT NULL)""",
        f"""CREATE TABLE person_faces (
            id {d.serial},
            person_id BIGINT NOT NULL REFERENCES people (id) ON DELETE CASCADE,
            negative INTEGER NOT NULL DEFAULT 0,
            descriptor {b} NOT NULL,
            crop {b},
            source TEXT NOT NULL,
            event_id BIGINT,
            created_at {f} NOT NULL)""",
        "CREATE INDEX person_faces_person ON person_faces (person_id)",
        f"""CREATE TABLE unknown_clusters (
            id {d.serial},
            centroid {b} NOT NULL,
            sightings BIGINT NOT NULL,
            first_at {f} NOT NULL,
            last_at {f} NOT NULL,
            crop {b})""",
        f"""CREATE TABLE unknown_tracks (
            id {d.serial},
            cluster_id BIGINT NOT NULL REFERENCES unknown_clusters (id) ON DELETE CASCADE,
            stream TEXT NOT NULL,
            track BIGINT NOT NULL,
            at {f} NOT NULL,
            descriptor {b} NOT NULL)""",
        "CREATE INDEX unknown_tracks_cluster ON unknown_tracks (cluster_id)",
    ]
