"""The fast way through a chunk of WSO2 analytics lines: all their JSON at once with Arrow.

Arrow's JSON reader parses the whole chunk in C++ against an explicit schema; strings are
dictionary-encoded, so only the distinct strings are touched in Python. It is all-or-nothing:
anything unusual in the chunk (broken JSON, a value of another type, a timestamp Arrow cannot
read, a missing API name...) raises ``Unusual`` and the caller reads that chunk line by line
with ``LineParser``, which finds and reports each bad line exactly. Both ways give the same
events (``tests/test_replay_cli.py`` compares them).
"""

from __future__ import annotations

import io
import re
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from vigie.wire.columns import (
    ENGINE_DTYPES,
    KEY_TYPES,
    MAX_EVENT_TIME_US,
    Events,
    Interner,
    method_number,
)
from vigie.wire.tenants import KEY_SEPARATOR, keyed_names

FLAG_THROTTLED: Final = 1
FLAG_CACHE_HIT: Final = 2
FLAG_FAULT: Final = 4
MAX_STRING: Final = 4096
_FAULT_STATUS: Final = {"THROTTLED": 429, "AUTH": 401, "TARGET_CONNECTIVITY": 503}

_STRINGS: Final = {
    "applicationId": "application_id",
    "applicationName": "application_name",
    "applicationOwner": "application_owner",
    "apiName": "api_name",
    "apiVersion": "api_version",
    "apiContext": "api_context",
    "apiResourceTemplate": "resource_template",
    "apiCreatorTenantDomain": "tenant",
    "apiId": "api_id",
    "userIp": "client_ip",
}
SCHEMA: Final = pa.schema(
    [(k, pa.string()) for k in _STRINGS]
    + [
        ("requestTimestamp", pa.string()),
        ("apiMethod", pa.string()),
        ("keyType", pa.string()),
        ("errorType", pa.string()),
        ("proxyResponseCode", pa.int64()),
        ("targetResponseCode", pa.int64()),
        ("errorCode", pa.int64()),
        ("responseLatency", pa.int64()),
        ("backendLatency", pa.int64()),
        ("responseCacheHit", pa.bool_()),
        ("properties", pa.struct([("apiContext", pa.string()), ("responseSize", pa.int64())])),
    ]
)
# what WSO2 writes in applicationId when there is no application (see wso2_log)
_PLACEHOLDERS: Final = pa.array(["UNKNOWN", "anonymous"], type=pa.string())
_APPLICATION: Final = ("applicationId", "applicationName", "applicationOwner")
_PARSE: Final = pj.ParseOptions(explicit_schema=SCHEMA, unexpected_field_behavior="ignore")


class Unusual(Exception):
    """The chunk needs the line-by-line reader."""


def _ids(col: pa.ChunkedArray | pa.Array, interner: Interner) -> npt.NDArray[np.int32]:
    """Global ids of a string column (null -> 0, the empty string)."""
    enc = col.combine_chunks().dictionary_encode()
    words = enc.dictionary.to_pylist()
    if words and max(len(w) for w in words) > MAX_STRING:
        raise Unusual("a string longer than 4096 characters")
    if any(KEY_SEPARATOR in w for w in words):
        raise Unusual("a string with U+001F")
    lut = interner.intern_many(words) if words else np.zeros(0, dtype=np.int32)
    idx = enc.indices.fill_null(-1).to_numpy(zero_copy_only=False)
    out = np.zeros(len(idx), dtype=np.int32)
    ok = idx >= 0
    out[ok] = lut[idx[ok]]
    return out


def _lookup(col: pa.ChunkedArray, table: dict[str, int], default: int) -> npt.NDArray[np.int64]:
    enc = col.combine_chunks().dictionary_encode()
    lut = np.array(
        [table.get(w, default) for w in enc.dictionary.to_pylist()] + [default], dtype=np.int64
    )
    idx = enc.indices.fill_null(len(lut) - 1).to_numpy(zero_copy_only=False)
    out: npt.NDArray[np.int64] = lut[idx]
    return out


def _ints(col: pa.ChunkedArray, null: int) -> npt.NDArray[np.int64]:
    values = col.combine_chunks().fill_null(null).to_numpy(zero_copy_only=False)
    out: npt.NDArray[np.int64] = np.asarray(values, dtype=np.int64)
    return out


_SURROGATE: Final = re.compile(rb"\\u[dD][89a-fA-F]")


def parse_chunk(
    json_lines: list[bytes],
    faults: npt.NDArray[np.bool_],
    channel: int,
    interner: Interner,
    sort: bool = True,
) -> Events:
    """Events of the chunk, sorted by event time (else one per line, in line order);
    ``Unusual`` when a line needs a closer look."""
    n = len(json_lines)
    data = b"\n".join(json_lines)
    # what the careful way (orjson) refuses, Arrow may take: invalid UTF-8 (in a key, Arrow
    # never looks) and escaped surrogates; such a chunk goes the careful way
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Unusual("invalid UTF-8") from exc
    if _SURROGATE.search(data):
        raise Unusual("an escaped surrogate")
    try:
        table = pj.read_json(
            io.BytesIO(data),
            read_options=pj.ReadOptions(block_size=max(1 << 20, len(data) + 1)),
            parse_options=_PARSE,
        )
        if table.num_rows != n:
            raise Unusual("line count")
        ts_col = table["requestTimestamp"]
        if ts_col.null_count:
            raise Unusual("requestTimestamp missing")
        ts = pc.cast(ts_col, pa.timestamp("us", tz="UTC")).combine_chunks()
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise Unusual(str(exc)) from exc
    event_time = ts.to_numpy(zero_copy_only=False).astype("datetime64[us]").astype(np.int64)
    if n and int(event_time.min()) <= 0:
        raise Unusual("requestTimestamp before 1970")
    if n and int(event_time.max()) >= MAX_EVENT_TIME_US:
        raise Unusual("requestTimestamp after the year 3000")
    api = table["apiName"]
    if api.null_count or pc.any(pc.equal(api, "")).as_py():
        raise Unusual("apiName missing")
    # placeholders are no application: their strings are never interned, as the careful way
    placeholder = pc.is_in(table["applicationId"], value_set=_PLACEHOLDERS)
    no_string = pa.scalar(None, pa.string())
    strings = {k: table[k] for k in _STRINGS}
    for k in _APPLICATION:
        strings[k] = pc.if_else(placeholder, no_string, strings[k])
    # a fault line (APIM 4.2+) has its context in properties only
    props = table["properties"]
    root = strings["apiContext"]
    strings["apiContext"] = pc.if_else(
        pc.fill_null(pc.not_equal(root, ""), False), root, pc.struct_field(props, "apiContext")
    )
    cols: dict[str, Any] = {name: _ids(strings[k], interner) for k, name in _STRINGS.items()}
    cols["event_time_us"] = event_time
    cols["http_method"] = _lookup(table["apiMethod"], _methods(table["apiMethod"]), 0)
    error_type = table["errorType"]
    error_code = _ints(table["errorCode"], 0)
    if n and (int(error_code.min()) < -(2**31) or int(error_code.max()) >= 2**31):
        raise Unusual("errorCode out of range")  # the column is int32: never wrap a code
    status = _ints(table["proxyResponseCode"], 0)
    derived = _lookup(error_type, dict(_FAULT_STATUS), 500)
    status = np.where((status <= 0) & faults, derived, status)
    if n and (int(status.min()) < 0 or int(status.max()) > 65535):
        raise Unusual("proxyResponseCode out of range")
    cols["http_status"] = status
    target = _ints(table["targetResponseCode"], 0)  # -1: the backend was never reached
    if n and int(target.max()) > 65535:
        raise Unusual("targetResponseCode out of range")
    cols["target_status"] = np.maximum(target, 0)
    # an API is tenant x name x version: the state and the rollups key it by its keyed name
    cols["api_name"] = keyed_names(interner, cols["tenant"], cols["api_name"])
    cols["error_code"] = error_code
    cols["latency_us"] = _ms_to_us(_ints(table["responseLatency"], 0))
    cols["backend_latency_us"] = _ms_to_us(_ints(table["backendLatency"], 0))
    cols["request_bytes"] = np.full(n, -1)
    size = _ints(pc.struct_field(props, "responseSize"), -1)
    cols["response_bytes"] = np.where(size < 0, -1, size)
    keys = {k: v for k, v in KEY_TYPES.items()}
    key_type = table["keyType"]
    cols["key_type"] = _lookup(pc.utf8_upper(key_type), keys, 0)
    cols["subscription_tier"] = np.zeros(n, dtype=np.int32)
    cols["uri_hash"] = np.zeros(n, dtype=np.uint64)
    throttled = (_lookup(error_type, {"THROTTLED": 1}, 0) == 1) | (
        (error_code >= 900800) & (error_code <= 900899)
    )
    cache_hit = table["responseCacheHit"].combine_chunks().fill_null(False)
    cols["flags"] = (
        np.where(faults, FLAG_FAULT, 0)
        | np.where(throttled, FLAG_THROTTLED, 0)
        | np.where(cache_hit.to_numpy(zero_copy_only=False), FLAG_CACHE_HIT, 0)
    )
    columns = {
        name: np.asarray(v).astype(ENGINE_DTYPES[name], copy=False) for name, v in cols.items()
    }
    ev = Events(columns, np.full(n, channel, dtype=np.uint8))
    return ev.take(np.argsort(event_time, kind="stable")) if sort else ev


def _ms_to_us(ms: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Milliseconds to microseconds within uint32, as the line parser does: clamped before
    multiplying, so a huge value cannot wrap around int64."""
    return np.clip(np.clip(ms, 0, 0xFFFFFFFF // 1000 + 1) * 1000, 0, 0xFFFFFFFF)


def _methods(col: pa.ChunkedArray) -> dict[str, int]:
    words = col.combine_chunks().dictionary_encode().dictionary.to_pylist()
    return {w: method_number(w) for w in words}
