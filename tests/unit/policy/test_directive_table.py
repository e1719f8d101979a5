"""The directive table: the one validation (with the handler's ranges), kept before pushed,
entry-by-entry load with a last good copy."""

from __future__ import annotations

import errno
import json
import logging
import queue
import re
from pathlib import Path

import pytest

from vigie.directives import table as T
from vigie.directives.audit import AuditLog
from vigie.v1 import directives_pb2 as dpb

ROOT = Path(__file__).resolve().parents[3]
JAVA = ROOT / "gateway-handler/core/src/main/java/io/vigie/gateway/directive/DirectiveLimits.java"
NOW = 1_767_225_600_000_000
HOUR_US = 3_600_000_000


class Clock:
    def wall(self) -> float:
        return NOW / 1e6

    def monotonic(self) -> float:
        return 0.0


def java_constants() -> dict[str, int]:
    out = {}
    for name, value in re.findall(r"static final (?:long|int) (\w+) = ([^;]+);", JAVA.read_text()):
        v = value.strip().rstrip("L").replace("_", "")
        out[name] = (1 << int(v.split("<<")[1])) if "<<" in v else int(v, 0)
    return out


def test_the_ranges_are_the_handlers() -> None:
    j = java_constants()
    assert {
        "limit_requests": (j["MIN_LIMIT_REQUESTS"], j["MAX_LIMIT_REQUESTS"]),
        "limit_period_seconds": (j["MIN_LIMIT_PERIOD_SECONDS"], j["MAX_LIMIT_PERIOD_SECONDS"]),
        "limit_burst": (0, j["MAX_LIMIT_BURST"]),
    } == T.LIMITS


def limit(**fields: int | str) -> dpb.Directive:
    d = dpb.Directive(id="d1", mode=dpb.DIRECTIVE_MODE_ENFORCE, action=dpb.DIRECTIVE_ACTION_LIMIT,
                      application_id="app", limit_requests=100, limit_period_seconds=60,
                      expires_at_us=NOW + HOUR_US)  # fmt: skip
    for k, v in fields.items():
        setattr(d, k, v)
    return d


def test_values_that_froze_the_handler_are_refused_with_the_range() -> None:
    with pytest.raises(T.DirectiveError, match="limit_period_seconds must be between 1 and"):
        T.validate(limit(limit_period_seconds=2**31), NOW)
    T.validate(limit(limit_requests=2**32 - 1), NOW)  # the handler reads it unsigned
    T.validate(limit(limit_requests=100, limit_period_seconds=86_400, limit_burst=10**8), NOW)
    with pytest.raises(T.DirectiveError, match="max_directive_ttl"):
        T.validate(limit(expires_at_us=NOW + 31 * 24 * HOUR_US), NOW)
    with pytest.raises(T.DirectiveError, match="max_directive_ttl"):  # int64 max
        T.validate(limit(expires_at_us=2**63 - 1), NOW)


def table(tmp_path: Path) -> T.DirectiveTable:
    return T.DirectiveTable(tmp_path, Clock(), AuditLog(tmp_path / "audit.jsonl", Clock()))


def test_a_change_that_cannot_be_saved_is_neither_applied_nor_pushed_nor_audited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    t = table(tmp_path)
    t.put(limit(), "alice", "first")
    q = t.subscribe()
    q.get_nowait()  # the full table

    def full(*_: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(t, "_save", full)
    with pytest.raises(
        T.DirectiveNotSaved, match=r"^directive not saved: No space left on device$"
    ):
        t.put(limit(id="d2"), "bob", "second")
    with pytest.raises(T.DirectiveNotSaved):
        t.remove("d1", "bob", "gone")
    assert q.empty()
    assert t.version == 1 and [d.id for d in t.snapshot()[1]] == ["d1"]
    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    assert [json.loads(x)["actor"] for x in lines] == ["alice"]


def test_an_audit_that_fails_undoes_the_saved_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    t = table(tmp_path)
    t.put(limit(), "alice", "first")
    assert t.audit is not None

    def broken(*_: object, **__: object) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(t.audit, "record", broken)
    with pytest.raises(T.DirectiveNotSaved, match="Input/output error"):
        t.remove("d1", "bob", "gone")
    assert [d.id for d in T.DirectiveTable(tmp_path, Clock()).snapshot()[1]] == ["d1"]


def test_a_replace_audits_the_values_before_and_after(tmp_path: Path) -> None:
    t = table(tmp_path)
    t.put(limit(), "alice", "first")
    t.put(limit(limit_requests=50), "bob", "tighter")
    last = json.loads((tmp_path / "audit.jsonl").read_text().splitlines()[-1])
    assert last["action"] == "replace"
    assert (
        last["details"]["before"]["limitRequests"],
        last["details"]["after"]["limitRequests"],
    ) == (100, 50)


def test_entries_are_validated_one_by_one_on_load(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    t = table(tmp_path)
    t.put(limit(), "alice", "good")
    doc = json.loads((tmp_path / T.FILE_NAME).read_text())
    doc["directives"].append({"id": "bad", "mode": "DIRECTIVE_MODE_ENFORCE",
                              "action": "DIRECTIVE_ACTION_LIMIT", "applicationId": "x",
                              "limitRequests": 5, "limitPeriodSeconds": 2**31})  # fmt: skip
    doc["directives"].append({"id": "worse", "mode": 7})
    (tmp_path / T.FILE_NAME).write_text(json.dumps(doc))
    with caplog.at_level(logging.ERROR):
        again = T.DirectiveTable(tmp_path, Clock())
    assert [d.id for d in again.snapshot()[1]] == ["d1"]
    assert again.load_refused == 2
    assert "directive #1 refused: directive bad: limit_period_seconds" in caplog.text


def test_an_empty_file_falls_back_to_the_last_good_copy(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    t = table(tmp_path)
    t.put(limit(), "alice", "one")
    t.put(limit(id="d2"), "alice", "two")
    (tmp_path / T.FILE_NAME).write_bytes(b"")  # a power loss before the data reached the disk
    with caplog.at_level(logging.ERROR):
        again = T.DirectiveTable(tmp_path, Clock())
    assert [d.id for d in again.snapshot()[1]] == ["d1"] and again.version == 1
    assert "restored from the last good copy" in caplog.text
    (tmp_path / (T.FILE_NAME + T.PREVIOUS_SUFFIX)).write_bytes(b"{")
    (tmp_path / T.FILE_NAME).write_bytes(b"")
    with caplog.at_level(logging.ERROR):
        empty = T.DirectiveTable(tmp_path, Clock())
    assert len(empty) == 0
    assert "the table is EMPTY, every directive is lifted" in caplog.text


def test_a_subscriber_hears_only_what_was_kept(tmp_path: Path) -> None:
    t = table(tmp_path)
    q: queue.Queue[dpb.DirectiveUpdate] = t.subscribe()
    q.get_nowait()
    t.put(limit(), "alice", "one")
    u = q.get_nowait()
    assert u.version == 1 and [d.id for d in u.upserts] == ["d1"]
    assert json.loads((tmp_path / T.FILE_NAME).read_text())["version"] == 1


def test_hit_reports_are_bounded(tmp_path: Path) -> None:
    t = table(tmp_path)
    t.put(limit(), "alice", "one")
    refused = t.record_hits("gw-1", [
        dpb.DirectiveHits(directive_id="d1", shadow_hits=3, passed=7),
        dpb.DirectiveHits(directive_id="d1", passed=10**9),  # a second entry for d1
        dpb.DirectiveHits(directive_id="nope", passed=5),  # not in the table
    ])  # fmt: skip
    assert refused == 2 and t.hits_refused == 2
    assert t.record_hits("gw-2", [dpb.DirectiveHits(directive_id="d1", passed=2**41)]) == 1
    (h,) = t.hits()
    assert (h.shadow_hits, h.passed) == (3, 7)


def test_unauthenticated_hits_are_trusted_on_loopback_only_by_default() -> None:
    from vigie.settings import load_settings  # noqa: PLC0415
    from vigie.settings.policy import PolicyConfig, trust_gateway_hits  # noqa: PLC0415

    assert trust_gateway_hits("auto", "127.0.0.1:7355", mtls=False)
    assert trust_gateway_hits("auto", "[::1]:7355", mtls=False)
    assert trust_gateway_hits("auto", "unix:/run/vigie.sock", mtls=False)
    assert not trust_gateway_hits("auto", "0.0.0.0:7355", mtls=False)
    assert not trust_gateway_hits("false", "127.0.0.1:7355", mtls=False)
    assert trust_gateway_hits("true", "0.0.0.0:7355", mtls=False)
    assert trust_gateway_hits("false", "0.0.0.0:7355", mtls=True)  # the gateway proved who it is
    s = load_settings(
        env={"VIGIE_LISTEN": "10.0.0.5:7355", "VIGIE_ALLOW_PLAINTEXT_REMOTE": "true"}, overrides={}
    )
    assert not PolicyConfig.from_settings(s).trust_gateway_hits


def test_hits_outlive_their_gateway_but_not_their_directive_nor_the_gateway_cap(
    tmp_path: Path,
) -> None:
    t = table(tmp_path)
    t.put(limit(), "alice", "first")
    n = T.MAX_HIT_GATEWAYS + 6
    for k in range(n):
        t.record_hits(f"gw-{k}", [dpb.DirectiveHits(directive_id="d1", shadow_hits=1)])
    # the six gateways not heard from the longest were forgotten, and counted
    assert t.hit_gateways_evicted == 6
    assert [(h.directive_id, h.shadow_hits) for h in t.hits()] == [("d1", T.MAX_HIT_GATEWAYS)]
    t.remove("d1", "alice", "done")
    assert t.hits() == []
