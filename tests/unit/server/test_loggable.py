"""Strings from the wire as the log shows them, and the addresses a setting may name."""

from __future__ import annotations

import pytest

from vigie.server.boundary import loggable
from vigie.settings import check_address, parse_bool


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("gw-1", "gw-1"),
        ("gw\nINFO forged", r"gw\nINFO forged"),
        ("\x1b[31mred", r"\x1b[31mred"),
        ("été", "été"),  # printable non-ASCII is kept as it is
        ("x" * 300, "x" * 200 + "... (300 characters)"),
    ],
)
def test_loggable_escapes_control_characters_and_caps_the_length(text: str, shown: str) -> None:
    assert loggable(text) == shown
    assert "\n" not in loggable(text)


@pytest.mark.parametrize("address", ["127.0.0.1:7355", "[::1]:0", "0.0.0.0:65535", "unix:/x"])
def test_good_addresses(address: str) -> None:
    check_address(address)


@pytest.mark.parametrize("address", ["127.0.0.1:99999", "127.0.0.1", ":7355", "h:-1", "unix:"])
def test_bad_addresses(address: str) -> None:
    with pytest.raises(ValueError, match=r"expected host:port|unix: needs a path"):
        check_address(address)


def test_booleans() -> None:
    assert parse_bool(True) and parse_bool("yes") and not parse_bool("0")
    with pytest.raises(ValueError, match="expected true or false, got 'maybe'"):
        parse_bool("maybe")
