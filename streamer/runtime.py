"""Which runtime runs a network: ONNX Runtime's CPU provider or Keras (TensorFlow or JAX).

The MMOD detector and the face backbone each exist as the same folded layers on both; the
``pipeline.runtime`` setting picks one for both. "auto" takes ONNX Runtime on a CPU-only
machine (on the 2-core development CPU it runs the detector as fast as TensorFlow's own
kernels and the face backbone 1.3-2.2x faster, the most at batch 1), Keras where it has a GPU.
"""

from __future__ import annotations

import importlib.util
import logging
import os

log = logging.getLogger(__name__)
RUNTIMES = ("auto", "onnxruntime", "keras")
ONNX_THREADS = 2  # ONNX Runtime's intra-op threads where the setting says 0


def keras_has_gpu() -> bool:
    """Whether Keras would run on a GPU here; imports the backend only where one may exist."""
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    try:
        if backend == "jax":
            import jax

            return any(d.platform != "cpu" for d in jax.devices())
        if not (os.path.exists("/dev/nvidia0") or os.path.exists("/dev/kfd")):
            return False
        if backend == "torch":
            import torch

            return bool(torch.cuda.is_available())
        from streamer.quiet import import_tensorflow

        import_tensorflow()
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    except Exception:  # a broken backend install: let Keras report it when it is used
        return False


def choose_runtime(runtime: str = "auto") -> str:
    """ "onnxruntime" or "keras" for a ``pipeline.runtime`` setting.

    auto: ONNX Runtime on a CPU-only machine, Keras where it has a GPU, or where onnxruntime is
    not installed.
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    if runtime != "auto":
        return runtime
    if importlib.util.find_spec("onnxruntime") is None:
        log.info("onnxruntime not installed: the networks run on Keras")
        return "keras"
    return "keras" if keras_has_gpu() else "onnxruntime"


def onnx_session(model: bytes, threads: int = 0):
    """An ONNX Runtime CPU session over a serialized model: ``threads`` intra-op threads (0 =
    ``ONNX_THREADS``), one inter-op, every graph optimisation, and idle threads that do not spin,
    so the cores stay free for decoding, drawing and sending between calls."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads if threads > 0 else ONNX_THREADS
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
