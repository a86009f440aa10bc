"""``streamer model-server``: the same Engine as the local backend, served by NVIDIA Triton (PyTriton).

Triton's dynamic batcher merges the requests of every connected front end into one Engine.run;
late requests are rejected from its queue, not run. Triton binds loopback unless told otherwise,
and stops cleanly on SIGINT/SIGTERM: tritonserver, its Python stub and PyTriton's workspace go too.

Numpy: PyTriton 0.7.0 declares numpy<2 because the prebuilt Python-backend stub (a thin relay
between tritonserver and this process) is compiled against numpy 1.x. The Engine runs here, on
the project's numpy 2; only the stub needs numpy 1, so it runs on a small environment of its own
(``make setup`` builds it as ``.venv/triton-stub``; STREAMER_TRITON_STUB_ENV overrides the path).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pathlib
import re
import signal
import socket
import sys
import sysconfig
import tempfile
import threading
from dataclasses import dataclass

import numpy as np

from streamer.classify.face_resnet import CHIP_SIZE
from streamer.config import Config
from streamer.inference import triton_wire
from streamer.inference.engine import Engine, FrameResult, engine_spec
from streamer.inference.photo import chip_descriptors, photo_backbone, photo_boxes
from streamer.jpeg import BadJpeg, jpeg_size
from streamer.types import BatchTimings

log = logging.getLogger(__name__)
STUB_ENV_VAR = "STREAMER_TRITON_STUB_ENV"
DEFAULT_MAX_PIXELS = 4096 * 4096


@dataclass(frozen=True)
class Ports:
    host: str
    grpc: int
    http: int
    metrics: int


def stub_environment() -> pathlib.Path:
    """The Python environment for Triton's Python-backend stub (needs numpy<2 and pyzmq)."""
    given = os.environ.get(STUB_ENV_VAR)
    if given:
        path = pathlib.Path(given)
    elif int(np.__version__.split(".")[0]) < 2:
        return pathlib.Path(sys.exec_prefix)
    else:
        path = pathlib.Path(sys.prefix) / "triton-stub"
    if not (path / "bin" / "python").exists():
        raise RuntimeError(
            f"Triton's Python stub needs an environment with numpy<2 and pyzmq at {path} "
            f"(`make setup` builds it; or set {STUB_ENV_VAR})"
        )
    return path


def _prepare_process_environment(stub_env: pathlib.Path) -> None:
    # the stub embeds libpython: it must load this interpreter's, not the system's
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    ld = os.environ.get("LD_LIBRARY_PATH", "")
    if libdir and libdir not in ld.split(":"):
        os.environ["LD_LIBRARY_PATH"] = f"{libdir}:{ld}" if ld else libdir
    import pytriton.server.triton_server as triton_server

    # PyTriton runs the stub on this process's environment; point it at the numpy<2 one
    triton_server.get_triton_python_backend_python_env = lambda: stub_env
    _patch_stub_zero_size()


# PyTriton 0.7's stub copies each tensor into shared memory with memoryview.cast, which raises on a
# zero-size tensor (a [1, 0, 0, 3] image): the client then got the stub's whole traceback, file
# paths and all. The stub's copy of data.py is patched to copy such a tensor as no bytes, so the
# frame reaches infer() and gets a plain per-frame error.
_ZERO_SIZE_BUG = b'frame.nbytes] = frame.cast("B")'
_ZERO_SIZE_FIX = b'frame.nbytes] = frame.cast("B") if frame.nbytes else b""'


def _patch_stub_zero_size() -> None:
    from pytriton.models import model as pytriton_model
    from pytriton.proxy import data as proxy_data

    cls = pytriton_model.Model
    if getattr(cls, "_streamer_patched", False):
        return
    original_files = cls.get_proxy_model_files
    original_generate = cls.generate_model

    def get_proxy_model_files(self):  # type: ignore[no-untyped-def]
        files = original_files(self)
        return {
            k: v.replace(_ZERO_SIZE_BUG, _ZERO_SIZE_FIX) if k.endswith("/data.py") else v
            for k, v in files.items()
        }

    def generate_model(self, model_repository: pathlib.Path) -> None:  # type: ignore[no-untyped-def]
        original_generate(self, model_repository)
        for path in (model_repository / self.model_name).glob("*/data.py"):
            path.write_bytes(path.read_bytes().replace(_ZERO_SIZE_BUG, _ZERO_SIZE_FIX))

    cls.get_proxy_model_files = get_proxy_model_files
    cls.generate_model = generate_model
    cls._streamer_patched = True
    if _ZERO_SIZE_BUG not in pathlib.Path(proxy_data.__file__).read_bytes():
        log.debug("PyTriton's data.py has changed: its zero-size tensor copy is not patched")


def answer(engine: Engine, images: list[np.ndarray | str]) -> np.ndarray:
    """The reply to one batch: each frame's faces, or its error (a string in ``images``: refused
    before decoding). Never raises: an exception would reach the client as a traceback."""
    good = [i for i, im in enumerate(images) if not isinstance(im, str)]
    results: list[FrameResult] = [
        FrameResult(error=im) if isinstance(im, str) else FrameResult() for im in images
    ]
    timings = BatchTimings(0.0, 0.0, 0, 0)
    if good:
        try:
            done, timings = engine.run([images[i] for i in good])  # type: ignore[misc]
        except Exception as e:  # one line, no traceback to the client nor a file path
            log.error("the models failed on a batch of %d frames: %s: %s", len(good), type(e).__name__, e)
            done = [FrameResult(error="the model server failed on this batch")] * len(good)
        for i, r in zip(good, done, strict=True):
            results[i] = r
    out = [[triton_wire.encode_result(r, timings)] for r in results]
    return np.array(out, dtype=object)


def check_image(image: np.ndarray, max_pixels: int) -> np.ndarray | str:
    """A raw frame as sent, or why it is refused (empty, too many pixels)."""
    if image.ndim != 3 or image.size == 0:
        return f"empty or malformed image {tuple(image.shape)}"
    h, w = image.shape[:2]
    if h * w > max_pixels:
        return f"image of {w}x{h} exceeds model_server.max_image_pixels {max_pixels}"
    return image


def decode_jpeg(raw: bytes, max_pixels: int) -> np.ndarray | str:
    """A frame sent as JPEG, decoded to RGB, or why not: its size is read from its header first,
    so a JPEG declaring too many pixels is refused before a byte of it is decoded."""
    import cv2

    try:
        size = jpeg_size(raw)
    except BadJpeg as e:
        return str(e)
    if size is None:
        return "JPEG cut short before its frame header" if raw else "empty JPEG"
    w, h = size
    if w * h > max_pixels:
        return f"JPEG of {w}x{h} exceeds model_server.max_image_pixels {max_pixels}"
    try:
        bgr = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        bgr = None
    if bgr is None:
        return "undecodable JPEG"
    return bgr[:, :, ::-1]


def make_infer(engine: Engine, max_pixels: int = DEFAULT_MAX_PIXELS):
    from pytriton.decorators import batch

    @batch
    def infer(image: np.ndarray) -> dict[str, np.ndarray]:
        return {triton_wire.OUTPUT: answer(engine, [check_image(im, max_pixels) for im in image])}

    return infer


def make_jpeg_infer(engine: Engine, max_pixels: int = DEFAULT_MAX_PIXELS):
    from pytriton.decorators import batch

    @batch
    def infer(jpeg: np.ndarray) -> dict[str, np.ndarray]:
        frames = [decode_jpeg(bytes(raw), max_pixels) for raw in jpeg.reshape(-1)]
        return {triton_wire.OUTPUT: answer(engine, frames)}

    return infer


def make_photo_faces_infer(engine: Engine, max_pixels: int = DEFAULT_MAX_PIXELS):
    """A photo's faces (photo.photo_boxes on the image as sent: the front end scaled it), as JSON."""
    from pytriton.decorators import batch

    detect = engine.detector.detect

    def one(image: np.ndarray) -> bytes:
        checked = check_image(image, max_pixels)
        if isinstance(checked, str):
            return json.dumps({"error": checked}).encode()
        try:
            boxes = photo_boxes(lambda im, up: detect([im], up)[0], checked, 0, engine.spec.upsample)
        except Exception as e:  # one line, no traceback to the client
            log.error("the detector failed on a photo: %s: %s", type(e).__name__, e)
            return json.dumps({"error": "the model server failed on this photo"}).encode()
        faces = [[b.left, b.top, b.right, b.bottom, b.confidence] for b in boxes]
        return json.dumps({"faces": faces}).encode()

    @batch
    def infer(image: np.ndarray) -> dict[str, np.ndarray]:
        return {triton_wire.OUTPUT: np.array([[one(im)] for im in image], dtype=object)}

    return infer


def make_photo_chips_infer(engine: Engine):
    """Aligned chips' descriptors: each chip's, and the mean of the chip's and its mirror image's."""
    from pytriton.decorators import batch

    @batch
    def infer(chip: np.ndarray) -> dict[str, np.ndarray]:
        backbone = photo_backbone(engine)
        return {
            triton_wire.DESCRIPTOR: chip_descriptors(backbone, list(chip), mirrored=False),
            triton_wire.DESCRIPTOR_FLIP: chip_descriptors(backbone, list(chip), mirrored=True),
        }

    return infer


def ports_in_use(ports: Ports) -> list[str]:
    """The ports Triton would bind that something already listens on, as "gRPC port 8001"."""
    busy = []
    for name, port in (("gRPC", ports.grpc), ("HTTP", ports.http), ("metrics", ports.metrics)):
        if not port:
            continue
        with socket.socket(socket.AF_INET6 if ":" in ports.host else socket.AF_INET) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # (as Triton: TIME_WAIT is no owner)
            try:
                s.bind((ports.host, port))
            except OSError:
                busy.append(f"{name} port {port}")
    return busy


def triton_log_file(config: Config, ports: Ports) -> pathlib.Path:
    """Where tritonserver's own log goes: ``model_server.log_file``, else one per gRPC port in /tmp."""
    given = config.model_server.log_file
    return pathlib.Path(given or pathlib.Path(tempfile.gettempdir()) / f"streamer-triton-{ports.grpc}.log")


_NO_GPU = re.compile(r"cuda|nvml|dcgm", re.I)  # (Triton's errors on a machine without a GPU: harmless)


def errors_in(log_file: pathlib.Path, most: int = 5) -> str:
    """The last error lines of Triton's log ("E1207 ... main.cc:245] "failed to start ..."")."""
    try:
        lines = log_file.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    errors = [x.split("] ", 1)[-1].strip() for x in lines if x.startswith("E")]
    return "; ".join([x for x in errors if not _NO_GPU.search(x)][-most:])


def _bind_models(triton, engine: Engine, ms, batcher) -> None:
    """The model server's four models on ``triton``: frames (raw and JPEG), and a photo's faces
    and chips."""
    from pytriton.model_config import ModelConfig, Tensor

    def bind(name: str, infer, inputs: list, outputs: list, config: ModelConfig) -> None:
        triton.bind(
            model_name=name, infer_func=infer, inputs=inputs, outputs=outputs, config=config, strict=False
        )

    frame = [Tensor(name=triton_wire.INPUT, dtype=np.uint8, shape=(-1, -1, 3))]
    jpeg = [Tensor(name=triton_wire.JPEG_INPUT, dtype=bytes, shape=(1,))]
    chip = [Tensor(name=triton_wire.CHIP_INPUT, dtype=np.uint8, shape=(CHIP_SIZE, CHIP_SIZE, 3))]
    answer = [Tensor(name=triton_wire.OUTPUT, dtype=bytes, shape=(1,))]
    descriptors = [
        Tensor(name=n, dtype=np.float32, shape=(128,))
        for n in (triton_wire.DESCRIPTOR, triton_wire.DESCRIPTOR_FLIP)
    ]
    batched = ModelConfig(max_batch_size=ms.max_batch, batcher=batcher)
    pixels = ms.max_image_pixels
    bind(triton_wire.MODEL, make_infer(engine, pixels), frame, answer, batched)
    bind(triton_wire.JPEG_MODEL, make_jpeg_infer(engine, pixels), jpeg, answer, batched)
    bind(
        triton_wire.PHOTO_FACES_MODEL,
        make_photo_faces_infer(engine, pixels),
        frame,
        answer,
        ModelConfig(max_batch_size=1),
    )
    bind(
        triton_wire.PHOTO_CHIPS_MODEL,
        make_photo_chips_infer(engine),
        chip,
        descriptors,
        ModelConfig(max_batch_size=ms.max_batch),
    )


def _quiet_stdout(triton: object) -> None:
    """PyTriton echoes tritonserver's stdout: with its log in a file, only "Signal (2) received."."""
    server = getattr(triton, "_triton_server", None)
    if server is not None and hasattr(server, "_verbose"):
        server._verbose = False


def serve(config: Config, ports: Ports, ready: threading.Event | None = None) -> int:
    """Load the models, serve them until SIGINT/SIGTERM, then stop everything. Blocks. A port
    already in use, or a Triton that does not come up, is a plain error (1)."""
    from pytriton.model_config import DynamicBatcher, QueuePolicy, TimeoutAction
    from pytriton.triton import Triton, TritonConfig

    ms = config.model_server
    busy = ports_in_use(ports)
    if busy:
        log.error(
            "%s on %s already in use (another model server?): choose others", ", ".join(busy), ports.host
        )
        return 1
    # (PyTriton's notices: where its workspace is, "Closing Inference Handler" per model, ...)
    logging.getLogger("pytriton").setLevel(logging.WARNING)
    triton_log = triton_log_file(config, ports)
    try:
        _prepare_process_environment(stub_environment())
    except RuntimeError as e:  # (no stub environment: `make setup` not run)
        log.error("%s", e)
        return 1
    engine = Engine(engine_spec(config))
    side = config.pipeline.detect_max_side or 640
    engine.run([np.zeros((side * 3 // 4, side, 3), np.uint8)])  # compile the models before Triton says ready
    engine.warm_up()
    # a photo's chips (photo.py) are described by the engine's backbone, loaded here when no
    # classifier uses it, so the first upload waits for no model
    chip_descriptors(photo_backbone(engine), [np.zeros((CHIP_SIZE, CHIP_SIZE, 3), np.uint8)], True)
    log.info("engine: detector %s, classifiers %s", engine.status.detector, engine.status.classifiers)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping the model server", signum)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    tconfig = TritonConfig(
        http_address=ports.host,
        http_port=ports.http,
        grpc_address=ports.host,
        grpc_port=ports.grpc,
        metrics_address=ports.host,
        metrics_port=ports.metrics,
        exit_timeout_secs=5,
        # tritonserver's own log (model loading, and on a machine without a GPU its CUDA, NVML and
        # DCGM errors, all harmless) in a file of its own, not among the service's lines
        log_file=triton_log,
        allow_gpu_metrics=os.path.exists("/dev/nvidiactl"),  # (else NVML's "Error: Failed to initialize")
    )
    log.info("Triton's own log: %s", triton_log)
    batcher = DynamicBatcher(
        max_queue_delay_microseconds=int(ms.queue_delay_ms * 1000),
        default_queue_policy=QueuePolicy(
            timeout_action=TimeoutAction.REJECT,
            default_timeout_microseconds=int(ms.request_timeout_ms * 1000),
            allow_timeout_override=True,
        ),
    )
    try:
        with contextlib.ExitStack() as stack:
            try:  # (a tritonserver that exits at start: PyTriton waits 2 minutes for it, then raises)
                triton = stack.enter_context(Triton(config=tconfig))
                _quiet_stdout(triton)
                _bind_models(triton, engine, ms, batcher)
                triton.run()
            except Exception as e:
                log.error("Triton did not start (%s): %s", type(e).__name__, errors_in(triton_log) or e)
                return 1
            print(
                f"streamer: model server ready: grpc {ports.host}:{ports.grpc} "
                f"http {ports.host}:{ports.http} metrics http://{ports.host}:{ports.metrics}/metrics",
                flush=True,
            )
            if ready is not None:
                ready.set()
            while not stop.is_set():
                if not triton.is_alive():
                    log.error("tritonserver or the model proxy died")
                    return 1
                stop.wait(1.0)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    log.info("model server stopped")
    return 0
