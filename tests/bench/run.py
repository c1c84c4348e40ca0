"""`make bench`: run every benchmark module and print its figures.

Each ``tests/bench/bench_*.py`` exposes ``run() -> dict[str, float]``. Figures
are ratios against a baseline measured in the same run wherever the issue asks
for one, so they mean the same on any machine. Select modules with arguments:
``python -m tests.bench.run ingest processing`` (``bench-out/figures.json``
then keeps the other modules' figures from an earlier run).
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    here = Path(__file__).parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    if argv:
        names = [n for n in names if any(a in n for a in argv)]
    figures: dict[str, float] = {}
    failed = []
    for name in names:
        started = time.perf_counter()
        try:
            module = importlib.import_module(f"tests.bench.{name}")
            result = module.run()
        except Exception as error:  # report every benchmark, even if one breaks
            failed.append(name)
            print(f"{name}: FAILED: {error!r}", flush=True)
            continue
        for key, value in result.items():
            figures[key] = value
            print(f"{key} = {value:.4g}", flush=True)
        print(f"  ({name} took {time.perf_counter() - started:.1f} s)", flush=True)
    out = Path("bench-out/figures.json")
    out.parent.mkdir(exist_ok=True)
    if argv and out.exists():
        # A selection updates its own figures and keeps those of the modules not run.
        figures = {**json.loads(out.read_text()), **figures}
    out.write_text(json.dumps(figures, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
