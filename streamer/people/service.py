"""The face library in the service: the gallery every stream matches against, enrollment, the
unknown clusters, the recognitions metric. ``Pipeline`` builds one (``pipeline.people``) and
``attach``es each stream's stage; the web API (web/people_api.py) calls the rest.

The gallery is an immutable snapshot swapped whole after each change (render threads read it
without a lock). An uploaded photo is decoded and checked in one thread of its own and described
by the model stage (``models``: the pipeline's worker pool or Triton tier, inference/photo.py),
so this process loads no model; the database is read in the history's reader threads.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from streamer.config import Config
from streamer.inference.pool import WorkerCrashed
from streamer.metrics import Metrics
from streamer.people.clusters import Clusters, members, remove
from streamer.people.faces import ENROL_MIRRORED, Described, decode_photo, described, one_box
from streamer.people.library import Library, jpeg
from streamer.people.match import Gallery, load_backend, load_cohort
from streamer.people.recognize import StageRecognizer

log = logging.getLogger(__name__)


def _short(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]


class ModelsUnavailable(RuntimeError):
    """The model stage could not describe the photo (a worker died, no model server answered):
    the web API answers 503."""


class People:
    def __init__(self, config: Config, metrics: Metrics, history: Any, models: Any = None) -> None:
        """``models``: the model stage that describes photos (``describe_photo``, inference/photo.py)."""
        self.cfg = config.people
        self.history = history
        self.rule = self.cfg.match_rule()
        self.gallery = Gallery()
        self.cohort = load_cohort(self.cfg.cohort, self.cfg.cohort_k) if self.cfg.enabled else None
        self.backend = load_backend(self.cfg.backend) if self.cfg.enabled else None
        self.metrics = metrics
        self.models = models
        self._enroller = ThreadPoolExecutor(1, thread_name_prefix="people-enroll")
        self._loading: asyncio.Task | None = None
        self._watching: asyncio.Task | None = None
        self._signature: tuple = ()
        self.enabled = self.cfg.enabled and history.enabled
        self.library = Library(history.db) if self.enabled else None
        self.clusters = (
            Clusters(
                history.db,
                self.cfg.cluster_distance,
                self.cfg.cluster_min_looks,
                self.cfg.cluster_min_face_px,
            )
            if self.enabled
            else None
        )

    async def start(self, wait: bool = True) -> None:
        """Read the library and the clusters (``wait`` False: in the background; the streams start
        meanwhile, naming nobody until it is read)."""
        if not self.enabled:
            return
        if not wait:
            self._loading = asyncio.get_running_loop().create_task(self._load())
            return
        await self._load()

    async def _load(self) -> None:
        try:
            if self.history.writer is not None:  # (the writer thread opens and migrates the store)
                await asyncio.to_thread(self.history.writer.tried.wait, 30)
            await self.reload()
            assert self.clusters is not None
            await self.history.read(lambda store, conn: self.clusters.load(conn))
        except Exception as e:
            log.error("face library: cannot read it (%s); recognition starts with an empty one", e)
        self._watching = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        """Every ``refresh_s``: the library again if it changed elsewhere (``streamer people``,
        another front end on the same store), and the clusters. A failing store is said once."""
        assert self.library is not None and self.clusters is not None
        failing = False
        while True:
            await asyncio.sleep(self.cfg.refresh_s)
            try:
                sig = await self.history.read(lambda store, conn: self.library.signature(conn))
                if sig != self._signature:
                    await self.reload()
                await self.history.read(lambda store, conn: self.clusters.refresh(conn))
                if failing:
                    log.info("face library: read again")
                failing = False
            except Exception as e:
                if not failing:
                    log.warning("face library: cannot read changes (%s); will try again", e)
                failing = True

    async def reload(self) -> None:
        assert self.library is not None

        def read(store: Any, conn: Any) -> tuple[Gallery, tuple]:
            sig = self.library.signature(conn)
            return self.library.gallery(conn, self.cohort, self.backend), sig

        self.gallery, self._signature = await self.history.read(read)

    def recognises(self, stream_id: str) -> bool:
        return self.enabled and (not self.cfg.streams or stream_id in self.cfg.streams)

    def attach(self, stream: Any) -> None:
        """Give ``stream``'s stage recognition (and privacy, which applies to every stream)."""
        recognise = self.recognises(stream.id)
        if not recognise and self.cfg.privacy == "off":
            return
        sid = stream.id
        clusters = self.clusters

        def on_unknown(track: int, d: np.ndarray, looks: int, face_px: float, hits: frozenset[float]) -> None:
            if clusters is not None:
                clusters.add(sid, track, d, looks, face_px, hits)

        stream.stage.people = StageRecognizer(
            lambda: self.gallery,
            self.rule,
            self.cfg.min_face_px,
            self.cfg.privacy,
            lambda outcome: self.metrics.recognitions.labels(outcome).inc(),
            on_unknown,
            recognise=recognise,
            min_frontal=self.cfg.cluster_min_frontal,
            learned=self.cfg.learned(self.metrics.faces_learned.inc) if recognise else None,
        )

    # -- enrollment ------------------------------------------------------------------------------
    async def describe(self, data: bytes) -> Described:
        """An uploaded photo's one face (BadPhoto: not an image, too big, no face, several;
        ModelsUnavailable: the model stage failed)."""
        loop = asyncio.get_running_loop()
        image = await loop.run_in_executor(self._enroller, decode_photo, data, self.cfg.max_upload_pixels)
        if self.models is None:
            raise ModelsUnavailable("no model stage describes photos here")
        try:
            faces = await self.models.describe_photo(image, ENROL_MIRRORED, most=1)  # (more: refused)
        except WorkerCrashed as e:
            raise ModelsUnavailable("the inference worker died describing the photo") from e
        except Exception as e:  # (the cause is logged, not told: it may name a model server)
            log.warning("face library: the models could not describe a photo (%s)", _short(e))
            raise ModelsUnavailable("the models could not describe the photo") from e
        one_box(image, [f.box for f in faces])  # (BadPhoto unless there is exactly one)
        face = faces[0]
        return await loop.run_in_executor(self._enroller, described, image, face.box, face.descriptor)

    async def enroll(
        self,
        name: str,
        faces: list[tuple[np.ndarray, bytes | None]],
        source: str,
        event_id: int | None = None,
        negative: bool = False,
    ) -> list[int]:
        assert self.library is not None
        ids = await self.history.read(
            lambda store, conn: self.library.add_faces(conn, name, faces, source, event_id, negative)
        )
        await self.reload()
        return ids

    async def enroll_photo(self, name: str, data: bytes) -> tuple[int, Described]:
        got = await self.describe(data)
        ids = await self.enroll(name, [(got.descriptor, jpeg(got.crop))], "upload")
        return ids[0], got

    async def name_cluster(self, cid: int, name: str) -> int:
        """Enroll cluster ``cid``'s tracks under ``name`` and remove it: how many descriptors (0:
        no such cluster)."""
        assert self.clusters is not None and self.library is not None
        await asyncio.to_thread(self.clusters.flush)
        ds = await self.history.read(lambda store, conn: members(self.history.db, conn, cid))
        if not ds:
            return 0
        await self.enroll(name, [(d, None) for d in ds], f"cluster:{cid}")
        await self.drop_cluster(cid)
        return len(ds)

    async def drop_cluster(self, cid: int) -> bool:
        assert self.clusters is not None
        self.clusters.forget(cid)
        return await self.history.read(lambda store, conn: remove(self.history.db, conn, cid))

    def close(self) -> None:
        for task in (self._loading, self._watching):
            if task is not None:
                task.cancel()
        self._enroller.shutdown(wait=False, cancel_futures=True)
        if self.clusters is not None:
            self.clusters.close()
