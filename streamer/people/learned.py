"""Faces a stream learns of the people it names (in memory, never stored).

A person enrolled from one photo is recognised where a face lies near that photo: the same
person in another light, pose or shot often lies too far. When a track whose name had settled
ends, its looks that named that person surely (each known as them within ``distance``, nearer
than the library's ``known``; at least ``min_frontal`` frontal, a profile's descriptor lies near
other people's; at least ``min_looks`` of them) are averaged into one more face of that person,
which later tracks of this stream are matched against with the library's own faces. A person
keeps their newest ``keep`` learned faces. They live in memory for the stream's life: nothing is
stored, a restart forgets them, and the library (``GET /people``) shows only the faces given
to it.

A learned face is built only from looks that the library's own rule named that person surely, so
it is never further than ``distance`` from the person's enrolled faces and learned ones; a
learned face lying nearer one of the person's negatives ("not this person") than their enrolled
faces is dropped, and one whose person left the library goes with them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence

import numpy as np

from streamer.people.match import KNOWN, Gallery, MatchRule

Look = tuple[np.ndarray, float, float]  # descriptor, face height, frontalness


class Learned:
    def __init__(
        self,
        distance: float = 0.45,
        keep: int = 8,
        min_looks: int = 2,
        min_frontal: float = 0.5,
        on_learn: Callable[[], None] | None = None,
    ):
        self.distance = distance
        self.keep = keep
        self.min_looks = min_looks
        self.min_frontal = min_frontal
        self._faces: dict[str, deque[np.ndarray]] = {}
        self._version = 0
        self.on_learn = on_learn  # (called for each face learned: streamer_faces_learned_total)
        # (the library it was built on, the learned faces' version, the gallery): kept by reference,
        # so a new library is never taken for the old one
        self._built: tuple[Gallery, int, Gallery] | None = None

    def __len__(self) -> int:
        return sum(len(q) for q in self._faces.values())

    def gallery(self, library: Gallery) -> Gallery:
        """``library`` with the learned faces of the people still in it (built again only when
        the library or the learned faces change)."""
        if not self._faces or not len(library):
            return library
        b = self._built
        if b is not None and b[0] is library and b[1] == self._version:
            return b[2]
        extra = [(n, d) for n, q in self._faces.items() if n in library.names for d in q]
        if extra:  # (vetoed: a negative of theirs nearer than their enrolled faces)
            row = {n: i for i, n in enumerate(library.names)}
            dist = library.distances(np.stack([d for _, d in extra]))
            extra = [(n, d) for (n, d), r in zip(extra, dist, strict=True) if np.isfinite(r[row[n]])]
        g = library.with_faces(extra) if extra else library
        self._built = (library, self._version, g)
        return g

    def learn(self, name: str, looks: Sequence[Look], gallery: Gallery, rule: MatchRule) -> bool:
        """A track shown as ``name`` ended with ``looks``: learn their sure looks' mean; True if
        learned."""
        good = [d for d, _, front in looks if front >= self.min_frontal]
        if len(good) < self.min_looks or name not in gallery.names:
            return False
        sure = [
            d
            for d, m in zip(good, gallery.match(np.stack(good), rule), strict=True)
            if m.outcome == KNOWN and m.name == name and m.distance <= self.distance
        ]
        if len(sure) < self.min_looks:
            return False
        q = self._faces.setdefault(name, deque(maxlen=self.keep))
        q.append(np.mean(sure, axis=0).astype(np.float32))
        self._version += 1
        if self.on_learn is not None:
            self.on_learn()
        return True
