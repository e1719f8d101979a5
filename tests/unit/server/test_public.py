"""``vigie.server`` is the sidecar's public face: these names are what the CLI, the demo, the
benchmarks and the tests import."""

from __future__ import annotations

import vigie.server


def test_the_public_names_of_the_server() -> None:
    assert set(vigie.server.__all__) == {
        "PROTOCOL_VERSION",
        "SUPPORTED_PROTOCOL_VERSIONS",
        "SWITCH_INTERVAL_S",
        "Running",
        "Sidecar",
        "serve_forever",
        "server_credentials",
        "start",
        "warm_up_kernels",
    }
    for name in vigie.server.__all__:
        assert getattr(vigie.server, name) is not None
