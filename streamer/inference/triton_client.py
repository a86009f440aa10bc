"""The model stage on Triton model servers: the WorkerPool interface, over gRPC.

``run(images)`` returns what Engine.run returns, so the batcher, streams and outputs do not
know where the models ran. Frames are scaled to the detection size here, before they travel;
boxes come back in each source frame's coordinates.

Faults: every request carries a deadline (the client drops it, and Triton rejects it from
its queue, when late). A server that fails or is late is marked down (gauge
``streamer_inference_backend_up{url}`` 0, ``streamer_errors_total{kind="backend_unavailable"}``)
and left alone for a backoff that doubles up to a cap; the batch goes to the next server, or,
with none left, raises BackendUnavailable: the streams keep their last boxes, which grow stale.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from streamer.detect import BadImageError, as_rgb
from streamer.detect.regions import clip, cut, merge
from streamer.inference import triton_wire
from streamer.inference.engine import EngineStatus, FrameResult, scale_for_detection, unscale_box
from streamer.inference.photo import PhotoFace, too_many, undescribed
from streamer.metrics import Metrics
from streamer.types import BatchTimings, Box, Face, Region

log = logging.getLogger(__name__)
BACKEND_UNAVAILABLE = "backend_unavailable"
PHOTO_TIMEOUT_S = 10.0  # a photo's requests (an upload waits for them; the video's deadline is far shorter)
_CHANNEL_ARGS = [
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


class BackendUnavailable(RuntimeError):
    """No model server answered this batch in time; its frames go without new detections."""


@dataclass
class _Server:
    url: str
    client: Any = None  # tritonclient.grpc.aio.InferenceServerClient, made on first use
    up: bool = False
    retry_at: float = 0.0
    backoff_s: float = 0.0
    in_flight: int = 0
    failures: int = 0


class TritonPool:
    def __init__(
        self,
        urls: Sequence[str],
        metrics: Metrics,
        detect_max_side: int = 640,
        timeout_s: float = 0.5,
        classifiers: Sequence[str] = (),
        backoff_initial_s: float = 0.25,
        backoff_max_s: float = 5.0,
        transport: str = "raw",
    ) -> None:
        self.transport = transport
        self.servers = [_Server(u) for u in urls]
        self.metrics = metrics
        self.detect_max_side = detect_max_side
        self.timeout_s = timeout_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.status = EngineStatus(detector=f"triton {','.join(urls)}", classifiers=list(classifiers))
        self._turn = 0
        self.restarts = 0  # WorkerPool's interface; nothing to restart here
        self._aligner: Any = None  # dlib's 5-point landmarks, for a photo's chips (loaded on first use)

    @property
    def up(self) -> bool:
        return any(s.up for s in self.servers)

    async def start(self) -> EngineStatus:
        """Never waits for a model server: the video runs while none is up."""
        for s in self.servers:
            self.metrics.backend_up.labels(s.url).set(0)
        return self.status

    def worker_pids(self) -> list[int]:
        return []

    async def close(self) -> None:
        for s in self.servers:
            await self._drop_client(s)

    async def run(
        self,
        images: Sequence[np.ndarray],
        skip: Sequence[Sequence[Box]] | None = None,
        regions: Sequence[Sequence[Region]] | None = None,
        streams: Sequence[str] | None = None,
    ) -> tuple[list[FrameResult], BatchTimings]:
        """The WorkerPool contract (``streams`` unused: no proposals here). ``skip`` (faces of
        settled tracks) is not sent: the model server classifies every face it finds, and the
        streams' trackers weigh the labels. ``regions`` are cut here (as the Engine does) and sent
        as images; their faces merged here (propose regions are not looked at: see proposals.py)."""
        results: list[FrameResult | None] = [None] * len(images)
        groups: dict[tuple[int, ...], list[int]] = {}
        # per piece sent: (frame, image, scale of a whole frame or the region it was cut from)
        pieces: list[tuple[int, np.ndarray, float | Region]] = []
        sizes: dict[int, tuple[int, int]] = {}
        for i, im in enumerate(images):
            try:
                rgb = as_rgb(im)
            except BadImageError as e:
                results[i] = FrameResult(error=str(e))
                continue
            sizes[i] = (rgb.shape[1], rgb.shape[0])
            # no proposals here: dlib's HOG would hold the GIL, and this event loop, for 0.1-0.4 s
            # (the planner makes none for this backend); the rest of the plan is looked at
            plan = tuple(r for r in regions[i] if r.why != "propose") if regions else ()
            if plan:
                for r in plan:
                    r = clip(r, rgb.shape[1], rgb.shape[0])
                    pieces.append((i, cut(rgb, r), r))
            else:
                small, s = scale_for_detection(rgb, self.detect_max_side)
                pieces.append((i, small, s))
        for k, (_, im, _) in enumerate(pieces):
            groups.setdefault(im.shape if self.transport == "raw" else (), []).append(k)
        # Triton batches raw requests of one shape: one request per image size, all at once
        answers = await asyncio.gather(
            *(self._infer(self._tensor([pieces[k][1] for k in idx])) for idx in groups.values())
        )
        detect_s = classify_s = 0.0
        clf_batches: dict[str, int] = {}
        clf_errors: dict[str, str] = {}
        found: dict[int, tuple[list[list[Face]], list[Region]]] = {}
        whole: dict[int, tuple[Face, ...]] = {}
        errors: dict[int, str] = {}
        for idx, docs in zip(groups.values(), answers, strict=True):
            for k, (result, doc) in zip(idx, docs, strict=True):
                i, _, where = pieces[k]
                w, h = sizes[i]
                if result.error is not None:
                    errors[i] = result.error
                if isinstance(where, Region):
                    fs, rs = found.setdefault(i, ([], []))
                    fs.append(list(result.faces))
                    rs.append(where)
                else:
                    whole[i] = tuple(
                        Face(unscale_box(f.box, where, w, h), f.labels, identity=f.identity)
                        for f in result.faces
                    )
                t = doc.get("t", [0.0, 0.0, 1])
                share = 1.0 / max(1, int(t[2]))  # this piece's share of the server batch's time
                detect_s += t[0] * share
                classify_s += t[1] * share
                for name, n in doc.get("clf", {}).items():
                    clf_batches[name] = max(clf_batches.get(name, 0), int(n))
                clf_errors.update(doc.get("clf_err", {}))
        for i, (fs, rs) in found.items():
            whole[i] = merge(fs, rs, *sizes[i])
        n_faces = 0
        for i in sizes:
            faces = whole.get(i, ())
            results[i] = FrameResult(faces=faces, error=errors.get(i))
            n_faces += len(faces)
        prepared = sizes
        timings = BatchTimings(detect_s, classify_s, len(prepared), n_faces, clf_batches, clf_errors)
        return [r if r is not None else FrameResult(error="not processed") for r in results], timings

    async def describe_photo(self, image: np.ndarray, mirrored: bool, most: int = 0) -> list[PhotoFace]:
        """photo.py's description of an RGB photo: the faces found by a model server on the photo
        scaled here (as a live frame is), chips cut here from the photo itself, their descriptors
        from a model server (none described when there are more than ``most``). BackendUnavailable
        when no server answers."""
        rgb = np.ascontiguousarray(as_rgb(image))
        h, w = rgb.shape[:2]
        small, s = scale_for_detection(rgb, self.detect_max_side)
        timeout = max(self.timeout_s, PHOTO_TIMEOUT_S)
        inputs = {triton_wire.INPUT: small[None]}
        out = await self._call(
            triton_wire.PHOTO_FACES_MODEL, inputs, [triton_wire.OUTPUT], timeout, down_without_model=False
        )
        doc = json.loads(bytes(out[triton_wire.OUTPUT].reshape(-1)[0]))
        if "error" in doc:
            raise BackendUnavailable(f"the model server could not look at the photo: {doc['error']}")
        boxes = [unscale_box(Box(*map(int, f[:4]), float(f[4])), s, w, h) for f in doc["faces"]]
        if not boxes:
            return []
        if too_many(boxes, most):
            return undescribed(boxes)
        if self._aligner is None:
            from streamer.classify.backbone import FaceAligner

            self._aligner = await asyncio.to_thread(FaceAligner)
        chips = await asyncio.to_thread(self._aligner.chips, rgb, boxes)
        key = triton_wire.DESCRIPTOR_FLIP if mirrored else triton_wire.DESCRIPTOR
        model, name = triton_wire.PHOTO_CHIPS_MODEL, triton_wire.CHIP_INPUT
        got = await asyncio.gather(  # one chip a request: never over the server's max_batch
            *(self._call(model, {name: c[None]}, [key], timeout, down_without_model=False) for c in chips)
        )
        return [
            PhotoFace(b, c, np.asarray(d[key], np.float32).reshape(-1))
            for b, c, d in zip(boxes, chips, got, strict=True)
        ]

    def _tensor(self, images: list[np.ndarray]) -> np.ndarray:
        if self.transport == "raw":
            return np.stack(images)
        import cv2

        quality = [cv2.IMWRITE_JPEG_QUALITY, triton_wire.JPEG_QUALITY]
        jpegs = [
            cv2.imencode(".jpg", np.ascontiguousarray(im[:, :, ::-1]), quality)[1].tobytes() for im in images
        ]
        return np.array([[j] for j in jpegs], dtype=object)

    def _pick(self, tried: set[str]) -> _Server | None:
        now = time.monotonic()
        ok = [s for s in self.servers if s.url not in tried and (s.up or s.retry_at <= now)]
        if not ok:
            return None
        self._turn += 1
        # fewest requests in flight first; ties go round robin
        return min(ok, key=lambda s: (s.in_flight, (self.servers.index(s) - self._turn) % len(self.servers)))

    async def _infer(self, batch: np.ndarray) -> list[tuple[FrameResult, dict[str, Any]]]:
        raw = self.transport == "raw"
        model = triton_wire.MODEL if raw else triton_wire.JPEG_MODEL
        inputs = {triton_wire.INPUT if raw else triton_wire.JPEG_INPUT: batch}
        out = await self._call(model, inputs, [triton_wire.OUTPUT], self.timeout_s)
        return [triton_wire.decode_result(bytes(r)) for r in out[triton_wire.OUTPUT].reshape(-1)]

    async def _call(
        self,
        model: str,
        inputs: dict[str, np.ndarray],
        outputs: list[str],
        timeout_s: float,
        down_without_model: bool = True,
    ) -> dict[str, np.ndarray]:
        """One request to the first server that answers in time (the others marked down).
        ``down_without_model`` False: a server that does not serve ``model`` (an older model
        server, without the photo models) is passed over for this request but not marked down,
        so the live frames it serves do not fail over because of a photo."""
        deadline = time.monotonic() + timeout_s
        tried: set[str] = set()
        last = "no model server is due for a retry yet"
        while (server := self._pick(tried)) is not None:
            tried.add(server.url)
            remaining = deadline - time.monotonic()
            if remaining <= 0.005:
                last = "deadline passed before a server answered"
                break
            server.in_flight += 1
            try:
                got = await self._request(server, model, inputs, outputs, remaining)
            except _BadRequest:
                raise
            except _NoModel as e:
                last = f"{server.url}: {_short(e)}"
                if down_without_model:
                    await self._mark_down(server, last)
                continue
            except Exception as e:
                last = f"{server.url}: {_short(e)}"
                await self._mark_down(server, last)
                continue
            finally:
                server.in_flight -= 1
            self._mark_up(server)
            return got
        raise BackendUnavailable(last)

    async def _request(
        self,
        server: _Server,
        model: str,
        inputs: dict[str, np.ndarray],
        outputs: list[str],
        timeout_s: float,
    ) -> dict[str, np.ndarray]:
        import tritonclient.grpc.aio as grpc_client
        from tritonclient.utils import InferenceServerException

        if server.client is None:
            server.client = grpc_client.InferenceServerClient(server.url, channel_args=_CHANNEL_ARGS)
        infer_inputs = []
        for name, x in inputs.items():
            inp = grpc_client.InferInput(name, list(x.shape), "BYTES" if x.dtype == object else "UINT8")
            inp.set_data_from_numpy(x)
            infer_inputs.append(inp)
        try:
            result = await server.client.infer(
                model,
                infer_inputs,
                outputs=[grpc_client.InferRequestedOutput(o) for o in outputs],
                client_timeout=timeout_s,
                timeout=int(timeout_s * 1e6),  # Triton drops it from its queue when late
            )
        except InferenceServerException as e:
            if "INVALID_ARGUMENT" in str(e.status()):
                raise _BadRequest(str(e)) from e
            if "NOT_FOUND" in str(e.status()) or "unknown model" in str(e):
                raise _NoModel(str(e)) from e
            raise
        return {o: result.as_numpy(o) for o in outputs}

    def _mark_up(self, server: _Server) -> None:
        if not server.up:
            log.info("model server %s is up", server.url)
        server.up = True
        server.backoff_s = 0.0
        server.failures = 0
        self.metrics.backend_up.labels(server.url).set(1)

    async def _mark_down(self, server: _Server, why: str) -> None:
        self.metrics.errors.labels(BACKEND_UNAVAILABLE).inc()
        self.metrics.backend_up.labels(server.url).set(0)
        server.failures += 1
        if server.up or server.failures == 1:
            log.warning("model server %s unavailable (%s); retrying with backoff", server.url, why)
        server.up = False
        server.backoff_s = min(self.backoff_max_s, max(self.backoff_initial_s, server.backoff_s * 2))
        server.retry_at = time.monotonic() + server.backoff_s
        if server.in_flight <= 1:  # (this request's own) a fresh channel next time, no stale gRPC backoff
            await self._drop_client(server)

    async def _drop_client(self, server: _Server) -> None:
        client, server.client = server.client, None
        if client is not None:
            try:
                await client.close()
            except Exception as e:
                log.debug("closing the client of %s: %s", server.url, e)


class _BadRequest(ValueError):
    """Triton refused the request itself (not an outage): a bug, not a reason to fail over."""


class _NoModel(RuntimeError):
    """The server does not serve the model asked for (another version of the model server)."""


def _short(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text[:200]
