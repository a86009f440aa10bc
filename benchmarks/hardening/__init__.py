"""The hardening scenario (issue 34): a connection flood (flood.py), hostile requests (web.py) and
hostile cameras (sources.py) against the real service (service.py), figures in cli.py's results."""
