"""Write the shared Java/Python wire test vectors (run once by hand; the files are committed).

    .venv/bin/python tests/vectors/make_vectors.py

Each vector is a stream: a list of batches, each given as its events (records of column name ->
value, strings for dictionary columns) and as the hex of the serialized ``GatewayMessage``
that any conforming encoder produces for them (see ``StreamEncoder`` for the canonical order).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vigie.v1 import telemetry_pb2 as pb
from vigie.wire.columns import StreamEncoder

HERE = Path(__file__).parent

ALL_FIELDS = {
    "event_time_us": 1_700_000_000_123_456,
    "application_id": "87c8da4c-aa3f-43d3-89ac-dc3dc3b19d3e",
    "application_name": "DefaultApplication",
    "application_owner": "admin",
    "api_name": "PizzaShackAPI",
    "api_version": "1.0.0",
    "api_context": "/pizzashack/1.0.0",
    "resource_template": "/menu",
    "http_method": pb.HTTP_METHOD_GET,
    "http_status": 200,
    "error_code": 0,
    "latency_us": 4_000,
    "backend_latency_us": 3_000,
    "request_bytes": 0,
    "response_bytes": 2_187,
    "key_type": pb.KEY_TYPE_SANDBOX,
    "subscription_tier": "Unlimited",
    "uri_hash": 0x9E3779B97F4A7C15,
    "flags": 0,
}

VECTORS: dict[str, tuple[str, list[list[dict[str, Any]]]]] = {
    "minimal": (
        "Only the required columns; the others are left out of the batch.",
        [
            [
                {
                    "event_time_us": 1_671_072_814_894_000,
                    "application_id": "app-1",
                    "api_name": "PizzaShackAPI",
                    "api_version": "1.0.0",
                    "http_status": 200,
                }
            ]
        ],
    ),
    "all_columns": (
        "Every column, extreme values (max uint32 latency, uint64 hash above 2^63, negative error "
        "code absent, -1 sizes), a non-ASCII string and a throttled fault.",
        [
            [
                ALL_FIELDS,
                ALL_FIELDS
                | {
                    "event_time_us": 1_700_000_000_223_456,
                    "application_name": "Défaut-应用",
                    "resource_template": "",
                    "http_method": pb.HTTP_METHOD_UNSPECIFIED,
                    "http_status": 429,
                    "error_code": 900803,
                    "latency_us": 4_294_967_295,
                    "backend_latency_us": 0,
                    "request_bytes": -1,
                    "response_bytes": -1,
                    "key_type": pb.KEY_TYPE_PRODUCTION,
                    "uri_hash": 0xFFFFFFFFFFFFFFFF,
                    "flags": pb.EVENT_FLAG_THROTTLED | pb.EVENT_FLAG_FAULT,
                },
            ]
        ],
    ),
    "dictionary_continues": (
        "Three batches of one stream: later batches reuse earlier ids and add only new strings; "
        "the last batch adds none.",
        [
            [
                {
                    "event_time_us": 1_000_000 + i,
                    "application_id": f"app-{i % 2}",
                    "api_name": "Orders",
                    "api_version": "v1",
                    "resource_template": "/orders/{id}",
                    "http_method": pb.HTTP_METHOD_GET,
                    "http_status": 200,
                }
                for i in range(3)
            ],
            [
                {
                    "event_time_us": 2_000_000 + i,
                    "application_id": f"app-{i}",
                    "api_name": "Orders",
                    "api_version": "v2",
                    "resource_template": "/orders",
                    "http_method": pb.HTTP_METHOD_POST,
                    "http_status": 201,
                }
                for i in range(3)
            ],
            [
                {
                    "event_time_us": 3_000_000,
                    "application_id": "app-2",
                    "api_name": "Orders",
                    "api_version": "v1",
                    "http_status": 503,
                    "error_code": 101503,
                }
            ],
        ],
    ),
}


def main() -> None:
    for name, (description, batches) in VECTORS.items():
        enc = StreamEncoder()
        out = []
        for k, events in enumerate(batches):
            sent_at = 1_700_000_001_000_000 + k
            batch = enc.batch_from_records(events, sent_at_us=sent_at)
            msg = pb.GatewayMessage(batch=batch)
            out.append(
                {
                    "sent_at_us": sent_at,
                    "events": events,
                    "gateway_message_hex": msg.SerializeToString().hex(),
                }
            )
        doc = {"description": description, "batches": out}
        (HERE / f"{name}.json").write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {name}.json")


if __name__ == "__main__":
    main()
