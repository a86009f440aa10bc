"""Real footage: ``python -m benchmarks real`` (cli.py), its reference boxes (reference.py)."""
