"""This kernel against the baseline's (``bench_kernel.BASELINE``) on the benchmark's traffic:
every figure of the state must be the same. Not a benchmark (``python -m benchmarks`` skips it):

    python -m benchmarks.kernel_equal [--events N] [--commit SHA] [--churn]

(``--commit`` another tree than the baseline, e.g. ``main``.)

Each tree applies the same traffic (``bench_kernel.platform``, 8,192-event batches, at 2,500 and
at 100,000 subscriptions under the benchmark's memory cap; with ``--churn`` also at 100,000
under the default cap of 1 GiB, which holds 65,536 rows: subscriptions evicted and re-created
all along, comparable only against a tree that bounds memory as this one does, e.g. main, not
the baseline) in a process of its own and writes its arrays; they are compared by
name, the subscription columns by their layout names (so a column that moved still meets its
twin; a column only one tree has is listed, not compared), and the episodes. Prints the number
of differing values per array and exits 1 if there is any.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.bench_kernel import BASELINE, SIZES, baseline_tree, new_state, platform
from vigie.state import layout as L
from vigie.state.engine import State

ROOT = Path(__file__).resolve().parents[1]
_CHILD = "--child"
# columns of sub_i64 by layout name; other arrays compared whole
_PREFIX = {"sub_i64": "S_", "api_i64": "A_", "route_i64": "R_", "g": "G_"}
_NOT_FIGURES = {"S_FIELDS", "A_FIELDS", "R_FIELDS", "G_FIELDS"}


# (subscriptions, the benchmark's memory cap: else the default one)
CONFIGS = ((SIZES[0], True), (SIZES[1], True), (SIZES[1], False))


def _dump(size: int, big_cap: bool, events: int, out: Path) -> None:
    ev, interner, _ = platform(size, events)
    state = new_state() if big_cap else State()
    state.interner = interner
    state.channel_index("main")
    for k in range(0, len(ev), 8192):
        state.apply(ev.take(slice(k, k + 8192)))
    arrays = state.used_arrays()
    layout = {k: v for k, v in vars(L).items() if k.isupper() and isinstance(v, int)}
    episodes = sorted(
        [*key, e.class_name, e.first_us, e.last_us]
        for key, eps in state.episodes.items()
        for e in eps
    )
    meta = {"layout": layout, "episodes": episodes, "evicted": state.evicted}
    np.savez(out, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)  # type: ignore[arg-type]


def _run(tree: Path, size: int, big_cap: bool, events: int, out: Path) -> None:
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(tree / "sidecar"), str(ROOT)])}
    args = [sys.executable, str(Path(__file__).resolve()), _CHILD, str(size), str(int(big_cap))]
    args += [str(events), str(out)]
    subprocess.run(args, env=env, cwd=ROOT, check=True)


def _load(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    with np.load(path) as z:
        meta = json.loads(z["meta"].tobytes())
        return meta, {k: z[k] for k in z.files if k != "meta"}


def compare(base: Path, this: Path) -> dict[str, int]:
    """Differing values per array (per column for the row arrays), by name."""
    bm, ba = _load(base)
    tm, ta = _load(this)
    diffs: dict[str, int] = {}
    for name in sorted(set(ba) | set(ta)):
        if name not in ba or name not in ta:
            diffs[f"{name} (in one tree only)"] = -1
            continue
        b, t = ba[name], ta[name]
        prefix = _PREFIX.get(name)
        if prefix is None:
            diffs[name] = -1 if b.shape != t.shape else int(np.count_nonzero(b != t))
            continue
        cols = {k for k in bm["layout"] if k.startswith(prefix)} - _NOT_FIGURES
        for col in sorted(cols):
            if col not in tm["layout"]:
                diffs[f"{name}.{col} (baseline only)"] = -1
                continue
            bc, tc = b[..., bm["layout"][col]], t[..., tm["layout"][col]]
            diffs[f"{name}.{col}"] = -1 if bc.shape != tc.shape else int(np.count_nonzero(bc != tc))
    diffs["episodes"] = 0 if bm["episodes"] == tm["episodes"] else -1
    diffs["evicted"] = 0 if bm["evicted"] == tm["evicted"] else -1
    return diffs


def evicted(path: Path) -> int:
    """The subscriptions the run of ``path`` evicted."""
    return int(_load(path)[0]["evicted"])


def main(argv: list[str]) -> int:
    if argv and argv[0] == _CHILD:
        _dump(int(argv[1]), argv[2] == "1", int(argv[3]), Path(argv[4]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--commit", default=BASELINE, help="the other tree's commit (e.g. main)")
    ap.add_argument(
        "--churn",
        action="store_true",
        help="also 100,000 subscriptions under the default cap (the other tree must bound "
        "memory as this one does, e.g. main: the baseline evicts at other points)",
    )
    opts = ap.parse_args(argv)
    bad = 0
    base = baseline_tree(opts.commit)
    with tempfile.TemporaryDirectory() as tmp:
        for size, big_cap in CONFIGS if opts.churn else CONFIGS[:2]:
            paths = {k: Path(tmp) / f"{k}-{size}-{int(big_cap)}.npz" for k in ("base", "this")}
            _run(base, size, big_cap, opts.events, paths["base"])
            _run(ROOT, size, big_cap, opts.events, paths["this"])
            diffs = compare(paths["base"], paths["this"])
            nonzero = {k: v for k, v in diffs.items() if v}
            cap = "the benchmark's cap" if big_cap else "the default cap"
            print(
                f"{size:,} subscriptions ({cap}: {evicted(paths['this']):,} evicted), "
                f"{opts.events:,} events: {len(diffs)} figures compared"
            )
            if diffs["evicted"]:  # other rows evicted: nothing to compare them by
                print(f"  evicted {evicted(paths['base']):,} in the other tree: not compared")
                bad += 1
                for p in paths.values():
                    p.unlink()
                continue
            for p in paths.values():
                p.unlink()
            for k, v in nonzero.items():
                print(f"  {k}: {'not comparable' if v < 0 else f'{v} values differ'}")
            bad += sum(1 for k, v in nonzero.items() if "one tree only" not in k)
    print("identical" if bad == 0 else f"{bad} figures differ")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
