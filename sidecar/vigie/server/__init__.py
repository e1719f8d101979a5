"""The sidecar process, ``vigie serve``: its public face.

- ``core``: ``Sidecar``, the live state, its lock, the gateway streams and applying them;
- ``telemetry``: the gateway stream service; ``admin`` (+ ``policy_admin``, ``data_admin``):
  the admin service; each with one error boundary (``boundary``);
- ``convert``: the proto conversions; ``credentials``: TLS, the admin token and its check;
- ``run``: ``start``, ``Running``, ``serve_forever`` and the background loop.
"""

from __future__ import annotations

from vigie.server.core import PROTOCOL_VERSION, SUPPORTED_PROTOCOL_VERSIONS, Sidecar
from vigie.server.credentials import server_credentials
from vigie.server.run import SWITCH_INTERVAL_S, Running, serve_forever, start, warm_up_kernels

__all__ = [
    "PROTOCOL_VERSION",
    "SUPPORTED_PROTOCOL_VERSIONS",
    "SWITCH_INTERVAL_S",
    "Running",
    "Sidecar",
    "serve_forever",
    "server_credentials",
    "start",
    "warm_up_kernels",
]
