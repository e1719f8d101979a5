"""The ``vigie`` command line: ``main`` is the entry point (``vigie.cli.main``)."""

from vigie.cli.main import main

__all__ = ["main"]
