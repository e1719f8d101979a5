"""A replay's time is the log's own: a line dated far from the lines around it (2999 or 1970
among lines of 2026) is rejected with its file:line and counted, the summary says so, and
nothing of it reaches the state or the store; a sparse log (lines hours apart) and a jump (a
gateway restarted days later) are not outliers. The line length bound is a setting
(``max_line_bytes``). Through the real ``vigie replay`` command."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.support.wso2log import App, LogWriter, at
from vigie.cli import main
from vigie.store.parquet import ParquetStore

pytestmark = pytest.mark.slow


def _write(log: LogWriter, path: Path) -> Path:
    """The lines in the order they were added (not by time): line k is the k-th added."""
    path.write_text("\n".join(line for _, line in log.lines) + "\n")
    return path


def _replay(*args: str) -> tuple[int, dict[str, object], str]:
    r = CliRunner().invoke(main, ["replay", "--json", *args])
    doc = json.loads(r.stdout.splitlines()[-1]) if r.stdout.strip() else {}
    return r.exit_code, doc, " ".join(r.stderr.split())


def test_lines_far_from_their_neighbours_are_rejected_with_file_and_line(tmp_path: Path) -> None:
    log = LogWriter()
    app = App("app-1")
    for k in range(300):
        if k == 100:
            log.response(datetime(2999, 1, 1, tzinfo=UTC), app, "Orders")  # line 101
        elif k == 200:
            log.response(datetime(1970, 1, 2, tzinfo=UTC), app, "Orders")  # line 201
        else:
            log.response(at(seconds=k), app, "Orders")
    path = _write(log, tmp_path / "apim_metrics.log")
    store = tmp_path / "store"
    code, doc, err = _replay(str(path), "--store", str(store))
    assert code == 0, err
    assert doc["events"] == 298 and doc["rejected"] == 2
    assert doc["rejected_out_of_timeline"] == 2
    assert f"rejected {path}:101: requestTimestamp 2999-01-01T00:00:00Z is far from the " in err
    assert f"rejected {path}:201: requestTimestamp 1970-01-02T00:00:00Z is far from the " in err
    assert "2 lines rejected as dated far from the lines around them" in err
    assert ParquetStore(store).days("minute") == ParquetStore(store).days("daily")
    assert len(ParquetStore(store).days("daily")) == 1  # neither 2999 nor 1970 was stored


def test_a_sparse_log_and_a_jump_are_not_outliers(tmp_path: Path) -> None:
    log = LogWriter()
    app = App("app-1")
    for k in range(40):
        log.response(at(hours=3 * k), app, "Orders")  # a quiet API: a line every 3 hours
    for k in range(40):
        log.response(at(days=30, seconds=k), app, "Orders")  # the gateway back a month later
    code, doc, err = _replay(str(_write(log, tmp_path / "a.log")))
    assert code == 0, err
    assert doc["events"] == 80 and doc["rejected"] == 0, err


def test_the_last_lines_after_a_quiet_spell_are_kept_not_a_far_one(tmp_path: Path) -> None:
    """The last lines of a file have no lines after them: one after a quiet spell no longer
    than one the file already showed is kept; one dated 2999, or one a week ahead of a file
    whose gaps were at most 2 hours, is still rejected (with its file:line)."""
    app = App("app-1")
    quiet = LogWriter()
    for k in range(60):
        quiet.response(at(minutes=2 * k + (120 if k >= 30 else 0)), app, "Orders")  # a 2 h gap
    quiet.response(at(minutes=2 * 59 + 120 + 90), app, "Orders")  # 90 min later: the last line
    code, doc, err = _replay(str(_write(quiet, tmp_path / "quiet.log")))
    assert code == 0, err
    assert doc["events"] == 61 and doc["rejected"] == 0, err
    early = LogWriter()  # the first line two hours before the rest: kept; one of 1970: not
    for first in (at(hours=-2), datetime(1970, 1, 2, tzinfo=UTC)):
        early.lines.clear()
        early.response(first, app, "Orders")
        for k in range(60):
            early.response(at(minutes=k), app, "Orders")
        code, doc, err = _replay(str(_write(early, tmp_path / "early.log")))
        assert code == 0, err
        assert (doc["events"], doc["rejected"]) == ((61, 0) if first.year > 2000 else (60, 1))
    for name, last in (("far", datetime(2999, 1, 1, tzinfo=UTC)), ("week", at(days=7))):
        log = LogWriter()
        for k in range(60):
            log.response(at(minutes=2 * k + (120 if k >= 30 else 0)), app, "Orders")
        log.response(last, app, "Orders")  # line 61
        path = _write(log, tmp_path / f"{name}.log")
        code, doc, err = _replay(str(path))
        assert code == 0, err
        assert doc["events"] == 60 and doc["rejected_out_of_timeline"] == 1, err
        assert f"rejected {path}:61: requestTimestamp " in err


def test_max_line_bytes_is_a_setting(tmp_path: Path) -> None:
    log = LogWriter()
    app = App("app-1")
    for k in range(20):
        log.response(at(seconds=k), app, "Orders")
    path = _write(log, tmp_path / "a.log")
    with path.open("a") as f:
        f.write("x" * 10_000 + " apimMetrics: apim:response, properties :{}\n")
    config = tmp_path / "vigie.toml"
    config.write_text("max_line_bytes = 8192\n")
    code, doc, err = _replay(str(path), "--config", str(config))
    assert code == 0, err
    assert doc["events"] == 20 and doc["rejected"] == 1
    assert f"rejected {path}:21: line longer than 8,192 bytes" in err
    config.write_text("max_line_bytes = 100\n")  # under its range
    r = CliRunner().invoke(main, ["replay", str(path), "--config", str(config)])
    assert r.exit_code != 0
    assert "max_line_bytes" in r.output and "Traceback" not in r.output


def test_replay_to_a_sidecar_rejects_the_same_lines_with_file_and_line(tmp_path: Path) -> None:
    """``vigie replay --to`` reads the log as ``replay`` does: the lines dated 2999 and 1970
    never reach the live sidecar (1970 would be taken there: it is not ahead of its clock)."""
    from tests.adversarial.common import status  # noqa: PLC0415
    from tests.conftest import start_sidecar  # noqa: PLC0415

    log = LogWriter()
    app = App("app-1")
    for k in range(300):
        if k == 100:
            log.response(datetime(2999, 1, 1, tzinfo=UTC), app, "Orders")  # line 101
        elif k == 200:
            log.response(datetime(1970, 1, 2, tzinfo=UTC), app, "Orders")  # line 201
        else:
            log.response(at(seconds=k), app, "Orders")
    path = _write(log, tmp_path / "apim_metrics.log")
    sp = start_sidecar(tmp_path / "s")
    try:
        code, doc, err = _replay(str(path), "--to", sp.telemetry)
        assert code == 0, err
        assert doc["offered"] == 298 and doc["rejected"] == 2
        assert doc["rejected_out_of_timeline"] == 2
        assert [t["acked"] for t in doc["targets"]] == [298]  # type: ignore[attr-defined]
        assert f"rejected {path}:101: requestTimestamp 2999-01-01T00:00:00Z is far from the " in err
        assert f"rejected {path}:201: requestTimestamp 1970-01-02T00:00:00Z is far from the " in err
        assert "2 lines rejected as dated far from the lines around them" in err
        st = status(sp)
        assert st.events_applied == 298
        assert not [k for k in st.counters if k.startswith("event_refused")]
    finally:
        assert sp.stop() == 0
