"""TensorFlow imported without its start-up chatter.

TensorFlow 2.21 writes "All log messages before absl::InitializeLog() ..." and a oneDNN notice
straight to file descriptor 2 while it is imported, whatever ``TF_CPP_MIN_LOG_LEVEL`` says, and
Keras' predict logs tf.function retracing warnings as batch sizes change (expected here: batches
are padded to a few sizes). None of it is something a user can act on, so the service and its
workers import TensorFlow with fd 2 pointed at /dev/null and keep its Python logger at errors.
An import that fails still raises, after fd 2 is restored.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_tensorflow(webrtc: bool = False) -> None:
    """Import TensorFlow now, quietly, where Keras runs on it (not under ``KERAS_BACKEND=jax``).
    ``webrtc``: the process also serves WebRTC, whose aiortc (pylibsrtp) must be imported before
    TensorFlow or dlib, or it crashes."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if webrtc:
        import aiortc  # noqa: F401
    if os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow" or "tensorflow" in sys.modules:
        return
    try:
        with _stderr_silenced():
            import tensorflow  # noqa: F401
    except ImportError:  # (no TensorFlow here: Keras says so when it is used)
        return
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
