"""The fields every training comparison's result file starts with (command, commit, time, load)."""

from __future__ import annotations

import os
import subprocess
from datetime import datetime, timezone


def run_header(command: str) -> dict[str, object]:
    """``command`` as given, the checkout's short commit, the UTC start time and the load average."""
    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    return {
        "command": command,
        "commit": git.stdout.strip(),
        "started": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "load_average": list(os.getloadavg()),
    }
