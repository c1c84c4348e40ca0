"""Run the real JSROOT (in node) on JSON Overwatch serves, for the tests.

All objects go to ONE node process (starting node and importing JSROOT costs
about a second; drawing one histogram a few milliseconds). Node and the JSROOT
package are required, not optional: without them the tests fail and say to
run ``make node-deps`` (``make test`` installs them).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

NODE_DIR = Path(__file__).resolve().parent / "node"
CHECKER = NODE_DIR / "check_json.mjs"
JSROOT_PACKAGE = NODE_DIR / "node_modules" / "jsroot" / "package.json"
#: check_json.mjs marks its result lines; anything else on stdout is JSROOT's own chatter.
RESULT_PREFIX = "@overwatch-result "


def _require_node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: run `make system-deps node-deps`", pytrace=False)
    if not JSROOT_PACKAGE.exists():
        pytest.fail(
            f"JSROOT is not installed in {NODE_DIR / 'node_modules'}: run `make node-deps`",
            pytrace=False,
        )
    return node


def run_jsroot(
    objects: list[tuple[str, dict | str | bytes, str | None]],
    *,
    timeout: float = 300.0,
    time_zone: str | None = None,
) -> list[dict]:
    """Parse and draw each (name, JSON object or served JSON text, draw option) with JSROOT.

    Returns one result per object, in order (see check_json.mjs for the fields);
    ``contents`` and ``errors`` of histograms are decoded to numpy arrays.
    ``time_zone`` sets node's local time zone (``TZ``), to check that what
    should show in UTC does not depend on it. Raises ``RuntimeError`` with
    node's stderr if node itself fails.
    """
    node = _require_node()
    items = []
    for name, obj, option in objects:
        if isinstance(obj, bytes):
            text = obj.decode("utf-8")
        elif isinstance(obj, str):
            text = obj
        else:
            text = json.dumps(obj, allow_nan=False)
        items.append({"name": name, "json": text, "option": option or ""})
    with tempfile.NamedTemporaryFile("w", suffix=".json", encoding="utf-8") as handle:
        json.dump(items, handle)
        handle.flush()
        completed = subprocess.run(
            [node, str(CHECKER), handle.name],
            cwd=NODE_DIR,
            env={**os.environ, "TZ": time_zone} if time_zone else None,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    if completed.returncode != 0:
        raise RuntimeError(
            f"node {CHECKER.name} exited with {completed.returncode}:\n{completed.stderr}"
        )
    results = [
        json.loads(line[len(RESULT_PREFIX) :])
        for line in completed.stdout.splitlines()
        if line.startswith(RESULT_PREFIX)
    ]
    if len(results) != len(items):
        raise RuntimeError(
            f"node reported {len(results)} results for {len(items)} objects:\n"
            f"{completed.stdout[-2000:]}\n{completed.stderr}"
        )
    for result in results:
        for key in ("contents", "errors"):
            encoded = result.pop(f"{key}_b64", None)
            if encoded is not None:
                result[key] = np.frombuffer(base64.b64decode(encoded), dtype="<f8")
    return results
