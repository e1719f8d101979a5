"""`vigie replay --to`'s pure parts: the target list and the pacing slices."""

from __future__ import annotations

import numpy as np
import pytest

from vigie.errors import InputError
from vigie.sources.forward import _slices, parse_targets
from vigie.wire.columns import COLUMN_NAMES, ENGINE_DTYPES, Events


def events(times: list[int], files: list[int]) -> Events:
    cols = {n: np.zeros(len(times), dtype=ENGINE_DTYPES[n]) for n in COLUMN_NAMES}
    cols["event_time_us"] = np.array(times, dtype=np.int64)
    return Events(cols, np.array(files, dtype=np.uint8))


def test_targets_are_split_on_commas_and_a_repeat_is_refused() -> None:
    assert parse_targets(["a:1,b:2", " c:3 "]) == ["a:1", "b:2", "c:3"]
    with pytest.raises(InputError, match="a:1 is given twice"):
        parse_targets(["a:1", "a:1"])
    with pytest.raises(InputError, match="empty address"):
        parse_targets(["a:1,"])


def shape(slices: list[list[tuple[int, Events]]]) -> list[list[tuple[int, list[int]]]]:
    return [[(k, ev["event_time_us"].tolist()) for k, ev in s] for s in slices]


def test_strict_pacing_cuts_at_every_change_of_file() -> None:
    ev = events([1, 2, 3, 4, 5], [0, 0, 1, 0, 2])
    assert shape(list(_slices(ev, 0))) == [
        [(0, [1, 2])],
        [(1, [3])],
        [(0, [4])],
        [(2, [5])],
    ]


def test_slack_groups_a_slice_of_event_time_file_by_file() -> None:
    ev = events([1, 2, 3, 1_000_001, 1_000_002], [1, 0, 1, 0, 0])
    assert shape(list(_slices(ev, 1_000_000))) == [
        [(0, [2]), (1, [1, 3])],
        [(0, [1_000_001, 1_000_002])],
    ]
