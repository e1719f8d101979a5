"""Free loopback ports for the real servers of the tests.

A port the OS hands out for ``bind(("127.0.0.1", 0))`` comes from its ephemeral range
(``/proc/sys/net/ipv4/ip_local_port_range``, 32768-60999 on Linux), the same range every
outgoing connection of the machine takes its local port from: between the moment a test picks
such a port and the moment its ``vigie serve`` binds it (after the kernels are ready: seconds
on a loaded machine), a gRPC client of another test, or of another run side by side, may have
taken it. The tests pick instead from ``PORTS`` (below the ephemeral range), start at a point
that differs between processes, never hand out the same port twice in one process, and check
that the port can be bound right now. A race with another run that is left (two runs picking
the same port at once) shows as "cannot listen on" from `vigie serve`, which ``start_sidecar``
retries once on new ports.
"""

from __future__ import annotations

import os
import random
import socket
import threading
from pathlib import Path

PORTS = range(20000, 32000)  # below the ephemeral range (Linux's default starts at 32768)
_lock = threading.Lock()
_given: set[int] = set()
_rng = random.Random(os.getpid() ^ int.from_bytes(os.urandom(4), "little"))


def ephemeral_range(path: Path = Path("/proc/sys/net/ipv4/ip_local_port_range")) -> range:
    """The OS's ephemeral port range (Linux's default when it cannot be read)."""
    try:
        lo, hi = (int(x) for x in path.read_text().split())
    except (OSError, ValueError):
        return range(32768, 61000)
    return range(lo, hi + 1)


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A loopback TCP port nobody listens on now, from ``PORTS`` outside the ephemeral range,
    not handed out before by this process."""
    eph = ephemeral_range()
    with _lock:
        for _ in range(len(PORTS)):
            port = _rng.choice(PORTS)
            if port in _given or port in eph:
                continue
            if _bindable(port):
                _given.add(port)
                return port
    raise RuntimeError(f"no free loopback port in {PORTS.start}-{PORTS.stop - 1}")
