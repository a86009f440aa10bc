"""The gpu scenario's parts (benchmarks/gpu.py is the scenario; benchmarks/gpu.sh runs it there)."""
