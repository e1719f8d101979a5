"""Files in the state directory are the operator's alone: each is created 0600 (the directory
itself is made 0700 by ``vigie serve``), whatever the process's umask."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

PRIVATE_MODE = 0o600


def open_private(path: Path) -> BinaryIO:
    """``path`` opened for writing from empty, created owner-only (an existing file keeps its
    mode: write to a new temporary file and rename it over the old one)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_MODE)
    return os.fdopen(fd, "wb")


def write_private(path: Path, data: bytes) -> None:
    """``data`` as the whole content of ``path``, created owner-only."""
    with open_private(path) as f:
        f.write(data)
