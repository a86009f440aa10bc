"""``python -m streamer ...`` as a test runs it: several independent commands at once.

Each command spends seconds importing Keras and loading models on one core; commands that do not
depend on each other run side by side, and each still gets its own exit status and output.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence


def streamer_cli(*commands: Sequence[str], timeout: float = 300) -> list[subprocess.CompletedProcess[str]]:
    """Start every command (the arguments after ``python -m streamer``) at once; their results, in order."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "streamer", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in commands
    ]
    try:
        done = []
        for p in procs:
            out, err = p.communicate(timeout=timeout)
            done.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
        return done
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
