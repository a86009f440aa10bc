#!/usr/bin/env bash
# The GPU figures in one go, on the lent GPU machine (docs/benchmarks.md, "On the GPU machine").
#
#   here, once:  bash benchmarks/gpu.sh --prepare
#                  cp312 manylinux wheels the device lacks -> .whl/ (keras, namex, optree, pydantic,
#                  pydantic-core, annotated-types, typing-inspection, typing-extensions, dlib-bin;
#                  the versions of this checkout's .venv), dlib's three .dat files -> .dat/ (both
#                  git-ignored), and the size of what travels (at most 64 MiB).
#   there:       run(command="bash benchmarks/gpu.sh", carry=[".whl", ".dat"], timeout_s=540)
#   dry run on a CPU, in a Python 3.12 venv holding only what the device has (jax, numpy,
#   opencv-python-headless, aiohttp, prometheus-client, absl-py, rich, h5py, ml-dtypes, packaging):
#                GPU_QUICK=1 GPU_PYTHON=/tmp/gpuenv/bin/python bash benchmarks/gpu.sh
#
# The device (Python 3.12 with jax[cuda], numpy, opencv, aiohttp, prometheus-client, onnxruntime,
# torch) has no keras, tensorflow, dlib-bin, aiortc, av or face_recognition_models: the wheels go
# to $GPU_SITE (--target, no deps, no index: nothing can be fetched there) ahead of the system's
# packages on PYTHONPATH, and the code finds the .dat files through STREAMER_MMOD_WEIGHTS,
# STREAMER_FACE_BACKBONE and STREAMER_FACE_LANDMARKS. Then `python -m benchmarks gpu`
# (benchmarks/gpu.py: MMOD det-frames/s at 640x480, 1280x720 and 1920x1080, batch 1, 8 and 16;
# the face backbone's faces/s at batch 1, 32 and 128 and the heads' ms per face; the streams
# sweep on the inference side, since the web service needs aiortc/av: see gpu.py's docstring),
# within --budget-s 300 and a hard limit of GPU_TIME_S (420 s). nvidia-smi, the log and
# gpu-<machine>.json/.md go to $OUT (the device copies them back) and benchmarks/results/.
#
# Environment: GPU_QUICK=1 (one size, few calls, 1-2 streams; files named gpu-<machine>-quick.*),
# GPU_PYTHON (python3), GPU_SITE (/tmp/site), GPU_TIME_S (420), GPU_RESULTS (benchmarks/results),
# GPU_ARGS (more options for python -m benchmarks gpu), OUT (benchmarks/results/tmp/gpu-out).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DATS=(mmod_human_face_detector.dat dlib_face_recognition_resnet_model_v1.dat shape_predictor_5_face_landmarks.dat)
WHEELS=(keras namex optree pydantic pydantic-core annotated-types typing-inspection typing-extensions dlib-bin)
LIMIT_MIB=64

prepare() {
    local py=${PREP_PYTHON:-.venv/bin/python}
    local pins=()
    for name in "${WHEELS[@]}"; do
        pins+=("$name==$("$py" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$name")")
    done
    echo "wheels: ${pins[*]}"
    rm -rf .whl && mkdir -p .whl
    "$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
        -d .whl "${pins[@]}" 2> >(grep -v "^WARNING: Location" >&2)
    local models
    models=$("$py" -c "import face_recognition_models as f, os; print(os.path.dirname(f.__file__))")/models
    rm -rf .dat && mkdir -p .dat
    for f in "${DATS[@]}"; do cp "$models/$f" .dat/; done
    ls -l .whl .dat
    # what travels: tracked files, untracked files git does not ignore, and the carried folders
    local tracked untracked carried total
    tracked=$(git ls-files -z | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
    untracked=0
    if [[ -n $(git ls-files --others --exclude-standard) ]]; then
        untracked=$(git ls-files -z --others --exclude-standard | du -cb --files0-from=- | tail -1 | cut -f1)
    fi
    carried=$(du -cb .whl .dat | tail -1 | cut -f1)
    total=$((tracked + $untracked + carried))
    awk -v t="$tracked" -v u="$untracked" -v c="$carried" -v s="$total" -v l="$LIMIT_MIB" 'BEGIN {
        m = 1048576
        printf "travels: tracked %.1f MiB + untracked %.1f MiB + .whl/.dat %.1f MiB = %.1f MiB (limit %d MiB)\n",
            t / m, u / m, c / m, s / m, l
    }'
    if ((total > LIMIT_MIB * 1048576)); then
        echo "too big for the device call: carry less" >&2
        exit 1
    fi
    echo 'device call: run(command="bash benchmarks/gpu.sh", carry=[".whl", ".dat"], timeout_s=540)'
}

if [[ ${1:-} == --prepare ]]; then
    prepare
    exit 0
fi
[[ $# -eq 0 ]] || { echo "usage: bash benchmarks/gpu.sh [--prepare]" >&2; exit 2; }

T0=$(date +%s)
PY=${GPU_PYTHON:-python3}
SITE=${GPU_SITE:-/tmp/site}
OUT=${OUT:-$ROOT/benchmarks/results/tmp/gpu-out}
mkdir -p "$OUT"
for f in "${DATS[@]}"; do
    [[ -f .dat/$f ]] || { echo "missing .dat/$f: run bash benchmarks/gpu.sh --prepare here, carry .dat" >&2; exit 1; }
done
ls .whl/*.whl >/dev/null || { echo "no wheels in .whl: run --prepare here, carry .whl" >&2; exit 1; }

echo "== install ($(ls .whl | wc -l) wheels -> $SITE)"
if ! "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
    .whl/*.whl >/tmp/gpu-pip.log 2>&1; then
    cat /tmp/gpu-pip.log >&2
    exit 1
fi
export PYTHONPATH=$ROOT:$SITE
export KERAS_BACKEND=jax
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # the inference worker shares the GPU with this process
export TF_CPP_MIN_LOG_LEVEL=2 PYTHONUNBUFFERED=1
export STREAMER_MMOD_WEIGHTS=$ROOT/.dat/mmod_human_face_detector.dat
export STREAMER_FACE_BACKBONE=$ROOT/.dat/dlib_face_recognition_resnet_model_v1.dat
export STREAMER_FACE_LANDMARKS=$ROOT/.dat/shape_predictor_5_face_landmarks.dat

echo "== machine"
{ nvidia-smi || echo "nvidia-smi: not available"; } 2>&1 | tee "$OUT/nvidia-smi.txt"
"$PY" - <<'EOF' 2>&1 | tee "$OUT/env.txt"
import importlib.metadata as md, platform, sys
import jax
print("python", platform.python_version(), sys.executable)
print("jax", jax.__version__, "devices", jax.devices())
for name in ("keras", "numpy", "opencv-python-headless", "dlib-bin", "pydantic", "onnxruntime", "jaxlib"):
    try:
        print(f"{name} {md.version(name)}")
    except md.PackageNotFoundError:
        print(f"{name} -")
import keras, streamer.inference.engine, streamer.pipeline.batcher, streamer.detect.mmod, benchmarks.gpu  # noqa
bad = [m for m in ("tensorflow", "face_recognition_models", "aiortc", "av") if m in sys.modules]
print("keras backend", keras.backend.backend(), "| absent modules loaded:", bad or "none")
sys.exit(1 if bad else 0)
EOF

echo "== python -m benchmarks gpu ($(($(date +%s) - T0)) s so far)"
RESULTS=${GPU_RESULTS:-$ROOT/benchmarks/results}
ARGS=(--out "$RESULTS")
[[ -n ${GPU_QUICK:-} ]] && ARGS+=(--quick)
# shellcheck disable=SC2206
ARGS+=(${GPU_ARGS:-})
rc=0
timeout -k 10 "${GPU_TIME_S:-420}" "$PY" -m benchmarks gpu "${ARGS[@]}" 2>&1 | tee "$OUT/gpu.log" || rc=$?
cp "$RESULTS"/gpu-*.json "$RESULTS"/gpu-*.md "$OUT"/ 2>/dev/null || true
echo "== done in $(($(date +%s) - T0)) s, exit $rc; in $OUT: $(ls "$OUT" | tr '\n' ' ')"
exit "$rc"
