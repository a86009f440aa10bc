"""streamer: real-time face analytics over live video."""

__version__ = "0.1.0"
