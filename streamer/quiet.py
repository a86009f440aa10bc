"""TensorFlow without the chatter a user cannot act on.

- ``import_tensorflow``: TensorFlow 2.21 writes "All log messages before absl::InitializeLog() is
  called are written to STDERR" and an INFO line about oneDNN straight to file descriptor 2 while
  it is imported, twice, whatever ``TF_CPP_MIN_LOG_LEVEL`` says (its C++ log is not set up yet).
  The import runs with fd 2 captured; what was written is then passed on to fd 2 except those
  notices (the absl line and C++ INFO/WARNING lines, which ``TF_CPP_MIN_LOG_LEVEL=2`` is meant to
  drop anyway). Errors, Python warnings and tracebacks written during the import are passed on,
  and an import that fails still raises. Every process that loads a Keras model calls it first;
  it does nothing where TensorFlow is already imported or Keras runs on another backend, so the
  order in which the process imports its other libraries stays the same.
- ``trace_predict_once``: Keras traces a model's predict step for the first input shape it meets,
  again for the second (then with the differing sizes left open), and TensorFlow counts the
  traces of every model's predict step together (they share one Python function): three models
  warmed up at two batch sizes made "5 out of the last 5 calls ... triggered tf.function
  retracing" warnings. Traced once up front for any batch size (the dimensions the model's input
  leaves open), each model's step is traced exactly once and serves every batch from that trace.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

# absl's notice before its log is set up, and C++ log lines below ERROR
# ("I0000 00:00:1796545193.131821   15568 port.cc:153] oneDNN custom operations are on. ...")
_NOTICE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\)|[IW]\d{4} [\d:.]+ +\d+ \S+:\d+\] "
)


def _passed_on(text: str) -> str:
    return "".join(line for line in text.splitlines(keepends=True) if not _NOTICE.match(line))


@contextlib.contextmanager
def stderr_filtered() -> Iterator[None]:
    """fd 2 (C++ libraries write there directly) into a temporary file while the block runs, then
    its lines on to the real fd 2 except the notices (see the module's doc)."""
    sys.stderr.flush()
    with tempfile.TemporaryFile() as tmp:
        saved = os.dup(2)
        try:
            os.dup2(tmp.fileno(), 2)
            yield
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            kept = _passed_on(tmp.read().decode("utf-8", "replace"))
            if kept:
                os.write(2, kept.encode())


_TF_THREADS: int | None = None  # limit_tensorflow_threads's, applied when TensorFlow is imported


def import_tensorflow() -> None:
    """Import TensorFlow now, without its start-up notices, where Keras runs on it (with the
    thread limits ``limit_tensorflow_threads`` set)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules or os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
        return
    if importlib.util.find_spec("tensorflow") is None:
        return  # (Keras says what is missing when it is used)
    with stderr_filtered():
        import tensorflow  # noqa: F401
    _apply_tf_threads()


def limit_tensorflow_threads(n: int) -> None:
    """TensorFlow's intra-op threads ``n`` (inter-op ``n // 2``), now if it is loaded, else when
    it is: a process that never runs a Keras model never loads it."""
    global _TF_THREADS
    _TF_THREADS = n
    if "tensorflow" in sys.modules:
        _apply_tf_threads()


def _apply_tf_threads() -> None:
    if _TF_THREADS is None:
        return
    try:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(_TF_THREADS)
        tf.config.threading.set_inter_op_parallelism_threads(max(1, _TF_THREADS // 2))
    except Exception:  # (too late once TensorFlow has run an op: it keeps its threads)
        pass


def trace_predict_once(model: Any, x: Any) -> None:
    """On TensorFlow: trace ``model``'s predict step once, for inputs like ``x`` (an array, or a
    list of arrays for a model of several inputs) with every dimension the model's inputs leave
    open (the batch, and for the detector the canvas' height and width) open. Later
    ``predict_on_batch`` calls of any such shape run that one trace. Elsewhere: nothing."""
    import keras

    if keras.backend.backend() != "tensorflow" or getattr(model, "_streamer_traced", False):
        return
    import tensorflow as tf

    several = isinstance(x, list | tuple)
    arrays = list(x) if several else [x]
    specs = [tf.TensorSpec(tuple(inp.shape), a.dtype) for inp, a in zip(model.inputs, arrays, strict=True)]
    model.make_predict_function()
    step = model.predict_function
    if hasattr(step, "get_concrete_function"):  # (not under run_eagerly)
        step.get_concrete_function([(type(x)(specs) if several else specs[0],)])
    model._streamer_traced = True
