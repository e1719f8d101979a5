"""The ``vigie`` CLI run as its own process (as an operator runs it), its output captured."""

from __future__ import annotations

import os
import subprocess
import sys


def vigie(
    *args: str, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """``python -m vigie.cli ARGS`` with ``env`` over this process's environment."""
    return subprocess.run(
        [sys.executable, "-m", "vigie.cli", *args],
        capture_output=True,
        text=True,
        env=os.environ | (env or {}),
        timeout=timeout,
        check=False,
    )
