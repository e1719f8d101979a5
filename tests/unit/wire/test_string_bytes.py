"""The interner counts the UTF-8 bytes of the strings it holds (what max_string_bytes bounds)."""

from __future__ import annotations

from vigie.wire.columns import Interner


def test_bytes_follow_intern_release_and_restore() -> None:
    it = Interner()
    ids = it.intern_many(["abc", "été", "abc"])
    assert it.bytes == 3 + 5  # "été" is 5 bytes in UTF-8; "abc" once
    assert it.unknown(["abc", "xyz", "€"]) == (2, 3 + 3)
    assert it.release([int(ids[1])]) == 1
    assert it.bytes == 3
    assert Interner(it.strings()).bytes == 3  # a snapshot's strings, holes included
    it.settle(0)
    it.intern("hello")  # reuses the hole
    assert it.bytes == 3 + 5 and it.live == 3
