"""``vigie report --format html`` of a 45-day replayed history, rendered by headless Chromium:
the sections a manager needs are there (classes, suggestions and decisions, directives and what
they refused, per owner against a naive count, per tenant, names from the inventory), growth on
a tiny baseline reads ``new``, a day without data is a gap, the growth chart shows the
growers, and the screenshot is not blank."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.support.wso2_traffic import make_records, write_log
from vigie.cli.main import main
from vigie.policy.book import Record, SuggestionBook
from vigie.policy.suggest import Suggestion
from vigie.store.changes import ChangeTracker
from vigie.store.parquet import ParquetStore
from vigie.v1 import directives_pb2 as dpb

DAY = 86_400_000_000
START = 1_790_000_000_000_000 - 1_790_000_000_000_000 % DAY  # a midnight, Sept. 2026
LONG_NAME = "Logistics Partner Integration for the Northern Europe Distribution Hub"
BLOCK_FROM, BLOCK_TO = START + 35 * DAY + 3600 * 10**6, START + 38 * DAY
# the inventory names the owners (the log says owner0..owner2) and renames one application
INVENTORY: dict[str, Any] = {
    "tenant": "carbon.super",
    "applications": [
        {"id": f"app-{i:03d}", "name": "Billing Portal" if i == 3 else f"Application {i}",
         "owner": ("Retail team", "Partners team", "Ops team")[i % 3]}
        for i in range(11)  # app-011 is not in it: its name comes from its events
    ],
}  # fmt: skip


class Wall:
    """A clock whose wall time the test sets (the book stamps its records with it)."""

    def __init__(self, us: int) -> None:
        self.us = us

    def wall(self) -> float:
        return self.us / 1e6

    def monotonic(self) -> float:
        return self.us / 1e6


def _record_directive(store: Path) -> None:
    """What a sidecar writes to its store when a directive is put and removed: app-007
    blocked (ENFORCE) from day 35 to day 38."""
    d = dpb.Directive(
        id="sg-block-007",
        mode=dpb.DIRECTIVE_MODE_ENFORCE,
        action=dpb.DIRECTIVE_ACTION_BLOCK,
        application_id="app-007",
        error_code=900805,
        reason="retry storm on /parcels",
    )
    tracker = ChangeTracker()
    records = tracker.poll_directives([d], BLOCK_FROM) + tracker.poll_directives([], BLOCK_TO)
    ParquetStore(store).write_changes(records)


DROP_FROM, DROP_TO, DROPPED = (
    START + 25 * DAY + 10 * 3600 * 10**6,
    START + 25 * DAY + 14 * 3600 * 10**6,
    12_345,
)


def _record_drop(store: Path) -> None:
    """What a sidecar's data writer records when it could not keep up: 12,345 events of day
    25, 10:00-14:00, not stored."""
    detail = json.dumps({"from_us": DROP_FROM, "to_us": DROP_TO, "events": DROPPED})
    ParquetStore(store).write_changes(
        [{"at_us": DROP_FROM, "kind": "data", "event": "dropped", "name": "rollups",
          "detail": detail}]
    )  # fmt: skip


def _book(state_dir: Path, suggestions: list[dict[str, Any]]) -> None:
    """A sidecar's suggestion book with the replays' suggestions, decided by people: the first
    (the day-40 storm's limit) approved by alice, the second rejected by bob, any other left
    proposed."""
    wall = Wall(START + 41 * DAY)
    book = SuggestionBook(state_dir, wall)
    sugg = list({s["id"]: Suggestion.from_json(s) for s in suggestions}.values())
    assert len(sugg) >= 2, [s["summary"] for s in suggestions]
    for s in sugg:
        book.records[s.id] = Record(s, "proposed", wall.us, wall.us)
    wall.us += 3600 * 10**6
    book.transition(book.records[sugg[0].id], "approved", "alice", "approved", "agreed")
    book.transition(book.records[sugg[1].id], "rejected", "bob", "rejected", "known batch job")
    book.save()


def _history() -> list[dict[str, Any]]:
    """45 days of traffic: app-011 arrives on day 30 with a long name (``new``), app-010
    quadruples in the second half (a grower), day 20 has no data at all, and app-005 has a
    retry storm on day 40."""
    recs = [r for r in make_records(15, START, 45, 9000) if r["applicationId"] != "app-011"]
    out = [r for r in recs if (r["_t"] - START) // DAY != 20]
    half = START + 22 * DAY
    for r in list(out):
        if r["applicationId"] == "app-010" and r["_t"] >= half:
            for k in (1, 2, 3):
                out.append(r | {"_t": r["_t"] + k, "requestTimestamp": r["requestTimestamp"]})
        if r["applicationId"] in ("app-000", "app-001", "app-002") and r["_t"] >= START + 30 * DAY:
            out.append(
                r | {"applicationId": "app-011", "applicationName": LONG_NAME, "_t": r["_t"] + 1}
            )
    # app-007 is blocked by a vigie directive from day 35 to day 38: its requests those days
    # are answered 900805 (403), as the handler answers a BLOCK
    for r in out:
        if r["applicationId"] == "app-007" and BLOCK_FROM <= r["_t"] < BLOCK_TO:
            r |= {"errorType": "THROTTLED", "errorCode": 900805, "errorMessage": "Message blocked",
                  "proxyResponseCode": 403, "_fault": True}  # fmt: skip
            r.pop("apiResourceTemplate", None)
    base = next(r for r in out if not r["_fault"] and r["applicationId"] == "app-005")
    t0 = START + 40 * DAY + 9 * 3600 * 10**6
    for k in range(600):  # a request every 300 ms on one resource, each failing with 503
        t = t0 + k * 300_000
        out.append(
            base
            | {
                "_t": t,
                "requestTimestamp": _ts(t),
                "apiResourceTemplate": "/parcels/{id}",
                "apiMethod": "GET",
                "proxyResponseCode": 503,
                "targetResponseCode": 503,
            }
        )
    return out


def _ts(us: int) -> str:
    from datetime import UTC, datetime  # noqa: PLC0415

    dt = datetime.fromtimestamp(us / 1e6, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{(us // 1000) % 1000:03d}Z"


def _section(text: str, title: str) -> str:
    return text.split(f"<h2>{title}")[1].split("</section>")[0]


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    pytest.skip("Chromium is not installed (make test installs the chromium package)")


def png_colours(data: bytes) -> tuple[int, int, set[bytes]]:
    """Width, height and the distinct pixel colours (RGB bytes; every other pixel of every
    fourth row) of an 8-bit RGB/RGBA PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width, height, ctype = 8, b"", 0, 0, 0
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        if kind == b"IHDR":
            width, height, depth, ctype = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and ctype in (2, 6), (depth, ctype)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    bpp = 3 if ctype == 2 else 4
    raw, stride = zlib.decompress(idat), width * bpp
    prev, colours = bytearray(stride), set[bytes]()
    for y in range(height):
        f, line = (
            raw[y * (stride + 1)],
            bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)]),
        )
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        if y % 4 == 0:
            colours.update(bytes(line[i : i + 3]) for i in range(0, stride, bpp * 2))
        prev = line
    return width, height, colours


def test_the_html_report_of_45_days_renders_with_its_sections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a replay records class changes once per batch of lines: batches of 32k lines would put
    # these 45 days in one batch, and the day-40 storm (held a day) would never be seen
    monkeypatch.setattr("vigie.sources.wso2_log.CHUNK_LINES", 256)
    log = tmp_path / "main.log"
    records = _history()
    write_log(log, records)
    store = tmp_path / "store"
    r = CliRunner().invoke(main, ["replay", f"main={log}", "--store", str(store), "--json"])
    assert r.exit_code == 0, r.output
    _record_directive(store)
    _record_drop(store)
    final = json.loads(r.stdout)["suggestions"]
    # what a live sidecar proposed along the way: the suggestions during the day-40 storm
    during = tmp_path / "until-storm.log"
    write_log(during, [x for x in records if x["_t"] < START + 40 * DAY + 9 * 3600 * 10**6 + 10**8])
    r = CliRunner().invoke(main, ["replay", f"main={during}", "--json"])
    assert r.exit_code == 0, r.output
    state_dir = tmp_path / "state"
    _book(state_dir, json.loads(r.stdout)["suggestions"] + final)
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps(INVENTORY))
    page = tmp_path / "report.html"
    frm, to = "2026-09-21", "2026-11-05"
    args = ["report", "--store", str(store), "--from", frm, "--to", to, "--top", "0",
            "--inventory", str(inventory), "--suggestions", str(state_dir)]  # fmt: skip
    r = CliRunner().invoke(main, [*args, "--format", "html", "--output", str(page)])
    assert r.exit_code == 0, r.output
    text = page.read_text()
    for section in (
        "In brief",
        "Behaviour classes of the period",
        "Suggestions and their decisions",
        "Directives enforced and their effect",
        "Per owner",
        "Per tenant",
        "Per channel",
    ):
        assert section in text, section
    # names and owners from the inventory, not ids
    assert "Billing Portal" in text and "Application 3<" not in text
    owners = _section(text, "Per owner")
    assert all(t in owners for t in ("Retail team", "Partners team", "Ops team")), owners
    # the decisions, by whom
    decided = _section(text, "Suggestions and their decisions")
    assert "approved by alice" in decided and "rejected by bob" in decided
    assert "retry storm" in decided
    # the block's effect: every request app-007 sent while blocked was refused with 900805
    blocked = sum(
        1 for x in records if x["applicationId"] == "app-007" and BLOCK_FROM <= x["_t"] < BLOCK_TO
    )
    effect = _section(text, "Directives enforced and their effect")
    row = effect.split("sg-block-007")[1].split("</tr>")[0]
    assert "Application 7" in row and "enforce" in row and f">{blocked:,}<" in row, row
    assert "Per tenant" in text and "carbon.super" in _section(text, "Per tenant")
    assert "retry_storm" in text and "Application 5" in text  # who, by name
    assert "growing" in text and "(every consumer)" in text  # an API class of the period
    # app-011 had nothing in the first half: new, not a percentage
    row = _section(text, "Top consumers").split(LONG_NAME)[-1].split("</tr>")[0]
    assert ">new<" in row, row
    # day 20 (2026-10-11) has no data: a hatched gap, not a zero bar
    assert "10-11: no data" in text
    # day 25's dropped rollups: a banner at the top of the page, the day marked on the chart
    banner = text.split('<div class="banner" role="alert">')[1].split("</div>")[0]
    assert "Data incomplete:" in banner and "12,345 events not stored" in banner, banner
    assert "2026-10-16 10:00 → 2026-10-16 14:00 UTC" in banner, banner
    assert text.index('class="banner"') < text.index("In brief")
    traffic = _section(text, "Traffic over time")
    assert "10-16: data incomplete, 12,345 events not stored" in traffic
    assert traffic.count("data incomplete,") == 1  # that day only
    # the growers: app-010 and app-011 lead the growth chart, flat consumers do not
    growth = text.split("The fastest growers")[1].split("</section>")[0]
    assert "Application 10" in growth and "Logistics Partner" in growth
    assert "Application 3<" not in growth
    # app-005's day-40 storm raises its average, not its median day: a spike is not growth
    assert "Application 5<" not in growth
    # the long name is ellipsized with its full text as a tooltip
    assert f"<title>{LONG_NAME}</title>" in growth
    # the per-owner split against a naive count of the records: every event is a request
    r = CliRunner().invoke(main, [*args, "--format", "json"])
    assert r.exit_code == 0, r.output
    owner_of = {a["id"]: a["owner"] for a in INVENTORY["applications"]}
    naive = Counter(owner_of.get(x["applicationId"], "(owner unknown)") for x in records)
    assert {o["owner"]: o["requests"] for o in json.loads(r.stdout)["owners"]} == naive
    # the same episodes in the CSV and the table
    r = CliRunner().invoke(main, [*args, "--format", "csv"])
    assert r.exit_code == 0, r.output
    rows = [ln for ln in r.stdout.splitlines() if ln.startswith("episodes,") and "app-005" in ln]
    storm = [ln for ln in rows if ",retry_storm," in ln]
    assert len(storm) == 1, rows  # (and its surge, a traffic_anomaly against its baseline)
    r = CliRunner().invoke(main, [*args, "--format", "table"])
    assert r.exit_code == 0 and "Behaviour classes and directives" in r.stdout, r.output
    for title in ("Suggestions and decisions", "Per owner", "Per tenant"):
        assert title in r.stdout, title
    shot = tmp_path / "report.png"
    subprocess.run(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--screenshot={shot}",
            "--window-size=1280,4000",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    print(f"report screenshot: {shot}")
    w, h, colours = png_colours(shot.read_bytes())
    assert (w, h) == (1280, 4000)
    assert len(colours) > 40, len(colours)
    assert bytes((0xB0, 0x3A, 0x3A)) in colours  # the data-incomplete banner is drawn
