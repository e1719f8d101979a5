"""vigie's errors. Each is a ``VigieError``; the CLI maps them to exit codes, the gRPC services
to a status and a counter named after ``cause``."""

from __future__ import annotations


class VigieError(Exception):
    """Base of every error vigie raises on purpose."""

    exit_code = 1


class ConfigError(VigieError):
    """A settings file, variable or flag is wrong. The message names the key and the problem."""

    exit_code = 2


class InputError(VigieError):
    """A file given on the command line cannot be used (inventory, log)."""

    exit_code = 2


class BatchRefused(VigieError):
    """A gateway sent a batch that breaks the wire contract; the stream is ended."""

    def __init__(self, cause: str, message: str) -> None:
        super().__init__(message)
        self.cause = cause


class SidecarUnavailable(VigieError):
    """The CLI could not reach the sidecar's admin service."""

    exit_code = 3


class SnapshotError(VigieError):
    """A snapshot could not be read (corrupt, or written by another format version)."""
