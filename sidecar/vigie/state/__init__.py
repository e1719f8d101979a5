"""The state of everything vigie has seen, and the behaviour classes read from it.

The front door: ``State`` (the arrays and their only caller of the kernels), its ``Capacity``,
the ``Thresholds`` the rules read and the class names; ``layout`` is the public schema of the
arrays (column numbers, rings, buckets). Beside them, public too: ``codes`` (the one WSO2
error-code taxonomy), ``primitives`` (hashing and buckets the rollup kernels share),
``merge`` (the fleet view), ``snapshot`` (files). Modules whose names start with ``_`` are the
state's own (the kernels and their pieces): nothing outside ``vigie.state`` imports them.
"""

from __future__ import annotations

from vigie.state import layout
from vigie.state.engine import Capacity, Episode, State
from vigie.state.thresholds import API_CLASS_NAMES, CLASS_NAMES, Thresholds

__all__ = [
    "API_CLASS_NAMES",
    "CLASS_NAMES",
    "Capacity",
    "Episode",
    "State",
    "Thresholds",
    "layout",
]
