"""The service scenario (cli.py): the real service measured in parts, written as bench-<machine>.*."""
