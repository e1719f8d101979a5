"""What the adversarial tests share: events to send, the admin stub, the status."""

from __future__ import annotations

from typing import Any

import grpc

from tests.conftest import SidecarProcess
from tests.support.waiting import RPC_S
from vigie.v1 import admin_pb2 as apb
from vigie.v1 import admin_pb2_grpc as apb_grpc

T0 = 1_772_409_600_000_000


def records(
    n: int, app: str = "app-1", api: str = "Orders", start: int = T0
) -> list[dict[str, Any]]:
    return [
        {
            "event_time_us": start + k * 1000,
            "application_id": app,
            "application_name": app,
            "api_name": api,
            "api_version": "v1",
            "resource_template": "/o",
            "http_method": 1,
            "http_status": 200,
            "latency_us": 5000,
        }
        for k in range(n)
    ]


def admin(sp: SidecarProcess) -> tuple[apb_grpc.AdminStub, tuple[tuple[str, str], ...]]:
    return apb_grpc.AdminStub(grpc.insecure_channel(sp.admin)), (
        ("authorization", f"Bearer {sp.token}"),
    )


def status(sp: SidecarProcess) -> apb.Status:
    stub, md = admin(sp)
    st: apb.Status = stub.GetStatus(apb.StatusRequest(), metadata=md, timeout=RPC_S)
    return st
