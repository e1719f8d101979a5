"""``python -m benchmarks [NAME...] [--quick]``: run the benchmark modules, write JSON results
to benchmarks/results/ and print one table."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from pathlib import Path

from benchmarks._harness import Result, table, write


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    ap.add_argument("names", nargs="*", help="benchmark modules to run (default: all)")
    ap.add_argument("--quick", action="store_true", help="smaller runs (smoke test)")
    args = ap.parse_args()
    here = Path(__file__).parent
    available = sorted(
        m.name.removeprefix("bench_")
        for m in pkgutil.iter_modules([str(here)])
        if m.name.startswith("bench_")
    )
    names = args.names or available
    unknown = set(names) - set(available)
    if unknown:
        ap.error(f"unknown benchmark(s) {', '.join(sorted(unknown))}; have {', '.join(available)}")
    everything: list[Result] = []
    for name in names:
        print(f"== {name}", file=sys.stderr, flush=True)
        module = importlib.import_module(f"benchmarks.bench_{name}")
        results: list[Result] = module.run(quick=args.quick)
        path = write(name, results)
        print(table(results), file=sys.stderr)
        print(f"   -> {path}", file=sys.stderr, flush=True)
        everything.extend(results)
    print(table(everything))
    return 0


if __name__ == "__main__":
    sys.exit(main())
