"""Comparing served JSON with ROOT's own TBufferJSON of the fixture objects, field by field.

The fixtures (``tests/fixtures/root_objects/``, written by ROOT 6.40 with
``tests/fixtures/make_root_objects.py``) hold two snapshots of one producer and,
for every object, ROOT's JSON (compactness 0). Numbers compare at float
precision (ROOT prints floats with fewer digits); ``$ref`` references are
followed on both sides, so numbering need not match where an object is written
once. Two differences are accepted and named: the ``kMustCleanup`` bit (bit 3
of ``fBits``), which ROOT sets and clears in memory as collections take
objects, and the white space of a ``TFormula`` expression, which ROOT
normalises when it reads the formula back.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from processing.ingest.objects import written_objects

FIXTURES = Path(__file__).parent / "fixtures" / "root_objects"
K_MUST_CLEANUP = 1 << 3


def snapshot(n: int) -> Path:
    return FIXTURES / f"objects_{n}.root"


def index(n: int) -> dict[str, dict[str, Any]]:
    """Key path -> class, name, title, ROOT JSON file, of snapshot ``n``."""
    return json.loads((FIXTURES / f"objects_{n}" / "index.json").read_text())


def root_json(n: int, key: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"objects_{n}" / index(n)[key]["json"]).read_text())


def differences(ours: Any, roots: Any, path: str = "") -> list[str]:
    """What differs between our JSON and ROOT's (empty: equal field by field)."""
    out: list[str] = []
    ours_table, roots_table = written_objects(ours), written_objects(roots)

    def follow(node: Any, table: list[dict]) -> Any:
        if isinstance(node, dict) and "$ref" in node and len(node) == 1:
            return table[node["$ref"]]
        return node

    def compare(a: Any, b: Any, where: str, depth: int = 0) -> None:
        if depth > 64:
            return
        a, b = follow(a, ours_table), follow(b, roots_table)
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                if key not in a:
                    out.append(f"{where}.{key}: missing (ROOT has {str(b[key])[:60]})")
                elif key not in b:
                    out.append(f"{where}.{key}: not in ROOT's ({str(a[key])[:60]})")
                elif key == "fBits" and isinstance(a[key], int) and isinstance(b[key], int):
                    if (a[key] ^ b[key]) & ~K_MUST_CLEANUP:
                        out.append(f"{where}.fBits: {a[key]} vs ROOT {b[key]}")
                elif key == "fFormula" and isinstance(a[key], str) and isinstance(b[key], str):
                    if "".join(a[key].split()) != "".join(b[key].split()):
                        out.append(f"{where}.fFormula: {a[key]!r} vs ROOT {b[key]!r}")
                else:
                    compare(a[key], b[key], f"{where}.{key}", depth + 1)
        elif isinstance(a, list) and isinstance(b, list):
            if len(a) != len(b):
                out.append(f"{where}: {len(a)} items vs ROOT {len(b)}")
                return
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                compare(x, y, f"{where}[{i}]", depth + 1)
        elif isinstance(a, bool) or isinstance(b, bool):
            if a != b:
                out.append(f"{where}: {a!r} vs ROOT {b!r}")
        elif isinstance(a, int | float) and isinstance(b, int | float):
            if not math.isclose(a, b, rel_tol=2e-7, abs_tol=1e-9):
                out.append(f"{where}: {a!r} vs ROOT {b!r}")
        elif a != b:
            out.append(f"{where}: {str(a)[:60]!r} vs ROOT {str(b)[:60]!r}")

    compare(ours, roots, path)
    return out
