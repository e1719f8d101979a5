"""Item 11: the state files are the operator's alone. Started under the default umask (022), a
sidecar that kept directives, audit lines, a snapshot and rollups leaves a 0700 state directory
whose every file and folder only its owner can read."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

from tests.adversarial.common import admin
from tests.conftest import start_sidecar
from tests.support.waiting import RPC_S
from vigie.v1 import admin_pb2 as apb
from vigie.v1 import directives_pb2 as dpb


def test_every_state_file_is_private_under_the_default_umask(tmp_path: Path) -> None:
    state = tmp_path / "state"
    old = os.umask(0o022)
    try:
        sp = start_sidecar(state)
    finally:
        os.umask(old)
    try:
        stub, md = admin(sp)
        stub.PutDirective(
            apb.PutDirectiveRequest(
                directive=dpb.Directive(
                    id="private",
                    mode=dpb.DIRECTIVE_MODE_SHADOW,
                    action=dpb.DIRECTIVE_ACTION_BLOCK,
                    application_id="app-1",
                    expires_at_us=int((time.time() + 3600) * 1e6),
                ),
                actor="test",
                reason="files",
            ),
            metadata=md,
            timeout=RPC_S,
        )
    finally:
        sp.stop()  # a graceful stop writes the snapshot
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    written = [
        p
        for p in state.rglob("*")
        if not p.name.startswith("serve-")  # the test's own log
    ]
    names = {p.name for p in written}
    assert {"directives.json", "directives-audit.jsonl", "state.npz"} <= names, names
    loose = {
        str(p.relative_to(state)): oct(stat.S_IMODE(p.stat().st_mode))
        for p in written
        if stat.S_IMODE(p.stat().st_mode) & 0o077
    }
    assert not loose, loose
