"""The benchmark scenarios: ``python -m benchmarks --help`` lists them (docs/benchmarks.md)."""
