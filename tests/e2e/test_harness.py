"""The test harness itself, against real processes: the ports it picks, a taken port refused by
`vigie serve` in one line and retried by ``start_sidecar``, bounded waits (``docs/testing.md``,
"A loaded machine")."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import tests.conftest
from tests.conftest import VIGIE, start_sidecar
from tests.support.ports import PORTS, ephemeral_range, free_port
from tests.support.waiting import Timeout, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def taken() -> Iterator[int]:
    """A loopback port another process listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", free_port()))
        s.listen()
        yield int(s.getsockname()[1])


def test_ports_are_outside_the_ephemeral_range_and_never_handed_out_twice() -> None:
    eph = ephemeral_range()
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    assert all(p in PORTS and p not in eph for p in ports), ports
    with socket.socket() as s:  # each can be bound
        s.bind(("127.0.0.1", ports[-1]))


def test_ephemeral_range_is_read_from_the_os(tmp_path: Path) -> None:
    f = tmp_path / "range"
    f.write_text("40000\t50000\n")
    assert ephemeral_range(f) == range(40000, 50001)
    assert ephemeral_range(tmp_path / "absent") == range(32768, 61000)


def test_a_taken_port_is_refused_in_one_line(tmp_path: Path, taken: int) -> None:
    admin = f"127.0.0.1:{free_port()}"
    cmd = [*VIGIE, "serve", "--listen", f"127.0.0.1:{taken}", "--admin-listen", admin,
           "--state-dir", str(tmp_path / "s")]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    own = [ln for ln in r.stderr.splitlines() if ln.startswith("vigie:")]
    assert own == [
        f"vigie: cannot listen on 127.0.0.1:{taken}: the address is in use or not available"
    ], r.stderr


def test_start_sidecar_retries_once_on_new_ports_when_its_port_was_taken(
    tmp_path: Path, taken: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    picks = iter([taken])  # the first port it picks is taken meanwhile, the others free

    def pick() -> int:
        return next(picks, None) or free_port()

    monkeypatch.setattr(tests.conftest, "free_port", pick)
    sp = start_sidecar(tmp_path / "s")
    try:
        assert sp.telemetry != f"127.0.0.1:{taken}"
        refused = (tmp_path / "s" / f"serve-{taken}.log").read_text()
        assert f"cannot listen on 127.0.0.1:{taken}" in refused
    finally:
        assert sp.stop() == 0


def test_a_port_the_caller_gave_is_not_changed(tmp_path: Path, taken: int) -> None:
    with pytest.raises(RuntimeError, match=f"cannot listen on 127.0.0.1:{taken}"):
        start_sidecar(tmp_path / "s", telemetry_port=taken, admin_port=free_port())


def test_wait_for_returns_the_value_and_names_what_timed_out() -> None:
    seen: list[int] = []

    def third() -> int | None:
        seen.append(1)
        return len(seen) if len(seen) >= 3 else None

    assert wait_for(third, 60, "the third look", every=0.0) == 3
    looks: list[int] = []

    def never() -> int:
        looks.append(1)
        return 0

    with pytest.raises(Timeout, match=r"after 0 s waiting for nothing \(last: 0\)"):
        wait_for(never, 0, "nothing")
    assert len(looks) == 2  # at once, and a last chance at the bound
