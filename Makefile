# streamer: `make run` and `make test` work on a fresh machine; each sets itself up.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
CONFIG ?= config.toml

.PHONY: run test test-fast test-jax soak setup triton-setup system-deps bench bench-quick lint format audit clean

run: $(STAMP)
	$(VENV)/bin/streamer serve --config $(CONFIG)

# The suite in TEST_WORKERS processes (default: one per core, as nproc and a cgroup CPU quota allow,
# at most 4), a test module's tests in one process: many tests wait on servers, browsers and
# subprocesses, so two processes keep 2 cores busy.
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); \
	if [ -r /sys/fs/cgroup/cpu.max ]; then read q p < /sys/fs/cgroup/cpu.max; \
	  if [ "$$q" != max ]; then c=$$(( (q + p - 1) / p )); [ $$c -lt $$n ] && n=$$c; fi; fi; \
	[ $$n -gt 4 ] && n=4; echo $$n)

test: $(STAMP) system-deps
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow and not system" $(PYTEST_ARGS)

# The model code on the JAX backend (as on the GPU machine): MMOD parity with dlib, classifiers.
test-jax: $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,jax]'
	KERAS_BACKEND=jax $(PY) -m pytest -q tests/test_mmod.py tests/test_classify.py tests/test_face_backbone.py $(PYTEST_ARGS)

# Longer load/soak run: many cycles of WebRTC peers and API sources; prints the figures.
soak: $(STAMP)
	STREAMER_SOAK_CYCLES=$${CYCLES:-50} STREAMER_SOAK_PEERS=$${PEERS:-4} $(PY) -m pytest -s -q tests/test_soak.py

setup: $(STAMP)

# The Python side: a local virtual environment with the project and its dev tools.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,triton]'
	$(MAKE) triton-setup
	touch $(STAMP)

# Triton (backend "triton", `streamer model-server`): PyTriton without its numpy<2 pin, and the small
# numpy-1 environment its prebuilt Python-backend stub runs on (the models themselves run on numpy 2).
PYTRITON ?= nvidia-pytriton==0.7.0
triton-setup:
	$(PY) -m pip install --quiet --no-deps '$(PYTRITON)'
	test -x $(VENV)/triton-stub/bin/python || $(PY) -m venv $(VENV)/triton-stub
	$(VENV)/triton-stub/bin/python -m pip install --quiet 'numpy>=1.26,<2' 'pyzmq>=23'

# Debian packages the integration tests use: a real GStreamer RTSP server, a real Chromium.
system-deps:
	bash scripts/system-deps.sh

# The service scenario (benchmarks/results/bench-<machine>.*); every scenario: python -m benchmarks --help
bench: $(STAMP)
	$(PY) -m benchmarks service $(BENCH_ARGS)

bench-quick: $(STAMP)
	$(PY) -m benchmarks service --quick $(BENCH_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check streamer train benchmarks tests
	$(VENV)/bin/ruff format --check streamer train benchmarks tests

format: $(STAMP)
	$(VENV)/bin/ruff format streamer train benchmarks tests
	$(VENV)/bin/ruff check --fix streamer train benchmarks tests

audit: $(STAMP)
	$(PY) -m pip install --quiet -e '.[audit]'
	$(VENV)/bin/pip-audit --skip-editable --strict --desc

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
