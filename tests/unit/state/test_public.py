"""The state package's public names (its front door) are pinned."""

from __future__ import annotations

import vigie.state


def test_the_front_door_names() -> None:
    assert sorted(vigie.state.__all__) == [
        "API_CLASS_NAMES",
        "CLASS_NAMES",
        "Capacity",
        "Episode",
        "State",
        "Thresholds",
        "layout",
    ]
    for name in vigie.state.__all__:
        assert getattr(vigie.state, name) is not None
