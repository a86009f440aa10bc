"""The small-faces scenario: 1080p clips with exact truth, live (live_runs.py) or planned (planned.py)."""
