"""The ingest kernel's cost per event, side by side with the kernel before its rebuild (issue 16)
and with the naive ways: an OpenTelemetry SDK call per event (a counter and a histogram, what an
instrumented gateway plugin would do), and the same rules in plain Python (tests/support/naive.py).

The baseline is our own earlier kernel, the tree of commit ``BASELINE`` (``git archive`` into a
temporary directory, kept between runs): each tree's kernel is measured in a fresh process that
imports ``vigie`` from that tree, alternating the trees, on the same traffic (the same seed), at
2,500 and at 100,000 subscriptions in 8,192-event batches (and 8-event batches at 2,500), in CPU
time of the measuring thread; each figure is the best of a few runs, each on a fresh state whose
rows were created by a warm-up that touches every subscription. The states' memory cap
(``capacity``) holds 100,000 subscriptions, so that the figure at 100,000 is of 100,000 rows
(with the default 1 GiB cap it was of 65,536 rows evicted and re-created all along: the figures
``subs`` and ``evicted`` say which). Bytes of state per subscription are measured at 100,000.
``python -m benchmarks kernel`` prints the ratios; by hand::

    python -m benchmarks.bench_kernel [--commit SHA | --against TREE] [--rounds 2] [--quick]
    python -m benchmarks.bench_kernel --interleaved [--commit SHA | --against TREE] [--quick]
    python -m benchmarks.bench_kernel --ladder [--quick]

(``--commit`` any other commit, extracted like the baseline, e.g. ``--commit main``: the tree
before this branch; ``--against`` a checkout of any other tree). ``--interleaved`` measures
both kernels in one process on two states fed the same batches, alternated batch by batch:
on a loaded machine the two see the same load, which alternated processes do not (their
figures drift 10-20 % between minutes); it needs the two trees' ``vigie.state`` to differ in
the kernel's modules only. ``--ladder`` is the kernel against itself with one part switched
off at a time (``LADDER``): each part's share of its time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import numpy as np
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import vigie
from benchmarks._harness import Result
from tests.support import naive
from vigie.state.engine import State, sub_row_bytes
from vigie.state.thresholds import Thresholds
from vigie.wire.columns import COLUMNS, Events, Interner, StreamDecoder, StreamEncoder

T0 = 1_772_409_600_000_000
# the kernel before its rebuild for the cache (issue 16): main when the work started
BASELINE = "93106971a6983566684efd8afc5cd443632eea79"
SIZES = (2_500, 100_000)  # subscriptions
GAP_US = 666  # 1,500 events/s
# the states' memory cap: 100,000 subscription rows (grown by doubling to 131,072, some 9.5 KB
# each) with their API and route rows fit under it, so none is evicted
MEMORY_CAP = 2 << 30


def new_state() -> State:
    """A fresh state whose memory cap holds the benchmark's 100,000 subscriptions."""
    from vigie.state.engine import Capacity  # noqa: PLC0415 - from the tree being measured

    return State(capacity=Capacity(memory_cap_bytes=MEMORY_CAP))


def platform(n_subs: int, n: int, seed: int = 1) -> tuple[Events, Interner, int]:
    """``n`` events of a platform of about ``n_subs`` subscriptions (application x API pairs
    drawn at random, duplicates merged: 2,488 for 2,500) and the index where the timed part
    starts: first one event per subscription (the warm-up: every row created, the kernels
    loaded), then Zipf-distributed traffic (s = 1.3) at 1,500 events/s with a real gateway's
    statuses and latencies. The same seed gives the same traffic in every tree."""
    rng = np.random.default_rng(seed)
    enc = StreamEncoder()
    n_apps = max(600, n_subs // 4)
    apps = np.array([enc.intern(f"app-{k:05d}") for k in range(n_apps)], dtype=np.uint32)
    apis = np.array([enc.intern(f"api-{k:03d}") for k in range(600)], dtype=np.uint32)
    ver = enc.intern("v1")
    res = np.array([enc.intern(f"/r{k}") for k in range(10)], dtype=np.uint32)
    shape = np.random.default_rng(n_subs)  # the same subscriptions in every run
    sub_app = shape.integers(0, n_apps, size=n_subs)
    sub_api = shape.integers(0, 600, size=n_subs)
    warm = n_subs
    sub = np.concatenate([shape.permutation(n_subs), rng.zipf(1.3, size=n) % n_subs])
    m = warm + n
    cols: dict[str, Any] = {
        "event_time_us": T0 + np.arange(m, dtype=np.int64) * GAP_US,
        "application_id": apps[sub_app[sub]],
        "application_name": apps[sub_app[sub]],
        "api_name": apis[sub_api[sub]],
        "api_version": np.full(m, ver, dtype=np.uint32),
        "resource_template": res[rng.integers(0, 10, size=m)],
        "http_method": rng.choice([1, 1, 1, 3], size=m),
        "http_status": rng.choice([200] * 95 + [404, 401, 429, 500, 503], size=m),
        "error_code": np.zeros(m, dtype=np.int32),
        "latency_us": rng.lognormal(10.5, 0.7, size=m).astype(np.uint32),
        "backend_latency_us": rng.lognormal(10.3, 0.7, size=m).astype(np.uint32),
        "request_bytes": np.zeros(m, dtype=np.int64),
        "response_bytes": rng.integers(100, 5000, size=m),
        "key_type": np.ones(m, dtype=np.uint8),
        "uri_hash": rng.integers(1, 2**62, size=m).astype(np.uint64),
        "flags": np.zeros(m, dtype=np.uint8),
    }
    interner = Interner()
    dec = StreamDecoder(interner, 0, m, 10**6)
    return dec.decode(enc.batch(cols)), interner, warm


def _kernel_ns(
    ev: Events,
    interner: Interner,
    warm: int,
    batch: int,
    runs: int,
    clock: Callable[[], float] = time.thread_time,
) -> tuple[float, State]:
    """The best ns/event of ``runs`` runs, each on a fresh state warmed by ``ev[:warm]``."""
    best = float("inf")
    state = new_state()
    rest = ev.take(slice(warm, None))
    for _ in range(runs):
        state = new_state()
        state.interner = interner
        state.channel_index("main")
        for k in range(0, warm, 8192):
            state.apply(ev.take(slice(k, min(k + 8192, warm))))
        parts = [rest.take(slice(k, k + batch)) for k in range(0, len(rest), batch)]
        t = clock()
        for part in parts:
            state.apply(part)
        best = min(best, (clock() - t) / len(rest) * 1e9)
    return best, state


def kernel_figures(quick: bool) -> dict[str, float]:
    """This process's kernel figures: ns/event at each size in 8,192-event batches, at 2,500
    in 8-event batches, and bytes of state per subscription row at 100,000."""
    n = 300_000 if quick else 2_000_000
    runs = 2 if quick else 3
    doc: dict[str, float] = {}
    for size in SIZES:
        ev, interner, warm = platform(size, n)
        ns, state = _kernel_ns(ev, interner, warm, 8192, runs)
        doc[f"ns_{size}"] = ns
        doc[f"subs_{size}"] = state.n_sub_rows
        doc[f"evicted_{size}"] = state.evicted
        if size == SIZES[0]:
            doc[f"ns_{size}_batch8"] = _kernel_ns(ev, interner, warm, 8, 1)[0]
        else:
            doc["subs"] = state.n_sub_rows
            doc["bytes_per_sub"] = state.nbytes() / state.n_sub_rows
            doc["row_bytes"] = sub_row_bytes()
        del state, ev
    return doc


def _otel_ns(ev: Events, interner: Interner, n: int) -> float:
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("naive")
    requests = meter.create_counter("requests")
    latency = meter.create_histogram("latency", unit="s")
    app, api, st, lat = (
        ev[c][:n].tolist() for c in ("application_id", "api_name", "http_status", "latency_us")
    )
    t = time.perf_counter()
    for k in range(n):
        attrs = {
            "application": interner.string(app[k]),
            "api": interner.string(api[k]),
            "status": st[k] // 100,
        }
        requests.add(1, attrs)
        latency.record(lat[k] / 1e6, attrs)
    return (time.perf_counter() - t) / n * 1e9


def _python_ns(ev: Events, n: int) -> float:
    nv = naive.NaiveState(Thresholds().params())
    cols = {c.name: ev[c.name][:n].tolist() for c in COLUMNS}
    t = time.perf_counter()
    nv.apply(cols, [0] * n)
    return (time.perf_counter() - t) / n * 1e9


# ---------------------------------------------------------------------------------------------
# this kernel against the baseline (see the module docstring)
# ---------------------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
_CHILD = "--child"


def baseline_tree(commit: str = BASELINE) -> Path:
    """The tree of ``commit`` (its ``sidecar``), extracted once into the temporary directory
    (its Numba cache kept there between runs)."""
    sha = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--verify", commit + "^{commit}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    tree = Path(tempfile.gettempdir()) / f"vigie-kernel-baseline-{sha[:12]}"
    if not (tree / "sidecar" / "vigie").is_dir():
        tmp = Path(tempfile.mkdtemp(prefix=tree.name + ".", dir=tree.parent))
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", sha, "sidecar"],
            check=True,
            capture_output=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive, check=True)
        os.replace(tmp, tree)
    return tree


def _measure_in(tree: Path, quick: bool) -> dict[str, float]:
    """``kernel_figures`` in a fresh process that imports ``vigie`` from ``tree``."""
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(tree / "sidecar"), str(ROOT)])}
    args = [sys.executable, str(Path(__file__).resolve()), _CHILD, str(tree)]
    out = subprocess.run(
        [*args, *(["--quick"] if quick else [])],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    doc: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return doc


def compare(base: Path, rounds: int, quick: bool) -> dict[str, dict[str, list[float]]]:
    """Each tree's figures, ``rounds`` times, alternating base and this tree."""
    trees = {"base": base.resolve(), "this": ROOT}
    runs: dict[str, dict[str, list[float]]] = {name: {} for name in trees}
    for _ in range(rounds):
        for name, tree in trees.items():
            for k, v in _measure_in(tree, quick).items():
                runs[name].setdefault(k, []).append(v)
    return runs


def print_comparison(runs: dict[str, dict[str, list[float]]]) -> None:
    print(f"{'figure':<16} {'base':>24} {'this':>24} {'this/base':>10}")
    for k in runs["base"]:
        b, t = runs["base"][k], runs["this"][k]
        ratio = min(t) / min(b) if min(b) else float("nan")
        row = f"{k:<16} {' '.join(f'{v:9.1f}' for v in b):>24} "
        print(row + f"{' '.join(f'{v:9.1f}' for v in t):>24} {ratio:>10.3f}")


def run(quick: bool) -> list[Result]:
    runs = compare(baseline_tree(), 2, quick)  # alternated twice: the best of each counts
    print_comparison(runs)
    base = {k: min(v) for k, v in runs["base"].items()}
    this = {k: min(v) for k, v in runs["this"].items()}
    label = f"the kernel before issue 16 ({BASELINE[:7]}), same traffic, same run"
    ev, interner, _ = platform(SIZES[0], 120_000)
    otel = _otel_ns(ev, interner, 20_000 if quick else 100_000)
    python = _python_ns(ev, 3_000 if quick else 10_000)
    results = [
        Result(
            f"kernel, 8,192-event batches, {size:,} subscriptions",
            "ns/event",
            this[f"ns_{size}"],
            base[f"ns_{size}"],
            label,
            target=target,
            higher_is_better=False,
        )
        for size, target in zip(SIZES, (100, 250), strict=True)
    ]
    return [
        *results,
        Result(
            f"kernel, 8-event batches, {SIZES[0]:,} subscriptions (a gateway flushing every 5 ms)",
            "ns/event",
            this[f"ns_{SIZES[0]}_batch8"],
            base[f"ns_{SIZES[0]}_batch8"],
            label,
            higher_is_better=False,
        ),
        Result(
            f"state per subscription, {int(this['subs']):,} subscriptions",
            "bytes",
            this["bytes_per_sub"],
            base["bytes_per_sub"],
            label,
            target=4096,
            higher_is_better=False,
            notes=f"one row {this['row_bytes']:.0f} bytes (before {base['row_bytes']:.0f}), "
            "hash tables, detector caches and spare capacity included",
        ),
        Result(
            f"kernel against the naive ways, 8,192-event batches, {SIZES[0]:,} subscriptions",
            "ns/event",
            this[f"ns_{SIZES[0]}"],
            otel,
            "an OTel SDK counter + histogram call per event",
            higher_is_better=False,
            extra={"plain_python_rules_ns": python},
        ),
    ]


# ---------------------------------------------------------------------------------------------
# in one process, batch by batch: this kernel against another tree's (``--interleaved``)
# ---------------------------------------------------------------------------------------------

# the kernel's modules: another tree's may differ from this tree's in these only
_KERNEL_MODULES = ("_tables", "_kernels", "_entry")


def other_kernel(tree: Path) -> Callable[..., tuple[int, int]]:
    """The ``apply_flat`` of ``tree``'s kernel, imported beside this tree's (its kernel modules
    copied under other names into the temporary directory), for states of this tree: refused
    unless every other module of ``vigie.state`` is the same in both trees."""
    import importlib  # noqa: PLC0415

    here, there = ROOT / "sidecar" / "vigie" / "state", tree / "sidecar" / "vigie" / "state"
    differ = sorted(
        p.name
        for p in {*here.glob("*.py"), *(here / q.name for q in there.glob("*.py"))}
        if p.stem not in _KERNEL_MODULES
        and (
            not p.exists()
            or not (there / p.name).exists()
            or p.read_bytes() != (there / p.name).read_bytes()
        )
    )
    if differ:
        raise SystemExit(f"{tree}: vigie.state differs beyond the kernel ({', '.join(differ)})")
    tag = f"other_{tree.name.replace('-', '_').replace('.', '_')}"
    pkg = Path(tempfile.gettempdir()) / f"vigie-kernel-{tag}"
    pkg.mkdir(exist_ok=True)
    for name in _KERNEL_MODULES:
        text = (there / f"{name}.py").read_text()
        for other in _KERNEL_MODULES:
            text = text.replace(f"from vigie.state.{other} import", f"from {tag}{other} import")
        target = pkg / f"{tag}{name}.py"
        if not target.exists() or target.read_text() != text:
            target.write_text(text)
    sys.path.insert(0, str(pkg))
    fn: Callable[..., tuple[int, int]] = importlib.import_module(f"{tag}_entry").apply_flat
    return fn


def interleaved(tree: Path, size: int, n: int, batch: int) -> dict[str, float]:
    """ns/event of this tree's kernel and of ``tree``'s (``other_kernel``) on two states fed
    the same batches, alternated batch by batch (which goes first alternating too), so that
    the machine's load weighs on both alike; the kernel calls alone are timed (thread CPU
    time). ``equal`` is 1 when both states end with the same arrays and episodes."""
    from vigie.state import _evict, engine  # noqa: PLC0415
    from vigie.state import layout as L  # noqa: PLC0415
    from vigie.state._entry import apply_flat  # noqa: PLC0415

    kernels = {"this": apply_flat, "other": other_kernel(tree)}
    ev, interner, warm = platform(size, n)

    def step(state: State, kernel: Callable[..., tuple[int, int]], part: Events) -> float:
        state._ensure_app_channel_size()
        columns = state._tenant_keyed(part.columns)
        events = (*engine._EVENTS(columns), part.channel)
        start, spent = 0, 0.0
        while True:
            t = time.thread_time()
            stop, start = kernel(*events, start, *engine._FLAT(state))
            spent += time.thread_time() - t
            state._drain_episodes()
            if stop == L.STOP_DONE:
                break
            if stop == L.STOP_SUB_FULL:
                state._make_sub_room()
            elif stop == L.STOP_API_FULL:
                _evict.make_api_room(state)
        state.baselines.apply(state, columns)
        state.security.apply(
            columns, state.thresholds.auth_min_failures, int(state.thresholds.max_tracked_clients)
        )
        _evict.make_route_room(state)
        return spent

    states = {}
    for name, kernel in kernels.items():
        state = new_state()
        state.interner = interner
        state.channel_index("main")
        for k in range(0, warm, 8192):
            step(state, kernel, ev.take(slice(k, min(k + 8192, warm))))
        states[name] = state
    rest = ev.take(slice(warm, None))
    spent = dict.fromkeys(kernels, 0.0)
    for k, lo in enumerate(range(0, len(rest), batch)):
        part = rest.take(slice(lo, lo + batch))
        for name in sorted(kernels, reverse=k % 2 == 1):
            spent[name] += step(states[name], kernels[name], part)
    a, b = states["this"].used_arrays(), states["other"].used_arrays()
    same = a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    same = same and states["this"].episodes == states["other"].episodes
    doc = {f"ns_{name}": spent[name] / len(rest) * 1e9 for name in kernels}
    doc |= {"subs": states["this"].n_sub_rows, "evicted": states["this"].evicted}
    return doc | {"equal": float(same)}


def print_interleaved(tree: Path, quick: bool) -> None:
    n = 300_000 if quick else 1_000_000
    print(f"{'traffic':<40} {'other':>9} {'this':>9} {'this/other':>10}  state")
    for size in SIZES:
        for batch in (8192, 8) if size == SIZES[0] else (8192,):
            d = interleaved(tree, size, n // 8 if batch == 8 else n, batch)
            label = f"{size:,} subs ({d['subs']:,.0f} rows, {d['evicted']:,.0f} evicted), {batch}"
            ratio = d["ns_this"] / d["ns_other"]
            same = "equal" if d["equal"] else "DIFFERENT"
            print(f"{label:<40} {d['ns_other']:9.1f} {d['ns_this']:9.1f} {ratio:10.3f}  {same}")


# ---------------------------------------------------------------------------------------------
# the cost ladder (``--ladder``): this kernel against itself with one part switched off
# ---------------------------------------------------------------------------------------------

# part -> (module, text from which, text up to which (not included), what replaces it): cut out
# of this tree's source. A variant computes wrong figures: only its time counts.
LADDER: Final[dict[str, tuple[str, str, str, str]]] = {
    "the retry detector": (
        "_kernels",
        "        # ---- retry detector",
        "        # ---- repeat detector",
        "        is_retry = False\n",
    ),
    "the repeat detector": (
        "_kernels",
        "        is_repeat = False\n        if is_read:",
        "        sub_i64[row, S_RETRIES] += is_retry",
        "        is_repeat = False\n",
    ),
    "the windows (four rings)": (
        "_kernels",
        "        # ---- windows ----",
        "        # ---- rules on the windows",
        "",
    ),
    "the rules": (
        "_kernels",
        "        evaluate_rules(sub_i64, cls, row, t, registered",
        "    g[G_OBS_START], g[G_NOW], g[G_EVENTS] = obs, now, applied\n    return STOP_DONE, c1",
        "",
    ),
    "the second pass's prefetches": (
        "_kernels",
        "        j = i + AHEAD\n",
        "        x = resolved[i - c0]\n",
        "",
    ),
    "API and route figures (no route row is made: pass 1 finds none)": (
        "_kernels",
        "        # ---- API row ----",
        "        if srow < 0:\n            api_i64[arow, A_NOAPP]",
        "        hk = t // HOUR_US\n",
    ),
    "the rows' cache misses (pass 1 looks up, then every event of a chunk gets its first's rows)": (
        "_tables",
        "        resolved[x, X_ROUTE] = rrow\n",
        "\n\n@njit(cache=True, nogil=True)\ndef rekey_routes",
        "        resolved[x, X_ROUTE] = rrow\n"
        "        if x > 0 and resolved[0, X_SUB] >= 0 and resolved[0, X_ROUTE] >= 0:\n"
        "            resolved[x, X_API] = resolved[0, X_API]\n"
        "            resolved[x, X_SUB] = resolved[0, X_SUB]\n"
        "            resolved[x, X_ROUTE] = resolved[0, X_ROUTE]\n",
    ),
}


def ladder_tree(part: str) -> Path:
    """A copy of this tree's ``vigie.state`` with ``part`` (``LADDER``) cut out of its kernel,
    in the temporary directory (for ``other_kernel``)."""
    module, start, end, repl = LADDER[part]
    here = ROOT / "sidecar" / "vigie" / "state"
    src = (here / f"{module}.py").read_text()
    i = src.find(start)
    j = src.find(end, i + 1) if i >= 0 else -1
    if j < 0:
        raise SystemExit(f"--ladder {part!r}: its text is no longer in {module}.py: update LADDER")
    slug = "".join(c if c.isalnum() else "_" for c in part.split(" (")[0])
    tree = Path(tempfile.gettempdir()) / f"vigie-ladder-{slug}"
    state = tree / "sidecar" / "vigie" / "state"
    state.mkdir(parents=True, exist_ok=True)
    for f in here.glob("*.py"):
        text = src[:i] + repl + src[j:] if f.stem == module else f.read_text()
        if not (state / f.name).exists() or (state / f.name).read_text() != text:
            (state / f.name).write_text(text)
    return tree


def print_ladder(quick: bool) -> None:
    """Each part's share of the kernel's time at 2,500 subscriptions: the kernel against itself
    without that part, in one process (``interleaved``)."""
    n = 300_000 if quick else 1_000_000
    print(f"{'switched off':<92} {'whole':>7} {'without':>8} {'share':>6}")
    for part in LADDER:
        d = interleaved(ladder_tree(part), SIZES[0], n, 8192)
        share = 1 - d["ns_other"] / d["ns_this"]
        print(f"{part:<92} {d['ns_this']:7.1f} {d['ns_other']:8.1f} {share:6.0%}")


def _main(argv: list[str]) -> None:
    if argv and argv[0] == _CHILD:  # the measuring process
        tree = Path(argv[1]).resolve()
        if not Path(vigie.__file__).resolve().is_relative_to(tree):
            raise SystemExit(f"vigie imported from {vigie.__file__}, not from {tree}")
        print(json.dumps(kernel_figures("--quick" in argv)))
        return
    ap = argparse.ArgumentParser(description="this kernel against an earlier tree's")
    ap.add_argument(
        "--against", type=Path, help="a checkout of the earlier tree (default: the baseline commit)"
    )
    ap.add_argument("--commit", default=BASELINE, help="the earlier tree's commit (e.g. main)")
    ap.add_argument(
        "--interleaved",
        action="store_true",
        help="both kernels in this process, batch by batch (the trees' vigie.state may differ "
        "in the kernel's modules only)",
    )
    ap.add_argument(
        "--ladder", action="store_true", help="each part's share of this kernel's time (LADDER)"
    )
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--quick", action="store_true")
    opts = ap.parse_args(argv)
    if opts.ladder:
        for _ in range(opts.rounds):
            print_ladder(opts.quick)
        return
    if opts.interleaved:
        for _ in range(opts.rounds):
            print_interleaved(opts.against or baseline_tree(opts.commit), opts.quick)
        return
    runs = compare(opts.against or baseline_tree(opts.commit), opts.rounds, opts.quick)
    print_comparison(runs)
    print(json.dumps(runs))


if __name__ == "__main__":
    _main(sys.argv[1:])
