"""Directive ids.

A directive pushed by an approved suggestion carries the suggestion's id (``sg-...``,
``vigie.policy.suggest``). A manual one (``vigie tune limit|block``) without ``--id`` gets an id
minted here from its kind and its scope: the same scope gives the same id, so putting it again
replaces the directive instead of stacking a second one.
"""

from __future__ import annotations

import hashlib


def manual_directive_id(
    kind: str, application_id: str, api_name: str, api_version: str, channel: str
) -> str:
    """``manual-<kind>-<10 hex digits>``: the id of a manual directive of this kind and scope."""
    h = hashlib.sha256(f"{kind}|{application_id}|{api_name}|{api_version}|{channel}".encode())
    return f"manual-{kind}-{h.hexdigest()[:10]}"
