"""vigie's errors. Each is a ``VigieError`` and carries how it is reported everywhere:

- ``exit_code``: what the CLI exits with;
- ``grpc_status``: the name of the ``grpc.StatusCode`` an RPC ends with (a name, so that this
  module, the lowest layer, does not import gRPC);
- ``cause``: the counter it is counted under, after the boundary's prefix
  (``admin_refused:<cause>``, ``stream_refused:<cause>``, ``batch_refused:<cause>``); by
  default the class name in snake case (``QueryError`` -> ``query_error``).

One error boundary per RPC service (``vigie.server.boundary``) reads these three and nothing
else: a new error type says how it is reported where it is defined.
"""

from __future__ import annotations

import re


class VigieError(Exception):
    """Base of every error vigie raises on purpose."""

    exit_code: int = 1
    grpc_status: str = "FAILED_PRECONDITION"
    cause: str = "vigie_error"

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "cause" not in cls.__dict__:
            cls.cause = re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__).lower()


class ConfigError(VigieError):
    """A settings file, variable or flag is wrong. The message names the key and the problem."""

    exit_code = 2
    grpc_status = "INVALID_ARGUMENT"


class InputError(VigieError):
    """A file given on the command line cannot be used (inventory, log)."""

    exit_code = 2
    grpc_status = "INVALID_ARGUMENT"


class BatchRefused(VigieError):
    """A gateway sent a Hello or a batch that breaks the wire contract; the stream is ended.
    ``cause`` names the broken rule (each counted on its own)."""

    grpc_status = "INVALID_ARGUMENT"

    def __init__(self, cause: str, message: str) -> None:
        super().__init__(message)
        self.cause = cause


class TooManyStreams(BatchRefused):
    """A gateway connected while ``max_streams`` streams were open."""

    grpc_status = "RESOURCE_EXHAUSTED"

    def __init__(self, message: str) -> None:
        super().__init__("too_many_streams", message)


class UnsupportedProtocol(BatchRefused):
    """A gateway's Hello names a wire protocol version this sidecar does not speak."""

    grpc_status = "FAILED_PRECONDITION"

    def __init__(self, message: str) -> None:
        super().__init__("bad_hello", message)


class SidecarUnavailable(VigieError):
    """The CLI could not reach the sidecar's admin service."""

    exit_code = 3
    grpc_status = "UNAVAILABLE"


class SnapshotError(VigieError):
    """A snapshot could not be read (corrupt, or written by another format version)."""
