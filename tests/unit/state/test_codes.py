"""The WSO2 taxonomy (vigie.state.codes), its shared test vector, and the readers that cannot
import it (the log parsers sit below the state) checked against that vector."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.wso2log import BASE, App, LogWriter
from vigie.sources import _wso2_fast, wso2_log
from vigie.sources.wso2_log import ReplayStats, read_logs
from vigie.state import codes
from vigie.wire.columns import Interner

VECTOR = Path(__file__).resolve().parents[2] / "vectors" / "taxonomy" / "codes.json"


def _cases() -> list[dict[str, Any]]:
    doc = json.loads(VECTOR.read_text())
    return [dict(zip(doc["case_columns"], c, strict=True)) for c in doc["cases"]]


def test_the_vector_is_not_stale() -> None:
    assert VECTOR.read_text() == codes.vector_text(), (
        "tests/vectors/taxonomy/codes.json is stale: run "
        "`python tests/vectors/taxonomy/make_codes.py`"
    )


def test_the_vector_reads_as_the_documented_table() -> None:
    def family(c: int) -> str:  # the table of the module docstring, written out again
        if 900800 <= c <= 900899:
            return "throttling"
        if 900900 <= c <= 900999:
            return "authentication"
        if 101500 <= c <= 101599 or c == 303001:
            return "backend"
        if 101000 <= c <= 101499:
            return "transport"
        return "other"

    cases = _cases()
    assert {c["family"] for c in cases} == {
        "throttling",
        "authentication",
        "backend",
        "transport",
        "other",
    }
    for c in cases:
        assert c["family"] == family(c["error_code"]), c
        assert c["throttled"] == (bool(c["flags"] & 1) or 900800 <= c["error_code"] <= 900899), c
        assert c["client_error"] == (400 <= c["http_status"] < 500 and c["http_status"] != 429)
    # a bare 429 is a 4xx, not throttled
    bare = [
        c for c in cases if c["http_status"] == 429 and c["flags"] == 0 and c["error_code"] == 0
    ]
    assert bare and not any(c["throttled"] for c in bare)


def test_jitted_and_plain_predicates_agree() -> None:
    preds = (
        codes.is_throttling_code,
        codes.is_authentication_code,
        codes.is_backend_code,
        codes.is_transport_code,
    )
    for c in _cases():
        code = c["error_code"]
        for p in preds:
            assert bool(p(code)) == bool(p.py_func(code))
        assert bool(codes.is_throttled(code, c["flags"])) == c["throttled"]
        assert bool(codes.is_throttled.py_func(code, c["flags"])) == c["throttled"]
        assert bool(codes.is_client_error(c["http_status"])) == c["client_error"]


def test_the_parsers_fault_statuses_are_the_taxonomys() -> None:
    doc = json.loads(VECTOR.read_text())
    assert doc["fault_status"] == wso2_log._FAULT_STATUS == _wso2_fast._FAULT_STATUS


@pytest.mark.parametrize("fast", [True, False])
def test_the_parsers_throttled_flag_follows_the_vector(tmp_path: Path, fast: bool) -> None:
    cases = [c for c in _cases() if c["flags"] == 0 and c["http_status"] == 503]
    cases = [c for c in cases if -(2**31) <= c["error_code"] < 2**31]
    w = LogWriter()
    app = App("shop")
    for k, c in enumerate(cases):
        t = BASE + timedelta(seconds=k)
        w.fault(t, app, "Orders", error_code=c["error_code"], status=503, error_type="ERROR")
    path = w.write(tmp_path / "codes.log")
    interner = Interner()
    evs = list(read_logs([(0, path)], interner, ReplayStats(), fast=fast))
    got = {(int(e["error_code"][i]), bool(e["flags"][i] & 1)) for e in evs for i in range(len(e))}
    assert got == {(c["error_code"], c["throttled"]) for c in cases}
