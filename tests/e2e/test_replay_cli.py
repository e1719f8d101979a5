"""`vigie replay`: what it reads, what it refuses and how it says so."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.support.wso2log import App, LogWriter, at
from vigie.cli.main import main
from vigie.errors import InputError
from vigie.replay import _ahead
from vigie.sources.wso2_log import ReplayStats, read_logs
from vigie.wire.columns import COLUMN_NAMES, DICTIONARY_COLUMNS, Events, Interner


def run(*args: str) -> Any:
    return CliRunner().invoke(main, ["replay", *args])


def test_broken_metric_lines_are_counted_and_reported_with_file_and_line(tmp_path: Path) -> None:
    w = LogWriter()
    app = App("a")
    for k in range(3):
        w.response(at(hours=1, seconds=k), app, "Orders")
    path = w.write(tmp_path / "gw.log")
    lines = path.read_text().splitlines()
    lines.insert(1, "10:00:00,000 [-] [main]  INFO Something else entirely")  # ignored
    lines.insert(2, lines[0].split("properties :")[0] + 'properties :{"apiName": ')  # broken JSON
    lines.append(lines[0].replace('"requestTimestamp":"', '"requestTimestamp":"x'))  # bad time
    lines.append(lines[0].replace("apim:response", "apim:mystery"))  # unknown metric
    lines.append(lines[0].replace('"apiName":"Orders"', '"apiName":""'))  # no API
    path.write_text("\n".join(lines) + "\n")
    result = run(str(path), "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["events"] == 3 and doc["rejected"] == 4
    err = result.stderr
    assert f"{path}:3: broken JSON" in err
    assert f"{path}:6:" in err and "requestTimestamp" in err
    assert f"{path}:7: unknown metric apim:mystery" in err
    assert f"{path}:8: apiName missing" in err


def test_both_reporter_styles_and_gzip(tmp_path: Path) -> None:
    app = App("a")
    elk, old = LogWriter(style="elk"), LogWriter(style="log")
    for k in range(5):
        elk.response(at(hours=1, seconds=k), app, "Orders")
        old.fault(at(hours=1, seconds=k, minutes=1), app, "Orders")
    p1 = elk.write(tmp_path / "a.log")
    p2 = old.write(tmp_path / "b.log")
    gz = tmp_path / "b.log.gz"
    gz.write_bytes(gzip.compress(p2.read_bytes()))
    result = run(f"main={p1}", f"sale={gz}", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["events"] == 10 and doc["rejected"] == 0
    (sub,) = doc["subscriptions"]
    assert sub["channels"] == {"main": 5, "sale": 5} and sub["throttled"] == 5


def test_files_of_several_channels_are_merged_by_time(tmp_path: Path) -> None:
    """A retry storm split over two gateways' logs is seen as one stream of requests."""
    a, b = LogWriter(seed=1), LogWriter(seed=2)
    app = App("storm")
    for k in range(80):  # alternate gateways, every 250 ms, all failing
        (a if k % 2 else b).response(at(hours=3, seconds=k * 0.25), app, "Orders", status=503)
    result = run(
        f"main={a.write(tmp_path / 'a.log')}", f"sale={b.write(tmp_path / 'b.log')}", "--json"
    )
    doc = json.loads(result.stdout)
    (sub,) = doc["subscriptions"]
    assert "retry_storm" in sub["classes"]
    assert sub["evidence"]["retry_storm"]["retries"] == 79


def test_missing_file_and_bad_arguments(tmp_path: Path) -> None:
    result = run(str(tmp_path / "nope.log"))
    assert result.exit_code == 2 and "nope.log: no such file" in result.stderr
    result = run("=x.log")
    assert result.exit_code == 2 and "expected [CHANNEL=]PATH" in result.stderr
    p = LogWriter().write(tmp_path / "empty.log")
    result = run(str(p), "--now", "yesterday")
    assert result.exit_code == 2 and "not an ISO 8601 time" in result.output


def test_inventory_problems_are_named(tmp_path: Path) -> None:
    log = LogWriter().write(tmp_path / "x.log")
    inv = tmp_path / "inv.json"
    cases = [
        ("{not json", "not valid JSON"),
        (
            '{"subscriptions": [{"api": "A", "api_version": "1"}]}',
            "subscriptions[0]: 'application_id' is missing",
        ),
        ('{"applications": [{"id": 5}]}', "applications[0]: 'id' must be a string, got int"),
        ('{"apps": []}', "unknown key(s) apps"),
    ]
    for text, message in cases:
        inv.write_text(text)
        result = run(str(log), "--inventory", str(inv))
        assert result.exit_code == 2, text
        assert message in " ".join(result.stderr.split()), (text, result.stderr)


def test_readable_tables_without_json(tmp_path: Path) -> None:
    w = LogWriter()
    app = App("poller")
    for k in range(200):
        w.response(at(hours=1, seconds=k * 2), app, "Catalog", resource="/menu")
    result = run(str(w.write(tmp_path / "x.log")))
    assert result.exit_code == 0
    assert "redundant" in result.stdout and "poller" in result.stdout
    assert "200 events, 0 rejected" in result.stdout


def test_the_fast_and_the_careful_reader_agree(tmp_path: Path) -> None:
    """Chunks are parsed all at once (Arrow) unless unusual; both ways give the same events."""
    w = LogWriter(seed=9)
    apps = [App(f"a{k}") for k in range(5)]
    for k in range(3000):
        t = at(hours=2, seconds=k * 0.7)
        app = apps[k % 5] if k % 17 else None  # some unauthenticated faults
        if k % 11 == 0:
            w.fault(
                t,
                app,
                "Orders",
                error_code=900803 if k % 2 else 101503,
                status=429 if k % 2 else 503,
                error_type="THROTTLED" if k % 2 else "TARGET_CONNECTIVITY",
            )
        else:
            w.response(
                t,
                app,
                f"Api{k % 3}",
                resource=f"/r{k % 4}",
                method=("GET", "POST", "PATCH", "HEAD")[k % 4],
                status=(200, 404, 304)[k % 3],
                latency_ms=k % 500,
            )
    path = w.write(tmp_path / "x.log")

    def read(fast: bool) -> dict[str, list[object]]:
        interner = Interner()
        stats = ReplayStats()
        evs = list(read_logs([(0, path)], interner, stats, fast=fast))
        assert stats.careful_chunks == (0 if fast else 1)
        assert stats.events == 3000
        return {
            c: [
                interner.string(int(v)) if c in DICTIONARY_COLUMNS else int(v)
                for e in evs
                for v in e[c]
            ]
            for c in COLUMN_NAMES
        }

    assert read(True) == read(False)


def test_epoch_millisecond_timestamps_and_string_numbers(tmp_path: Path) -> None:
    w = LogWriter()
    app = App("a")
    w.response(at(hours=1), app, "Orders")
    line = w.lines[0][1]
    epoch = line.replace(
        '"requestTimestamp":"2026-03-02T01:00:00.000Z"', '"requestTimestamp":1772413200000'
    )
    strings = line.replace('"proxyResponseCode":200', '"proxyResponseCode":"404"')
    assert epoch != line and strings != line
    path = tmp_path / "x.log"
    path.write_text(f"{epoch}\n{strings}\n")
    doc = json.loads(run(str(path), "--json").stdout)
    assert doc["events"] == 2 and doc["rejected"] == 0
    (sub,) = doc["subscriptions"]
    assert sub["first_seen"] == "2026-03-02T01:00:00.000Z" and sub["client_errors"] == 1


def test_parsing_ahead_keeps_order_raises_errors_and_stops_when_left() -> None:
    chunks = [Events.empty() for _ in range(50)]
    assert [id(c) for c in _ahead(iter(chunks))] == [id(c) for c in chunks]

    def broken() -> Iterator[Events]:
        yield chunks[0]
        raise InputError("line 7: broken")

    it = _ahead(broken())
    assert next(it) is chunks[0]
    with pytest.raises(InputError, match="line 7"):
        next(it)

    produced = []

    def endless() -> Iterator[Events]:
        while True:
            produced.append(1)
            yield chunks[0]

    it = _ahead(endless(), depth=2)
    next(it)
    it.close()  # the parser thread stops instead of filling a queue nobody reads
    assert len(produced) <= 5


def test_an_incomplete_history_is_reported_and_exits_non_zero(tmp_path: Path) -> None:
    w = LogWriter()
    app = App("a")
    for k in range(20_000):
        w.response(at(hours=1, seconds=k), app, "Orders")
    whole = gzip.compress(w.write(tmp_path / "gw.log").read_bytes())
    cut = tmp_path / "gw.log.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    result = run(str(cut), "--json")
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    assert 0 < doc["events"] < 20_000
    assert f"{cut}: {doc['events']:,} events read, the file ended early at byte" in result.stderr
    empty = tmp_path / "carbon.log"
    empty.write_text("INFO - API Gateway started\n")
    result = run(str(empty))
    assert result.exit_code == 1
    assert "0 apimMetrics lines in 1 file: is [apim.analytics] enabled" in result.stderr
    result = run(str(tmp_path))
    assert result.exit_code == 2 and "is a directory" in result.output
